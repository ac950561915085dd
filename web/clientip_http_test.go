package web_test

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/web"
)

// TestHandler_TrustedProxies: the address the audit log records (and
// the per-IP limits count) for a hosted page and for X-End-User-IP, with
// and without trusted proxies, through the real handler.
func TestHandler_TrustedProxies(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		hdr     []string // header name, value pairs
		want    string
	}{
		{"Page/NoProxies", nil, "10.0.0.1:5000", []string{"X-Forwarded-For", "198.51.100.7"}, "10.0.0.1"},
		{"Page/Proxy", proxies, "10.0.0.1:5000", []string{"X-Forwarded-For", "1.2.3.4, 198.51.100.7, 10.0.0.2"}, "198.51.100.7"},
		{"Page/ProxyForwarded", proxies, "[2001:db8:1::1]:443", []string{"Forwarded", `for="[2001:db8:2::9]:4711";proto=https`}, "2001:db8:2::9"},
		{"Page/ProxyNoHeader", proxies, "10.0.0.1:5000", nil, "10.0.0.1"},
		{"Page/UntrustedPeerSpoofs", proxies, "198.51.100.9:5000", []string{"X-Forwarded-For", "10.0.0.2", "Forwarded", "for=10.0.0.3"}, "198.51.100.9"},
		{"Page/MappedPeer", proxies, "[::ffff:198.51.100.9]:5000", nil, "198.51.100.9"},
		{"API/One", nil, "10.0.0.1:5000", []string{"X-End-User-IP", "198.51.100.7"}, "198.51.100.7"},
		{"API/ChainNoProxies", nil, "10.0.0.1:5000", []string{"X-End-User-IP", "198.51.100.7, 10.0.0.2"}, "10.0.0.2"},
		{"API/ChainProxies", proxies, "10.0.0.1:5000", []string{"X-End-User-IP", "1.2.3.4, 198.51.100.7, 10.0.0.2"}, "198.51.100.7"},
		// The application is the one who says; the peer's proxies do not speak for it.
		{"API/XFFIgnored", proxies, "10.0.0.1:5000", []string{"X-End-User-IP", "198.51.100.7", "X-Forwarded-For", "1.2.3.4"}, "198.51.100.7"},
		{"API/NoHeader", proxies, "10.0.0.1:5000", []string{"X-Forwarded-For", "1.2.3.4"}, ""},
		{"API/EmptyHeader", proxies, "10.0.0.1:5000", []string{"X-End-User-IP", ""}, ""},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			svc, _, c, _ := twofatest.NewService(t)
			h := web.NewHandler(svc, web.Options{Now: c.Now, TrustedProxies: tt.trusted})
			ref := twofa.UserRef{Tenant: "acme", User: "alice"}
			var r = httptest.NewRequest("POST", "/v1/users/alice/totp", strings.NewReader("{}"))
			if strings.HasPrefix(tt.name, "Page/") {
				token, _, err := svc.CreateLink(ctx, ref, twofa.LinkEnroll)
				if err != nil {
					t.Fatal(err)
				}
				r = httptest.NewRequest("GET", "/l/"+token, nil)
			} else {
				key, _, err := svc.CreateAPIKey(ctx, "acme", "app", twofa.ScopeApp)
				if err != nil {
					t.Fatal(err)
				}
				r.Header.Set("Authorization", "Bearer "+key)
				r.Header.Set("Content-Type", "application/json")
			}
			r.RemoteAddr = tt.peer
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				r.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code >= 400 {
				t.Fatalf("%s %s: %d %s", r.Method, r.URL, w.Code, w.Body)
			}
			events, err := svc.AuditEvents(ctx, twofa.AuditFilter{Tenant: "acme", Limit: 1000})
			if err != nil || len(events) == 0 {
				t.Fatalf("audit: %v, %d events", err, len(events))
			}
			last := events[len(events)-1]
			if last.IP != tt.want {
				t.Errorf("%s recorded IP %q, want %q", last.Type, last.IP, tt.want)
			}
		})
	}
}

// TestHandler_EndUserIPInvalid: an X-End-User-IP that does not parse is
// refused with a 400 that names the header, before anything is done.
func TestHandler_EndUserIPInvalid(t *testing.T) {
	for _, v := range []string{"not-an-ip", "198.51.100.7, garbage", " , ", "198.51.100.0/24"} {
		t.Run(v, func(t *testing.T) {
			e := newEnv(t, nil)
			r := e.app("POST", "/v1/users/alice/totp", "{}", "X-End-User-IP", v)
			if r.status != 400 || r.errCode() != "invalid" || !strings.Contains(r.errField("message"), "X-End-User-IP") {
				t.Errorf("got %d %s, want 400 invalid naming X-End-User-IP", r.status, r.raw)
			}
			if u, err := e.svc.UserStatus(context.Background(), twofa.UserRef{Tenant: "acme", User: "alice"}); err == nil && len(u.Devices) > 0 {
				t.Errorf("a device was enrolled: %+v", u.Devices)
			}
		})
	}
}
