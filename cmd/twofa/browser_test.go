package main

// Tests in a real browser: Debian's headless Chromium, driven by chromedp,
// against the real program started through run. A person's paths through
// the hosted pages, the demo site and the admin console: what the
// net/http tests (demo_test.go, web/) cannot see, such as the QR code as
// drawn, the page's script and styles under its CSP, and the redirects
// between two origins as a browser follows them.
//
// With TWOFA_SCREENSHOTS=DIR (make screenshots), each test also saves a
// full-page PNG of the pages it sees into DIR, a relative DIR being taken
// from the root of the module.

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/mailpit"
	"github.com/twofa/twofa/internal/testenv"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/prompt"
)

// browserTimeout bounds each browser test, Chromium's start included. It
// guards against a hang, not a slow machine: the three tests run at once,
// and on two busy CPUs the demo's alone took 38 s.
const browserTimeout = 3 * time.Minute

// The viewport of the tests and screenshots: a phone's, as the pages are
// one column at most 36rem wide and are mostly opened on phones.
const (
	viewWidth, viewHeight = 390, 844
	viewScale             = 2 // a phone's pixel ratio, so screenshots are sharp in the README
)

// chrome is one headless Chromium with one tab, for one test.
type chrome struct {
	t     *testing.T
	ctx   context.Context
	shots string // where to save screenshots; empty: nowhere

	mu       sync.Mutex
	problems []string // exceptions and console errors of the pages
}

func newChrome(t *testing.T) *chrome {
	t.Helper()
	path := testenv.LookPath(t, "chromium")
	profile := t.TempDir() // made before the cleanup below, so removed after Chromium ends
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(viewWidth, viewHeight),
	)
	ctx, cancelTimeout := context.WithTimeout(context.Background(), browserTimeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	c := &chrome{t: t, ctx: bctx, shots: screenshotDir()}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.problems {
			t.Errorf("the browser reported: %s", p)
		}
	})
	c.do("start Chromium", chromedp.EmulateViewport(viewWidth, viewHeight, chromedp.EmulateScale(viewScale), chromedp.EmulateMobile))
	// Exceptions and console errors, such as CSP violations, are not
	// expected; failed loads are (status pages, and there is no favicon).
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError && m.Source != "network" {
				c.mu.Lock()
				c.problems = append(c.problems, fmt.Sprintf("%s (%s)", m, m.URL))
				c.mu.Unlock()
			}
		}
	}()
	return c
}

// screenshotDir is $TWOFA_SCREENSHOTS, relative to the module's root.
func screenshotDir() string {
	dir := os.Getenv("TWOFA_SCREENSHOTS")
	if dir != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join("..", "..", dir) // tests run in cmd/twofa
	}
	return dir
}

// fail ends the test, saying where the browser is and what it shows.
func (c *chrome) fail(what string, err error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	c.t.Fatalf("%s: %v\nat %s, showing:\n%s", what, err, loc, body)
}

// do runs actions that load no page.
func (c *chrome) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, actions...); err != nil {
		c.fail(what, err)
	}
}

// open goes to a URL and checks the status of the page it ends on.
func (c *chrome) open(what, u string, status int64) {
	c.t.Helper()
	resp, err := chromedp.Run(c.ctx, chromedp.NavigateResponse(u))
	c.check(what, resp.Status, status, err)
}

// submit runs actions that load a page, such as a click on a form's
// button, and checks the status of the page it ends on, after redirects.
func (c *chrome) submit(what string, status int64, actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	resp, err := chromedp.RunResponse(c.ctx, actions...)
	var got int64
	if resp != nil {
		got = resp.Status
	}
	c.check(what, got, status, err)
}

func (c *chrome) check(what string, got, want int64, err error) {
	c.t.Helper()
	if err == nil && got != want {
		err = fmt.Errorf("status %d, want %d", got, want)
	}
	if err != nil {
		c.fail(what, err)
	}
}

// location is the address of the page.
func (c *chrome) location() string {
	c.t.Helper()
	loc, err := chromedp.Run(c.ctx, chromedp.Location())
	if err != nil {
		c.fail("location", err)
	}
	return loc
}

// text is the visible text of the first element the CSS selector finds.
func (c *chrome) text(sel string) string {
	c.t.Helper()
	s, err := chromedp.Run(c.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		c.fail("reading "+sel, err)
	}
	return s
}

// has reports whether the CSS selector finds an element on the page.
func (c *chrome) has(sel string) bool {
	c.t.Helper()
	n, err := chromedp.Run(c.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, sel)))
	if err != nil {
		c.fail("looking for "+sel, err)
	}
	return n
}

// want checks that the element's text has each of the texts.
func (c *chrome) want(what, sel string, texts ...string) {
	c.t.Helper()
	got := c.text(sel)
	for _, s := range texts {
		if !strings.Contains(got, s) {
			c.fail(what, fmt.Errorf("%s lacks %q: %q", sel, s, got))
		}
	}
}

// typeIn types into the field with the label, as a person would: the
// label must name the field (for=id).
func (c *chrome) typeIn(label, text string) {
	c.t.Helper()
	id, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`(Array.from(document.querySelectorAll("label")).find(l => l.textContent.trim().startsWith(%q)) || {}).htmlFor || ""`, label)))
	if err != nil || id == "" {
		c.fail("finding the field labelled "+label, fmt.Errorf("no label for a field: %v", err))
	}
	c.do("typing into "+label, chromedp.Clear(chromedp.ID(id)), chromedp.SendKeys(chromedp.ID(id), text))
}

// shot saves a full-page screenshot as NAME.png, if asked to.
func (c *chrome) shot(name string) {
	c.t.Helper()
	if c.shots == "" {
		return
	}
	// Take the focus off the fields, so no caret or focus ring shows.
	c.do("blur", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`, chromedp.EvalIgnoreExceptions))
	png, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.fail("screenshot "+name, err)
	}
	if err := os.MkdirAll(c.shots, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.shots, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// authenticator is a person's authenticator app for one device: like the
// service, it never uses a time step twice or one before the last.
type authenticator struct {
	key  *otp.Key
	last uint64
}

func (a *authenticator) code(t *testing.T) string {
	t.Helper()
	now := a.key.Params().Step(time.Now())
	step := max(now, a.last+1)
	if step > now+1 {
		t.Fatal("the authenticator has used the codes of this step and the next")
	}
	a.last = step
	return a.key.HOTP(step)
}

// wrong returns n different codes that are wrong now and for a while.
func (a *authenticator) wrong(n int) []string {
	var codes []string
	for i := 1; len(codes) < n; i++ {
		c := fmt.Sprintf("%06d", i*104729%1000000)
		if m, _ := a.key.Verify(c, time.Now(), otp.Window{Behind: 5, Ahead: 5}); !m.Valid {
			codes = append(codes, c)
		}
	}
	return codes
}

// zbarimg decodes the QR code of a PNG as a phone's camera would.
func zbarimg(t *testing.T, png []byte) string {
	t.Helper()
	bin := testenv.LookPath(t, "zbarimg")
	f := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(f, png, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.Command(bin, "--quiet", "--raw", f)
	cmd.Stderr = &stderr // also its complaints about a missing D-Bus
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zbarimg: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// enroll goes through the enrollment pages, from the page with the QR
// code to the done page: it scans the QR code off the screen, checks it
// against the setup key shown, names the device and types its code, and
// says the backup codes are saved. It returns the app and the codes.
func (c *chrome) enroll(device string) (*authenticator, []string) {
	t := c.t
	t.Helper()
	if !strings.Contains(c.location(), "/enroll") {
		c.fail("enrollment", fmt.Errorf("not on the enrollment page"))
	}
	c.want("enrollment page", "h1", "Add your authenticator app")
	png, err := chromedp.Run(c.ctx, chromedp.Screenshot(chromedp.ID("qr")))
	if err != nil {
		c.fail("screenshot of the QR code", err)
	}
	scanned := zbarimg(t, png)
	uri, err := otp.ParseURI(scanned)
	if err != nil {
		t.Fatalf("the QR code holds %q: %v", scanned, err)
	}
	if uri.Type != otp.TypeTOTP || !strings.HasPrefix(scanned, "otpauth://totp/") {
		t.Errorf("the QR code holds %q, want an otpauth://totp/ URI", scanned)
	}
	link, err := chromedp.Run(c.ctx, chromedp.AttributeValue(chromedp.ID("open-app"), "href"))
	if err != nil || link.Value != scanned {
		t.Errorf("the QR code holds %q, but the page's link to the app is %q (%v)", scanned, link.Value, err)
	}
	shown := c.text("#secret")
	if !regexp.MustCompile(`^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$`).MatchString(shown) {
		t.Errorf("setup key shown as %q, want groups of four", shown)
	}
	if typed, _ := otp.DecodeSecret(strings.ReplaceAll(shown, " ", "")); otp.EncodeSecret(typed) != otp.EncodeSecret(uri.Secret) {
		t.Errorf("the setup key shown, %q, is not the QR code's secret", shown)
	}
	c.shot("enroll")
	key, err := otp.NewKey(uri.Secret, uri.Params)
	if err != nil {
		t.Fatal(err)
	}
	app := &authenticator{key: key}

	c.typeIn("Device name", device)
	c.typeIn("Code from your app", app.code(t))
	c.submit("confirm the code", 200, chromedp.Click(chromedp.ID("confirm")))
	c.want("backup codes page", "h1", "Save your backup codes")
	codes := strings.Fields(c.text("#backup-codes"))
	if len(codes) != twofa.DefaultPolicy().BackupCodes {
		t.Fatalf("%d backup codes shown, want %d: %q", len(codes), twofa.DefaultPolicy().BackupCodes, codes)
	}
	for _, b := range []string{"#download-codes", "#print-codes"} {
		if hidden, err := chromedp.Run(c.ctx, chromedp.Evaluate[bool](`document.querySelector("`+b+`").hidden`)); err != nil || hidden {
			t.Errorf("%s stays hidden: the page's script did not run (%v)", b, err)
		}
	}
	c.shot("backup-codes")
	c.submit("I have saved them", 200, chromedp.Click(chromedp.ID("saved")))
	c.want("done page", "#done", "Your device is set up")
	c.shot("done")
	return app, codes
}

// userStatus is GET /v1/users/{id}.
func userStatus(t *testing.T, app *client, user string) (active []map[string]any, backupCodes float64) {
	t.Helper()
	r := app.do("GET", "/v1/users/"+user, nil)
	if r.status != 200 {
		t.Fatalf("GET user: %d %s", r.status, r.raw)
	}
	devs, _ := r.body["devices"].([]any)
	for _, d := range devs {
		if d, _ := d.(map[string]any); d["status"] == "active" {
			active = append(active, d)
		}
	}
	n, _ := r.body["backup_codes_remaining"].(float64)
	return active, n
}

// TestBrowser_Enroll: an application hands its user an enrollment link,
// which the user opens and follows to the end.
func TestBrowser_Enroll(t *testing.T) {
	t.Parallel()
	c := newChrome(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	app := &client{t: t, base: srv.url, key: createKey(t, dir, "acme", false)}

	r := app.do("POST", "/v1/users/alice/enrollment-links", map[string]any{})
	link := r.str("url")
	if r.status != 201 || !strings.HasPrefix(link, srv.url+"/l/") {
		t.Fatalf("enrollment link: %d %s", r.status, r.raw)
	}
	c.open("open the link", link, 200)
	if loc := c.location(); loc != srv.url+"/enroll" {
		t.Errorf("the link left the browser at %s, want %s/enroll (the token out of the address bar)", loc, srv.url)
	}
	c.enroll("Alice's phone")

	active, codes := userStatus(t, app, "alice")
	if len(active) != 1 || active[0]["name"] != "Alice's phone" || codes != 10 {
		t.Errorf("after enrollment: active devices %v, %v backup codes; want Alice's phone and 10", active, codes)
	}
	// The link worked once.
	c.open("open the link again", link, 404)
	c.want("used link", "h1", "This link doesn't work")
}

// TestBrowser_Manage: a user opens a manage link, sees their devices and
// removes one, confirming with a code from the other.
func TestBrowser_Manage(t *testing.T) {
	t.Parallel()
	c := newChrome(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	app := &client{t: t, base: srv.url, key: createKey(t, dir, "acme", false)}

	// Two devices, enrolled through the API.
	ids := map[string]string{}
	apps := map[string]*authenticator{}
	for _, name := range []string{"Work phone", "Tablet"} {
		r := app.do("POST", "/v1/users/bob/totp", map[string]any{"name": name})
		if r.status != 201 {
			t.Fatalf("enroll %s: %d %s", name, r.status, r.raw)
		}
		secret, _ := otp.DecodeSecret(r.str("secret"))
		key, _ := otp.NewKey(secret, otp.Params{})
		ids[name], apps[name] = r.str("device_id"), &authenticator{key: key}
		if r = app.do("POST", "/v1/users/bob/totp/"+ids[name]+"/confirm", map[string]string{"code": apps[name].code(t)}); r.body["valid"] != true {
			t.Fatalf("confirm %s: %d %s", name, r.status, r.raw)
		}
	}
	r := app.do("POST", "/v1/users/bob/manage-links", map[string]any{})
	if r.status != 201 {
		t.Fatalf("manage link: %d %s", r.status, r.raw)
	}
	c.open("open the manage link", r.str("url"), 200)
	c.want("manage page", "#devices", "Work phone", "Tablet")
	c.want("manage page", "#backup-count", "You have 10 unused backup codes")
	c.shot("manage")

	tablet := ids["Tablet"]
	c.submit("remove the tablet", 200, chromedp.Click(chromedp.ID("remove-"+tablet)))
	c.want("confirm page", "h1", "Remove Tablet?")
	c.shot("manage-remove")
	// A wrong code first: nothing is removed.
	c.typeIn("Code from your authenticator app", apps["Work phone"].wrong(1)[0])
	c.submit("wrong code", 422, chromedp.Click(chromedp.ID("submit-code")))
	c.want("wrong code", "#error", "That code didn't work")
	c.typeIn("Code from your authenticator app", apps["Work phone"].code(t))
	c.submit("right code", 200, chromedp.Click(chromedp.ID("submit-code")))
	c.want("after removal", "#notice", "Device removed.")
	if c.has("#device-" + tablet) {
		t.Error("the manage page still lists the tablet")
	}
	c.want("after removal", "#devices", "Work phone")

	active, _ := userStatus(t, app, "bob")
	if len(active) != 1 || active[0]["id"] != ids["Work phone"] {
		t.Errorf("after removal, active devices %v; want the work phone only", active)
	}
}

// TestBrowser_Demo: `twofa demo` as a newcomer tries it. Sign in with the
// password, set up 2FA, sign in with a code, then with a backup code, then
// type wrong codes until locked out; an administrator unlocks the user in
// the console, and the user signs in again.
func TestBrowser_Demo(t *testing.T) {
	t.Parallel()
	c := newChrome(t)
	d := startDemo(t)

	signIn := func(what string) {
		t.Helper()
		c.open(what+": sign-in page", d.siteURL+"/", 200)
		c.typeIn("User name", "demo")
		c.typeIn("Password", d.password)
		c.submit(what+": sign in", 200, chromedp.Click(chromedp.ID("sign-in")))
	}
	toPrompt := func(what string) {
		t.Helper()
		signIn(what)
		if !strings.HasPrefix(c.location(), d.twofaURL+"/prompt?") {
			c.fail(what, fmt.Errorf("not sent to twofa's prompt"))
		}
		c.want(what, "h1", "Confirm it's you")
	}
	signedIn := func(what string) {
		t.Helper()
		if loc := c.location(); loc != d.siteURL+"/" {
			c.fail(what, fmt.Errorf("ended at %s, want the demo's home", loc))
		}
		c.want(what, "#welcome", "You are signed in as demo with your password and a code from your authenticator app")
	}
	signOut := func() {
		t.Helper()
		c.submit("sign out", 200, chromedp.Click(chromedp.ID("sign-out")))
		c.want("signed out", "main", "You signed out.")
	}

	// A password only, then set up 2FA.
	c.open("demo", d.siteURL+"/", 200)
	c.shot("demo-signin")
	signIn("first sign-in")
	c.want("first sign-in", "#welcome", "with your password only")
	c.submit("set up 2FA", 200, chromedp.Click(chromedp.ID("setup")))
	app, backup := c.enroll("Demo phone")
	c.open("back to the demo", d.siteURL+"/", 200)
	c.want("back to the demo", "#twofa-on", "Two-factor authentication is on")
	signOut()

	// A code from the app.
	toPrompt("sign-in with a code")
	c.shot("prompt")
	c.typeIn("Code from your authenticator app", app.code(t))
	c.submit("type the code", 200, chromedp.Click(chromedp.ID("submit-code")))
	signedIn("sign-in with a code")
	c.shot("demo-home")
	signOut()

	// A backup code.
	toPrompt("sign-in with a backup code")
	c.do("use a backup code", chromedp.Click(chromedp.CSS("#use-backup summary")), chromedp.WaitVisible(chromedp.ID("backup-code")))
	c.typeIn("Backup code", backup[0])
	c.shot("prompt-backup")
	c.submit("type the backup code", 200, chromedp.Click(chromedp.ID("submit-backup")))
	signedIn("sign-in with a backup code")
	signOut()

	// Wrong codes until locked out.
	toPrompt("wrong codes")
	lockAfter := twofa.DefaultPolicy().LockAfter
	for i, code := range app.wrong(lockAfter) {
		c.typeIn("Code from your authenticator app", code)
		if i < lockAfter-1 {
			c.submit(fmt.Sprintf("wrong code %d", i+1), 422, chromedp.Click(chromedp.ID("submit-code")))
			c.want("wrong code", "#error", "That code didn't work")
			if i == 0 {
				c.shot("prompt-error")
			}
			continue
		}
		c.submit(fmt.Sprintf("wrong code %d", i+1), 429, chromedp.Click(chromedp.ID("submit-code")))
		c.want("locked out", "#error", "After too many wrong codes, you need to wait until")
		c.shot("lockout")
	}
	// Locked: even the next backup code is refused.
	c.do("use a backup code", chromedp.Click(chromedp.CSS("#use-backup summary")), chromedp.WaitVisible(chromedp.ID("backup-code")))
	c.typeIn("Backup code", backup[1])
	c.submit("backup code while locked", 429, chromedp.Click(chromedp.ID("submit-backup")))
	c.want("backup code while locked", "#error", "you need to wait until")

	// The administrator unlocks the user in the console.
	c.open("admin console", d.twofaURL+"/admin", 200)
	c.want("admin sign-in", "h1", "Sign in to the admin console")
	c.shot("admin-login")
	c.typeIn("Admin API key", d.adminKey)
	c.submit("admin sign-in", 200, chromedp.Click(chromedp.ID("sign-in")))
	c.want("users", "h1", "Users")
	c.want("users", "#users", "demo", "locked")
	c.shot("admin-users")
	c.submit("open the user", 200, chromedp.Click(chromedp.CSS(`#users a`)))
	c.want("user", "h1", "User demo")
	c.want("user", "#locked", "Locked after too many wrong codes")
	c.want("user", "#status", "Failed attempts in a row: 5")
	c.shot("admin-user")
	c.submit("unlock", 200, chromedp.Click(chromedp.ID("unlock")))
	c.want("unlocked", "#notice", "The user is unlocked")
	if c.has("#locked") {
		t.Error("the user page still says the user is locked")
	}
	c.want("unlocked", "#status", "Failed attempts in a row: 0")
	c.submit("audit log", 200, chromedp.Click(chromedp.CSS(`#admin-nav a[href="/admin/audit"]`)))
	c.want("audit log", "#events", string(twofa.EventLocked), string(twofa.EventUnlocked))
	// The events from the first wrong code on, with the filter form.
	first, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](`(Array.from(document.querySelectorAll("#events li")).
		find(li => li.querySelector(".device-name").textContent === "`+string(twofa.EventVerifyFailed)+`") || {}).id || ""`))
	seq, ok := strings.CutPrefix(first, "event-")
	n, nerr := strconv.Atoi(seq)
	if err != nil || !ok || nerr != nil {
		c.fail("finding the first failure in the audit log", fmt.Errorf("%q %v", first, err))
	}
	c.typeIn("After", strconv.Itoa(n-1))
	c.submit("filter the audit log", 200, chromedp.Click(chromedp.ID("filter")))
	c.want("filtered audit log", "#events", string(twofa.EventVerifyFailed), string(twofa.EventLocked), string(twofa.EventUnlocked))
	if got := c.text("#events"); strings.Contains(got, string(twofa.EventEnrollConfirmed)) {
		t.Errorf("the audit log after entry %d shows earlier events:\n%s", n-1, got)
	}
	c.shot("admin-audit")
	c.submit("chart", 200, chromedp.Click(chromedp.CSS(`#admin-nav a[href="/admin/chart"]`)))
	if !c.has("#chart rect.bar") {
		t.Error("the chart has no bars")
	}
	c.shot("admin-chart")
	c.submit("master keys", 200, chromedp.Click(chromedp.CSS(`#admin-nav a[href="/admin/keys"]`)))
	c.want("master keys", "#active-key", "Secrets are sealed under master key")
	c.shot("admin-keys")
	c.submit("admin sign-out", 200, chromedp.Click(chromedp.ID("sign-out")))

	// The user signs in again.
	toPrompt("after unlock")
	c.do("use a backup code", chromedp.Click(chromedp.CSS("#use-backup summary")), chromedp.WaitVisible(chromedp.ID("backup-code")))
	c.typeIn("Backup code", backup[1])
	c.submit("backup code after unlock", 200, chromedp.Click(chromedp.ID("submit-backup")))
	signedIn("after unlock")
}

// mailedCode waits for the n-th message that Mailpit got matching query,
// and returns the 8-digit code in its text, as a person reads it.
func mailedCode(t *testing.T, mp *mailpit.Server, query string, n int) string {
	t.Helper()
	got := mp.WaitFor(t, query, n, time.Minute)
	m := mp.Message(t, got[0].ID) // newest first
	code := regexp.MustCompile(`(?m)^\s+(\d{8})\s*$`).FindStringSubmatch(m.Text)
	if code == nil {
		t.Fatalf("no 8-digit code in the email %q:\n%s", m.Subject, m.Text)
	}
	return code[1]
}

// countdown checks the resend button: disabled, counting down, by the
// page's script.
func (c *chrome) countdown(what string) {
	c.t.Helper()
	type state struct {
		Disabled bool   `json:"disabled"`
		Text     string `json:"text"`
	}
	s, err := chromedp.Run(c.ctx, chromedp.Evaluate[state](`(b => ({disabled: b.disabled, text: b.textContent}))(document.getElementById("resend"))`))
	if err != nil {
		c.fail(what, err)
	}
	if !s.Disabled || !regexp.MustCompile(`^Send another code \(in \d+ s\)$`).MatchString(s.Text) {
		c.fail(what, fmt.Errorf("the resend button is %+v, want disabled and counting down", s))
	}
}

// TestBrowser_Email: with twofa sending its mail to Mailpit, a user adds
// an email address from a manage link, reading the code from the mail;
// then signs in to an application through the hosted prompt with a code
// by email, asking for a second one once the countdown lets them.
func TestBrowser_Email(t *testing.T) {
	t.Parallel()
	mp := mailpit.Start(t, mailpit.Options{})
	c := newChrome(t)
	dir := t.TempDir()
	srv := startServer(t, dir, "--smtp-url", "smtp://"+mp.SMTPAddr()+"?tls=none", "--mail-from", "ACME Security <security@acme.example>")
	app := &client{t: t, base: srv.url, key: createKey(t, dir, "acme", false)}
	const address = "erin@example.test"

	// An authenticator app, enrolled through the API.
	r := app.do("POST", "/v1/users/erin/totp", map[string]any{"name": "Phone"})
	if r.status != 201 {
		t.Fatalf("enroll: %d %s", r.status, r.raw)
	}
	secret, _ := otp.DecodeSecret(r.str("secret"))
	key, _ := otp.NewKey(secret, otp.Params{})
	phone := &authenticator{key: key}
	if r = app.do("POST", "/v1/users/erin/totp/"+r.str("device_id")+"/confirm", map[string]string{"code": phone.code(t)}); r.body["valid"] != true {
		t.Fatalf("confirm: %d %s", r.status, r.raw)
	}

	// (a) A manage link: add the address, with the code from the mail.
	r = app.do("POST", "/v1/users/erin/manage-links", map[string]any{})
	if r.status != 201 {
		t.Fatalf("manage link: %d %s", r.status, r.raw)
	}
	c.open("open the manage link", r.str("url"), 200)
	c.submit("add an email address", 200, chromedp.Click(chromedp.ID("add-email")))
	c.want("proof first", "h1", "Confirm it's you")
	c.typeIn("Code from your authenticator app", phone.code(t))
	c.submit("prove", 200, chromedp.Click(chromedp.ID("submit-code")))
	c.want("address form", "h1", "Add an email address")
	c.shot("email-add")
	c.typeIn("Email address", address)
	c.submit("send a code", 200, chromedp.Click(chromedp.ID("send-code")))
	c.want("code form", "#sent", "We sent an email with an 8-digit code to "+address)
	c.countdown("code form")
	c.shot("email-code")
	code := mailedCode(t, mp, `to:`+address+` subject:"Confirm your email address"`, 1)
	c.typeIn("Email verification code", code)
	c.submit("confirm the address", 200, chromedp.Click(chromedp.ID("submit-email-code")))
	c.want("address added", "#notice", "Your email address is confirmed")
	c.want("address added", "#devices", "Phone", "Codes by email to "+address)
	c.shot("manage-email")
	active, _ := userStatus(t, app, "erin")
	if len(active) != 2 || active[1]["type"] != "email" || active[1]["address"] != address {
		t.Errorf("after adding the address, active devices %v; want the phone and %s", active, address)
	}

	// (b) An application's sign-in through the prompt, by email.
	out, errOut, status := runCLI(t, "", "tenant", "prompt-key", "--data", dir, "--tenant", "acme")
	promptKey, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if status != 0 || err != nil {
		t.Fatalf("tenant prompt-key: %d %v %s", status, err, errOut)
	}
	var nonce string // the sign-in under way; set before the browser goes to the prompt
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := prompt.ParseResult(promptKey, r.URL.Query().Get("twofa_result"), "acme", nonce, time.Now())
		if err != nil {
			http.Error(w, "not signed in: "+err.Error(), http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>ACME</title><p id="signed-in">Signed in as %s with %s</p>`, html.EscapeString(res.User), html.EscapeString(res.Factor))
	}))
	t.Cleanup(site.Close)
	returnURL := site.URL + "/2fa"
	if _, errOut, status := runCLI(t, "", "tenant", "return-urls", "--data", dir, "--tenant", "acme", returnURL); status != 0 {
		t.Fatalf("tenant return-urls: %d %s", status, errOut)
	}
	nonce = prompt.NewNonce()
	tok, err := prompt.SignRequest(promptKey, prompt.Request{Tenant: "acme", User: "erin", ReturnURL: returnURL, Nonce: nonce,
		ExpiresAt: time.Now().Add(5 * time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	c.open("the prompt", srv.url+"/prompt?tenant=acme&request="+url.QueryEscape(tok), 200)
	c.want("the prompt", "#email-me", "Email me a code")
	c.shot("prompt-email-offer")
	c.submit("email me a code", 200, chromedp.Click(chromedp.ID("email-me")))
	c.want("code sent", "#sent", "We sent an email with an 8-digit code to e***@example.test")
	c.countdown("prompt code form")
	c.shot("prompt-email")
	first := mailedCode(t, mp, `to:`+address+` subject:"sign-in code"`, 1)
	wrong := fmt.Sprintf("%08d", (atoi(t, first)+1)%100000000)
	c.typeIn("Email verification code", wrong)
	c.submit("a wrong code", 422, chromedp.Click(chromedp.ID("submit-email-code")))
	c.want("a wrong code", "#error", "That code didn't work")
	// Once the countdown ends, another code; the newer one signs in.
	c.do("wait for the countdown", chromedp.WaitEnabled(chromedp.ID("resend")))
	c.submit("send another code", 200, chromedp.Click(chromedp.ID("resend")))
	c.want("another code", "#notice", "We sent another code")
	second := mailedCode(t, mp, `to:`+address+` subject:"sign-in code"`, 2)
	if second == first {
		t.Errorf("the second email has the first code")
	}
	c.typeIn("Email verification code", second)
	c.submit("the right code", 200, chromedp.Click(chromedp.ID("submit-email-code")))
	if loc := c.location(); !strings.HasPrefix(loc, returnURL+"?twofa_result=") {
		c.fail("the right code", fmt.Errorf("ended at %s, want %s with a result", loc, returnURL))
	}
	c.want("back at the application", "#signed-in", "Signed in as erin with email")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
