package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/web"
)

// clock is the injected time of the Service and the handler.
type clock = twofatest.Clock

// env is a handler over a real Service on SQLite, with an app and an
// admin key of tenant "acme".
type env struct {
	tb       testing.TB
	svc      *twofa.Service
	h        http.Handler
	clock    *clock
	appKey   string
	adminKey string
}

// newEnv starts from an empty database; ready, if given, backs /readyz.
func newEnv(tb testing.TB, ready func(context.Context) error) *env {
	tb.Helper()
	ctx := context.Background()
	svc, _, c, _ := twofatest.NewService(tb)
	e := &env{tb: tb, svc: svc, clock: c, h: web.NewHandler(svc, web.Options{Now: c.Now, Ready: ready})}
	var err error
	if e.appKey, _, err = svc.CreateAPIKey(ctx, "acme", "app", twofa.ScopeApp); err != nil {
		tb.Fatal(err)
	}
	if e.adminKey, _, err = svc.CreateAPIKey(ctx, "acme", "admin", twofa.ScopeAdmin); err != nil {
		tb.Fatal(err)
	}
	return e
}

type result struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// errCode returns error.code of an error body, or "".
func (r result) errCode() string     { return r.errField("code") }
func (r result) reason() string      { return r.errField("reason") }
func (r result) str(k string) string { s, _ := r.body[k].(string); return s }

func (r result) errField(k string) string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e[k].(string)
	return s
}

// req sends one request with a JSON content type when there is a body;
// hdr are header name, value pairs ("Content-Type", "" removes it).
func (e *env) req(method, target, key, body string, hdr ...string) result {
	e.tb.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	out := result{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(w.Body.Bytes(), &out.body); err != nil {
			e.tb.Errorf("%s %s: response is not a JSON object: %v: %q", method, target, err, out.raw)
		}
	}
	return out
}

func (e *env) app(method, target, body string, hdr ...string) result {
	e.tb.Helper()
	return e.req(method, target, e.appKey, body, hdr...)
}

// enroll begins and confirms a TOTP device for user and returns its
// device ID, key and first backup codes. The confirmation burns the
// current step; the clock moves on a step so the caller's codes are fresh.
func (e *env) enroll(user string) (string, *otp.Key, []string) {
	e.tb.Helper()
	r := e.app("POST", "/v1/users/"+user+"/totp", `{"name":"Phone"}`)
	if r.status != 201 {
		e.tb.Fatalf("enroll %s: %d %s", user, r.status, r.raw)
	}
	secret, err := otp.DecodeSecret(r.str("secret"))
	if err != nil {
		e.tb.Fatal(err)
	}
	k, err := otp.NewKey(secret, otp.Params{})
	if err != nil {
		e.tb.Fatal(err)
	}
	dev := r.str("device_id")
	r = e.app("POST", "/v1/users/"+user+"/totp/"+dev+"/confirm", `{"code":"`+k.TOTP(e.clock.Now())+`"}`)
	if r.status != 200 || r.body["valid"] != true {
		e.tb.Fatalf("confirm %s: %d %s", user, r.status, r.raw)
	}
	var codes []string
	for _, c := range r.body["backup_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	e.clock.Add(30 * time.Second)
	return dev, k, codes
}

// wrongCode returns a well-formed code that k does not produce near now.
func wrongCode(k *otp.Key, now time.Time) string {
	for n := 1; ; n++ {
		c := strconv.Itoa(100000 + n*7919%900000)
		if m, _ := k.Verify(c, now, otp.Window{Behind: 25, Ahead: 25}); !m.Valid {
			return c
		}
	}
}

// TestHandler_Endpoints walks every route's success path.
func TestHandler_Endpoints(t *testing.T) {
	e := newEnv(t, nil)
	dev, k, codes := e.enroll("alice")
	if len(codes) != 10 {
		t.Fatalf("got %d backup codes, want 10", len(codes))
	}

	// Enrollment responses hold a secret: never cached.
	r := e.app("POST", "/v1/users/bob/totp", "")
	if r.status != 201 || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("enroll with no body: %d %s (Cache-Control %q)", r.status, r.raw, r.header.Get("Cache-Control"))
	}
	for _, f := range []string{"device_id", "secret", "otpauth_uri", "qr_png", "qr_svg", "expires_at"} {
		if r.str(f) == "" {
			t.Errorf("enroll response lacks %s: %s", f, r.raw)
		}
	}
	if w, ok := r.body["warnings"].([]any); !ok || len(w) != 0 {
		t.Errorf("warnings = %v, want []", r.body["warnings"])
	}

	tests := []struct {
		name, method, target, key, body string
		status                          int
		check                           func(t *testing.T, r result)
	}{
		{"Verify", "POST", "/v1/users/alice/verify", e.appKey, `{"code":"` + k.TOTP(e.clock.Now()) + `"}`, 200, func(t *testing.T, r result) {
			if r.body["valid"] != true || r.str("factor") != "totp" || r.str("device_id") != dev || r.body["backup_codes_remaining"] != 10.0 {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"VerifyReplayed", "POST", "/v1/users/alice/verify", e.appKey, `{"code":"` + k.TOTP(e.clock.Now()) + `"}`, 200, func(t *testing.T, r result) {
			if r.body["valid"] != false || r.str("reason") != "replayed" {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"VerifyWrong", "POST", "/v1/users/alice/verify", e.appKey, `{"code":"` + wrongCode(k, e.clock.Now()) + `"}`, 200, func(t *testing.T, r result) {
			if r.body["valid"] != false || r.str("reason") != "invalid_code" {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"VerifyBackupCode", "POST", "/v1/users/alice/verify", e.appKey, `{"code":"` + strings.ToUpper(codes[0]) + `"}`, 200, func(t *testing.T, r result) {
			if r.body["valid"] != true || r.str("factor") != "backup_code" || r.body["backup_codes_remaining"] != 9.0 {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"VerifyMalformed", "POST", "/v1/users/alice/verify", e.appKey, `{"code":"12345"}`, 400, func(t *testing.T, r result) {
			if r.errCode() != "invalid" || r.reason() != "malformed_code" {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"VerifyNotEnrolled", "POST", "/v1/users/nobody/verify", e.appKey, `{"code":"123456"}`, 404, func(t *testing.T, r result) {
			if r.errCode() != "not_found" || r.reason() != "not_enrolled" {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"ConfirmUnknownDevice", "POST", "/v1/users/alice/totp/dev_nope/confirm", e.appKey, `{"code":"123456"}`, 404, nil},
		{"ResyncOneCode", "POST", "/v1/users/alice/totp/" + dev + "/resync", e.appKey, `{"code1":"` + k.TOTP(e.clock.Now().Add(5*time.Minute)) + `"}`, 400, func(t *testing.T, r result) {
			if r.errCode() != "invalid" || !strings.Contains(r.raw, `"code2"`) {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"ResyncWrong", "POST", "/v1/users/alice/totp/" + dev + "/resync", e.appKey, `{"code1":"` + k.TOTP(e.clock.Now().Add(90*time.Second)) + `","code2":"` + wrongCode(k, e.clock.Now()) + `"}`, 200, func(t *testing.T, r result) {
			if r.raw != `{"valid":false,"reason":"invalid_code"}`+"\n" {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"User", "GET", "/v1/users/alice", e.appKey, "", 200, func(t *testing.T, r result) {
			devs, _ := r.body["devices"].([]any)
			if r.body["enrolled"] != true || len(devs) != 1 || r.body["locked_until"] != nil || r.str("user_id") != "alice" {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"UnknownUser", "GET", "/v1/users/nobody", e.appKey, "", 200, func(t *testing.T, r result) {
			if r.body["enrolled"] != false || r.raw != `{"user_id":"nobody","enrolled":false,"devices":[],"backup_codes_remaining":0,"locked_until":null}`+"\n" {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"BackupCodes", "POST", "/v1/users/alice/backup-codes", e.appKey, "", 201, func(t *testing.T, r result) {
			if c, _ := r.body["backup_codes"].([]any); len(c) != 10 {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"BackupCodesNotEnrolled", "POST", "/v1/users/nobody/backup-codes", e.appKey, "", 404, nil},
		{"Unlock", "POST", "/v1/users/alice/unlock", e.adminKey, "", 204, nil},
		{"UnlockUnknown", "POST", "/v1/users/nobody/unlock", e.adminKey, "", 404, nil},
		{"Audit", "GET", "/v1/audit?user_id=alice&limit=3", e.adminKey, "", 200, func(t *testing.T, r result) {
			ev, _ := r.body["events"].([]any)
			if len(ev) != 3 || r.body["next_after"] == nil {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"AuditLastPage", "GET", "/v1/audit?after=100000", e.adminKey, "", 200, func(t *testing.T, r result) {
			if r.raw != `{"events":[],"next_after":null}`+"\n" {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"AuditBadAfter", "GET", "/v1/audit?after=x", e.adminKey, "", 400, nil},
		{"AuditBadLimit", "GET", "/v1/audit?limit=1001", e.adminKey, "", 400, nil},
		{"AuditVerify", "GET", "/v1/audit/verify", e.adminKey, "", 200, func(t *testing.T, r result) {
			// A tenant's admin sees its own entries, not the chain's head.
			if r.body["ok"] != true || r.body["tenant_events"] == nil || r.body["head"] != nil {
				t.Errorf("got %s", r.raw)
			}
		}},
		{"RevokeUnknown", "DELETE", "/v1/users/alice/devices/dev_nope", e.appKey, "", 404, nil},
		{"Revoke", "DELETE", "/v1/users/alice/devices/" + dev, e.appKey, "", 204, nil},
		{"Disable", "DELETE", "/v1/users/alice", e.appKey, "", 204, nil},
		{"DisableUnknown", "DELETE", "/v1/users/nobody", e.appKey, "", 204, nil}, // idempotent
		{"Healthz", "GET", "/healthz", "", "", 200, nil},
		{"Readyz", "GET", "/readyz", "", "", 200, nil},
		{"Metrics", "GET", "/metrics", "", "", 200, nil},
		{"OpenAPI", "GET", "/v1/openapi.json", "", "", 200, nil},
		{"NoSuchRoute", "GET", "/v2/users/alice", e.appKey, "", 404, nil},
		{"WrongMethod", "PUT", "/v1/users/alice", e.appKey, "", 405, nil},
		{"TrailingSlash", "GET", "/v1/users/alice/", e.appKey, "", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.req(tt.method, tt.target, tt.key, tt.body)
			if r.status != tt.status {
				t.Fatalf("%s %s: got %d %s, want %d", tt.method, tt.target, r.status, r.raw, tt.status)
			}
			if r.status >= 400 && r.errCode() == "" {
				t.Errorf("error without an error body: %s", r.raw)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestHandler_Readyz(t *testing.T) {
	e := newEnv(t, func(context.Context) error { return errors.New("database is down") })
	r := e.req("GET", "/readyz", "", "")
	if r.status != 503 || r.str("status") != "unavailable" || strings.Contains(r.raw, "down") {
		t.Errorf("got %d %s, want 503 unavailable without the cause", r.status, r.raw)
	}
}

// bodyRoutes are the routes that read a JSON body, with a valid body and
// the name of a string field.
func bodyRoutes(dev string) []struct{ name, target, valid, field string } {
	return []struct{ name, target, valid, field string }{
		{"Enroll", "/v1/users/carol/totp", `{"name":"Phone"}`, "name"},
		{"Confirm", "/v1/users/alice/totp/" + dev + "/confirm", `{"code":"123456"}`, "code"},
		{"Resync", "/v1/users/alice/totp/" + dev + "/resync", `{"code1":"123456","code2":"234567"}`, "code1"},
		{"Verify", "/v1/users/alice/verify", `{"code":"123456"}`, "code"},
	}
}

// TestHandler_BadBody: every body route refuses bad bodies with a clear
// 4xx that names the problem, never a 5xx.
func TestHandler_BadBody(t *testing.T) {
	e := newEnv(t, nil)
	dev, _, _ := e.enroll("alice")
	huge := `{"name":"` + strings.Repeat("x", 65<<10) + `"}`
	cases := []struct {
		name, body string // in body, FIELD is the route's string field
		hdr        []string
		status     int
		code       string
		message    string // a substring of error.message
	}{
		{"MalformedJSON", `{"FIELD": "1234`, nil, 400, "invalid", "malformed JSON"},
		{"SyntaxError", `{"FIELD" 1}`, nil, 400, "invalid", "malformed JSON at byte"},
		{"WrongTypeNumber", `{"FIELD": 123456}`, nil, 400, "invalid", `field "FIELD" must be a string`},
		{"WrongTypeArray", `{"FIELD": ["1"]}`, nil, 400, "invalid", `field "FIELD" must be a string`},
		{"WrongTypeBool", `{"FIELD": true}`, nil, 400, "invalid", `field "FIELD" must be a string`},
		{"Null", `null`, nil, 400, "invalid", ""},
		{"UnknownField", `{"admin": true}`, nil, 400, "invalid", `unknown field "admin"`},
		{"CaseVariantField", `{"FIELD": "1", "Admin": 1}`, nil, 400, "invalid", `unknown field "Admin"`},
		{"Array", `["123456"]`, nil, 400, "invalid", "JSON object"},
		{"String", `"123456"`, nil, 400, "invalid", "JSON object"},
		{"TwoObjects", `{}{}`, nil, 400, "invalid", "one JSON object"},
		{"TrailingGarbage", `{} x`, nil, 400, "invalid", "one JSON object"},
		{"Huge", huge, nil, 413, "too_large", "64 KiB"},
		{"TextPlain", `{}`, []string{"Content-Type", "text/plain"}, 415, "invalid", "application/json"},
		{"FormEncoded", `FIELD=123456`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "invalid", "application/json"},
		{"BadMediaType", `{}`, []string{"Content-Type", ";;;"}, 415, "invalid", "application/json"},
		{"BadEndUserIP", `{}`, []string{"X-End-User-IP", "203.0.113.9, not-an-ip"}, 400, "invalid", "X-End-User-IP"},
	}
	for _, route := range bodyRoutes(dev) {
		for _, tt := range cases {
			t.Run(route.name+"/"+tt.name, func(t *testing.T) {
				body := strings.ReplaceAll(tt.body, "FIELD", route.field)
				msg := strings.ReplaceAll(tt.message, "FIELD", route.field)
				if tt.name == "Null" && route.name == "Enroll" {
					return // null is the empty request, which enroll takes
				}
				r := e.app("POST", route.target, body, tt.hdr...)
				if r.status != tt.status || r.errCode() != tt.code || !strings.Contains(r.errField("message"), msg) {
					t.Errorf("got %d %s, want %d %s with %q", r.status, r.raw, tt.status, tt.code, tt.message)
				}
			})
		}
	}
	// An empty body: optional for enroll, refused by the others, which
	// also name each missing field.
	for _, route := range bodyRoutes(dev) {
		t.Run(route.name+"/EmptyBody", func(t *testing.T) {
			r := e.app("POST", route.target, "", "Content-Type", "application/json")
			if route.name == "Enroll" {
				if r.status != 201 {
					t.Errorf("got %d %s, want 201", r.status, r.raw)
				}
				return
			}
			if r.status != 400 || r.errCode() != "invalid" {
				t.Errorf("got %d %s, want 400 invalid", r.status, r.raw)
			}
		})
		t.Run(route.name+"/EmptyObject", func(t *testing.T) {
			r := e.app("POST", route.target, "{}")
			if route.name == "Enroll" {
				if r.status != 201 {
					t.Errorf("got %d %s, want 201", r.status, r.raw)
				}
				return
			}
			fields, _ := r.body["error"].(map[string]any)["fields"].(map[string]any)
			want := 1
			if route.name == "Resync" {
				want = 2 // code1 and code2
			}
			if r.status != 400 || len(fields) != want || fields[route.field] == nil {
				t.Errorf("got %d %s, want 400 naming the missing field", r.status, r.raw)
			}
		})
		t.Run(route.name+"/CharsetAndNoContentType", func(t *testing.T) {
			for _, ct := range []string{"application/json; charset=utf-8", ""} {
				r := e.app("POST", route.target, route.valid, "Content-Type", ct)
				if r.status >= 500 || r.status == 415 {
					t.Errorf("Content-Type %q: got %d %s", ct, r.status, r.raw)
				}
			}
		})
	}
	// Fields the Service refuses.
	for _, body := range []string{
		`{"digits": 9}`, `{"digits": 5}`, `{"period": 121}`, `{"period": -1}`, `{"algorithm": "MD5"}`,
		`{"name": "` + strings.Repeat("x", 65) + `"}`, `{"issuer": "a:b"}`, `{"name": "a\u0000b"}`, `{"digits": 6.5}`,
		`{"digits": 1e300}`,
	} {
		if r := e.app("POST", "/v1/users/dave/totp", body); r.status != 400 || r.errCode() != "invalid" {
			t.Errorf("enroll %s: got %d %s, want 400 invalid", body, r.status, r.raw)
		}
	}
}

// TestHandler_UserIDs: odd user IDs in the path are refused or served,
// never a 5xx, on every route that takes one.
func TestHandler_UserIDs(t *testing.T) {
	e := newEnv(t, nil)
	routes := []struct{ method, path, key, body string }{
		{"GET", "/v1/users/%s", e.appKey, ""},
		{"DELETE", "/v1/users/%s", e.appKey, ""},
		{"POST", "/v1/users/%s/totp", e.appKey, ""},
		{"POST", "/v1/users/%s/totp/dev_x/confirm", e.appKey, `{"code":"123456"}`},
		{"POST", "/v1/users/%s/totp/dev_x/resync", e.appKey, `{"code1":"123456","code2":"654321"}`},
		{"POST", "/v1/users/%s/verify", e.appKey, `{"code":"123456"}`},
		{"DELETE", "/v1/users/%s/devices/dev_x", e.appKey, ""},
		{"POST", "/v1/users/%s/backup-codes", e.appKey, ""},
		{"POST", "/v1/users/%s/unlock", e.adminKey, ""},
	}
	ids := []struct {
		name, id string
		want     int // 0: any 2xx or 404
	}{
		{"EncodedSlash", "a%2Fb", 0},
		{"EncodedDotDot", "%2E%2E", 400},
		{"EncodedDot", "%2e", 400},
		{"Unicode", "%E3%83%A6%E3%83%BC%E3%82%B6%E3%83%BC", 0},
		{"NUL", "a%00b", 400},
		{"Newline", "a%0Ab", 400},
		{"ZeroWidthSpace", "a%E2%80%8Bb", 400},
		{"InvalidUTF8", "a%FFb", 400},
		{"Long128", strings.Repeat("a", 128), 0},
		{"Long200", strings.Repeat("a", 200), 400},
		{"LongUnicode", strings.Repeat("%C3%A9", 100), 400},
		{"Space", "a%20b", 0},
		{"Percent", "100%25", 0},
	}
	for _, id := range ids {
		for _, rt := range routes {
			target := strings.Replace(rt.path, "%s", id.id, 1)
			t.Run(id.name+"/"+rt.method+rt.path, func(t *testing.T) {
				r := e.req(rt.method, target, rt.key, rt.body)
				switch {
				case r.status >= 500:
					t.Fatalf("%s %s: got %d %s", rt.method, target, r.status, r.raw)
				case id.want != 0 && r.status != id.want:
					t.Errorf("%s %s: got %d %s, want %d", rt.method, target, r.status, r.raw, id.want)
				case id.want == 0 && r.status >= 400 && r.status != 404:
					t.Errorf("%s %s: got %d %s, want 2xx or 404", rt.method, target, r.status, r.raw)
				}
				if r.status >= 400 && r.errCode() == "" {
					t.Errorf("error without an error body: %s", r.raw)
				}
			})
		}
	}
	// Literal dot segments never reach a handler: the mux redirects to the
	// cleaned path, which names another route or none.
	for _, target := range []string{"/v1/users/../verify", "/v1/users/./totp", "/v1/users/alice/../../audit"} {
		r := e.req("POST", target, e.appKey, `{"code":"123456"}`)
		if (r.status < 300 || r.status > 308) && r.status != 404 {
			t.Errorf("POST %s: got %d %s, want a redirect or 404", target, r.status, r.raw)
		}
	}
	// An encoded slash stays inside the user ID: a%2Fb is a user of its own.
	e.enroll("a%2Fb")
	if r := e.app("GET", "/v1/users/a%2Fb", ""); r.str("user_id") != "a/b" || r.body["enrolled"] != true {
		t.Errorf("user a%%2Fb: %s", r.raw)
	}
	if r := e.app("GET", "/v1/users/a", ""); r.body["enrolled"] != false {
		t.Errorf("user a: %s", r.raw)
	}
}

// TestHandler_Auth: every authenticated route refuses a missing or bad
// key with 401 and WWW-Authenticate, and admin routes an app key with 403.
func TestHandler_Auth(t *testing.T) {
	e := newEnv(t, nil)
	routes := []struct {
		method, target string
		admin          bool
	}{
		{"POST", "/v1/users/alice/totp", false},
		{"POST", "/v1/users/alice/totp/dev_x/confirm", false},
		{"POST", "/v1/users/alice/totp/dev_x/resync", false},
		{"POST", "/v1/users/alice/verify", false},
		{"GET", "/v1/users/alice", false},
		{"DELETE", "/v1/users/alice", false},
		{"DELETE", "/v1/users/alice/devices/dev_x", false},
		{"POST", "/v1/users/alice/backup-codes", false},
		{"POST", "/v1/users/alice/unlock", true},
		{"GET", "/v1/audit", true},
		{"GET", "/v1/audit/verify", true},
	}
	revoked, k, err := e.svc.CreateAPIKey(context.Background(), "acme", "old", twofa.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeAPIKey(context.Background(), k.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute) // past the key cache
	bad := []struct {
		name, auth, challenge string
	}{
		{"Missing", "", `Bearer realm="twofa"`},
		{"Basic", "Basic YWRtaW46YWRtaW4=", `Bearer realm="twofa"`},
		{"EmptyBearer", "Bearer ", `Bearer realm="twofa", error="invalid_token"`},
		{"NotAKey", "Bearer hunter2", `Bearer realm="twofa", error="invalid_token"`},
		{"Unknown", "Bearer tfa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", `Bearer realm="twofa", error="invalid_token"`},
		{"Long", "Bearer tfa_" + strings.Repeat("a", 4096), `Bearer realm="twofa", error="invalid_token"`},
		{"Revoked", "Bearer " + revoked, `Bearer realm="twofa", error="invalid_token"`},
	}
	for _, rt := range routes {
		for _, b := range bad {
			t.Run(b.name+"/"+rt.method+rt.target, func(t *testing.T) {
				r := e.req(rt.method, rt.target, "", "", "Authorization", b.auth)
				if r.status != 401 || r.errCode() != "unauthorized" || r.header.Get("WWW-Authenticate") != b.challenge {
					t.Errorf("got %d %s (WWW-Authenticate %q), want 401 unauthorized with %q", r.status, r.raw, r.header.Get("WWW-Authenticate"), b.challenge)
				}
				if strings.Contains(r.raw, "hunter2") || strings.Contains(r.raw, revoked) {
					t.Errorf("the error quotes the key: %s", r.raw)
				}
			})
		}
		t.Run("AppKey/"+rt.method+rt.target, func(t *testing.T) {
			r := e.req(rt.method, rt.target, e.appKey, "")
			switch {
			case rt.admin && (r.status != 403 || r.errCode() != "forbidden"):
				t.Errorf("got %d %s, want 403 forbidden", r.status, r.raw)
			case !rt.admin && (r.status == 401 || r.status == 403):
				t.Errorf("got %d %s, want the app key accepted", r.status, r.raw)
			}
		})
		t.Run("AdminKey/"+rt.method+rt.target, func(t *testing.T) {
			if r := e.req(rt.method, rt.target, e.adminKey, ""); r.status == 401 || r.status == 403 || r.status >= 500 {
				t.Errorf("got %d %s, want the admin key accepted", r.status, r.raw)
			}
		})
	}
	// Tenants are separate: globex's key does not see acme's users.
	e.enroll("alice")
	other, _, err := e.svc.CreateAPIKey(context.Background(), "globex", "app", twofa.ScopeApp)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.req("GET", "/v1/users/alice", other, ""); r.status != 200 || r.body["enrolled"] != false {
		t.Errorf("another tenant sees alice: %d %s", r.status, r.raw)
	}
	if r := e.req("POST", "/v1/users/alice/verify", other, `{"code":"123456"}`); r.status != 404 {
		t.Errorf("another tenant verifies alice: %d %s", r.status, r.raw)
	}
}

// TestHandler_Lockout: wrong codes are 200 valid:false until the lock,
// then 429 with Retry-After and until; a malformed code stays 400.
func TestHandler_Lockout(t *testing.T) {
	e := newEnv(t, nil)
	_, k, _ := e.enroll("alice")
	for i := 1; i <= 5; i++ {
		r := e.app("POST", "/v1/users/alice/verify", `{"code":"`+wrongCode(k, e.clock.Now())+`"}`)
		if r.status != 200 || r.body["valid"] != false || r.str("reason") != "invalid_code" {
			t.Fatalf("wrong code %d: got %d %s, want 200 invalid_code", i, r.status, r.raw)
		}
	}
	right := `{"code":"` + k.TOTP(e.clock.Now()) + `"}`
	r := e.app("POST", "/v1/users/alice/verify", right)
	if r.status != 429 || r.errCode() != "rate_limited" || r.reason() != "locked" || r.header.Get("Retry-After") != "30" {
		t.Fatalf("locked: got %d %s (Retry-After %q), want 429 locked with Retry-After 30", r.status, r.raw, r.header.Get("Retry-After"))
	}
	until, err := time.Parse(time.RFC3339, r.errField("until"))
	if err != nil || !until.Equal(e.clock.Now().Add(30*time.Second)) {
		t.Errorf("until = %q, want 30 s from now", r.errField("until"))
	}
	if r := e.app("POST", "/v1/users/alice/verify", `{"code":"12"}`); r.status != 400 || r.reason() != "malformed_code" {
		t.Errorf("malformed while locked: got %d %s, want 400", r.status, r.raw)
	}
	if r := e.app("GET", "/v1/users/alice", ""); r.str("locked_until") == "" {
		t.Errorf("user while locked: %s", r.raw)
	}
	for _, target := range []string{"/v1/users/alice/totp"} {
		if r := e.app("POST", target, ""); r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Errorf("POST %s while locked: got %d %s", target, r.status, r.raw)
		}
	}
	e.clock.Add(10 * time.Second)
	if r := e.app("POST", "/v1/users/alice/verify", right); r.header.Get("Retry-After") != "20" {
		t.Errorf("10 s later: Retry-After %q, want 20", r.header.Get("Retry-After"))
	}
	e.clock.Add(21 * time.Second)
	if r := e.app("POST", "/v1/users/alice/verify", `{"code":"`+k.TOTP(e.clock.Now())+`"}`); r.status != 200 || r.body["valid"] != true {
		t.Errorf("after the lock: got %d %s", r.status, r.raw)
	}

	// Malformed codes are limited per user: 20 a minute, then 429.
	var last result
	for i := 0; i < 21; i++ {
		last = e.app("POST", "/v1/users/alice/verify", `{"code":"1"}`)
	}
	if last.status != 429 || last.reason() != "rate_limited" || last.header.Get("Retry-After") == "" {
		t.Errorf("21st malformed code: got %d %s (Retry-After %q)", last.status, last.raw, last.header.Get("Retry-After"))
	}
}

// TestHandler_RequestID: a sane X-Request-Id is echoed; anything else is
// replaced by a fresh one.
func TestHandler_RequestID(t *testing.T) {
	e := newEnv(t, nil)
	fresh := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, tt := range []struct {
		name, id string
		echo     bool
	}{
		{"Sane", "req-123_ABC", true},
		{"Max", strings.Repeat("a", 64), true},
		{"Empty", "", false},
		{"TooLong", strings.Repeat("a", 65), false},
		{"Space", "a b", false},
		{"Injection", "abc\r\nSet-Cookie: x=y", false},
		{"Unicode", "ид", false},
		{"Quote", `a"b`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, target := range []string{"/healthz", "/v1/users/alice", "/nope"} {
				r := httptest.NewRequest("GET", target, nil)
				r.Header["X-Request-Id"] = []string{tt.id}
				w := httptest.NewRecorder()
				e.h.ServeHTTP(w, r)
				got := w.Header().Get("X-Request-Id")
				if tt.echo && got != tt.id || !tt.echo && !fresh.MatchString(got) {
					t.Errorf("GET %s with %q: X-Request-Id %q", target, tt.id, got)
				}
			}
		})
	}
	a, b := e.req("GET", "/healthz", "", ""), e.req("GET", "/healthz", "", "")
	if a.header.Get("X-Request-Id") == b.header.Get("X-Request-Id") {
		t.Errorf("two requests got one ID")
	}
}

// TestHandler_Headers: every response is JSON (but /metrics), uncached
// (but the OpenAPI document), unframed and unsniffed.
func TestHandler_Headers(t *testing.T) {
	e := newEnv(t, nil)
	for _, target := range []string{"/healthz", "/readyz", "/v1/users/alice", "/nope", "/v1/openapi.json", "/metrics"} {
		r := e.app("GET", target, "")
		h := r.header
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s: security headers %v", target, h)
		}
		cc := "no-store"
		if target == "/v1/openapi.json" {
			cc = "public, max-age=300"
		}
		if h.Get("Cache-Control") != cc {
			t.Errorf("GET %s: Cache-Control %q, want %q", target, h.Get("Cache-Control"), cc)
		}
		if target != "/metrics" && h.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: Content-Type %q", target, h.Get("Content-Type"))
		}
	}
}
