package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa/otp"
)

// server is a running `twofa serve`, started through run as main would.
type server struct {
	url  string
	stop func()
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func testGetenv(extra map[string]string) func(string) string {
	return func(k string) string { return extra[k] }
}

// startServer runs `twofa serve` on port 0 with the given data directory
// and waits until /healthz answers.
func startServer(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"twofa", "serve", "--addr", "127.0.0.1:0", "--data", dir}, args...), testGetenv(nil), strings.NewReader(""), pw, logs)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("server did not start: %v\n%s", <-done, logs)
	}
	go io.Copy(io.Discard, pr)
	url := strings.TrimSpace(strings.TrimPrefix(line, "twofa listening on "))
	s := &server{url: url, logs: logs}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve returned %v", err)
			}
		})
	}
	t.Cleanup(s.stop)
	// A minute: the limit guards against a server that never answers, not
	// a slow start on a busy machine.
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz after a minute: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// createKey runs `twofa apikey create` and returns the key from the last line.
func createKey(t *testing.T, dir, tenant string, admin bool) string {
	t.Helper()
	args := []string{"apikey", "create", "--data", dir, "--name", "test", "--tenant", tenant}
	if admin {
		args = append(args, "--admin")
	}
	out, errOut, status := runCLI(t, "", args...)
	if status != 0 {
		t.Fatalf("apikey create: %d %s", status, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// client calls the API with one key.
type client struct {
	t    *testing.T
	base string
	key  string
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (c *client) do(method, path string, body any, hdr ...string) response {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &out.body)
	return out
}

func (r response) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

// TestServe_API walks the whole v1 contract against the real program.
func TestServe_API(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	appKey := createKey(t, dir, "acme", false)
	adminKey := createKey(t, dir, "acme", true)
	otherKey := createKey(t, dir, "globex", false)
	app := &client{t: t, base: srv.url, key: appKey}
	admin := &client{t: t, base: srv.url, key: adminKey}
	other := &client{t: t, base: srv.url, key: otherKey}
	anon := &client{t: t, base: srv.url}
	var toxic []string

	// Enroll.
	r := app.do("POST", "/v1/users/alice/totp", map[string]any{"name": "Phone", "issuer": "ACME Co", "account_name": "alice@example.com"})
	if r.status != 201 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("enroll: %d %s (Cache-Control %q)", r.status, r.raw, r.header.Get("Cache-Control"))
	}
	secret, _ := otp.DecodeSecret(r.str("secret"))
	toxic = append(toxic, r.str("secret"))
	dev := r.str("device_id")
	if !strings.HasPrefix(r.str("otpauth_uri"), "otpauth://totp/ACME%20Co:alice@example.com?secret=") || !strings.HasPrefix(r.str("qr_svg"), "<svg") || r.str("expires_at") == "" {
		t.Errorf("enroll response fields: %v", keys(r.body))
	}
	pngBytes, _ := base64.StdEncoding.DecodeString(r.str("qr_png"))
	if _, err := png.Decode(bytes.NewReader(pngBytes)); err != nil {
		t.Errorf("qr_png is not a PNG: %v", err)
	}
	k, _ := otp.NewKey(secret, otp.Params{})
	// Confirm: wrong, then right (with the next step's code, so the
	// verifications below can use later steps).
	if r = app.do("POST", "/v1/users/alice/totp/"+dev+"/confirm", map[string]string{"code": "000000"}); r.status != 200 || r.body["valid"] != false {
		t.Fatalf("confirm wrong: %d %s", r.status, r.raw)
	}
	r = app.do("POST", "/v1/users/alice/totp/"+dev+"/confirm", map[string]string{"code": k.TOTP(time.Now().Add(-30 * time.Second))})
	codes, _ := r.body["backup_codes"].([]any)
	if r.status != 200 || r.body["valid"] != true || len(codes) != 10 {
		t.Fatalf("confirm: %d %s", r.status, r.raw)
	}
	for _, c := range codes {
		toxic = append(toxic, c.(string))
	}
	// Verify: valid, then replayed.
	code := k.TOTP(time.Now())
	toxic = append(toxic, code)
	r = app.do("POST", "/v1/users/alice/verify", map[string]string{"code": code}, "X-End-User-IP", "203.0.113.9", "X-End-User-Agent", "Firefox/140")
	if r.status != 200 || r.body["valid"] != true || r.str("factor") != "totp" || r.str("device_id") != dev || r.body["backup_codes_remaining"] != 10.0 {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
	if r = app.do("POST", "/v1/users/alice/verify", map[string]string{"code": code}); r.body["valid"] != false || r.str("reason") != "replayed" {
		t.Fatalf("replay: %d %s", r.status, r.raw)
	}
	// A backup code.
	if r = app.do("POST", "/v1/users/alice/verify", map[string]string{"code": codes[0].(string)}); r.body["valid"] != true || r.str("factor") != "backup_code" || r.body["backup_codes_remaining"] != 9.0 {
		t.Fatalf("backup code: %d %s", r.status, r.raw)
	}
	// Bad input.
	badInput := []struct {
		name   string
		body   any
		hdr    []string
		status int
		code   string
	}{
		{"MalformedCode", map[string]string{"code": "12345"}, nil, 400, "invalid"},
		{"NonASCIIDigits", map[string]string{"code": "١٢٣٤٥٦"}, nil, 400, "invalid"},
		{"MissingCode", map[string]string{}, nil, 400, "invalid"},
		{"EmptyBody", "", nil, 400, "invalid"},
		{"MalformedJSON", `{"code": "1234`, nil, 400, "invalid"},
		{"WrongType", `{"code": 123456}`, nil, 400, "invalid"},
		{"UnknownField", `{"code": "123456", "admin": true}`, nil, 400, "invalid"},
		{"TwoObjects", `{"code": "123456"}{}`, nil, 400, "invalid"},
		{"Array", `["123456"]`, nil, 400, "invalid"},
		{"Huge", `{"code": "` + strings.Repeat("1", 70<<10) + `"}`, nil, 413, "too_large"},
		{"WrongContentType", `{"code": "123456"}`, []string{"Content-Type", "text/plain"}, 415, "invalid"},
		{"BadEndUserIP", map[string]string{"code": "123456"}, []string{"X-End-User-IP", "not-an-ip"}, 400, "invalid"},
	}
	for _, tt := range badInput {
		t.Run("BadInput/"+tt.name, func(t *testing.T) {
			r := app.do("POST", "/v1/users/alice/verify", tt.body, tt.hdr...)
			if r.status != tt.status || r.errCode() != tt.code {
				t.Errorf("got %d %s, want %d %s", r.status, r.raw, tt.status, tt.code)
			}
		})
	}
	// Auth and tenants.
	if r = anon.do("GET", "/v1/users/alice", nil); r.status != 401 || r.errCode() != "unauthorized" {
		t.Errorf("no key: %d %s", r.status, r.raw)
	}
	if r = (&client{t: t, base: srv.url, key: "tfa_nope"}).do("GET", "/v1/users/alice", nil); r.status != 401 {
		t.Errorf("unknown key: %d %s", r.status, r.raw)
	}
	if r = other.do("GET", "/v1/users/alice", nil); r.status != 200 || r.body["enrolled"] != false {
		t.Errorf("other tenant sees alice: %d %s", r.status, r.raw)
	}
	if r = other.do("POST", "/v1/users/alice/verify", map[string]string{"code": k.TOTP(time.Now())}); r.status != 404 {
		t.Errorf("other tenant verifies alice: %d %s", r.status, r.raw)
	}
	if r = app.do("POST", "/v1/users/alice/unlock", nil); r.status != 403 || r.errCode() != "forbidden" {
		t.Errorf("app key on an admin route: %d %s", r.status, r.raw)
	}
	// User status.
	r = app.do("GET", "/v1/users/alice", nil)
	devs, _ := r.body["devices"].([]any)
	if r.status != 200 || r.body["enrolled"] != true || len(devs) != 1 || r.body["backup_codes_remaining"] != 9.0 || r.body["locked_until"] != nil {
		t.Errorf("user: %d %s", r.status, r.raw)
	}
	if r = app.do("GET", "/v1/users/nobody", nil); r.status != 200 || r.body["enrolled"] != false {
		t.Errorf("unknown user: %d %s", r.status, r.raw)
	}
	// Lockout: 5 wrong codes, then 429 with Retry-After.
	for i := 0; i < 5; i++ {
		app.do("POST", "/v1/users/alice/verify", map[string]string{"code": wrongNow(k)})
	}
	r = app.do("POST", "/v1/users/alice/verify", map[string]string{"code": k.TOTP(time.Now().Add(30 * time.Second))})
	if r.status != 429 || r.errCode() != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("locked: %d %s (Retry-After %q)", r.status, r.raw, r.header.Get("Retry-After"))
	}
	if r = admin.do("POST", "/v1/users/alice/unlock", nil); r.status != 204 {
		t.Fatalf("unlock: %d %s", r.status, r.raw)
	}
	// Backup codes regenerated; resync; revoke; disable.
	r = app.do("POST", "/v1/users/alice/backup-codes", nil)
	if fresh, _ := r.body["backup_codes"].([]any); r.status != 201 || len(fresh) != 10 {
		t.Errorf("regenerate: %d %s", r.status, r.raw)
	}
	r = app.do("POST", "/v1/users/alice/totp/"+dev+"/resync", map[string]string{"code1": "000000", "code2": "000001"})
	if r.status != 200 || r.body["valid"] != false {
		t.Errorf("resync with wrong codes: %d %s", r.status, r.raw)
	}
	// A server with no SMTP server says email is unavailable.
	r = app.do("POST", "/v1/users/alice/email", map[string]string{"address": "alice@example.com"})
	if r.status != 409 || !strings.Contains(r.raw, `"reason":"factor_unavailable"`) || !strings.Contains(r.raw, "--smtp-url") {
		t.Errorf("email without SMTP: %d %s", r.status, r.raw)
	}
	// Admin: audit, chain.
	r = admin.do("GET", "/v1/audit?user_id=alice&limit=5", nil)
	events, _ := r.body["events"].([]any)
	if r.status != 200 || len(events) != 5 || r.body["next_after"] == nil {
		t.Errorf("audit: %d %s", r.status, r.raw)
	}
	if r = admin.do("GET", "/v1/audit?after=-1", nil); r.status != 400 {
		t.Errorf("audit after=-1: %d", r.status)
	}
	if r = admin.do("GET", "/v1/audit/verify", nil); r.status != 200 || r.body["ok"] != true {
		t.Errorf("audit verify: %d %s", r.status, r.raw)
	}
	all := admin.do("GET", "/v1/audit?limit=1000", nil)
	if !strings.Contains(all.raw, "203.0.113.9") || !strings.Contains(all.raw, "Firefox/140") {
		t.Errorf("audit lacks the end user's IP and agent")
	}
	// Service endpoints.
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/v1/openapi.json": 200, "/nope": 404} {
		if r := anon.do("GET", path, nil); r.status != want {
			t.Errorf("GET %s: %d, want %d", path, r.status, want)
		}
	}
	if m := anon.do("GET", "/metrics", nil); !strings.Contains(m.raw, `twofa_verifications_total{outcome="valid",reason="totp"}`) {
		t.Errorf("metrics lack verification counts")
	}
	if r = app.do("DELETE", "/v1/users/alice/devices/dev_nope", nil); r.status != 404 {
		t.Errorf("revoke unknown: %d", r.status)
	}
	if r = app.do("DELETE", "/v1/users/alice/devices/"+dev, nil); r.status != 204 {
		t.Errorf("revoke: %d %s", r.status, r.raw)
	}
	if r = app.do("DELETE", "/v1/users/alice", nil); r.status != 204 {
		t.Errorf("disable: %d %s", r.status, r.raw)
	}
	if r = app.do("POST", "/v1/users/alice/verify", map[string]string{"code": "123456"}); r.status != 404 {
		t.Errorf("verify after disable: %d %s", r.status, r.raw)
	}
	// Nothing toxic in the logs, the audit log or the metrics.
	srv.stop()
	for where, text := range map[string]string{"logs": srv.logs.String(), "audit": all.raw} {
		for _, s := range toxic {
			if strings.Contains(text, s) {
				t.Errorf("%s contain a secret or code", where)
			}
		}
		for _, key := range []string{appKey, adminKey, otherKey} {
			if strings.Contains(text, key) {
				t.Errorf("%s contain an API key", where)
			}
		}
	}
}

// TestServe_RestartAndRace: state survives a restart, and 32 concurrent
// verifications of one valid code give exactly one success.
func TestServe_RestartAndRace(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	key := createKey(t, dir, "acme", false)
	app := &client{t: t, base: srv.url, key: key}
	r := app.do("POST", "/v1/users/bob/totp", nil)
	secret, _ := otp.DecodeSecret(r.str("secret"))
	k, _ := otp.NewKey(secret, otp.Params{})
	dev := r.str("device_id")
	if r = app.do("POST", "/v1/users/bob/totp/"+dev+"/confirm", map[string]string{"code": k.TOTP(time.Now().Add(-30 * time.Second))}); r.body["valid"] != true {
		t.Fatalf("confirm: %s", r.raw)
	}
	code := k.TOTP(time.Now())
	if r = app.do("POST", "/v1/users/bob/verify", map[string]string{"code": code}); r.body["valid"] != true {
		t.Fatalf("verify: %s", r.raw)
	}
	srv.stop()

	srv = startServer(t, dir)
	app.base = srv.url
	if r = app.do("POST", "/v1/users/bob/verify", map[string]string{"code": code}); r.body["valid"] != false || r.str("reason") != "replayed" {
		t.Fatalf("after restart, the used code: %d %s", r.status, r.raw)
	}
	next := k.TOTP(time.Now().Add(30 * time.Second))
	var wg sync.WaitGroup
	var mu sync.Mutex
	valid := 0
	statuses := map[int]int{}
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := app.do("POST", "/v1/users/bob/verify", map[string]string{"code": next})
			mu.Lock()
			defer mu.Unlock()
			statuses[r.status]++
			if r.body["valid"] == true {
				valid++
			}
		}()
	}
	wg.Wait()
	if valid != 1 {
		t.Errorf("32 concurrent verifications of one code: %d valid (statuses %v); want exactly 1", valid, statuses)
	}
}

// wrongNow returns a code that is wrong for k around now.
func wrongNow(k *otp.Key) string {
	for n := 1; ; n++ {
		c := fmt.Sprintf("%06d", n*104729%1000000)
		if m, _ := k.Verify(c, time.Now(), otp.Window{Behind: 5, Ahead: 5}); !m.Valid {
			return c
		}
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

var _ = os.Getenv
var _ = filepath.Join

// TestServe_DebugAddr checks that --debug-addr serves Go's profiler on its
// own address, and that the API's address never does.
func TestServe_DebugAddr(t *testing.T) {
	s := startServer(t, t.TempDir(), "--debug-addr", "127.0.0.1:0")
	m := regexp.MustCompile(`"msg":"profiler listening[^"]*".*"addr":"(127\.0\.0\.1:\d+)"`).FindStringSubmatch(s.logs.String())
	if m == nil {
		t.Fatalf("no profiler address in the log:\n%s", s.logs)
	}
	for _, tt := range []struct {
		url  string
		want int
	}{
		{"http://" + m[1] + "/debug/pprof/cmdline", http.StatusOK},
		{"http://" + m[1] + "/v1/openapi.json", http.StatusNotFound},
		{s.url + "/debug/pprof/cmdline", http.StatusNotFound},
		{s.url + "/debug/pprof/", http.StatusNotFound},
	} {
		resp, err := http.Get(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s = %d, want %d", tt.url, resp.StatusCode, tt.want)
		}
	}
}
