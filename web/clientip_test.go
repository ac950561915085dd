package web

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// testProxies: two private ranges, a documentation IPv6 range and one
// address, as an operator would give them.
var testProxies = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("2001:db8:1::/48"),
	netip.MustParsePrefix("203.0.113.7/32"),
}

func TestClientIP(t *testing.T) {
	const client = "198.51.100.7"
	cases := []struct {
		name    string
		trusted []netip.Prefix
		peer    string   // RemoteAddr
		xff     []string // X-Forwarded-For lines
		fwd     []string // Forwarded lines
		want    string   // "" for the zero Addr
	}{
		// Nobody trusted, or the peer not trusted: the headers are the client's words.
		{"NoProxies/SpoofedXFF", nil, "10.0.0.1:5000", []string{"1.2.3.4"}, nil, "10.0.0.1"},
		{"UntrustedPeer/SpoofedXFF", testProxies, "198.51.100.9:5000", []string{"1.2.3.4"}, nil, "198.51.100.9"},
		{"UntrustedPeer/SpoofedTrustedXFF", testProxies, "198.51.100.9:5000", []string{"10.0.0.5"}, nil, "198.51.100.9"},
		{"UntrustedPeer/SpoofedForwarded", testProxies, "198.51.100.9:5000", nil, []string{"for=1.2.3.4"}, "198.51.100.9"},
		{"UntrustedPeer/NoHeaders", testProxies, "198.51.100.9:5000", nil, nil, "198.51.100.9"},
		{"TrustedPeer/NoHeaders", testProxies, "10.0.0.1:5000", nil, nil, "10.0.0.1"},

		// X-Forwarded-For from a trusted proxy.
		{"XFF/One", testProxies, "10.0.0.1:5000", []string{client}, nil, client},
		{"XFF/SpoofedLeft", testProxies, "10.0.0.1:5000", []string{"1.2.3.4, " + client}, nil, client},
		{"XFF/TwoProxies", testProxies, "10.0.0.1:5000", []string{"1.2.3.4, " + client + ", 192.168.1.1"}, nil, client},
		{"XFF/ThreeProxies", testProxies, "10.0.0.1:5000", []string{"1.2.3.4," + client + ",192.168.1.1,203.0.113.7"}, nil, client},
		{"XFF/ClientSpoofsAProxy", testProxies, "10.0.0.1:5000", []string{client + ", 10.9.9.9"}, nil, client},
		{"XFF/SeveralLines", testProxies, "10.0.0.1:5000", []string{"1.2.3.4, " + client, "192.168.1.1"}, nil, client},
		{"XFF/AllTrusted", testProxies, "10.0.0.1:5000", []string{"10.0.0.3, 10.0.0.2"}, nil, "10.0.0.3"},
		{"XFF/EmptyEntries", testProxies, "10.0.0.1:5000", []string{client + ", , "}, nil, client},
		{"XFF/WithPort", testProxies, "10.0.0.1:5000", []string{client + ":4711"}, nil, client},
		{"XFF/NotTrustedNeighbour", testProxies, "10.0.0.1:5000", []string{"10.0.0.9, " + client}, nil, client},
		{"XFF/SingleAddressProxy", testProxies, "203.0.113.7:443", []string{client}, nil, client},

		// IPv6 and IPv4-mapped IPv6.
		{"IPv6/Peer", testProxies, "[2001:db8:1::5]:443", []string{"2001:db8:2::9"}, nil, "2001:db8:2::9"},
		{"IPv6/BracketsAndPort", testProxies, "[2001:db8:1::5]:443", []string{"[2001:db8:2::9]:4711"}, nil, "2001:db8:2::9"},
		{"IPv6/Brackets", testProxies, "[2001:db8:1::5]:443", []string{"[2001:db8:2::9]"}, nil, "2001:db8:2::9"},
		{"IPv6/ProxyChain", testProxies, "10.0.0.1:5000", []string{"2001:db8:2::9, 2001:db8:1::77"}, nil, "2001:db8:2::9"},
		{"IPv6/Zone", testProxies, "10.0.0.1:5000", []string{"fe80::1%eth0"}, nil, "fe80::1"},
		{"IPv6/UntrustedPeer", testProxies, "[2001:db8:2::1]:443", []string{client}, nil, "2001:db8:2::1"},
		{"Mapped/Peer", testProxies, "[::ffff:10.0.0.1]:5000", []string{client}, nil, client},
		{"Mapped/UntrustedPeer", testProxies, "[::ffff:198.51.100.9]:5000", []string{"1.2.3.4"}, nil, "198.51.100.9"},
		{"Mapped/Entry", testProxies, "10.0.0.1:5000", []string{"::ffff:" + client}, nil, client},
		{"Mapped/TrustedEntry", testProxies, "10.0.0.1:5000", []string{client + ", ::ffff:10.0.0.2"}, nil, client},

		// Entries that do not parse end the walk at the nearest hop named.
		{"Malformed/Rightmost", testProxies, "10.0.0.1:5000", []string{client + ", garbage"}, nil, "10.0.0.1"},
		{"Malformed/BehindProxy", testProxies, "10.0.0.1:5000", []string{"garbage, 10.0.0.2"}, nil, "10.0.0.2"},
		{"Malformed/LeftOfClient", testProxies, "10.0.0.1:5000", []string{"garbage, " + client}, nil, client},
		{"Malformed/Unknown", testProxies, "10.0.0.1:5000", []string{"unknown"}, nil, "10.0.0.1"},
		{"Malformed/BadPort", testProxies, "10.0.0.1:5000", []string{client + ":99999"}, nil, "10.0.0.1"},
		{"Malformed/IPv4InBrackets", testProxies, "10.0.0.1:5000", []string{"[" + client + "]"}, nil, "10.0.0.1"},
		{"Malformed/OpenBracket", testProxies, "10.0.0.1:5000", []string{"[2001:db8:2::9"}, nil, "10.0.0.1"},
		{"Malformed/Hostname", testProxies, "10.0.0.1:5000", []string{"client.example.com"}, nil, "10.0.0.1"},
		{"Malformed/CIDR", testProxies, "10.0.0.1:5000", []string{"198.51.100.0/24"}, nil, "10.0.0.1"},
		{"Malformed/Peer", testProxies, "@", []string{client}, nil, ""},
		{"Malformed/EmptyPeer", testProxies, "", []string{client}, nil, ""},

		// Forwarded (RFC 7239).
		{"Forwarded/One", testProxies, "10.0.0.1:5000", nil, []string{"for=" + client}, client},
		{"Forwarded/Params", testProxies, "10.0.0.1:5000", nil, []string{"proto=https;for=" + client + ";by=10.0.0.1"}, client},
		{"Forwarded/CaseInsensitive", testProxies, "10.0.0.1:5000", nil, []string{"For=" + client}, client},
		{"Forwarded/Quoted", testProxies, "10.0.0.1:5000", nil, []string{`for="` + client + `"`}, client},
		{"Forwarded/QuotedIPv6", testProxies, "10.0.0.1:5000", nil, []string{`for="[2001:db8:2::9]"`}, "2001:db8:2::9"},
		{"Forwarded/QuotedIPv6Port", testProxies, "10.0.0.1:5000", nil, []string{`for="[2001:db8:2::9]:4711"`}, "2001:db8:2::9"},
		{"Forwarded/QuotedIPv4Port", testProxies, "10.0.0.1:5000", nil, []string{`for="` + client + `:4711"`}, client},
		{"Forwarded/ObfuscatedPort", testProxies, "10.0.0.1:5000", nil, []string{`for="[2001:db8:2::9]:_abc"`}, "2001:db8:2::9"},
		{"Forwarded/Chain", testProxies, "10.0.0.1:5000", nil, []string{"for=1.2.3.4, for=" + client + ", for=192.168.1.1"}, client},
		{"Forwarded/SeveralLines", testProxies, "10.0.0.1:5000", nil, []string{"for=1.2.3.4, for=" + client, "for=192.168.1.1;proto=http"}, client},
		{"Forwarded/AllTrusted", testProxies, "10.0.0.1:5000", nil, []string{"for=10.0.0.3, for=10.0.0.2"}, "10.0.0.3"},
		{"Forwarded/CommaInQuotes", testProxies, "10.0.0.1:5000", nil, []string{`for=` + client + `;ext="a, for=1.2.3.4"`}, client},
		{"Forwarded/EscapeInQuotes", testProxies, "10.0.0.1:5000", nil, []string{`for=1.2.3.4;ext="a\", for=5.6.7.8", for=` + client}, client},
		{"Forwarded/MalformedLeft", testProxies, "10.0.0.1:5000", nil, []string{"for=1.2.3.4;;garbage, for=" + client}, client},
		{"Forwarded/Unknown", testProxies, "10.0.0.1:5000", nil, []string{"for=unknown, for=10.0.0.2"}, "10.0.0.2"},
		{"Forwarded/Obfuscated", testProxies, "10.0.0.1:5000", nil, []string{"for=_hidden"}, "10.0.0.1"},
		{"Forwarded/NoFor", testProxies, "10.0.0.1:5000", nil, []string{"proto=https;by=10.0.0.1"}, "10.0.0.1"},
		{"Forwarded/TwoFors", testProxies, "10.0.0.1:5000", nil, []string{"for=" + client + ";for=1.2.3.4"}, "10.0.0.1"},
		{"Forwarded/UnquotedIPv6", testProxies, "10.0.0.1:5000", nil, []string{"for=[2001:db8:2::9]"}, "2001:db8:2::9"},
		{"Forwarded/Unterminated", testProxies, "10.0.0.1:5000", nil, []string{`for="` + client}, "10.0.0.1"},
		{"Forwarded/Garbage", testProxies, "10.0.0.1:5000", nil, []string{"garbage"}, "10.0.0.1"},
		{"Forwarded/EmptyElements", testProxies, "10.0.0.1:5000", nil, []string{" , for=" + client + " ,, "}, client},

		// X-Forwarded-For first: nginx and Caddy write it, and pass a
		// client's Forwarded through.
		{"Precedence/XFFOverForwarded", testProxies, "10.0.0.1:5000", []string{client}, []string{"for=1.2.3.4"}, client},
		{"Precedence/ForwardedWithoutXFF", testProxies, "10.0.0.1:5000", nil, []string{"for=" + client}, client},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tt.fwd {
				r.Header.Add("Forwarded", v)
			}
			got := clientIP(r, tt.trusted)
			if !got.IsValid() && tt.want == "" {
				return
			}
			if got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestEndUserIP(t *testing.T) {
	cases := []struct {
		name    string
		trusted []netip.Prefix
		lines   []string
		want    string // "" for an error
	}{
		{"One", nil, []string{"203.0.113.9"}, "203.0.113.9"},
		{"IPv6", nil, []string{"2001:db8:2::9"}, "2001:db8:2::9"},
		{"Mapped", nil, []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"Zone", nil, []string{"fe80::1%eth0"}, "fe80::1"},
		{"Spaces", nil, []string{" 203.0.113.9 "}, "203.0.113.9"},
		{"WithPort", nil, []string{"203.0.113.9:4711"}, "203.0.113.9"},
		{"Chain/NoProxies", nil, []string{"203.0.113.9, 10.0.0.1"}, "10.0.0.1"},
		{"Chain/Proxy", testProxies, []string{"203.0.113.9, 10.0.0.1"}, "203.0.113.9"},
		{"Chain/Proxies", testProxies, []string{"1.2.3.4, 198.51.100.7, 192.168.1.1, 10.0.0.1"}, "198.51.100.7"},
		{"Chain/MappedProxy", testProxies, []string{"198.51.100.7, ::ffff:10.0.0.1"}, "198.51.100.7"},
		{"Chain/IPv6Proxy", testProxies, []string{"198.51.100.7, 2001:db8:1::1"}, "198.51.100.7"},
		{"Chain/AllTrusted", testProxies, []string{"10.0.0.2, 10.0.0.1"}, "10.0.0.2"},
		{"Chain/SeveralLines", testProxies, []string{"198.51.100.7", "10.0.0.1"}, "198.51.100.7"},
		{"Chain/GarbageNotReached", testProxies, []string{"garbage, 198.51.100.7"}, "198.51.100.7"},
		{"Bad/Word", nil, []string{"not-an-ip"}, ""},
		{"Bad/Empty", nil, []string{""}, ""},
		{"Bad/Commas", nil, []string{" , "}, ""},
		{"Bad/Rightmost", testProxies, []string{"203.0.113.9, garbage"}, ""},
		{"Bad/BehindProxy", testProxies, []string{"garbage, 10.0.0.1"}, ""},
		{"Bad/CIDR", nil, []string{"203.0.113.0/24"}, ""},
		{"Bad/Unknown", nil, []string{"unknown"}, ""},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := endUserIP(tt.lines, tt.trusted)
			switch {
			case tt.want == "" && err == nil:
				t.Errorf("got %s, want an error", got)
			case tt.want == "" && !strings.Contains(err.Error(), HeaderEndUserIP):
				t.Errorf("got error %q, want one naming %s", err, HeaderEndUserIP)
			case tt.want != "" && (err != nil || got.String() != tt.want):
				t.Errorf("got %s, %v, want %s", got, err, tt.want)
			}
		})
	}
}

// TestClientIP_Allocations: resolving the address behind proxies costs
// no allocation for X-Forwarded-For; it runs on every request.
func TestClientIP_Allocations(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "1.2.3.4, 198.51.100.7, 192.168.1.1")
	if n := testing.AllocsPerRun(100, func() { clientIP(r, testProxies) }); n != 0 {
		t.Errorf("got %v allocations, want 0", n)
	}
}

// FuzzClientIP: the headers never panic the parser, and from a peer that
// is not trusted they change nothing.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"198.51.100.7", "1.2.3.4, [2001:db8::1]:80", `for="[2001:db8::1]:4711";proto=https, for=10.0.0.2`, `for="\`, "for=;;,,", `ext="a,b";for=_x`} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, h string, trustedPeer bool) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "198.51.100.9:5000"
		if trustedPeer {
			r.RemoteAddr = "10.0.0.1:5000"
		}
		r.Header.Set("X-Forwarded-For", h)
		a := clientIP(r, testProxies)
		r.Header.Del("X-Forwarded-For")
		r.Header.Set("Forwarded", h)
		b := clientIP(r, testProxies)
		if !trustedPeer && (a.String() != "198.51.100.9" || b.String() != "198.51.100.9") {
			t.Fatalf("untrusted peer: got %s and %s, want the peer", a, b)
		}
		if !a.IsValid() || !b.IsValid() {
			t.Fatalf("got %s and %s, want addresses", a, b)
		}
		endUserIP([]string{h}, testProxies)
	})
}
