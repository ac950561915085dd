package smtp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// TLS says how a connection to the server is protected.
type TLS string

// TLS modes.
const (
	// TLSImplicit speaks TLS from the first byte (smtps://, port 465).
	TLSImplicit TLS = "implicit"
	// TLSRequired upgrades with STARTTLS, and refuses a server that does
	// not offer it: the default of smtp://, since a relay that strips
	// STARTTLS would otherwise read every code.
	TLSRequired TLS = "required"
	// TLSOpportunistic upgrades with STARTTLS when the server offers it,
	// and sends in the clear when not (passwords never go in the clear
	// but to a loopback address).
	TLSOpportunistic TLS = "opportunistic"
	// TLSNone never upgrades: for a relay on the same host.
	TLSNone TLS = "none"
)

// Endpoint is where and how to reach an SMTP server, as a URL says it.
type Endpoint struct {
	Host string
	Port int
	TLS  TLS
	User string // empty: no authentication
}

// ParseURL reads smtps://user@host:port (implicit TLS, port 465 by
// default) or smtp://user@host:port?tls=required|opportunistic|none
// (STARTTLS, port 587 by default, tls=required by default). The user is
// optional and may be percent-encoded (alice%40example.com). A password
// in the URL is refused: it goes apart, so that it stays out of process
// lists and logs. Errors never repeat the URL.
func ParseURL(raw string) (Endpoint, error) {
	var ep Endpoint
	u, err := url.Parse(raw)
	if err != nil {
		return ep, errors.New("not a URL: want smtp://user@host:port or smtps://user@host:port")
	}
	switch u.Scheme {
	case "smtps":
		ep.TLS, ep.Port = TLSImplicit, 465
	case "smtp":
		ep.TLS, ep.Port = TLSRequired, 587
	default:
		return ep, fmt.Errorf("scheme %q: want smtp:// (STARTTLS) or smtps:// (implicit TLS)", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return ep, errors.New("no host: want smtp://user@host:port or smtps://user@host:port")
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			return ep, errors.New("the URL holds a password: want it apart, in a password file or an environment variable")
		}
		ep.User = u.User.Username()
	}
	ep.Host = u.Hostname()
	if ep.Host == "" {
		return ep, errors.New("no host: want smtp://user@host:port or smtps://user@host:port")
	}
	if !validHost(ep.Host) {
		return ep, fmt.Errorf("host %q: want a host name or an IP address ([::1] for IPv6)", ep.Host)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return ep, fmt.Errorf("port %q: want 1 to 65535", p)
		}
		ep.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return ep, errors.New("empty port: want a port after the colon, or no colon")
	}
	if u.Path != "" && u.Path != "/" || u.Fragment != "" || u.RawFragment != "" {
		return ep, errors.New("a path or fragment: want only smtp[s]://user@host:port and ?tls=")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return ep, errors.New("the query does not parse: want ?tls=required, ?tls=opportunistic or ?tls=none")
	}
	for k, v := range q {
		if k != "tls" {
			return ep, fmt.Errorf("unknown parameter %q: want only tls", k)
		}
		if len(v) != 1 {
			return ep, errors.New("tls given more than once: want it once")
		}
		mode := TLS(v[0])
		switch {
		case ep.TLS == TLSImplicit && mode != TLSRequired:
			return ep, fmt.Errorf("tls=%s with smtps://, which is always TLS: want smtp:// for STARTTLS or none", v[0])
		case ep.TLS == TLSImplicit:
		case mode == TLSRequired || mode == TLSOpportunistic || mode == TLSNone:
			ep.TLS = mode
		default:
			return ep, fmt.Errorf("tls=%s: want required, opportunistic or none", v[0])
		}
	}
	if ep.User != "" && ep.TLS == TLSNone && !loopback(ep.Host) {
		return ep, errors.New("a user with tls=none: the password would cross the network in the clear: want TLS, or a relay on a loopback address")
	}
	return ep, nil
}

// String is the endpoint as a URL, without a password (it has none).
func (ep Endpoint) String() string {
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))}
	if ep.TLS == TLSImplicit {
		u.Scheme = "smtps"
	} else {
		u.RawQuery = "tls=" + string(ep.TLS)
	}
	if ep.User != "" {
		u.User = url.User(ep.User)
	}
	return u.String()
}

// validHost reports whether h is an IP address or a host name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// loopback reports whether host is this machine, where a password may go
// without TLS (as go-mail's PLAIN and LOGIN also allow).
func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
