package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/prompt"
	"github.com/twofa/twofa/seal"
	"github.com/twofa/twofa/web"
)

// pagesClock is the injected time of the Service and the handler.
type pagesClock = twofatest.Clock

// pagesEnv is a real server over a real Service on SQLite, and a browser:
// a client with a cookie jar that does not follow redirects, so tests see
// each 303.
type pagesEnv struct {
	t      *testing.T
	svc    *twofa.Service
	store  twofa.OutboxStore
	keys   *seal.Keyring // the Service's, to read the codes it queued
	clock  *pagesClock
	srv    *httptest.Server
	client *http.Client
	appKey string
}

func newPagesEnv(t *testing.T, tls bool) *pagesEnv {
	t.Helper()
	return newPagesEnvWith(t, tls, nil)
}

// newPagesEnvWith is newPagesEnv with a Service that delivers only the
// channels given (nil: every channel).
func newPagesEnvWith(t *testing.T, tls bool, channels []twofa.Channel) *pagesEnv {
	t.Helper()
	ctx := context.Background()
	svc, st, c, keys := twofatest.NewServiceKeys(t)
	if channels != nil {
		var err error
		if svc, err = twofa.NewService(ctx, st, keys, twofa.Options{Now: c.Now, Channels: channels}); err != nil {
			t.Fatal(err)
		}
	}
	h := web.NewHandler(svc, web.Options{Now: c.Now})
	e := &pagesEnv{t: t, svc: svc, store: st, keys: keys, clock: c}
	if tls {
		e.srv = httptest.NewTLSServer(h)
		e.client = e.srv.Client()
	} else {
		e.srv = httptest.NewServer(h)
		e.client = &http.Client{}
	}
	t.Cleanup(e.srv.Close)
	e.client.Jar, _ = cookiejar.New(nil)
	e.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var err error
	if e.appKey, _, err = svc.CreateAPIKey(ctx, "acme", "app", twofa.ScopeApp); err != nil {
		t.Fatal(err)
	}
	return e
}

// page is a response as a test looks at it.
type page struct {
	status int
	header http.Header
	body   string
}

func (p page) location() string { return p.header.Get("Location") }

func (e *pagesEnv) do(req *http.Request) page {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (e *pagesEnv) url(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return e.srv.URL + path
}

func (e *pagesEnv) get(path string) page {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url(path), nil)
	return e.do(req)
}

// post sends a form as a browser would from one of the pages.
func (e *pagesEnv) post(path string, form url.Values, header ...string) page {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.srv.URL)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return e.do(req)
}

// link asks the API for a link of the kind ("enrollment" or "manage").
func (e *pagesEnv) link(kind, user string) string {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/users/"+user+"/"+kind+"-links", nil)
	req.Header.Set("Authorization", "Bearer "+e.appKey)
	p := e.do(req)
	var out struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(p.body), &out); err != nil || p.status != http.StatusCreated {
		e.t.Fatalf("POST %s-links: %d %s", kind, p.status, p.body)
	}
	if !strings.HasPrefix(out.URL, e.srv.URL+"/l/tfl_") {
		e.t.Errorf("link URL = %q, want %s/l/tfl_…", out.URL, e.srv.URL)
	}
	if want := e.clock.Now().Add(twofa.LinkTTL); !out.ExpiresAt.Equal(want) {
		e.t.Errorf("expires_at = %v, want %v", out.ExpiresAt, want)
	}
	return out.URL
}

// open opens a link and follows its redirect.
func (e *pagesEnv) open(link string) page {
	e.t.Helper()
	p := e.get(link)
	if p.status != http.StatusSeeOther {
		e.t.Fatalf("GET %s: %d, want 303; body %s", link, p.status, p.body)
	}
	return e.get(p.location())
}

var (
	csrfRE   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	secretRE = regexp.MustCompile(`<code id="secret">([A-Z2-7 ]+)</code>`)
	codesRE  = regexp.MustCompile(`<li><code>([0-9a-z-]+)</code></li>`)
)

func csrf(t *testing.T, p page) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no csrf field in page: %s", p.body)
	}
	return m[1]
}

// wantPage checks a page's status and that its body has every text,
// ignoring case.
func wantPage(t *testing.T, what string, p page, status int, texts ...string) {
	t.Helper()
	if p.status != status {
		t.Errorf("%s: status %d, want %d; body:\n%s", what, p.status, status, p.body)
	}
	body := strings.ToLower(html.UnescapeString(p.body))
	for _, s := range texts {
		if !strings.Contains(body, strings.ToLower(s)) {
			t.Errorf("%s: page lacks %q; body:\n%s", what, s, body)
		}
	}
}

const wantCSP = "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// enrolled gives user an active device through the Service, and returns
// its key and backup codes.
func (e *pagesEnv) enrolled(user, name string) (*otp.Key, []string) {
	e.t.Helper()
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: user}
	en, err := e.svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{Name: name})
	if err != nil {
		e.t.Fatal(err)
	}
	k, err := otp.NewKey(en.Secret, en.Device.Params)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.svc.ConfirmEnrollment(ctx, ref, en.Device.ID, k.TOTP(e.clock.Now()))
	if err != nil || !res.Valid {
		e.t.Fatalf("ConfirmEnrollment: %+v, %v", res, err)
	}
	e.clock.Add(30 * time.Second) // the next code is a new step
	return k, res.BackupCodes
}

func (e *pagesEnv) user(user string) *twofa.User {
	e.t.Helper()
	u, err := e.svc.UserStatus(context.Background(), twofa.UserRef{Tenant: "acme", User: user})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func TestPages_Enroll(t *testing.T) {
	e := newPagesEnv(t, false)
	link := e.link("enrollment", "alice")

	opened := e.get(link)
	if opened.status != http.StatusSeeOther || opened.location() != "/enroll" {
		t.Fatalf("GET link: %d to %q, want 303 to /enroll", opened.status, opened.location())
	}
	ck := opened.header.Get("Set-Cookie")
	for _, want := range []string{"twofa_link=", "Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=900"} {
		if !strings.Contains(ck, want) {
			t.Errorf("Set-Cookie %q lacks %s", ck, want)
		}
	}
	if strings.Contains(ck, "Secure") || strings.Contains(ck, "__Host-") {
		t.Errorf("Set-Cookie %q is Secure without TLS", ck)
	}

	p := e.get("/enroll")
	wantPage(t, "enroll page", p, http.StatusOK, `<img id="qr" src="data:image/png;base64,`, `alt="QR code`,
		`<label for="code">`, `autocomplete="one-time-code"`, `inputmode="numeric"`, `<label for="name">`, `name="viewport"`,
		`href="otpauth://totp/`)
	for h, want := range map[string]string{
		"Content-Security-Policy": wantCSP, "Cache-Control": "no-store", "X-Frame-Options": "DENY",
		"Content-Type": "text/html; charset=utf-8", "Strict-Transport-Security": "",
	} {
		if got := p.header.Get(h); got != want {
			t.Errorf("enroll page header %s = %q, want %q", h, got, want)
		}
	}
	if m := regexp.MustCompile(`(?:src|href)="(?:https?:)?//`).FindString(p.body); m != "" {
		t.Errorf("enroll page loads %s from elsewhere", m)
	}
	m := secretRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no grouped secret on the enroll page")
	}
	grouped := m[1]
	if !regexp.MustCompile(`^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$`).MatchString(grouped) {
		t.Errorf("secret %q is not grouped in fours", grouped)
	}
	raw := strings.ReplaceAll(grouped, " ", "")
	if !strings.Contains(p.body, `data-copy="`+raw+`"`) {
		t.Errorf("no copy button with the secret")
	}
	secret, err := otp.DecodeSecret(raw)
	if err != nil {
		t.Fatal(err)
	}
	k, err := otp.NewKey(secret, e.svc.Policy().TOTP)
	if err != nil {
		t.Fatal(err)
	}
	tok := csrf(t, p)
	confirm := func(code, name string) page {
		return e.post("/enroll", url.Values{"csrf": {tok}, "code": {code}, "name": {name}})
	}

	t.Run("ErrInvalidCode", func(t *testing.T) {
		p := confirm(wrong(k, e.clock.Now()), "")
		wantPage(t, "wrong code", p, http.StatusUnprocessableEntity, `role="alert"`, "That code didn't work", `aria-invalid="true"`)
	})
	t.Run("ClockHint", func(t *testing.T) {
		p := confirm(k.TOTP(e.clock.Now().Add(-90*time.Second)), "")
		wantPage(t, "behind", p, http.StatusUnprocessableEntity, "your phone's clock seems about 90 seconds behind", "automatic date and time")
		p = confirm(k.TOTP(e.clock.Now().Add(5*time.Minute)), "")
		wantPage(t, "ahead", p, http.StatusUnprocessableEntity, "about 5 minutes ahead")
	})
	t.Run("ErrMalformedCode", func(t *testing.T) {
		p := confirm("12ab", "")
		wantPage(t, "malformed", p, http.StatusBadRequest, "doesn't look like a code") // as the API says
	})
	t.Run("Reload", func(t *testing.T) {
		// The secret was shown once; a reload asks for the code only.
		p := e.get("/enroll")
		wantPage(t, "reload", p, http.StatusOK, "You've started adding a device", `id="code"`, "Start again")
		if strings.Contains(p.body, raw[:16]) || strings.Contains(p.body, `id="qr"`) {
			t.Errorf("the reloaded page shows the secret again")
		}
	})

	p = confirm(k.TOTP(e.clock.Now()), "Work phone")
	wantPage(t, "codes page", p, http.StatusOK, `id="backup-codes"`, `id="download-codes"`, `id="print-codes"`, `id="saved"`)
	codes := codesRE.FindAllStringSubmatch(p.body, -1)
	if len(codes) != e.svc.Policy().BackupCodes {
		t.Fatalf("codes page shows %d codes, want %d", len(codes), e.svc.Policy().BackupCodes)
	}
	if strings.Contains(p.body, raw[:16]) || p.header.Get("Cache-Control") != "no-store" {
		t.Errorf("codes page shows the secret, or may be cached (%q)", p.header.Get("Cache-Control"))
	}

	t.Run("CodesShownOnce", func(t *testing.T) {
		p := e.get("/enroll")
		wantPage(t, "after confirm", p, http.StatusOK, "Your device is set up", "shown only once")
		if strings.Contains(p.body, codes[0][1]) || strings.Contains(p.body, raw[:16]) {
			t.Errorf("codes or secret shown again")
		}
		// Resending the form does not enroll again.
		if p := confirm(k.TOTP(e.clock.Now()), "x"); p.status != http.StatusSeeOther {
			t.Errorf("resent confirm: %d, want 303", p.status)
		}
	})

	p = e.post("/enroll/saved", url.Values{"csrf": {tok}})
	if p.status != http.StatusSeeOther || p.location() != "/enroll" {
		t.Fatalf("saved: %d to %q", p.status, p.location())
	}
	wantPage(t, "done", e.get("/enroll"), http.StatusOK, "You're all set", "close this page")

	u := e.user("alice")
	if ds := u.ActiveDevices(); len(ds) != 1 || ds[0].Name != "Work phone" || u.BackupCodes != len(codes) {
		t.Errorf("after enrolling: %d devices (%+v), %d codes", len(ds), ds, u.BackupCodes)
	}
	res, err := e.svc.Verify(context.Background(), twofa.UserRef{Tenant: "acme", User: "alice"}, codes[3][1])
	if err != nil || !res.Valid {
		t.Errorf("a shown backup code does not verify: %+v, %v", res, err)
	}

	t.Run("LinkReused", func(t *testing.T) {
		p := e.get(link)
		wantPage(t, "reused link", p, http.StatusNotFound, "used already", "ask for a new link")
		if p.header.Get("Set-Cookie") != "" {
			t.Errorf("a spent link set a cookie")
		}
	})
}

// wrong returns a well-formed code that is not valid near now.
func wrong(k *otp.Key, now time.Time) string {
	near := map[string]bool{}
	for i := -25; i <= 25; i++ {
		near[k.TOTP(now.Add(time.Duration(i)*30*time.Second))] = true
	}
	for _, c := range []string{"000000", "111111", "123456", "654321", "999999"} {
		if !near[c] {
			return c
		}
	}
	panic("no wrong code")
}

func TestPages_Links(t *testing.T) {
	e := newPagesEnv(t, false)
	t.Run("Expired", func(t *testing.T) {
		link := e.link("enrollment", "bob")
		e.clock.Add(twofa.LinkTTL + time.Second)
		wantPage(t, "expired link", e.get(link), http.StatusGone, "This link has expired", "ask for a new link")
	})
	t.Run("Unknown", func(t *testing.T) {
		wantPage(t, "unknown link", e.get("/l/tfl_nosuchlink"), http.StatusNotFound, "ask for a new link")
	})
	t.Run("Unauthenticated", func(t *testing.T) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/v1/users/bob/manage-links", nil)
		p := e.do(req)
		if p.status != http.StatusUnauthorized {
			t.Errorf("no API key: %d, want 401", p.status)
		}
	})
	t.Run("ManageLink", func(t *testing.T) {
		e.enrolled("carol", "Phone")
		wantPage(t, "manage", e.open(e.link("manage", "carol")), http.StatusOK, "Phone", `id="add-device"`)
	})
}

func TestPages_CSRF(t *testing.T) {
	e := newPagesEnv(t, false)
	p := e.open(e.link("enrollment", "alice"))
	tok := csrf(t, p)
	for _, c := range []struct {
		name   string
		form   url.Values
		header []string
		status int
	}{
		{"Missing", url.Values{"code": {"123456"}}, nil, http.StatusForbidden},
		{"Wrong", url.Values{"csrf": {tok + "x"}, "code": {"123456"}}, nil, http.StatusForbidden},
		{"OtherSession", url.Values{"csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "code": {"123456"}}, nil, http.StatusForbidden},
		{"CrossOrigin", url.Values{"csrf": {tok}, "code": {"123456"}}, []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"NullOrigin", url.Values{"csrf": {tok}, "code": {"123456"}}, []string{"Origin", "null"}, http.StatusForbidden},
		{"CrossReferer", url.Values{"csrf": {tok}, "code": {"123456"}}, []string{"Origin", "", "Referer", "https://evil.example/x"}, http.StatusForbidden},
		{"NoOriginNoReferer", url.Values{"csrf": {tok}, "code": {"12"}}, []string{"Origin", ""}, http.StatusBadRequest},
		{"SameOrigin", url.Values{"csrf": {tok}, "code": {"12"}}, nil, http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := e.post("/enroll", c.form, c.header...)
			if p.status != c.status {
				t.Errorf("status %d, want %d; body %s", p.status, c.status, p.body)
			}
			if c.status == http.StatusForbidden && !strings.Contains(p.body, "reload the page") {
				t.Errorf("403 without advice: %s", p.body)
			}
		})
	}
}

func TestPages_Session(t *testing.T) {
	e := newPagesEnv(t, false)
	e.open(e.link("enrollment", "alice"))
	u, _ := url.Parse(e.srv.URL)
	var orig *http.Cookie
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name == "twofa_link" {
			orig = c
		}
	}
	if orig == nil {
		t.Fatal("no twofa_link cookie")
	}
	set := func(v string) {
		e.client.Jar.SetCookies(u, []*http.Cookie{{Name: "twofa_link", Value: v, Path: "/"}})
	}
	payload, sig, _ := strings.Cut(orig.Value, ".")
	t.Run("Tampered", func(t *testing.T) {
		// The same session for another user, under the old signature.
		b, _ := base64.RawURLEncoding.DecodeString(payload)
		forged := strings.Replace(string(b), `"u":"alice"`, `"u":"mallory"`, 1)
		if forged == string(b) {
			t.Fatalf("session payload %s has no user alice", b)
		}
		set(base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + sig)
		wantPage(t, "forged", e.get("/enroll"), http.StatusForbidden, "couldn't find your session")
		set(payload + "." + sig[:len(sig)-2] + "AA")
		wantPage(t, "bad mac", e.get("/enroll"), http.StatusForbidden, "couldn't find your session")
		set("garbage")
		wantPage(t, "garbage", e.get("/enroll"), http.StatusForbidden, "couldn't find your session")
	})
	t.Run("WrongKind", func(t *testing.T) {
		set(orig.Value)
		wantPage(t, "enroll link at /manage", e.get("/manage"), http.StatusForbidden, "ask for a new link")
	})
	t.Run("Expired", func(t *testing.T) {
		set(orig.Value)
		e.clock.Add(twofa.LinkTTL + time.Second)
		wantPage(t, "expired", e.get("/enroll"), http.StatusForbidden, "Your session has ended", "ask for a new link")
	})
	t.Run("None", func(t *testing.T) {
		e.client.Jar, _ = cookiejar.New(nil)
		wantPage(t, "no cookie", e.get("/manage"), http.StatusForbidden, "ask for a new link")
	})
}

func TestPages_Manage(t *testing.T) {
	e := newPagesEnv(t, false)
	k, oldCodes := e.enrolled("alice", "Work phone")
	ctx := context.Background()
	alice := twofa.UserRef{Tenant: "acme", User: "alice"}
	p := e.open(e.link("manage", "alice"))
	dev := e.user("alice").ActiveDevices()[0]
	wantPage(t, "manage", p, http.StatusOK, "Work phone", "Last used 1 Mar 2026, 12:00 UTC", `id="device-`+dev.ID+`"`,
		`<label for="rename-`+dev.ID+`">`, "You have 10 unused backup codes")
	tok := csrf(t, p)

	t.Run("Rename", func(t *testing.T) {
		p := e.post("/manage/rename", url.Values{"csrf": {tok}, "device_id": {dev.ID}, "name": {"Old phone"}})
		if p.status != http.StatusSeeOther || p.location() != "/manage?notice=renamed" {
			t.Fatalf("rename: %d to %q", p.status, p.location())
		}
		wantPage(t, "renamed", e.get(p.location()), http.StatusOK, "Device renamed.", "Old phone")
		p = e.post("/manage/rename", url.Values{"csrf": {tok}, "device_id": {dev.ID}, "name": {" "}})
		wantPage(t, "empty name", p, http.StatusUnprocessableEntity, "type a name")
		p = e.post("/manage/rename", url.Values{"csrf": {tok}, "device_id": {"dev_other"}, "name": {"x"}})
		wantPage(t, "unknown device", p, http.StatusNotFound, "no longer exists")
	})

	var k2 *otp.Key
	t.Run("AddDevice", func(t *testing.T) {
		// A current code first: a wrong one is a failed attempt, and no
		// secret is shown until a right one.
		p := e.get("/enroll")
		wantPage(t, "add device asks for a code", p, http.StatusOK, "Confirm it's you", `action="/enroll/prove"`, `id="backup-code"`)
		if secretRE.MatchString(p.body) {
			t.Fatalf("a secret before a current code")
		}
		p = e.post("/enroll/prove", url.Values{"csrf": {tok}, "code": {wrong(k, e.clock.Now())}})
		wantPage(t, "wrong code", p, http.StatusUnprocessableEntity, "That code didn't work")
		if u := e.user("alice"); u.Failures != 1 {
			t.Errorf("after a wrong code: %d failures, want 1", u.Failures)
		}
		e.clock.Add(30 * time.Second)
		p = e.post("/enroll/prove", url.Values{"csrf": {tok}, "code": {k.TOTP(e.clock.Now())}})
		if p.status != http.StatusSeeOther || p.location() != "/enroll" {
			t.Fatalf("right code: %d to %q; %s", p.status, p.location(), p.body)
		}
		p = e.get("/enroll")
		m := secretRE.FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no secret on the enroll page of a manage session: %s", p.body)
		}
		secret, _ := otp.DecodeSecret(strings.ReplaceAll(m[1], " ", ""))
		k2, _ = otp.NewKey(secret, e.svc.Policy().TOTP)
		wantPage(t, "enroll from manage", p, http.StatusOK, `id="back-to-manage"`)
		p = e.post("/enroll", url.Values{"csrf": {tok}, "code": {k2.TOTP(e.clock.Now())}, "name": {"Tablet"}})
		if p.status != http.StatusSeeOther || p.location() != "/manage?notice=added" {
			t.Fatalf("confirm from manage: %d to %q; %s", p.status, p.location(), p.body)
		}
		wantPage(t, "added", e.get(p.location()), http.StatusOK, "Your new device is ready.", "Tablet", "Old phone")
	})

	t.Run("RegenerateBackupCodes", func(t *testing.T) {
		wantPage(t, "ask", e.get("/manage/backup-codes"), http.StatusOK, `id="code"`, "will stop working", `id="backup-code"`)
		p := e.post("/manage/backup-codes", url.Values{"csrf": {tok}, "code": {wrong(k, e.clock.Now())}})
		wantPage(t, "wrong code", p, http.StatusUnprocessableEntity, "That code didn't work")
		if n := e.user("alice").BackupCodes; n != 10 {
			t.Errorf("after a wrong code, %d backup codes", n)
		}
		e.clock.Add(30 * time.Second)
		p = e.post("/manage/backup-codes", url.Values{"csrf": {tok}, "code": {k.TOTP(e.clock.Now())}})
		wantPage(t, "new codes", p, http.StatusOK, `id="backup-codes"`, `id="saved"`)
		if got := codesRE.FindAllStringSubmatch(p.body, -1); len(got) != 10 || got[0][1] == oldCodes[0] {
			t.Errorf("new codes page: %q", got)
		}
		if p.header.Get("Cache-Control") != "no-store" {
			t.Errorf("codes page may be cached")
		}
		if res, err := e.svc.Verify(ctx, alice, oldCodes[0]); err != nil || res.Valid {
			t.Errorf("an old backup code still works: %+v, %v", res, err)
		}
		p = e.post("/manage/backup-codes", url.Values{"csrf": {tok}, "code": {k.TOTP(e.clock.Now())}})
		wantPage(t, "replayed", p, http.StatusUnprocessableEntity, "already used", "wait for your app to show the next code")
	})

	t.Run("Revoke", func(t *testing.T) {
		ask := e.get("/manage/remove?device_id=" + dev.ID)
		wantPage(t, "ask", ask, http.StatusOK, "Remove Old phone?", `name="device_id" value="`+dev.ID+`"`)
		p := e.post("/manage/remove", url.Values{"csrf": {tok}, "device_id": {dev.ID}, "code": {wrong(k, e.clock.Now())}})
		wantPage(t, "wrong code", p, http.StatusUnprocessableEntity, "That code didn't work")
		if n := len(e.user("alice").ActiveDevices()); n != 2 {
			t.Fatalf("a wrong code removed a device: %d left", n)
		}
		e.clock.Add(30 * time.Second)
		p = e.post("/manage/remove", url.Values{"csrf": {tok}, "device_id": {dev.ID}, "code": {k2.TOTP(e.clock.Now())}})
		if p.status != http.StatusSeeOther || p.location() != "/manage?notice=removed" {
			t.Fatalf("remove: %d to %q; %s", p.status, p.location(), p.body)
		}
		ds := e.user("alice").ActiveDevices()
		if len(ds) != 1 || ds[0].Name != "Tablet" {
			t.Errorf("after removal: %+v", ds)
		}
		wantPage(t, "removed", e.get("/manage/remove?device_id="+dev.ID), http.StatusNotFound, "removed already")
	})
}

// promptSetup gives tenant acme a prompt key and a return URL, and alice
// a device.
func promptSetup(t *testing.T, e *pagesEnv) ([]byte, *otp.Key) {
	ctx := context.Background()
	key, err := e.svc.NewPromptKey(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetReturnURLs(ctx, "acme", []string{"https://app.example/2fa"}); err != nil {
		t.Fatal(err)
	}
	k, _ := e.enrolled("alice", "Phone")
	return key, k
}

func (e *pagesEnv) promptURL(key []byte, r prompt.Request) string {
	e.t.Helper()
	if r.ExpiresAt == 0 {
		r.ExpiresAt = e.clock.Now().Add(5 * time.Minute).Unix()
	}
	tok, err := prompt.SignRequest(key, r)
	if err != nil {
		e.t.Fatal(err)
	}
	return "/prompt?tenant=" + url.QueryEscape(r.Tenant) + "&request=" + url.QueryEscape(tok)
}

func TestPages_Prompt(t *testing.T) {
	e := newPagesEnv(t, false)
	key, k := promptSetup(t, e)
	request := func() prompt.Request {
		return prompt.Request{Tenant: "acme", User: "alice", ReturnURL: "https://app.example/2fa/done?step=2", Nonce: prompt.NewNonce()}
	}

	t.Run("Valid", func(t *testing.T) {
		req := request()
		p := e.get(e.promptURL(key, req))
		wantPage(t, "prompt", p, http.StatusOK, `id="code"`, `autocomplete="one-time-code"`,
			`href="https://app.example/2fa/done?step=2&twofa_error=cancelled"`)
		if got, want := p.header.Get("Content-Security-Policy"), strings.Replace(wantCSP, "form-action 'self'", "form-action 'self' https://app.example", 1); got != want {
			t.Errorf("CSP = %q, want %q", got, want)
		}
		p = e.post("/prompt", url.Values{"csrf": {csrf(t, p)}, "code": {k.TOTP(e.clock.Now())}})
		loc, err := url.Parse(p.location())
		if p.status != http.StatusSeeOther || err != nil || !strings.HasPrefix(p.location(), "https://app.example/2fa/done?step=2&twofa_result=") {
			t.Fatalf("verify: %d to %q; %s", p.status, p.location(), p.body)
		}
		if !strings.Contains(p.header.Get("Content-Security-Policy"), "form-action 'self' https://app.example;") {
			t.Errorf("redirect CSP %q does not allow the return origin", p.header.Get("Content-Security-Policy"))
		}
		res, err := prompt.ParseResult(key, loc.Query().Get(web.ParamResult), "acme", req.Nonce, e.clock.Now())
		if err != nil || res.User != "alice" || res.Factor != twofa.FactorTOTP {
			t.Fatalf("ParseResult: %+v, %v", res, err)
		}
		if _, err := prompt.ParseResult(key, loc.Query().Get(web.ParamResult), "acme", prompt.NewNonce(), e.clock.Now()); err == nil {
			t.Errorf("the result passes with another nonce")
		}
		// The session ended with the redirect.
		p = e.post("/prompt", url.Values{"csrf": {"x"}, "code": {k.TOTP(e.clock.Now())}})
		wantPage(t, "after", p, http.StatusForbidden, "sign in again")
	})

	t.Run("Replayed", func(t *testing.T) {
		p := e.get(e.promptURL(key, request()))
		p = e.post("/prompt", url.Values{"csrf": {csrf(t, p)}, "code": {k.TOTP(e.clock.Now())}})
		wantPage(t, "replayed", p, http.StatusUnprocessableEntity, "already used", "next code")
		if p.location() != "" {
			t.Errorf("redirected to %q", p.location())
		}
	})

	t.Run("Malformed", func(t *testing.T) {
		p := e.get(e.promptURL(key, request()))
		p = e.post("/prompt", url.Values{"csrf": {csrf(t, p)}, "code": {"12"}})
		wantPage(t, "malformed", p, http.StatusBadRequest, "doesn't look like a code") // as the API says
	})

	t.Run("BackupCode", func(t *testing.T) {
		_, codes := e.enrolled("dora", "Phone")
		req := request()
		req.User = "dora"
		p := e.get(e.promptURL(key, req))
		wantPage(t, "prompt", p, http.StatusOK, `id="backup-code"`)
		p = e.post("/prompt", url.Values{"csrf": {csrf(t, p)}, "code": {codes[0]}})
		loc, _ := url.Parse(p.location())
		res, err := prompt.ParseResult(key, loc.Query().Get(web.ParamResult), "acme", req.Nonce, e.clock.Now())
		if err != nil || res.Factor != twofa.FactorBackupCode {
			t.Errorf("backup code: %d %q: %+v, %v", p.status, p.location(), res, err)
		}
	})

	t.Run("Locked", func(t *testing.T) {
		_, _ = e.enrolled("erin", "Phone")
		req := request()
		req.User = "erin"
		p := e.get(e.promptURL(key, req))
		tok := csrf(t, p)
		for range e.svc.Policy().LockAfter {
			p = e.post("/prompt", url.Values{"csrf": {tok}, "code": {"000000"}})
		}
		wantPage(t, "locked", p, http.StatusTooManyRequests, "need to wait until")
		p = e.post("/prompt", url.Values{"csrf": {tok}, "code": {"000000"}})
		wantPage(t, "still locked", p, http.StatusTooManyRequests, "need to wait until", "(in 30 seconds)")
	})

	t.Run("LockedByResync", func(t *testing.T) {
		// Five wrong resyncs through the API lock the user on the hosted
		// prompt too: the API and the pages share one attempt path.
		kf, _ := e.enrolled("fay", "Phone")
		dev := e.user("fay").ActiveDevices()[0].ID
		for i := range 5 {
			body := fmt.Sprintf(`{"code1":"%06d","code2":"%06d"}`, i, i+1)
			req, _ := http.NewRequest("POST", e.srv.URL+"/v1/users/fay/totp/"+dev+"/resync", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+e.appKey)
			req.Header.Set("Content-Type", "application/json")
			r := e.do(req)
			if r.status != http.StatusOK || r.body != `{"valid":false,"reason":"invalid_code"}`+"\n" {
				t.Fatalf("wrong resync %d: %d %s", i, r.status, r.body)
			}
		}
		req := request()
		req.User = "fay"
		p := e.get(e.promptURL(key, req))
		p = e.post("/prompt", url.Values{"csrf": {csrf(t, p)}, "code": {kf.TOTP(e.clock.Now())}})
		wantPage(t, "prompt after 5 wrong resyncs", p, http.StatusTooManyRequests, "need to wait until")
	})

	bad := []struct {
		name string
		url  func() string
		want string
	}{
		{"BadSignature", func() string {
			u := e.promptURL(key, request())
			return u[:len(u)-4] + "AAAA"
		}, "bad signature"},
		{"OtherKey", func() string {
			other, _ := prompt.NewKey()
			return e.promptURL(other, request())
		}, "bad signature"},
		{"UnregisteredReturnURL", func() string {
			r := request()
			r.ReturnURL = "https://app.example.evil/2fa"
			return e.promptURL(key, r)
		}, "not registered"},
		{"Expired", func() string {
			u := e.promptURL(key, request())
			e.clock.Add(6 * time.Minute)
			return u
		}, "has expired"},
		{"OtherTenant", func() string {
			r := request()
			u := e.promptURL(key, r)
			return strings.Replace(u, "tenant=acme", "tenant=globex", 1)
		}, "no prompt key"},
		{"NoRequest", func() string { return "/prompt?tenant=acme" }, "needs a sign-in request"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			p := e.get(c.url())
			wantPage(t, c.name, p, http.StatusBadRequest, c.want, "can't be used")
			if p.location() != "" || p.header.Get("Set-Cookie") != "" || strings.Contains(p.body, "app.example") {
				t.Errorf("a bad request led somewhere: Location %q, Set-Cookie %q", p.location(), p.header.Get("Set-Cookie"))
			}
		})
	}
}

func TestPages_TLS(t *testing.T) {
	e := newPagesEnv(t, true)
	p := e.get(e.link("enrollment", "alice"))
	ck := p.header.Get("Set-Cookie")
	if !strings.HasPrefix(ck, "__Host-twofa_link=") || !strings.Contains(ck, "Secure") {
		t.Errorf("Set-Cookie under TLS = %q, want a Secure __Host- cookie", ck)
	}
	p = e.get("/enroll")
	if p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("under TLS: %d, HSTS %q", p.status, p.header.Get("Strict-Transport-Security"))
	}
	if p.header.Get("Content-Security-Policy") != wantCSP {
		t.Errorf("CSP = %q", p.header.Get("Content-Security-Policy"))
	}
}

func TestPages_Static(t *testing.T) {
	e := newPagesEnv(t, false)
	p := e.get("/prompt")
	assets := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(p.body, -1)
	if len(assets) != 2 {
		t.Fatalf("layout references %d assets, want the CSS and the script", len(assets))
	}
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
	for _, a := range assets {
		path := html.UnescapeString(a[1])
		p := e.get(path)
		ext := filepath.Ext(strings.SplitN(path, "?", 2)[0])
		if p.status != http.StatusOK || p.header.Get("Content-Type") != types[ext] || len(p.body) < 100 {
			t.Errorf("GET %s: %d %q, %d bytes", path, p.status, p.header.Get("Content-Type"), len(p.body))
		}
	}
	if p := e.get("/static/"); p.status != http.StatusNotFound {
		t.Errorf("GET /static/: %d, want 404", p.status)
	}
}

func TestPages_AddingAFactorNeedsAFactor(t *testing.T) {
	// A link to an enrolled user's pages does not by itself add an
	// authenticator: a current code or backup code comes first, through
	// the attempt path.
	t.Run("EnrollmentLinkOfAnEnrolledUser", func(t *testing.T) {
		e := newPagesEnv(t, false)
		k, _ := e.enrolled("alice", "Phone")
		p := e.open(e.link("enrollment", "alice"))
		wantPage(t, "enrollment link", p, http.StatusOK, "Confirm it's you", `action="/enroll/prove"`)
		if secretRE.MatchString(p.body) || strings.Contains(p.body, `id="qr"`) {
			t.Fatal("a secret shown before a current code")
		}
		if n := len(e.user("alice").Devices); n != 1 {
			t.Errorf("%d devices after opening the link, want 1: no enrollment begins", n)
		}
		tok := csrf(t, p)
		// Posting a code for an enrollment that never began changes nothing.
		p = e.post("/enroll", url.Values{"csrf": {tok}, "code": {k.TOTP(e.clock.Now())}, "name": {"Mine"}})
		if p.status != http.StatusSeeOther || p.location() != "/enroll" || len(e.user("alice").Devices) != 1 {
			t.Errorf("confirming without an enrollment: %d to %q, %d devices", p.status, p.location(), len(e.user("alice").Devices))
		}
		for i := 1; i <= 5; i++ {
			p = e.post("/enroll/prove", url.Values{"csrf": {tok}, "code": {wrong(k, e.clock.Now())}})
			want := http.StatusUnprocessableEntity
			if i == 5 {
				want = http.StatusTooManyRequests
			}
			if p.status != want {
				t.Fatalf("wrong code %d: %d, want %d", i, p.status, want)
			}
		}
		// The lock is the user's: the API refuses the right code too.
		res, err := e.svc.Verify(context.Background(), twofa.UserRef{Tenant: "acme", User: "alice"}, k.TOTP(e.clock.Now()))
		if !errors.Is(err, twofa.ErrLocked) {
			t.Errorf("verify after 5 wrong codes on the page: %+v, %v; want locked", res, err)
		}
		wantPage(t, "still no secret", e.get("/enroll"), http.StatusOK, "Confirm it's you")
	})

	t.Run("BackupCodeProves", func(t *testing.T) {
		// A user who lost the phone and removed it keeps backup codes: one
		// of them lets the link add a new device; no new codes are shown,
		// since the user still has some.
		e := newPagesEnv(t, false)
		_, codes := e.enrolled("bob", "Lost phone")
		ref := twofa.UserRef{Tenant: "acme", User: "bob"}
		if err := e.svc.RevokeDevice(context.Background(), ref, e.user("bob").ActiveDevices()[0].ID); err != nil {
			t.Fatal(err)
		}
		p := e.open(e.link("enrollment", "bob"))
		wantPage(t, "needs a backup code", p, http.StatusOK, "Confirm it's you")
		tok := csrf(t, p)
		p = e.post("/enroll/prove", url.Values{"csrf": {tok}, "code": {codes[0]}})
		if p.status != http.StatusSeeOther || p.location() != "/enroll" {
			t.Fatalf("backup code: %d to %q; %s", p.status, p.location(), p.body)
		}
		p = e.get("/enroll")
		m := secretRE.FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no secret after a backup code: %s", p.body)
		}
		secret, _ := otp.DecodeSecret(strings.ReplaceAll(m[1], " ", ""))
		k, _ := otp.NewKey(secret, e.svc.Policy().TOTP)
		p = e.post("/enroll", url.Values{"csrf": {tok}, "code": {k.TOTP(e.clock.Now())}, "name": {"New phone"}})
		if p.status != http.StatusSeeOther || strings.Contains(p.body, `id="backup-codes"`) {
			t.Fatalf("confirm: %d %q; want a redirect, no codes page", p.status, p.location())
		}
		if u := e.user("bob"); len(u.ActiveDevices()) != 1 || u.BackupCodes != len(codes)-1 {
			t.Errorf("after: %d devices, %d codes", len(u.ActiveDevices()), u.BackupCodes)
		}
	})

	t.Run("EnrolledMeanwhile", func(t *testing.T) {
		// An enrollment begun before the user had a factor cannot be
		// confirmed once they have one, without a current code.
		e := newPagesEnv(t, false)
		p := e.open(e.link("enrollment", "carol"))
		tok := csrf(t, p)
		m := secretRE.FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no secret on a first enrollment: %s", p.body)
		}
		e.enrolled("carol", "Phone")
		secret, _ := otp.DecodeSecret(strings.ReplaceAll(m[1], " ", ""))
		k, _ := otp.NewKey(secret, e.svc.Policy().TOTP)
		p = e.post("/enroll", url.Values{"csrf": {tok}, "code": {k.TOTP(e.clock.Now())}, "name": {"Attacker"}})
		wantPage(t, "confirm after another enrollment", p, http.StatusForbidden, "Confirm it's you")
		if n := len(e.user("carol").ActiveDevices()); n != 1 {
			t.Errorf("%d active devices, want 1", n)
		}
	})
}
