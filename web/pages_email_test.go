package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/prompt"
	"github.com/twofa/twofa/web"
)

// code is the newest code sent to the user's address, as they would read
// it in their mail.
func (e *pagesEnv) code(user, address string) string {
	e.t.Helper()
	return twofatest.LastCode(e.t, e.store, e.keys, twofa.UserRef{Tenant: "acme", User: user}, address)
}

// sent counts the codes sent to the user's address.
func (e *pagesEnv) sent(user, address string) int {
	e.t.Helper()
	return twofatest.Codes(e.t, e.store, e.keys, twofa.UserRef{Tenant: "acme", User: user}, address)
}

// wrongEmailCode is a well-formed code that none of codes is.
func wrongEmailCode(codes ...string) string {
	for n := 12345678; ; n += 1111111 {
		c := fmt.Sprintf("%08d", n%100000000)
		ok := true
		for _, x := range codes {
			ok = ok && x != c
		}
		if ok {
			return c
		}
	}
}

// withEmail gives the user a confirmed email address through the Service.
func (e *pagesEnv) withEmail(user, address string) string {
	e.t.Helper()
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: user}
	en, err := e.svc.BeginEmailEnrollment(ctx, ref, address, "")
	if err != nil {
		e.t.Fatalf("BeginEmailEnrollment: %v", err)
	}
	res, err := e.svc.ConfirmEmail(ctx, ref, en.Device.ID, en.Challenge.ID, e.code(user, address))
	if err != nil || !res.Valid {
		e.t.Fatalf("ConfirmEmail: %+v, %v", res, err)
	}
	return en.Device.ID
}

var (
	resendInRE    = regexp.MustCompile(`data-resend-in="(\d+)"`)
	scriptTagRE   = regexp.MustCompile(`(?i)<script[^>]*>`)
	inlineEventRE = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
)

// resendIn is the seconds the page's countdown waits.
func resendIn(t *testing.T, p page) int {
	t.Helper()
	m := resendInRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no data-resend-in on the page: %s", p.body)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// wantSafe checks what every page keeps: its CSP (csp, or the pages'
// own when empty), no inline script or event handler for that CSP to
// refuse, and none of the codes on the page.
func wantSafe(t *testing.T, what string, p page, csp string, codes ...string) {
	t.Helper()
	if csp == "" {
		csp = wantCSP
	}
	if got := p.header.Get("Content-Security-Policy"); got != csp {
		t.Errorf("%s: CSP %q, want %q", what, got, csp)
	}
	if got := p.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", what, got)
	}
	for _, tag := range scriptTagRE.FindAllString(p.body, -1) {
		if !strings.Contains(tag, ` src="/static/`) {
			t.Errorf("%s: an inline script: %s", what, tag)
		}
	}
	if m := inlineEventRE.FindString(p.body); m != "" {
		t.Errorf("%s: an inline event handler %q", what, m)
	}
	for _, c := range codes {
		if c != "" && strings.Contains(p.body, c) {
			t.Errorf("%s: the page shows the code %s", what, c)
		}
	}
}

// emailDevices returns the user's email devices.
func (e *pagesEnv) emailDevices(user string) []*twofa.Device {
	e.t.Helper()
	var ds []*twofa.Device
	for _, d := range e.user(user).Devices {
		if d.Kind == twofa.KindEmail {
			ds = append(ds, d)
		}
	}
	return ds
}

// TestPages_EmailManage: from a manage link, a user proves a current
// factor, adds an email address with the code sent to it, and removes
// it again.
func TestPages_EmailManage(t *testing.T) {
	e := newPagesEnv(t, false)
	k, _ := e.enrolled("alice", "Phone")
	const address = "Alice@example.com"
	p := e.open(e.link("manage", "alice"))
	wantPage(t, "manage", p, http.StatusOK, `<a id="add-email" href="/enroll/email">`)
	tok := csrf(t, p)

	t.Run("ProofFirst", func(t *testing.T) {
		p := e.get("/enroll/email")
		wantPage(t, "add email asks for a code", p, http.StatusOK, "Confirm it's you", `action="/enroll/email/prove"`, `id="backup-code"`)
		wantSafe(t, "proof page", p, "")
		if strings.Contains(p.body, `id="address"`) {
			t.Errorf("the address form before a current code")
		}
		p = e.post("/enroll/email", url.Values{"csrf": {tok}, "address": {address}})
		wantPage(t, "address before a code", p, http.StatusForbidden, "Confirm it's you")
		if ds := e.emailDevices("alice"); len(ds) != 0 {
			t.Fatalf("an address was added before a current code: %+v", ds)
		}
		p = e.post("/enroll/email/prove", url.Values{"csrf": {tok}, "code": {wrong(k, e.clock.Now())}})
		wantPage(t, "wrong code", p, http.StatusUnprocessableEntity, "That code didn't work", `action="/enroll/email/prove"`)
		if u := e.user("alice"); u.Failures != 1 {
			t.Errorf("after a wrong code: %d failures, want 1", u.Failures)
		}
		p = e.post("/enroll/email/prove", url.Values{"csrf": {tok}, "code": {k.TOTP(e.clock.Now())}})
		if p.status != http.StatusSeeOther || p.location() != "/enroll/email" {
			t.Fatalf("right code: %d to %q, want 303 to /enroll/email; %s", p.status, p.location(), p.body)
		}
		p = e.get("/enroll/email")
		wantPage(t, "address form", p, http.StatusOK, `<label for="address">`, `type="email"`, `autocomplete="email"`,
			`href="/manage"`, "backup way to sign in")
		wantSafe(t, "address form", p, "")
		// Proving for an address begins no authenticator app.
		if n := len(e.user("alice").Devices); n != 1 {
			t.Errorf("%d devices after proving, want 1", n)
		}
	})

	t.Run("BadAddress", func(t *testing.T) {
		p := e.post("/enroll/email", url.Values{"csrf": {tok}, "address": {"alice at example"}})
		wantPage(t, "bad address", p, http.StatusBadRequest, "doesn't look like an email address", `value="alice at example"`, `aria-invalid="true"`)
		if ds := e.emailDevices("alice"); len(ds) != 0 {
			t.Errorf("a bad address added a device: %+v", ds)
		}
	})

	p = e.post("/enroll/email", url.Values{"csrf": {tok}, "address": {"  Alice@EXAMPLE.com "}})
	wantPage(t, "code form", p, http.StatusOK, "We sent an email with an 8-digit code to <strong>"+address+"</strong>",
		`<label for="email-code">`, `autocomplete="one-time-code"`, `inputmode="numeric"`, `action="/enroll/email/confirm"`, `action="/enroll/email/resend"`)
	first := e.code("alice", address)
	wantSafe(t, "code form", p, "", first)
	if got := resendIn(t, p); got != 30 {
		t.Errorf("data-resend-in %d, want 30", got)
	}
	if ds := e.emailDevices("alice"); len(ds) != 1 || ds[0].Status != twofa.StatusPending {
		t.Fatalf("after sending a code: %+v, want one pending email device", ds)
	}

	t.Run("Reload", func(t *testing.T) {
		p := e.get("/enroll/email")
		wantPage(t, "reload", p, http.StatusOK, "We sent an email with an 8-digit code to <strong>"+address+"</strong>", `id="email-code"`)
		wantSafe(t, "reload", p, "", first)
		if n := e.sent("alice", address); n != 1 {
			t.Errorf("a reload sent a code: %d sent, want 1", n)
		}
	})

	t.Run("WrongCode", func(t *testing.T) {
		p := e.post("/enroll/email/confirm", url.Values{"csrf": {tok}, "code": {wrongEmailCode(first)}})
		wantPage(t, "wrong code", p, http.StatusUnprocessableEntity, "That code didn't work", `aria-invalid="true"`, `id="email-code"`)
		wantSafe(t, "wrong code", p, "", first)
		if u := e.user("alice"); u.Failures != 1 {
			t.Errorf("after a wrong email code: %d failures, want 1", u.Failures)
		}
		p = e.post("/enroll/email/confirm", url.Values{"csrf": {tok}, "code": {"1234"}})
		wantPage(t, "malformed code", p, http.StatusBadRequest, "doesn't look like a code", "8 digits from the newest email")
	})

	var second string
	t.Run("Resend", func(t *testing.T) {
		// 20.5 s to wait: the countdown rounds up.
		e.clock.Add(9500 * time.Millisecond)
		p := e.post("/enroll/email/resend", url.Values{"csrf": {tok}})
		wantPage(t, "resend too soon", p, http.StatusTooManyRequests, "We can send another code at "+e.clock.Now().Add(20500*time.Millisecond).Format("15:04:05 UTC")+" (in 21 seconds)", `id="email-code"`)
		wantSafe(t, "resend too soon", p, "", first)
		if got := resendIn(t, p); got != 21 {
			t.Errorf("refused resend: data-resend-in %d, want 21", got)
		}
		if n := e.sent("alice", address); n != 1 {
			t.Errorf("a refused resend sent a code: %d sent, want 1", n)
		}
		e.clock.Add(20500 * time.Millisecond)
		p = e.post("/enroll/email/resend", url.Values{"csrf": {tok}})
		wantPage(t, "resend", p, http.StatusOK, "We sent another code", `id="email-code"`)
		second = e.code("alice", address)
		wantSafe(t, "resend", p, "", first, second)
		if got := resendIn(t, p); got != 30 {
			t.Errorf("after a resend: data-resend-in %d, want 30", got)
		}
		if n := e.sent("alice", address); n != 2 {
			t.Errorf("after a resend: %d codes sent, want 2", n)
		}
	})

	// The first code still works after the resend: mail is slow.
	p = e.post("/enroll/email/confirm", url.Values{"csrf": {tok}, "code": {first[:4] + " " + first[4:]}})
	if p.status != http.StatusSeeOther || p.location() != "/manage?notice=email" {
		t.Fatalf("right code: %d to %q; %s", p.status, p.location(), p.body)
	}
	wantSafe(t, "redirect", p, "", first, second)
	p = e.get(p.location())
	ds := e.emailDevices("alice")
	if len(ds) != 1 || ds[0].Status != twofa.StatusActive || ds[0].Address != address {
		t.Fatalf("after confirming: %+v, want one active email device", ds)
	}
	dev := ds[0]
	wantPage(t, "manage lists the address", p, http.StatusOK, "Your email address is confirmed", `id="device-`+dev.ID+`"`,
		"Codes by email to "+address, `id="remove-`+dev.ID+`"`)
	wantSafe(t, "manage", p, "", first, second)

	t.Run("CodeSpent", func(t *testing.T) {
		// The form again, with the code again: nothing is pending.
		p := e.post("/enroll/email/confirm", url.Values{"csrf": {tok}, "code": {first}})
		if p.status != http.StatusSeeOther || p.location() != "/enroll/email" {
			t.Errorf("confirm again: %d to %q", p.status, p.location())
		}
	})

	t.Run("Taken", func(t *testing.T) {
		p := e.post("/enroll/email", url.Values{"csrf": {tok}, "address": {"Alice@EXAMPLE.com"}})
		wantPage(t, "the same address", p, http.StatusForbidden, "Confirm it's you")
		e.clock.Add(30 * time.Second)
		e.post("/enroll/email/prove", url.Values{"csrf": {tok}, "code": {k.TOTP(e.clock.Now())}})
		p = e.post("/enroll/email", url.Values{"csrf": {tok}, "address": {"Alice@EXAMPLE.com"}})
		wantPage(t, "the same address", p, http.StatusConflict, "already one of your ways to sign in")
	})

	t.Run("Remove", func(t *testing.T) {
		p := e.get("/manage/remove?device_id=" + dev.ID)
		wantPage(t, "ask", p, http.StatusOK, "Remove Email?", `name="device_id" value="`+dev.ID+`"`)
		wantSafe(t, "remove page", p, "")
		p = e.post("/manage/remove", url.Values{"csrf": {tok}, "device_id": {dev.ID}, "code": {wrong(k, e.clock.Now())}})
		wantPage(t, "wrong code", p, http.StatusUnprocessableEntity, "That code didn't work")
		if ds := e.emailDevices("alice"); len(ds) != 1 || ds[0].Status != twofa.StatusActive {
			t.Fatalf("a wrong code removed the address: %+v", ds)
		}
		e.clock.Add(30 * time.Second)
		p = e.post("/manage/remove", url.Values{"csrf": {tok}, "device_id": {dev.ID}, "code": {k.TOTP(e.clock.Now())}})
		if p.status != http.StatusSeeOther || p.location() != "/manage?notice=removed" {
			t.Fatalf("remove: %d to %q; %s", p.status, p.location(), p.body)
		}
		p = e.get(p.location())
		wantPage(t, "removed", p, http.StatusOK, "Device removed.", "Phone")
		if strings.Contains(p.body, address) || strings.Contains(p.body, "device-"+dev.ID) {
			t.Errorf("the manage page still lists the address")
		}
		if u := e.user("alice"); len(u.ActiveDevices()) != 1 {
			t.Errorf("after removal: %d active devices, want 1", len(u.ActiveDevices()))
		}
	})
}

// TestPages_EmailEnrollLink: a user without any factor may add email
// from an enrollment link only where the tenant allows email alone.
func TestPages_EmailEnrollLink(t *testing.T) {
	e := newPagesEnv(t, false)
	const address = "bob@example.com"
	p := e.open(e.link("enrollment", "bob"))
	wantPage(t, "enroll page", p, http.StatusOK, `<a id="use-email" href="/enroll/email">`)
	tok := csrf(t, p)
	p = e.get("/enroll/email")
	wantPage(t, "address form without a factor", p, http.StatusOK, `id="address"`, `href="/enroll"`)
	wantSafe(t, "address form", p, "")

	t.Run("ErrRestrictedOnly", func(t *testing.T) {
		p := e.post("/enroll/email", url.Values{"csrf": {tok}, "address": {address}})
		wantPage(t, "email alone", p, http.StatusConflict, "Email can only be a backup way to sign in", "authenticator app first", `value="`+address+`"`)
		wantSafe(t, "email alone", p, "")
		if ds := e.emailDevices("bob"); len(ds) != 0 {
			t.Errorf("a refused address added a device: %+v", ds)
		}
		if n := e.sent("bob", address); n != 0 {
			t.Errorf("a refused address got %d codes", n)
		}
	})

	if err := e.svc.SetRestrictedOnly(context.Background(), "acme", true); err != nil {
		t.Fatal(err)
	}
	p = e.post("/enroll/email", url.Values{"csrf": {tok}, "address": {address}})
	wantPage(t, "email alone allowed", p, http.StatusOK, "We sent an email with an 8-digit code to <strong>"+address+"</strong>", `href="/enroll"`)
	code := e.code("bob", address)
	wantSafe(t, "code form", p, "", code)
	p = e.post("/enroll/email/confirm", url.Values{"csrf": {tok}, "code": {wrongEmailCode(code)}})
	wantPage(t, "wrong code", p, http.StatusUnprocessableEntity, "That code didn't work")
	if u := e.user("bob"); u.Failures != 1 {
		t.Errorf("after a wrong code: %d failures, want 1", u.Failures)
	}
	p = e.post("/enroll/email/confirm", url.Values{"csrf": {tok}, "code": {code}})
	if p.status != http.StatusSeeOther || p.location() != "/enroll/email?notice=confirmed" {
		t.Fatalf("right code: %d to %q; %s", p.status, p.location(), p.body)
	}
	p = e.get(p.location())
	wantPage(t, "done", p, http.StatusOK, "Your email address is confirmed", "close this page")
	wantSafe(t, "done", p, "", code)
	if strings.Contains(p.body, `id="address"`) || strings.Contains(p.body, "authenticator app") {
		t.Errorf("the done page asks for an address, or speaks of an app: %s", p.body)
	}
	if ds := e.emailDevices("bob"); len(ds) != 1 || ds[0].Status != twofa.StatusActive {
		t.Errorf("after confirming: %+v, want one active email device", ds)
	}
}

// TestPages_EmailPrompt: the prompt's "email me a code".
func TestPages_EmailPrompt(t *testing.T) {
	e := newPagesEnv(t, false)
	key, _ := promptSetup(t, e)
	promptCSP := strings.Replace(wantCSP, "form-action 'self'", "form-action 'self' https://app.example", 1)
	request := func(user string) prompt.Request {
		return prompt.Request{Tenant: "acme", User: user, ReturnURL: "https://app.example/2fa", Nonce: prompt.NewNonce()}
	}

	t.Run("NotOffered", func(t *testing.T) {
		// alice has an app and no address; carol has an address not
		// yet confirmed.
		p := e.get(e.promptURL(key, request("alice")))
		wantPage(t, "prompt", p, http.StatusOK, `id="code"`)
		if strings.Contains(p.body, `id="email-me"`) {
			t.Errorf("email offered to a user without an address")
		}
		e.enrolled("carol", "Phone")
		if _, err := e.svc.BeginEmailEnrollment(context.Background(), twofa.UserRef{Tenant: "acme", User: "carol"}, "carol@example.com", ""); err != nil {
			t.Fatal(err)
		}
		p = e.get(e.promptURL(key, request("carol")))
		if strings.Contains(p.body, `id="email-me"`) {
			t.Errorf("email offered for an address not confirmed")
		}
	})

	const address = "alice@example.com"
	e.withEmail("alice", address)
	req := request("alice")
	p := e.get(e.promptURL(key, req))
	wantPage(t, "prompt", p, http.StatusOK, `id="email-me"`, "Email me a code", `action="/prompt/email"`, `id="code"`)
	wantSafe(t, "prompt", p, promptCSP)
	tok := csrf(t, p)
	p = e.post("/prompt/email", url.Values{"csrf": {tok}})
	wantPage(t, "code sent", p, http.StatusOK, "We sent an email with an 8-digit code to <strong>a***@example.com</strong>", `id="email-code"`,
		`action="/prompt/email/verify"`, `action="/prompt/email/resend"`, `id="code"`)
	first := e.code("alice", address)
	wantSafe(t, "code sent", p, promptCSP, first)
	if strings.Contains(p.body, address) || strings.Contains(p.body, `id="email-me"`) {
		t.Errorf("the prompt shows the whole address, or offers email again")
	}
	if got := resendIn(t, p); got != 30 {
		t.Errorf("data-resend-in %d, want 30", got)
	}

	t.Run("WrongCode", func(t *testing.T) {
		p := e.post("/prompt/email/verify", url.Values{"csrf": {tok}, "code": {wrongEmailCode(first)}})
		wantPage(t, "wrong code", p, http.StatusUnprocessableEntity, "That code didn't work", "8-digit code", `id="email-code"`)
		wantSafe(t, "wrong code", p, promptCSP, first)
		if p.location() != "" {
			t.Errorf("a wrong code redirected to %q", p.location())
		}
		if u := e.user("alice"); u.Failures != 1 {
			t.Errorf("after a wrong email code: %d failures, want 1", u.Failures)
		}
		// An app's 6 digits typed into the email code's field.
		p = e.post("/prompt/email/verify", url.Values{"csrf": {tok}, "code": {"123456"}})
		wantPage(t, "malformed code", p, http.StatusBadRequest, "8 digits from the newest email", `id="email-code"`)
	})

	var second string
	t.Run("Resend", func(t *testing.T) {
		e.clock.Add(5 * time.Second)
		p := e.post("/prompt/email/resend", url.Values{"csrf": {tok}})
		wantPage(t, "resend too soon", p, http.StatusTooManyRequests, "We can send another code at", "(in 25 seconds)", `id="email-code"`)
		wantSafe(t, "resend too soon", p, promptCSP, first)
		if n := e.sent("alice", address); n != 2 { // the confirmation's and the first sign-in code
			t.Errorf("a refused resend sent a code: %d sent, want 2", n)
		}
		e.clock.Add(25 * time.Second)
		p = e.post("/prompt/email/resend", url.Values{"csrf": {tok}})
		wantPage(t, "resend", p, http.StatusOK, "We sent another code", `id="email-code"`)
		second = e.code("alice", address)
		wantSafe(t, "resend", p, promptCSP, first, second)
		if got := resendIn(t, p); got != 30 {
			t.Errorf("after a resend: data-resend-in %d, want 30", got)
		}
	})

	p = e.post("/prompt/email/verify", url.Values{"csrf": {tok}, "code": {second}})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "https://app.example/2fa?twofa_result=") {
		t.Fatalf("right code: %d to %q; %s", p.status, p.location(), p.body)
	}
	if got := p.header.Get("Content-Security-Policy"); got != promptCSP {
		t.Errorf("redirect CSP %q, want %q", got, promptCSP)
	}
	loc, _ := url.Parse(p.location())
	res, err := prompt.ParseResult(key, loc.Query().Get(web.ParamResult), "acme", req.Nonce, e.clock.Now())
	if err != nil || res.User != "alice" || res.Factor != twofa.FactorEmail {
		t.Fatalf("ParseResult: %+v, %v; want alice by email", res, err)
	}
	if u := e.user("alice"); u.Failures != 0 {
		t.Errorf("after the right code: %d failures, want 0", u.Failures)
	}

	t.Run("ChallengeEnded", func(t *testing.T) {
		// The code was used elsewhere (the API) before the page got it.
		p := e.get(e.promptURL(key, request("alice")))
		tok := csrf(t, p)
		p = e.post("/prompt/email", url.Values{"csrf": {tok}})
		wantPage(t, "code sent", p, http.StatusOK, `id="email-code"`)
		code := e.code("alice", address)
		chl := e.challengeOf(t)
		if res, err := e.svc.VerifyChallenge(context.Background(), twofa.UserRef{Tenant: "acme", User: "alice"}, chl, code); err != nil || !res.Valid {
			t.Fatalf("VerifyChallenge: %+v, %v", res, err)
		}
		p = e.post("/prompt/email/verify", url.Values{"csrf": {tok}, "code": {code}})
		wantPage(t, "ended", p, http.StatusGone, "That code no longer works", "Ask for a new one", `id="email-me"`)
		wantSafe(t, "ended", p, promptCSP, code)
		if strings.Contains(p.body, `id="email-code"`) {
			t.Errorf("the page still asks for the ended challenge's code")
		}
		// A new one is sent when asked for.
		p = e.post("/prompt/email", url.Values{"csrf": {tok}})
		wantPage(t, "new code", p, http.StatusOK, `id="email-code"`)
		if c := e.code("alice", address); c == code {
			t.Errorf("no new code was sent")
		}
	})
}

// challengeOf returns the ID of the challenge whose code the prompt's
// session waits for, from its cookie.
func (e *pagesEnv) challengeOf(t *testing.T) string {
	t.Helper()
	u, _ := url.Parse(e.srv.URL)
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name != "twofa_prompt" {
			continue
		}
		payload, _, _ := strings.Cut(c.Value, ".")
		b, _ := base64.RawURLEncoding.DecodeString(payload)
		var ss struct {
			Challenge string `json:"h"`
		}
		if err := json.Unmarshal(b, &ss); err != nil || ss.Challenge == "" {
			t.Fatalf("no challenge in the prompt's session %s: %v", b, err)
		}
		return ss.Challenge
	}
	t.Fatal("no twofa_prompt cookie")
	return ""
}

// TestPages_EmailCodeEnded: a code typed, or another asked for, once the
// challenge has ended (its codes expired, or it was used elsewhere).
func TestPages_EmailCodeEnded(t *testing.T) {
	e := newPagesEnv(t, false)
	key, k := promptSetup(t, e)
	for _, c := range []struct{ name, path string }{
		{"Confirm", "/enroll/email/confirm"},
		{"Resend", "/enroll/email/resend"},
	} {
		t.Run("Address"+c.name, func(t *testing.T) {
			const address = "alice@example.com"
			p := e.open(e.link("manage", "alice"))
			tok := csrf(t, p)
			e.post("/enroll/email/prove", url.Values{"csrf": {tok}, "code": {k.TOTP(e.clock.Now())}})
			p = e.post("/enroll/email", url.Values{"csrf": {tok}, "address": {address}})
			wantPage(t, "code sent", p, http.StatusOK, `id="email-code"`)
			code := e.code("alice", address)
			e.clock.Add(twofa.EmailCodeTTL + time.Second)
			p = e.post(c.path, url.Values{"csrf": {tok}, "code": {code}})
			wantPage(t, "ended", p, http.StatusGone, "This code no longer works", `href="/enroll/email"`, "Start again")
			wantSafe(t, "ended", p, "", code)
			p = e.get("/enroll/email")
			wantPage(t, "after", p, http.StatusOK, `id="address"`)
			if strings.Contains(p.body, `id="email-code"`) {
				t.Errorf("the address form still asks for the ended code")
			}
		})
	}

	const address = "bob@example.com"
	e.enrolled("bob", "Phone")
	e.withEmail("bob", address)
	for _, c := range []struct{ name, path string }{
		{"Verify", "/prompt/email/verify"},
		{"Resend", "/prompt/email/resend"},
	} {
		t.Run("Prompt"+c.name, func(t *testing.T) {
			p := e.get(e.promptURL(key, prompt.Request{Tenant: "acme", User: "bob", ReturnURL: "https://app.example/2fa", Nonce: prompt.NewNonce()}))
			tok := csrf(t, p)
			p = e.post("/prompt/email", url.Values{"csrf": {tok}})
			wantPage(t, "code sent", p, http.StatusOK, `id="email-code"`)
			code := e.code("bob", address)
			// The code is used elsewhere (the API) before the page gets it.
			bob := twofa.UserRef{Tenant: "acme", User: "bob"}
			if res, err := e.svc.VerifyChallenge(context.Background(), bob, e.challengeOf(t), code); err != nil || !res.Valid {
				t.Fatalf("VerifyChallenge: %+v, %v", res, err)
			}
			e.clock.Add(twofa.ResendGap)
			p = e.post(c.path, url.Values{"csrf": {tok}, "code": {code}})
			wantPage(t, "ended", p, http.StatusGone, "That code no longer works", "Ask for a new one", `id="email-me"`)
			if strings.Contains(p.body, `id="email-code"`) {
				t.Errorf("the prompt still asks for the ended code")
			}
			if n := e.sent("bob", address); c.name == "Resend" && n != 3 { // the confirmation's, and one per prompt
				t.Errorf("a resend of an ended challenge sent a code: %d sent, want 3", n)
			}
		})
	}
}

// TestPages_EmailPromptAlone: a user whose only factor is email (the
// tenant allows it) is offered email alone, not an app's code.
func TestPages_EmailPromptAlone(t *testing.T) {
	e := newPagesEnv(t, false)
	key, _ := promptSetup(t, e)
	if err := e.svc.SetRestrictedOnly(context.Background(), "acme", true); err != nil {
		t.Fatal(err)
	}
	const address = "gus@example.com"
	e.withEmail("gus", address)
	req := prompt.Request{Tenant: "acme", User: "gus", ReturnURL: "https://app.example/2fa", Nonce: prompt.NewNonce()}
	p := e.get(e.promptURL(key, req))
	wantPage(t, "prompt", p, http.StatusOK, "We'll email you an 8-digit code", `<button id="email-me" type="submit">Email me a code</button>`)
	for _, no := range []string{`id="code"`, `id="backup-code"`, "authenticator app"} {
		if strings.Contains(p.body, no) {
			t.Errorf("the prompt of a user with email alone has %s", no)
		}
	}
	tok := csrf(t, p)
	p = e.post("/prompt/email", url.Values{"csrf": {tok}})
	wantPage(t, "code sent", p, http.StatusOK, `id="email-code"`)
	if strings.Contains(p.body, `id="code"`) || strings.Contains(p.body, "authenticator app") {
		t.Errorf("the code form of a user with email alone offers an app")
	}
	p = e.post("/prompt/email/verify", url.Values{"csrf": {tok}, "code": {e.code("gus", address)}})
	loc, _ := url.Parse(p.location())
	res, err := prompt.ParseResult(key, loc.Query().Get(web.ParamResult), "acme", req.Nonce, e.clock.Now())
	if p.status != http.StatusSeeOther || err != nil || res.Factor != twofa.FactorEmail {
		t.Errorf("right code: %d to %q: %+v, %v", p.status, p.location(), res, err)
	}
}

// TestPages_EmailUnavailable: a server that sends no email offers none.
func TestPages_EmailUnavailable(t *testing.T) {
	e := newPagesEnvWith(t, false, []twofa.Channel{twofa.ChannelWebhook})
	key, k := promptSetup(t, e)
	// An address added while the server still sent email.
	ctx := context.Background()
	alice := twofa.UserRef{Tenant: "acme", User: "alice"}
	mailing, err := twofa.NewService(ctx, e.store.(twofa.Store), e.keys, twofa.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	en, err := mailing.BeginEmailEnrollment(ctx, alice, "alice@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := mailing.ConfirmEmail(ctx, alice, en.Device.ID, en.Challenge.ID, e.code("alice", "alice@example.com")); err != nil || !res.Valid {
		t.Fatalf("ConfirmEmail: %+v, %v", res, err)
	}
	p := e.open(e.link("manage", "alice"))
	wantPage(t, "manage", p, http.StatusOK, `id="add-device"`)
	tok := csrf(t, p)
	if strings.Contains(p.body, `id="add-email"`) {
		t.Errorf("the manage page offers email")
	}
	e.post("/enroll/prove", url.Values{"csrf": {tok}, "code": {k.TOTP(e.clock.Now())}})
	p = e.get("/enroll")
	wantPage(t, "enroll", p, http.StatusOK, `id="qr"`)
	if strings.Contains(p.body, `id="use-email"`) {
		t.Errorf("the enrollment page offers email")
	}
	p = e.get("/enroll/email")
	wantPage(t, "email page", p, http.StatusConflict, "can't send email codes", "authenticator app instead")
	p = e.post("/enroll/email", url.Values{"csrf": {tok}, "address": {"alice@example.org"}})
	wantPage(t, "an address", p, http.StatusConflict, "can't send email codes")
	if ds := e.emailDevices("alice"); len(ds) != 1 {
		t.Errorf("an address was added: %+v", ds)
	}
	p = e.get(e.promptURL(key, prompt.Request{Tenant: "acme", User: "alice", ReturnURL: "https://app.example/2fa", Nonce: prompt.NewNonce()}))
	wantPage(t, "prompt", p, http.StatusOK, `id="code"`)
	if strings.Contains(p.body, `id="email-me"`) {
		t.Errorf("the prompt offers email")
	}
	p = e.post("/prompt/email", url.Values{"csrf": {csrf(t, p)}})
	wantPage(t, "email me a code", p, http.StatusConflict, "can't send email codes", `id="code"`)
}
