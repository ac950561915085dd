package web

import (
	"errors"
	"iter"
	"net/http"
	"net/netip"
	"strings"
)

// Who is at the other end of a request.
//
// A request's TCP peer is its client, unless the peer is in
// Options.TrustedProxies. Then the client is the right-most address of
// X-Forwarded-For that is not itself a trusted proxy: each proxy appends
// the address it saw, so everything right of that entry was written by
// proxies twofa trusts, and everything left of it by whoever the client
// is, who may write anything. When the request has no X-Forwarded-For,
// the for= parameters of Forwarded (RFC 7239) are read the same way.
// X-Forwarded-For comes first because nginx and Caddy write it and pass a
// client's Forwarded header through untouched; a proxy that writes only
// Forwarded must drop the X-Forwarded-For its clients send.
//
// An entry that does not parse (or Forwarded's "unknown" and obfuscated
// names) ends the walk: the client is the nearest hop named before it.
// When every entry is a trusted proxy, the client is the left-most one.

// headerForwardedFor is the de facto header; headerForwarded is RFC 7239's.
const (
	headerForwardedFor = "X-Forwarded-For"
	headerForwarded    = "Forwarded"
)

// clientIP returns the address of r's client, given the proxies trusted
// to name it; the zero Addr if even the peer's address does not parse.
// Addresses come without zone and IPv4-mapped IPv6 as IPv4, so one
// client has one key in the per-IP limits.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	if xff := r.Header.Values(headerForwardedFor); len(xff) > 0 {
		return rightmostUntrusted(peer, listBackward(xff), trusted)
	}
	if fwd := r.Header.Values(headerForwarded); len(fwd) > 0 {
		return rightmostUntrusted(peer, backward(forwardedFor(fwd)), trusted)
	}
	return peer
}

// errEndUserIP is the answer to an X-End-User-IP that does not parse.
var errEndUserIP = errors.New(HeaderEndUserIP + " must be an IPv4 or IPv6 address, or a comma-separated list of them as in X-Forwarded-For")

// endUserIP reads X-End-User-IP, which the calling application sets to
// its end user's address: one address, or a chain it got in
// X-Forwarded-For, of which the right-most entry that is not a trusted
// proxy is the end user. Every entry up to that one must parse. lines
// are the header's values, as http.Header.Values gives them.
func endUserIP(lines []string, trusted []netip.Prefix) (netip.Addr, error) {
	var client netip.Addr
	for e := range listBackward(lines) {
		a, ok := parseNode(e)
		if !ok {
			return netip.Addr{}, errEndUserIP
		}
		client = a
		if !isTrusted(a, trusted) {
			break
		}
	}
	if !client.IsValid() {
		return netip.Addr{}, errEndUserIP
	}
	return client, nil
}

// rightmostUntrusted walks a chain of addresses from the right, starting
// behind the (trusted) peer.
func rightmostUntrusted(peer netip.Addr, entries iter.Seq[string], trusted []netip.Prefix) netip.Addr {
	client := peer
	for e := range entries {
		a, ok := parseNode(e)
		if !ok {
			return client
		}
		client = a
		if !isTrusted(a, trusted) {
			return a
		}
	}
	return client
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr parses http.Request.RemoteAddr, "IP:port" as net/http sets it.
func peerAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normAddr(ap.Addr())
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return normAddr(a)
	}
	return netip.Addr{}
}

func normAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// parseNode reads one entry of a chain: an address, with or without a
// port, IPv6 in brackets when it has one ("192.0.2.1", "192.0.2.1:443",
// "2001:db8::1", "[2001:db8::1]:443"), as X-Forwarded-For and Forwarded's
// for= write them. Forwarded's obfuscated ports ("_x") are allowed;
// "unknown" and obfuscated nodes are not addresses.
func parseNode(s string) (netip.Addr, bool) {
	host := strings.Trim(s, " \t")
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		if rest := host[end+1:]; rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
		host = host[1:end]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return normAddr(a), true
	}
	if i := strings.IndexByte(host, ':'); i >= 0 && strings.LastIndexByte(host, ':') == i {
		// One colon: IPv4 and a port (an IPv6 address has at least two).
		if !validPort(host[i+1:]) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(host[:i])
		if err != nil || !a.Is4() {
			return netip.Addr{}, false
		}
		return a, true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return normAddr(a), true
}

// validPort is a port number or RFC 7239's obfuscated port ("_" and
// letters, digits, ".", "_", "-").
func validPort(p string) bool {
	if p == "" || len(p) > 32 {
		return false
	}
	if p[0] == '_' {
		for i := 1; i < len(p); i++ {
			if !isObfChar(p[i]) {
				return false
			}
		}
		return len(p) > 1
	}
	if len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

func isObfChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// listBackward yields the entries of comma-separated header lines from
// the last to the first, skipping empty ones (RFC 9110 §5.6.1), without
// allocating.
func listBackward(lines []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := len(lines) - 1; i >= 0; i-- {
			s := lines[i]
			for {
				j := strings.LastIndexByte(s, ',')
				if e := strings.Trim(s[j+1:], " \t"); e != "" && !yield(e) {
					return
				}
				if j < 0 {
					break
				}
				s = s[:j]
			}
		}
	}
}

func backward(s []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := len(s) - 1; i >= 0; i-- {
			if !yield(s[i]) {
				return
			}
		}
	}
}

// forwardedFor returns the for= value of each element of Forwarded
// header lines (RFC 7239 §4), in order, quotes removed. An element
// without one, or that does not parse, gives "", which no walk passes.
func forwardedFor(lines []string) []string {
	var out []string
	for _, line := range lines {
		p := line
		for {
			p = trimOWS(p)
			if p == "" {
				break
			}
			if p[0] == ',' { // an empty element
				p = p[1:]
				continue
			}
			var v string
			var ok bool
			v, p, ok = forwardedElement(p)
			if !ok {
				v = ""
				p = skipElement(p)
			}
			out = append(out, v)
			if p != "" { // at a comma
				p = p[1:]
			}
		}
	}
	return out
}

// forwardedElement parses pairs up to the end of an element (a comma or
// the end) and returns its for= value and what follows.
func forwardedElement(p string) (forValue, rest string, ok bool) {
	seen := false
	for {
		p = trimOWS(p)
		if p != "" && p[0] == ';' { // an empty pair
			p = p[1:]
			continue
		}
		i := 0
		for i < len(p) && isTokenChar(p[i]) {
			i++
		}
		name := p[:i]
		if name == "" || i == len(p) || p[i] != '=' {
			return "", p, false
		}
		p = p[i+1:]
		var v string
		if p != "" && p[0] == '"' {
			var ok bool
			if v, p, ok = quotedString(p); !ok {
				return "", p, false
			}
		} else {
			j := 0
			for j < len(p) && (isTokenChar(p[j]) || p[j] == '[' || p[j] == ']' || p[j] == ':') {
				j++ // brackets and colons, unquoted, are invalid but harmless
			}
			v, p = p[:j], p[j:]
		}
		if strings.EqualFold(name, "for") {
			if seen {
				return "", p, false
			}
			forValue, seen = v, true
		}
		p = trimOWS(p)
		switch {
		case p == "" || p[0] == ',':
			return forValue, p, true
		case p[0] == ';':
			p = p[1:]
		default:
			return "", p, false
		}
	}
}

// quotedString reads a quoted-string at the start of p.
func quotedString(p string) (v, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(p); i++ {
		switch c := p[i]; c {
		case '"':
			return b.String(), p[i+1:], true
		case '\\':
			if i+1 == len(p) {
				return "", "", false
			}
			i++
			b.WriteByte(p[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// skipElement skips to the comma that ends a malformed element, minding
// quotes.
func skipElement(p string) string {
	quoted := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return p[i:]
		}
	}
	return ""
}

func trimOWS(s string) string { return strings.TrimLeft(s, " \t") }

// isTokenChar is RFC 9110's tchar.
func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
