package web_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/webhook"
)

// TestWebhook_API: an admin sets, shows and removes their tenant's
// webhook; the secret is shown once.
func TestWebhook_API(t *testing.T) {
	e := newEnv(t, nil)
	admin := func(method, body string) result {
		t.Helper()
		return e.req(method, "/v1/webhook", e.adminKey, body)
	}
	if r := admin("GET", ""); r.status != 404 || r.errCode() != "not_found" {
		t.Errorf("GET before any: %d %s; want 404 not_found", r.status, r.raw)
	}
	if r := admin("DELETE", ""); r.status != 404 {
		t.Errorf("DELETE before any: %d %s; want 404", r.status, r.raw)
	}

	r := admin("PUT", `{"url": "https://hooks.acme.example/twofa?token=t0k3n", "event_types": ["user_locked", "2fa_disabled"]}`)
	if r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.raw)
	}
	secret := r.str("secret")
	key, err := webhook.DecodeSecret(secret)
	if err != nil || !strings.HasPrefix(secret, "whsec_") || len(key) != 32 {
		t.Errorf("PUT's secret %q: %v; want whsec_ and 32 bytes", secret, err)
	}
	if r.str("url") != "https://hooks.acme.example/twofa?token=t0k3n" || !slices.Equal(strs(r.body["event_types"]), []string{"user_locked", "2fa_disabled"}) {
		t.Errorf("PUT answered %s", r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("PUT's answer, which holds the secret, has Cache-Control %q", r.header.Get("Cache-Control"))
	}
	// The Service's secret is the one handed out.
	if _, got, err := e.svc.WebhookSecret(context.Background(), "acme"); err != nil || string(got) != string(key) {
		t.Errorf("WebhookSecret = %x, %v; want the secret of PUT's answer", got, err)
	}

	r = admin("GET", "")
	if r.status != 200 || r.str("url") != "https://hooks.acme.example/twofa?token=t0k3n" || len(strs(r.body["event_types"])) != 2 || r.str("updated_at") == "" {
		t.Errorf("GET: %d %s", r.status, r.raw)
	}
	if _, ok := r.body["secret"]; ok || strings.Contains(r.raw, secret) {
		t.Errorf("GET shows the secret: %s", r.raw)
	}

	// Again, every event: a new secret.
	r = admin("PUT", `{"url": "https://hooks.acme.example/v2"}`)
	if r.status != 200 || r.str("secret") == secret || r.str("secret") == "" || !strings.Contains(r.raw, `"event_types":[]`) {
		t.Errorf("PUT again: %d %s; want a new secret and event_types []", r.status, r.raw)
	}

	// Another tenant's admin sees none of it.
	other, _, err := e.svc.CreateAPIKey(context.Background(), "globex", "admin", twofa.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.req("GET", "/v1/webhook", other, ""); r.status != 404 {
		t.Errorf("globex's GET: %d %s; want 404", r.status, r.raw)
	}
	if r := e.req("DELETE", "/v1/webhook", other, ""); r.status != 404 {
		t.Errorf("globex's DELETE: %d %s; want 404", r.status, r.raw)
	}

	// The audit log names the URL's origin only.
	audit := e.req("GET", "/v1/audit", e.adminKey, "")
	if !strings.Contains(audit.raw, "webhook to https://hooks.acme.example") || strings.Contains(audit.raw, "t0k3n") {
		t.Errorf("audit log: %s; want the webhook's origin and not its token", audit.raw)
	}

	if r := admin("DELETE", ""); r.status != 204 {
		t.Errorf("DELETE: %d %s", r.status, r.raw)
	}
	if r := admin("GET", ""); r.status != 404 {
		t.Errorf("GET after DELETE: %d %s", r.status, r.raw)
	}

	// App keys may do none of it.
	for _, m := range []string{"PUT", "GET", "DELETE"} {
		body := ""
		if m == "PUT" {
			body = `{"url": "https://evil.example/"}`
		}
		if r := e.req(m, "/v1/webhook", e.appKey, body); r.status != 403 {
			t.Errorf("%s with an app key: %d, want 403", m, r.status)
		}
	}
	if r := admin("GET", ""); r.status != 404 {
		t.Errorf("after an app key's PUT, GET: %d %s; want 404", r.status, r.raw)
	}
}

// TestWebhook_BadInput: refused, clearly, changing nothing.
func TestWebhook_BadInput(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.req("PUT", "/v1/webhook", e.adminKey, `{"url": "https://hooks.acme.example/"}`); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.raw)
	}
	for _, tt := range []struct {
		name, body string
		hdr        []string
		status     int
		field      string
	}{
		{name: "NoURL", body: `{"event_types": []}`, status: 400, field: "url"},
		{name: "EmptyBody", body: ``, status: 400},
		{name: "HTTP", body: `{"url": "http://hooks.acme.example/"}`, status: 400},
		{name: "Relative", body: `{"url": "/hooks"}`, status: 400},
		{name: "Credentials", body: `{"url": "https://a:b@hooks.acme.example/"}`, status: 400},
		{name: "UnknownEventType", body: `{"url": "https://hooks.acme.example/", "event_types": ["verify_faild"]}`, status: 400},
		{name: "EventTypesNotStrings", body: `{"url": "https://hooks.acme.example/", "event_types": [1]}`, status: 400},
		{name: "EventTypesNotAList", body: `{"url": "https://hooks.acme.example/", "event_types": "user_locked"}`, status: 400},
		{name: "URLNotAString", body: `{"url": 7}`, status: 400},
		{name: "UnknownField", body: `{"url": "https://hooks.acme.example/", "secret": "whsec_mine"}`, status: 400},
		{name: "TwoObjects", body: `{"url": "https://a.example/"} {}`, status: 400},
		{name: "NotJSON", body: `url=https://a.example/`, status: 400},
		{name: "ContentType", body: `{"url": "https://a.example/"}`, hdr: []string{"Content-Type", "text/plain"}, status: 415},
		{name: "TooLarge", body: `{"url": "https://a.example/` + strings.Repeat("a", 70<<10) + `"}`, status: 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.req("PUT", "/v1/webhook", e.adminKey, tt.body, tt.hdr...)
			if r.status != tt.status {
				t.Errorf("status %d %s, want %d", r.status, r.raw, tt.status)
			}
			if tt.field != "" {
				if f, _ := r.body["error"].(map[string]any)["fields"].(map[string]any); f[tt.field] == nil {
					t.Errorf("error %s names no field %s", r.raw, tt.field)
				}
			}
			if got := e.req("GET", "/v1/webhook", e.adminKey, ""); got.str("url") != "https://hooks.acme.example/" {
				t.Errorf("after a refused PUT, the webhook is %s", got.raw)
			}
		})
	}
}

// TestWebhook_OpenAPIEventTypes: the document lists the event types the
// Service accepts.
func TestWebhook_OpenAPIEventTypes(t *testing.T) {
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas struct {
				WebhookEventType struct {
					Enum []string `json:"enum"`
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, t := range twofa.WebhookEvents() {
		want = append(want, string(t))
	}
	got := doc.Components.Schemas.WebhookEventType.Enum
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("WebhookEventType enum = %q, want %q", got, want)
	}
}

// strs returns a JSON array of strings.
func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
