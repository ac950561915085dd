package main

// Secret hygiene (issue #6, item 5): a full scenario against the real
// program, collecting every value that must stay secret, then checking
// that none of them is in the server's log, the audit log, any error
// response, the metrics or the database files.
//
// Panics: there is no safe way to make the real program panic from
// outside. web/recover_test.go (TestRecoverPanics) shows that a panicking
// handler's value, which there holds a code and a key, reaches neither the
// response nor the log; that is not repeated here.

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa/internal/mailpit"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/prompt"
)

// toxic is a value that must not leak, in the forms it may take.
type toxic struct {
	kind  string
	forms [][]byte
	// short values (OTP codes) are matched only between non-digits and
	// not against structural numbers, which could hold them by chance.
	short bool
}

type toxicSet struct{ list []toxic }

func (s *toxicSet) code(c string) {
	s.list = append(s.list, toxic{kind: "code", forms: [][]byte{[]byte(c)}, short: true})
}

// raw adds a binary secret: raw bytes, hex (both cases), base64 and base32.
func (s *toxicSet) raw(kind string, b []byte) {
	s.list = append(s.list, toxic{kind: kind, forms: [][]byte{
		append([]byte(nil), b...), []byte(hex.EncodeToString(b)), []byte(strings.ToUpper(hex.EncodeToString(b))),
		[]byte(base64.StdEncoding.EncodeToString(b)), []byte(base64.RawURLEncoding.EncodeToString(b)),
		[]byte(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)),
	}})
}

// text adds a secret string and the variants given.
func (s *toxicSet) text(kind string, v ...string) {
	t := toxic{kind: kind}
	for _, f := range v {
		t.forms = append(t.forms, []byte(f))
	}
	s.list = append(s.list, t)
}

func (s *toxicSet) backupCodes(codes ...string) {
	for _, c := range codes {
		plain := strings.ReplaceAll(c, "-", "")
		s.text("backup code", c, plain, strings.ToUpper(c), strings.ToUpper(plain))
	}
}

var (
	durationRE = regexp.MustCompile(`"duration":[0-9]+`)
	timeRE     = regexp.MustCompile(`"time":"[^"]*"`)
	hashRE     = regexp.MustCompile(`"hash":"[0-9a-f]*"`)
	rfc3339RE  = regexp.MustCompile(`[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z`)
	sampleRE   = regexp.MustCompile(`(?m) [-+0-9.eE]+$|(?m) [-+0-9.eE]+ [0-9]+$|NaN|[+-]Inf`)
)

// check reports every toxic value found in text. scrub, if set, removes
// structural numbers before short values are looked for.
func (s *toxicSet) check(t *testing.T, where string, text []byte, scrub func([]byte) []byte) {
	t.Helper()
	shortText := text
	if scrub != nil {
		shortText = scrub(text)
	}
	for _, x := range s.list {
		for _, f := range x.forms {
			if len(f) == 0 {
				continue
			}
			if x.short {
				re := regexp.MustCompile(`(^|[^0-9])` + regexp.QuoteMeta(string(f)) + `([^0-9]|$)`)
				if loc := re.FindIndex(shortText); loc != nil {
					t.Errorf("%s holds a %s: …%q…", where, x.kind, shortText[max(0, loc[0]-60):min(len(shortText), loc[1]+60)])
				}
				continue
			}
			if len(f) < 8 {
				t.Fatalf("toxic %s form %q is too short to look for", x.kind, f)
			}
			if i := bytes.Index(text, f); i >= 0 {
				t.Errorf("%s holds a %s: …%q…", where, x.kind, text[max(0, i-60):min(len(text), i+len(f)+60)])
			}
		}
	}
}

func TestHygiene(t *testing.T) {
	dir := t.TempDir()
	mp := mailpit.Start(t, mailpit.Options{})
	hooks := newHookReceiver(t)
	mailArgs := []string{"--smtp-url", "smtp://" + mp.SMTPAddr() + "?tls=none", "--mail-from", "security@acme.example", "--webhook-allow-private", "true"}
	// The tenant's webhook, set before the server starts: servers cache
	// tenants' webhooks for a few seconds.
	out, whErr, status := runCLI(t, "", "tenant", "webhook", "set", "--tenant", "acme", "--url", hooks.url, "--data", dir)
	whsec := strings.TrimSpace(out)
	if status != 0 || !strings.HasPrefix(whsec, "whsec_") {
		t.Fatalf("webhook set: %d %q %s", status, out, whErr)
	}
	srv := startServer(t, dir, mailArgs...)
	var sec toxicSet
	var errBodies []string
	var cliErr strings.Builder
	cliErr.WriteString(whErr)
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, status := runCLI(t, "", args...)
		cliErr.WriteString(errOut)
		if status != 0 {
			t.Fatalf("twofa %s: %d %s", strings.Join(args, " "), status, errOut)
		}
		return out
	}

	// The development master key the server generated.
	spec, err := os.ReadFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, oldB64, _ := strings.Cut(strings.TrimSpace(string(spec)), ":")
	oldKey, err := base64.StdEncoding.DecodeString(oldB64)
	if err != nil || len(oldKey) != 32 {
		t.Fatalf("master.key %q: %v", spec, err)
	}
	sec.raw("master key", oldKey)

	appKey := createKey(t, dir, "acme", false)
	adminKey := createKey(t, dir, "acme", true)
	for _, k := range []string{appKey, adminKey} {
		sec.text("API key", k, strings.TrimPrefix(k, "tfa_"))
	}
	app := &client{t: t, base: srv.url, key: appKey}
	admin := &client{t: t, base: srv.url, key: adminKey}
	anon := &client{t: t, base: srv.url}
	call := func(c *client, method, path string, body any, hdr ...string) response {
		t.Helper()
		r := c.do(method, path, body, hdr...)
		if r.status >= 400 {
			errBodies = append(errBodies, r.raw)
		}
		return r
	}
	verify := func(user, code string) response {
		t.Helper()
		sec.code(code)
		return call(app, "POST", "/v1/users/"+user+"/verify", map[string]string{"code": code})
	}

	// Enroll, confirm (a wrong code, then the previous step's).
	r := call(app, "POST", "/v1/users/alice/totp", map[string]any{"name": "Phone"})
	secretB32 := r.str("secret")
	secret, err := otp.DecodeSecret(secretB32)
	if r.status != 201 || err != nil {
		t.Fatalf("enroll: %d %s", r.status, r.raw)
	}
	sec.raw("TOTP secret", secret)
	sec.text("TOTP secret", secretB32, strings.ToLower(secretB32))
	k, _ := otp.NewKey(secret, otp.Params{})
	dev := r.str("device_id")
	wrong := wrongNow(k)
	sec.code(wrong)
	call(app, "POST", "/v1/users/alice/totp/"+dev+"/confirm", map[string]string{"code": wrong})
	c := k.TOTP(time.Now().Add(-30 * time.Second))
	sec.code(c)
	r = call(app, "POST", "/v1/users/alice/totp/"+dev+"/confirm", map[string]string{"code": c})
	var backup []string
	for _, b := range r.body["backup_codes"].([]any) {
		backup = append(backup, b.(string))
	}
	if r.body["valid"] != true || len(backup) != 10 {
		t.Fatalf("confirm: %d %s", r.status, r.raw)
	}
	sec.backupCodes(backup...)

	// Verify, replay, wrong codes until locked, unlock.
	now := k.TOTP(time.Now())
	if r = verify("alice", now); r.body["valid"] != true {
		t.Fatalf("verify: %s", r.raw)
	}
	if r = verify("alice", now); r.str("reason") != "replayed" {
		t.Fatalf("replay: %s", r.raw)
	}
	for i := 0; i < 5; i++ {
		verify("alice", wrongNow(k))
	}
	if r = verify("alice", backup[9]); r.status != 429 {
		t.Fatalf("locked: %d %s", r.status, r.raw)
	}
	if r = call(admin, "POST", "/v1/users/alice/unlock", nil); r.status != 204 {
		t.Fatalf("unlock: %d %s", r.status, r.raw)
	}

	// Backup codes: with hyphens, without, in capitals; then new ones.
	for _, b := range []string{backup[0], strings.ReplaceAll(backup[1], "-", ""), strings.ToUpper(backup[2])} {
		if r = call(app, "POST", "/v1/users/alice/verify", map[string]string{"code": b}); r.body["valid"] != true {
			t.Fatalf("backup code %d: %s", len(b), r.raw)
		}
	}
	r = call(app, "POST", "/v1/users/alice/backup-codes", nil)
	var fresh []string
	for _, b := range r.body["backup_codes"].([]any) {
		fresh = append(fresh, b.(string))
	}
	sec.backupCodes(fresh...)

	// Bad requests that carry secrets: the errors must not echo them.
	for _, b := range []string{
		`{"code":"` + fresh[0] + `","admin":true}`, `{"code":"` + fresh[1] + `"`, `{"code":"` + fresh[2] + `"} x`,
		`{"code":["` + fresh[3] + `"]}`, `{"code":"` + fresh[4] + `x"}`, `{"code":"` + wrong + `7"}`,
	} {
		call(app, "POST", "/v1/users/alice/verify", b)
	}
	call(app, "POST", "/v1/users/alice/verify", `{"code":"`+fresh[5]+`"}`, "Content-Type", "text/plain")
	call(app, "POST", "/v1/users/alice/unlock", nil)                                      // app key on an admin route
	call(&client{t: t, base: srv.url, key: appKey + "x"}, "GET", "/v1/users/alice", nil)  // a mangled key
	call(&client{t: t, base: srv.url, key: adminKey[:20]}, "GET", "/v1/users/alice", nil) // half a key
	call(anon, "GET", "/v1/users/alice", nil, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("x:"+appKey)))
	call(app, "POST", "/v1/users/"+url.PathEscape(fresh[6])+"%00/verify", map[string]string{"code": fresh[7]})

	// An enrollment link, opened in a browser: its page shows a secret,
	// then the first backup codes.
	br := newHygieneBrowser(t, &errBodies)
	r = call(app, "POST", "/v1/users/erin/enrollment-links", nil)
	link := r.str("url")
	u, err := url.Parse(link)
	if r.status != 201 || err != nil || !strings.HasPrefix(u.Path, "/l/tfl_") {
		t.Fatalf("link: %d %s", r.status, r.raw)
	}
	sec.text("link token", strings.TrimPrefix(u.Path, "/l/"))
	if st, _ := br.send("GET", srv.url+u.Path, "", ""); st != 303 {
		t.Fatalf("open link: %d", st)
	}
	_, page := br.send("GET", srv.url+"/enroll", "", "")
	m := regexp.MustCompile(`<code id="secret">([A-Z2-7 ]+)</code>`).FindStringSubmatch(page)
	tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil || tok == nil {
		t.Fatalf("enroll page: %s", page)
	}
	erinB32 := strings.ReplaceAll(m[1], " ", "")
	erinSecret, _ := otp.DecodeSecret(erinB32)
	sec.raw("TOTP secret", erinSecret)
	sec.text("TOTP secret", erinB32, m[1])
	ek, _ := otp.NewKey(erinSecret, otp.Params{})
	sec.code("12345")
	br.send("POST", srv.url+"/enroll", "application/x-www-form-urlencoded", url.Values{"csrf": {tok[1]}, "code": {"12345"}}.Encode())
	ec := ek.TOTP(time.Now())
	sec.code(ec)
	st, page := br.send("POST", srv.url+"/enroll", "application/x-www-form-urlencoded", url.Values{"csrf": {tok[1]}, "code": {ec}}.Encode())
	cm := regexp.MustCompile(`<li><code>([0-9a-z-]+)</code></li>`).FindAllStringSubmatch(page, -1)
	if st != 200 || len(cm) != 10 {
		t.Fatalf("enroll confirm: %d %s", st, page)
	}
	for _, x := range cm {
		sec.backupCodes(x[1])
	}

	// A prompt key and a prompt passed with a backup code.
	pkB64 := strings.TrimSpace(cli("tenant", "prompt-key", "--tenant", "acme", "--data", dir))
	pk, err := base64.StdEncoding.DecodeString(pkB64)
	if err != nil {
		t.Fatalf("prompt key %q: %v", pkB64, err)
	}
	sec.raw("prompt key", pk)
	cli("tenant", "return-urls", "--tenant", "acme", "--data", dir, "https://app.example/2fa")
	preq, err := prompt.SignRequest(pk, prompt.Request{Tenant: "acme", User: "alice", ReturnURL: "https://app.example/2fa", Nonce: prompt.NewNonce(), ExpiresAt: time.Now().Add(5 * time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	pb := newHygieneBrowser(t, &errBodies)
	_, page = pb.send("GET", srv.url+"/prompt?tenant=acme&request="+url.QueryEscape(preq), "", "")
	if tok = regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page); tok == nil {
		t.Fatalf("prompt page: %s", page)
	}
	pb.send("POST", srv.url+"/prompt", "application/x-www-form-urlencoded", url.Values{"csrf": {tok[1]}, "code": {fresh[8] + "9"}}.Encode())
	if st, _ := pb.send("POST", srv.url+"/prompt", "application/x-www-form-urlencoded", url.Values{"csrf": {tok[1]}, "code": {fresh[8]}}.Encode()); st != 303 {
		t.Fatalf("prompt: %d", st)
	}

	// Email: an address (sealed at rest), the codes it is sent (read from
	// Mailpit, as the user would), a sign-in by email, and a webhook's
	// signing secret. A wrong code of each kind too.
	whRaw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(whsec, "whsec_"))
	sec.text("webhook secret", whsec, strings.TrimPrefix(whsec, "whsec_"))
	sec.raw("webhook secret", whRaw)
	addr := "Alice.Hygiene@mail.example"
	sec.text("email address", addr, strings.ToLower(addr), "Alice.Hygiene@")
	r = call(app, "POST", "/v1/users/alice/email", map[string]any{"address": addr})
	if r.status != 201 {
		t.Fatalf("enroll email: %d %s", r.status, r.raw)
	}
	emailDev := r.body["device"].(map[string]any)["id"].(string)
	chl := r.body["challenge"].(map[string]any)["challenge_id"].(string)
	// emailCode waits for a code to the address that is not one of seen:
	// the worker sends concurrently, so the newest mail may be a notice.
	codeRE := regexp.MustCompile(`\b[0-9]{8}\b`)
	emailCode := func(seen ...string) string {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			for _, m := range mp.Search(t, "to:"+addr) {
				if c := codeRE.FindString(mp.Message(t, m.ID).Text); c != "" && !slices.Contains(seen, c) {
					sec.code(c)
					return c
				}
			}
		}
		t.Fatalf("no new code in the email to %s", addr)
		return ""
	}
	code1 := emailCode()
	sec.code("00000000")
	call(app, "POST", "/v1/users/alice/email/"+emailDev+"/confirm", map[string]string{"challenge_id": chl, "code": "00000000"})
	if r = call(app, "POST", "/v1/users/alice/email/"+emailDev+"/confirm", map[string]string{"challenge_id": chl, "code": code1}); r.body["valid"] != true {
		t.Fatalf("confirm email: %d %s", r.status, r.raw)
	}
	r = call(app, "POST", "/v1/users/alice/challenges", map[string]string{"factor": "email"})
	chl = r.str("challenge_id")
	code2 := emailCode(code1)
	call(app, "POST", "/v1/users/alice/challenges/"+chl+"/verify", map[string]string{"code": code1})
	if r = call(app, "POST", "/v1/users/alice/challenges/"+chl+"/verify", map[string]string{"code": code2}); r.body["valid"] != true {
		t.Fatalf("verify email code: %d %s", r.status, r.raw)
	}
	call(app, "POST", "/v1/users/alice/email", map[string]any{"address": addr + "\r\nBcc: x@evil.example"})
	hooks.wait(t, 3)

	// Key rotation: a new active key, every secret re-sealed under it,
	// and the server restarted with the new keyring.
	newB64 := strings.TrimSpace(cli("keys", "generate"))
	newKey, err := base64.StdEncoding.DecodeString(newB64)
	if err != nil {
		t.Fatal(err)
	}
	sec.raw("master key", newKey)
	keyring := filepath.Join(t.TempDir(), "keyring")
	if err := os.WriteFile(keyring, []byte("2:"+newB64+",1:"+oldB64+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.stop()
	logs := srv.logs.String()
	if out := cli("keys", "rotate", "--data", dir, "--master-key-file", keyring); !strings.Contains(out, "0 under older keys") {
		t.Fatalf("rotate: %s", out)
	}
	srv = startServer(t, dir, append([]string{"--master-key-file", keyring}, mailArgs...)...)
	for _, cl := range []*client{app, admin, anon} {
		cl.base = srv.url
	}
	// The secrets still open: a code of the next step; then resync,
	// revoke and disable.
	if r = verify("alice", k.TOTP(time.Now().Add(30*time.Second))); r.body["valid"] != true {
		t.Fatalf("verify after rotation: %d %s", r.status, r.raw)
	}
	c1, c2 := k.TOTP(time.Now().Add(5*time.Minute)), k.TOTP(time.Now().Add(5*time.Minute+30*time.Second))
	sec.code(c1)
	sec.code(c2)
	if r = call(app, "POST", "/v1/users/alice/totp/"+dev+"/resync", map[string]string{"code1": c1, "code2": c2}); r.status != 200 {
		t.Fatalf("resync: %d %s", r.status, r.raw)
	}
	if r = call(app, "DELETE", "/v1/users/alice/devices/"+dev, nil); r.status != 204 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r = call(app, "DELETE", "/v1/users/erin", nil); r.status != 204 {
		t.Fatalf("disable: %d %s", r.status, r.raw)
	}

	// Everything a reader of the system may see.
	var audit strings.Builder
	after := "0"
	for pages := 0; ; pages++ {
		r = call(admin, "GET", "/v1/audit?limit=50&after="+after, nil)
		if r.status != 200 || pages > 100 {
			t.Fatalf("audit: %d %s", r.status, r.raw)
		}
		audit.WriteString(r.raw)
		next, ok := r.body["next_after"].(float64)
		if !ok {
			break
		}
		after = fmt.Sprint(int64(next))
	}
	// The events of no tenant (key rotation, API keys) are the CLI's to show.
	all := cli("audit", "tail", "-n", "100000", "--data", dir, "--master-key-file", keyring)
	for _, ev := range []string{"prompt_passed", "backup_codes_issued", "user_locked", "resync_", "enrollment_confirmed"} {
		if !strings.Contains(audit.String(), ev) {
			t.Errorf("the audit log lacks %s: %s", ev, audit.String())
		}
	}
	if !strings.Contains(all, "keys_rotated") {
		t.Errorf("twofa audit tail lacks keys_rotated: %s", all)
	}
	metrics := call(anon, "GET", "/metrics", nil).raw
	dbFiles := map[string][]byte{}
	readDB := func(when string) {
		for _, f := range []string{"twofa.db", "twofa.db-wal", "twofa.db-shm"} {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				dbFiles[f+" ("+when+")"] = b
			}
		}
	}
	readDB("serving")
	srv.stop()
	readDB("stopped")
	logs += srv.logs.String()

	if len(sec.list) < 50 || len(errBodies) < 10 || len(dbFiles) < 2 {
		t.Fatalf("the scenario collected %d secrets, %d error bodies, %d database files", len(sec.list), len(errBodies), len(dbFiles))
	}
	scrubLog := func(b []byte) []byte { return timeRE.ReplaceAll(durationRE.ReplaceAll(b, nil), nil) }
	sec.check(t, "the server's log", []byte(logs), scrubLog)
	sec.check(t, "the CLI's output", []byte(cliErr.String()), scrubLog)
	sec.check(t, "the audit log", []byte(audit.String()), func(b []byte) []byte { return hashRE.ReplaceAll(timeRE.ReplaceAll(b, nil), nil) })
	sec.check(t, "the webhooks", []byte(hooks.bodies()), func(b []byte) []byte { return timeRE.ReplaceAll(b, nil) })
	sec.check(t, "twofa audit tail", []byte(all), func(b []byte) []byte { return rfc3339RE.ReplaceAll(b, nil) })
	for i, b := range errBodies {
		sec.check(t, fmt.Sprintf("error body %d", i), []byte(b), nil)
	}
	sec.check(t, "the metrics", []byte(metrics), func(b []byte) []byte { return sampleRE.ReplaceAll(b, nil) })
	for f, b := range dbFiles {
		sec.check(t, f, b, nil)
	}
}

// hygieneBrowser is a browser with cookies that does not follow
// redirects and keeps the bodies of error pages.
type hygieneBrowser struct {
	t      *testing.T
	c      *http.Client
	errors *[]string
}

func newHygieneBrowser(t *testing.T, errs *[]string) *hygieneBrowser {
	jar, _ := cookiejar.New(nil)
	return &hygieneBrowser{t: t, errors: errs, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *hygieneBrowser) send(method, u, ctype, body string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		*b.errors = append(*b.errors, string(raw))
	}
	return resp.StatusCode, string(raw)
}

// hookReceiver is an application's webhook endpoint: it keeps what it is
// sent.
type hookReceiver struct {
	url string
	mu  sync.Mutex
	got []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got = append(h.got, string(b))
		h.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hooks"
	return h
}

// wait waits until at least n deliveries arrived.
func (h *hookReceiver) wait(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		h.mu.Lock()
		got := len(h.got)
		h.mu.Unlock()
		if got >= n {
			return
		}
	}
	t.Fatalf("fewer than %d webhook deliveries arrived", n)
}

func (h *hookReceiver) bodies() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.got, "\n")
}
