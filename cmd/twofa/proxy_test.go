package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestServe_TrustedProxies: with --trusted-proxies, a hosted page records
// the address the proxy names in X-Forwarded-For, and X-End-User-IP may
// be a chain; from a peer not trusted, X-Forwarded-For is the client's
// word and ignored.
func TestServe_TrustedProxies(t *testing.T) {
	cases := []struct {
		name     string
		trusted  string // --trusted-proxies; the test's connections come from 127.0.0.1
		wantPage string
		wantAPI  string
	}{
		{"Trusted", "127.0.0.0/8,::1", "198.51.100.7", "203.0.113.9"},
		{"NotTrusted", "10.0.0.0/8", "127.0.0.1", "127.0.0.1"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := startServer(t, dir, "--trusted-proxies", tt.trusted)
			app := &client{t: t, base: srv.url, key: createKey(t, dir, "acme", false)}

			// The application forwards the chain it got.
			r := app.do("POST", "/v1/users/bob/totp", map[string]any{}, "X-End-User-IP", "203.0.113.9, 127.0.0.1")
			if r.status != 201 {
				t.Fatalf("enroll: %d %s", r.status, r.raw)
			}
			r = app.do("POST", "/v1/users/carol/enrollment-links", nil)
			if r.status != 201 {
				t.Fatalf("link: %d %s", r.status, r.raw)
			}
			req, _ := http.NewRequest("GET", r.str("url"), nil)
			req.Header.Set("X-Forwarded-For", "1.2.3.4, 198.51.100.7")
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("GET the link: %d", resp.StatusCode)
			}

			out, errOut, status := runCLI(t, "", "audit", "tail", "--data", dir, "-n", "10")
			if status != 0 {
				t.Fatalf("audit tail: %d %s", status, errOut)
			}
			for _, want := range []struct{ event, ip string }{{"enrollment_started", tt.wantAPI}, {"link_used", tt.wantPage}} {
				found := false
				for line := range strings.Lines(out) {
					f := strings.Fields(line)
					if len(f) > 3 && f[2] == want.event {
						found = true
						if !strings.Contains(line, " "+want.ip+" ") && !strings.HasSuffix(strings.TrimSpace(line), want.ip) {
							t.Errorf("%s: got %q, want IP %s", want.event, line, want.ip)
						}
					}
				}
				if !found {
					t.Errorf("no %s event in\n%s", want.event, out)
				}
			}
		})
	}
}
