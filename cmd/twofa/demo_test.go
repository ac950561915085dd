package main

import (
	"bufio"
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa/otp"
)

// demo is a running `twofa demo`, as a newcomer would start it, with what
// it prints.
type demo struct {
	twofaURL, siteURL, password, adminKey string
}

func startDemo(t *testing.T) *demo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"twofa", "demo", "--addr", "127.0.0.1:0", "--demo-addr", "127.0.0.1:0", "--data", t.TempDir()},
			testGetenv(nil), strings.NewReader(""), pw, logs)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo returned %v", err)
		}
	})
	d := &demo{}
	adminRe := regexp.MustCompile(`^admin console on \S+ with key (\S+)$`)
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if u, ok := strings.CutPrefix(line, "twofa listening on "); ok {
			d.twofaURL = u
		}
		if u, ok := strings.CutPrefix(line, "demo site on "); ok {
			d.siteURL = u
		}
		if p, ok := strings.CutPrefix(line, "sign in to the demo site as demo with password "); ok {
			d.password = p
		}
		if m := adminRe.FindStringSubmatch(line); m != nil {
			d.adminKey = m[1]
		}
		if strings.HasPrefix(line, "press Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if d.twofaURL == "" || d.siteURL == "" || d.password == "" || d.adminKey == "" {
		t.Fatalf("demo printed no URLs, password or admin key: %+v\n%s", d, logs)
	}
	return d
}

// browser is a person's browser: cookies kept, each redirect seen.
type browser struct {
	t *testing.T
	c *http.Client
}

type resp struct {
	status int
	loc    string
	header http.Header
	body   string
}

func (b *browser) do(method, u string, form url.Values) resp {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", req.URL.Scheme+"://"+req.URL.Host)
	}
	r, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer r.Body.Close()
	raw, _ := io.ReadAll(r.Body)
	loc := r.Header.Get("Location")
	if loc != "" {
		l, _ := r.Request.URL.Parse(loc)
		loc = l.String()
	}
	return resp{status: r.StatusCode, loc: loc, header: r.Header, body: string(raw)}
}

func (b *browser) get(u string) resp { b.t.Helper(); return b.do("GET", u, nil) }

// post sends a form with the CSRF token of the page it is on.
func (b *browser) post(u string, on resp, form url.Values) resp {
	b.t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(on.body)
	if m == nil {
		b.t.Fatalf("no CSRF token on the page before POST %s:\n%s", u, on.body)
	}
	form.Set("csrf", m[1])
	return b.do("POST", u, form)
}

func want(t *testing.T, what string, r resp, status int, texts ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; location %q; body:\n%s", what, r.status, status, r.loc, r.body)
	}
	body := html.UnescapeString(r.body)
	for _, s := range texts {
		if !strings.Contains(body, s) {
			t.Fatalf("%s: page lacks %q:\n%s", what, s, body)
		}
	}
}

func wantRedirect(t *testing.T, what string, r resp, prefix string) string {
	t.Helper()
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.loc, prefix) {
		t.Fatalf("%s: %d to %q, want 303 to %s…; body:\n%s", what, r.status, r.loc, prefix, r.body)
	}
	return r.loc
}

func TestDemo(t *testing.T) {
	d := startDemo(t)
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}

	home := b.get(d.siteURL + "/")
	want(t, "sign-in page", home, http.StatusOK, `<label for="username">`, `<label for="password">`, `autocomplete="current-password"`)
	for h, v := range map[string]string{"Cache-Control": "no-store", "X-Frame-Options": "DENY"} {
		if got := home.header.Get(h); got != v {
			t.Errorf("demo header %s = %q, want %q", h, got, v)
		}
	}
	if csp := home.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self' "+d.twofaURL) {
		t.Errorf("demo CSP = %q", csp)
	}
	if b.do("POST", d.siteURL+"/signin", url.Values{"username": {"demo"}, "password": {d.password}}).status != http.StatusForbidden {
		t.Error("sign-in without a CSRF token was not refused")
	}
	home = b.get(d.siteURL + "/")
	want(t, "wrong password", b.post(d.siteURL+"/signin", home, url.Values{"username": {"demo"}, "password": {"wrong"}}),
		http.StatusUnauthorized, "don't match")

	// First sign-in: a password only, then set up two-factor authentication.
	home = b.get(d.siteURL + "/")
	wantRedirect(t, "sign-in", b.post(d.siteURL+"/signin", home, url.Values{"username": {"demo"}, "password": {d.password}}), d.siteURL+"/")
	home = b.get(d.siteURL + "/")
	want(t, "signed in", home, http.StatusOK, "with your password only", "Set up two-factor authentication")
	link := wantRedirect(t, "set up", b.post(d.siteURL+"/setup", home, url.Values{}), d.twofaURL+"/l/tfl_")
	enroll := b.get(wantRedirect(t, "open link", b.get(link), d.twofaURL+"/enroll"))
	m := regexp.MustCompile(`href="(otpauth://[^"]+)"`).FindStringSubmatch(enroll.body)
	if m == nil {
		t.Fatalf("no otpauth link on the enroll page:\n%s", enroll.body)
	}
	uri, err := otp.ParseURI(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	key, err := otp.NewKey(uri.Secret, uri.Params)
	if err != nil {
		t.Fatal(err)
	}
	first := key.TOTP(time.Now())
	codes := b.post(d.twofaURL+"/enroll", enroll, url.Values{"name": {"Test phone"}, "code": {first}})
	want(t, "confirm", codes, http.StatusOK, "backup code")
	b.get(wantRedirect(t, "saved", b.post(d.twofaURL+"/enroll/saved", codes, url.Values{}), d.twofaURL+"/enroll"))

	home = b.get(d.siteURL + "/")
	want(t, "after enrollment", home, http.StatusOK, "Two-factor authentication is on")
	out := wantRedirect(t, "sign out", b.post(d.siteURL+"/signout", home, url.Values{}), d.siteURL+"/")

	// Second sign-in: the password, then the prompt.
	home = b.get(out)
	want(t, "signed out", home, http.StatusOK, "You signed out.", `<label for="password">`)
	toPrompt := wantRedirect(t, "sign-in with 2FA", b.post(d.siteURL+"/signin", home, url.Values{"username": {"demo"}, "password": {d.password}}),
		d.twofaURL+"/prompt?")
	if got := b.get(d.siteURL + "/"); strings.Contains(got.body, "You are signed in") {
		t.Fatal("signed in before the second factor")
	}
	promptPage := b.get(toPrompt)
	want(t, "prompt", promptPage, http.StatusOK, "Code from your authenticator app")
	code := key.TOTP(time.Now())
	if code == first {
		code = key.TOTP(time.Now().Add(30 * time.Second)) // each code works once
	}
	back := wantRedirect(t, "code", b.post(d.twofaURL+"/prompt", promptPage, url.Values{"code": {code}}), d.siteURL+"/2fa?twofa_result=")
	wantRedirect(t, "return", b.get(back), d.siteURL+"/")
	want(t, "signed in with 2FA", b.get(d.siteURL+"/"), http.StatusOK, "with your password and a code from your authenticator app")

	// The result is good once.
	want(t, "result again", b.get(back), http.StatusBadRequest, "Please sign in again")
}

func TestDemo_Flags(t *testing.T) {
	if _, _, status := runCLI(t, "", "demo", "extra"); status != 2 {
		t.Errorf("twofa demo extra: status %d, want 2", status)
	}
}
