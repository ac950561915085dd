package smtp

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in   string
		want Endpoint
	}{
		{"smtps://mail.example.com", Endpoint{Host: "mail.example.com", Port: 465, TLS: TLSImplicit}},
		{"smtps://alice@mail.example.com:2465", Endpoint{Host: "mail.example.com", Port: 2465, TLS: TLSImplicit, User: "alice"}},
		{"smtps://mail.example.com?tls=required", Endpoint{Host: "mail.example.com", Port: 465, TLS: TLSImplicit}},
		{"smtp://mail.example.com", Endpoint{Host: "mail.example.com", Port: 587, TLS: TLSRequired}},
		{"smtp://alice%40example.com@mail.example.com:25", Endpoint{Host: "mail.example.com", Port: 25, TLS: TLSRequired, User: "alice@example.com"}},
		{"smtp://mail.example.com/?tls=opportunistic", Endpoint{Host: "mail.example.com", Port: 587, TLS: TLSOpportunistic}},
		{"smtp://127.0.0.1:1025?tls=none", Endpoint{Host: "127.0.0.1", Port: 1025, TLS: TLSNone}},
		{"smtp://relay@localhost:25?tls=none", Endpoint{Host: "localhost", Port: 25, TLS: TLSNone, User: "relay"}},
		{"smtp://[::1]:25?tls=none", Endpoint{Host: "::1", Port: 25, TLS: TLSNone}},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if again, err := ParseURL(got.String()); err != nil || again != got {
			t.Errorf("ParseURL(%q).String() = %q parses to %+v, %v", tt.in, got.String(), again, err)
		}
	}
}

func TestParseURL_Errors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"", "scheme"},
		{"mail.example.com:587", "scheme"},
		{"http://mail.example.com", "scheme"},
		{"smtp://", "no host"},
		{"smtp:mail.example.com", "no host"},
		{"smtp://alice:pw-in-url@mail.example.com", "password"},
		{"smtp://::1", "host"},
		{"smtp://mail..example.com", "host"},
		{"smtp://-mail.example.com", "host"},
		{"smtp://mail.example.com:0", "port"},
		{"smtp://mail.example.com:70000", "port"},
		{"smtp://mail.example.com:", "empty port"},
		{"smtp://mail.example.com/path", "path"},
		{"smtp://mail.example.com#frag", "fragment"},
		{"smtp://mail.example.com?tls=yes", "tls=yes"},
		{"smtp://mail.example.com?tls=none&tls=required", "more than once"},
		{"smtp://mail.example.com?starttls=1", "unknown parameter"},
		{"smtp://mail.example.com?tls=%zz", "query"},
		{"smtps://mail.example.com?tls=none", "always TLS"},
		{"smtps://mail.example.com?tls=opportunistic", "always TLS"},
		{"smtp://alice@mail.example.com?tls=none", "in the clear"},
		{"smtp://alice@10.0.0.1:25?tls=none", "in the clear"},
	}
	for _, tt := range tests {
		_, err := ParseURL(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "want") {
			t.Errorf("ParseURL(%q): got %v, want an error about %q that says what it wants", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw-in-url") {
			t.Errorf("ParseURL(%q): the error %q repeats the password", tt.in, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"smtps://alice@mail.example.com:465", "smtp://mail.example.com?tls=none", "smtp://a:b@c", "smtp://[::1]:25"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := ParseURL(s)
		if err != nil {
			if u, perr := url.Parse(s); perr == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok && len(pw) >= 4 && strings.Contains(err.Error(), pw) {
					t.Errorf("the error %q repeats the password", err)
				}
			}
			return
		}
		if ep.Host == "" || ep.Port < 1 || ep.Port > 65535 {
			t.Errorf("ParseURL(%q) = %+v: want a host and a port", s, ep)
		}
		again, err := ParseURL(ep.String())
		if err != nil || again != ep {
			t.Errorf("ParseURL(%q) = %+v, whose String %q parses to %+v, %v", s, ep, ep.String(), again, err)
		}
	})
}
