package web_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/seal"
	"github.com/twofa/twofa/sqlite"
	"github.com/twofa/twofa/web"
)

// adminKey makes an admin API key of a tenant.
func (e *pagesEnv) adminKey(tenant string) (string, *twofa.APIKey) {
	e.t.Helper()
	secret, k, err := e.svc.CreateAPIKey(context.Background(), tenant, "console", twofa.ScopeAdmin)
	if err != nil {
		e.t.Fatal(err)
	}
	return secret, k
}

// login posts a key to the console's sign-in form.
func (e *pagesEnv) login(key string) page {
	e.t.Helper()
	form := e.get("/admin/login")
	wantPage(e.t, "sign-in form", form, http.StatusOK, `<label for="key">Admin API key</label>`, `type="password"`)
	return e.post("/admin/login", url.Values{"csrf": {csrf(e.t, form)}, "key": {key}})
}

// signedIn signs in with a key, in a browser with no cookies yet, and
// checks that it worked.
func (e *pagesEnv) signedIn(key string) {
	e.t.Helper()
	e.client.Jar, _ = cookiejar.New(nil)
	if p := e.login(key); p.status != http.StatusSeeOther || p.location() != "/admin" {
		e.t.Fatalf("sign-in: %d to %q, want 303 to /admin; body %s", p.status, p.location(), p.body)
	}
}

// newBrowser returns another browser on the same server, with its own cookies.
func (e *pagesEnv) newBrowser() *pagesEnv {
	c := *e
	c.client = &http.Client{CheckRedirect: e.client.CheckRedirect, Transport: e.client.Transport}
	c.client.Jar, _ = cookiejar.New(nil)
	return &c
}

// lock makes user fail until locked.
func (e *pagesEnv) lock(user string) {
	e.t.Helper()
	k, _ := e.enrolled(user, "Phone")
	ref := twofa.UserRef{Tenant: "acme", User: user}
	for i := 0; i < 10 && !e.user(user).Locked(e.clock.Now()); i++ {
		if _, err := e.svc.Verify(context.Background(), ref, wrong(k, e.clock.Now())); err != nil {
			e.t.Fatal(err)
		}
	}
	if !e.user(user).Locked(e.clock.Now()) {
		e.t.Fatalf("%s is not locked", user)
	}
}

func TestAdmin_Login(t *testing.T) {
	e := newPagesEnv(t, false)
	admin, adminKey := e.adminKey("acme")

	t.Run("NoSession", func(t *testing.T) {
		for _, path := range []string{"/admin", "/admin/users/alice", "/admin/audit", "/admin/chart", "/admin/keys"} {
			if p := e.get(path); p.status != http.StatusSeeOther || p.location() != "/admin/login" {
				t.Errorf("GET %s: %d to %q, want 303 to /admin/login", path, p.status, p.location())
			}
		}
	})
	t.Run("AppKeyRefused", func(t *testing.T) {
		wantPage(t, "app key", e.login(e.appKey), http.StatusForbidden, "that is an application key")
		if p := e.get("/admin"); p.status != http.StatusSeeOther {
			t.Errorf("GET /admin after an app key: %d, want 303", p.status)
		}
	})
	t.Run("UnknownKey", func(t *testing.T) {
		wantPage(t, "unknown key", e.login("tfa_nosuchkey"), http.StatusUnauthorized, "that key isn't valid")
	})
	t.Run("NoCSRF", func(t *testing.T) {
		e.get("/admin/login")
		p := e.post("/admin/login", url.Values{"key": {admin}})
		wantPage(t, "no token", p, http.StatusForbidden, "could not be accepted")
	})
	t.Run("AdminKey", func(t *testing.T) {
		p := e.login(admin)
		if p.status != http.StatusSeeOther || p.location() != "/admin" {
			t.Fatalf("sign-in: %d to %q, want 303 to /admin", p.status, p.location())
		}
		ck := p.header.Get("Set-Cookie")
		for _, want := range []string{"twofa_admin=", "Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=1800"} {
			if !strings.Contains(ck, want) {
				t.Errorf("Set-Cookie %q lacks %s", ck, want)
			}
		}
		page := e.get("/admin")
		wantPage(t, "console", page, http.StatusOK, `<label for="q">`, `id="tenant">acme<`, `aria-current="page">Users`)
		for h, want := range map[string]string{
			"Content-Security-Policy": wantCSP, "Cache-Control": "no-store", "X-Frame-Options": "DENY",
			"Content-Type": "text/html; charset=utf-8", "Strict-Transport-Security": "",
		} {
			if got := page.header.Get(h); got != want {
				t.Errorf("console header %s = %q, want %q", h, got, want)
			}
		}
		if m := regexp.MustCompile(`(?:src|href)="(?:https?:)?//`).FindString(page.body); m != "" {
			t.Errorf("console loads %s from elsewhere", m)
		}
		if p := e.get("/admin/login"); p.status != http.StatusSeeOther || p.location() != "/admin" {
			t.Errorf("sign-in form when signed in: %d to %q, want 303 to /admin", p.status, p.location())
		}
	})
	t.Run("Idle", func(t *testing.T) {
		e.signedIn(admin)
		e.clock.Add(29 * time.Minute)
		if p := e.get("/admin"); p.status != http.StatusOK {
			t.Fatalf("after 29 minutes: %d, want 200", p.status)
		}
		e.clock.Add(29 * time.Minute) // each request keeps the session alive
		if p := e.get("/admin"); p.status != http.StatusOK {
			t.Fatalf("after 29 more minutes: %d, want 200", p.status)
		}
		e.clock.Add(31 * time.Minute)
		if p := e.get("/admin"); p.status != http.StatusSeeOther || p.location() != "/admin/login" {
			t.Errorf("after 31 idle minutes: %d to %q, want 303 to /admin/login", p.status, p.location())
		}
	})
	t.Run("Logout", func(t *testing.T) {
		e.signedIn(admin)
		page := e.get("/admin")
		if p := e.post("/admin/logout", url.Values{}); p.status != http.StatusForbidden {
			t.Errorf("logout without token: %d, want 403", p.status)
		}
		p := e.post("/admin/logout", url.Values{"csrf": {csrf(t, page)}})
		if p.status != http.StatusSeeOther || p.location() != "/admin/login?notice=out" {
			t.Errorf("logout: %d to %q", p.status, p.location())
		}
		if p := e.get("/admin"); p.status != http.StatusSeeOther {
			t.Errorf("GET /admin after logout: %d, want 303", p.status)
		}
	})
	t.Run("Revoked", func(t *testing.T) {
		e.signedIn(admin)
		if err := e.svc.RevokeAPIKey(context.Background(), adminKey.ID); err != nil {
			t.Fatal(err)
		}
		// Within 5 s everywhere, as for the API (the key's state is cached).
		e.clock.Add(5 * time.Second)
		if p := e.get("/admin"); p.status != http.StatusSeeOther || p.location() != "/admin/login?notice=revoked" {
			t.Errorf("GET /admin with a revoked key: %d to %q", p.status, p.location())
		}
	})
}

// TestAdmin_LoginRateLimited: wrong keys from one address are answered 429
// once over the budget, and a valid admin key still signs in from it.
func TestAdmin_LoginRateLimited(t *testing.T) {
	e := newPagesEnv(t, false)
	admin, _ := e.adminKey("acme")
	for i := range 10 {
		if p := e.login("tfa_wrong" + strconv.Itoa(i)); p.status != http.StatusUnauthorized {
			t.Fatalf("wrong key %d: %d, want 401", i, p.status)
		}
	}
	for _, tt := range []struct {
		name       string
		key        string
		wantStatus int
		wantText   string
	}{
		{"WrongKey", "tfa_wrong10", http.StatusTooManyRequests, "too many failed sign-ins"},
		{"Malformed", "not a key", http.StatusTooManyRequests, "too many failed sign-ins"},
		{"AppKey", e.appKey, http.StatusTooManyRequests, "too many failed sign-ins"}, // no more than a wrong key tells
		{"AdminKey", admin, http.StatusSeeOther, ""},
		{"WrongKeyAfterASignIn", "tfa_wrong11", http.StatusTooManyRequests, "too many failed sign-ins"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.client.Jar, _ = cookiejar.New(nil)
			p := e.login(tt.key)
			if p.status != tt.wantStatus {
				t.Fatalf("sign-in: %d, want %d; body %s", p.status, tt.wantStatus, p.body)
			}
			if tt.wantStatus == http.StatusSeeOther {
				if p.location() != "/admin" {
					t.Errorf("sign-in to %q, want /admin", p.location())
				}
				wantPage(t, "console", e.get("/admin"), http.StatusOK, `id="tenant">acme<`)
				return
			}
			wantPage(t, tt.name, p, tt.wantStatus, tt.wantText)
			if got := p.header.Get("Retry-After"); got != "900" {
				t.Errorf("Retry-After = %q, want 900", got)
			}
		})
	}
	e.clock.Add(16 * time.Minute)
	if p := e.login("tfa_wrong12"); p.status != http.StatusUnauthorized {
		t.Errorf("wrong key after the window: %d, want 401", p.status)
	}
}

// TestAdmin_LoginLimitPerClient: behind a trusted proxy, the limiter
// counts each client's wrong keys, not the proxy's.
func TestAdmin_LoginLimitPerClient(t *testing.T) {
	c := twofatest.NewClock()
	svc := newService(t, mustSQLite(t), c)
	e := newPagesEnvOn(t, svc, c, web.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	admin, _ := e.adminKey("acme")
	login := func(client, key string) page {
		t.Helper()
		e.client.Jar, _ = cookiejar.New(nil)
		form := e.get("/admin/login")
		return e.post("/admin/login", url.Values{"csrf": {csrf(t, form)}, "key": {key}}, "X-Forwarded-For", client)
	}
	for i := range 10 {
		if p := login("203.0.113.1", "tfa_wrong"+strconv.Itoa(i)); p.status != http.StatusUnauthorized {
			t.Fatalf("wrong key %d: %d, want 401", i, p.status)
		}
	}
	for _, tt := range []struct {
		client, key string
		want        int
	}{
		{"203.0.113.1", "tfa_wrong10", http.StatusTooManyRequests},
		{"203.0.113.2", "tfa_wrong10", http.StatusUnauthorized}, // another client behind the same proxy
		{"198.51.100.7, 203.0.113.1", "tfa_wrong11", http.StatusTooManyRequests},
		{"203.0.113.1", admin, http.StatusSeeOther},
	} {
		if p := login(tt.client, tt.key); p.status != tt.want {
			t.Errorf("from %s: %d, want %d", tt.client, p.status, tt.want)
		}
	}
}

// TestAdmin_KeyStateCached: console requests do not list the tenant's keys
// each time; the key's state is read again after adminKeyTTL (5 s).
func TestAdmin_KeyStateCached(t *testing.T) {
	store := &countingStore{Store: mustSQLite(t)}
	c := twofatest.NewClock()
	svc := newService(t, store, c)
	e := newPagesEnvOn(t, svc, c, web.Options{})
	admin, _ := e.adminKey("acme")
	e.signedIn(admin)
	before := store.apiKeys.Load()
	for range 20 {
		if p := e.get("/admin"); p.status != http.StatusOK {
			t.Fatalf("GET /admin: %d", p.status)
		}
	}
	if got := store.apiKeys.Load() - before; got > 1 {
		t.Errorf("20 console requests listed the tenant's keys %d times, want at most 1", got)
	}
	e.clock.Add(5 * time.Second)
	e.get("/admin")
	if got := store.apiKeys.Load() - before; got != 2 {
		t.Errorf("after 5 s: the keys were listed %d times, want 2", got)
	}
}

func TestAdmin_Users(t *testing.T) {
	e := newPagesEnv(t, false)
	admin, adminKey := e.adminKey("acme")
	e.enrolled("bob", "Laptop")
	e.lock("alice") // last: the clock stands still from here, and the lock holds
	e.signedIn(admin)

	t.Run("OpenByID", func(t *testing.T) {
		p := e.get("/admin?q=alice")
		wantPage(t, "search", p, http.StatusOK, `href="/admin/users/alice"`)
	})
	t.Run("Search", func(t *testing.T) {
		for i := range 51 {
			if _, err := e.svc.BeginEnrollment(context.Background(), twofa.UserRef{Tenant: "acme", User: "u" + strconv.Itoa(100+i)}, twofa.EnrollRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		p := e.get("/admin?q=al")
		wantPage(t, "search al", p, http.StatusOK, ">alice</a>", "locked")
		if strings.Contains(p.body, ">bob</a>") {
			t.Error("search for al lists bob")
		}
		p = e.get("/admin?q=u")
		if n := strings.Count(p.body, `<a href="/admin/users/u1`); n != 50 {
			t.Errorf("first page lists %d users, want 50", n)
		}
		next := regexp.MustCompile(`id="next" class="button" href="([^"]+)"`).FindStringSubmatch(p.body)
		if next == nil {
			t.Fatalf("no next page: %s", p.body)
		}
		p = e.get(strings.ReplaceAll(next[1], "&amp;", "&"))
		wantPage(t, "second page", p, http.StatusOK, ">u150</a>")
		if strings.Contains(p.body, `id="next"`) {
			t.Error("the last page has a next link")
		}
	})
	t.Run("UserPage", func(t *testing.T) {
		p := e.get("/admin/users/alice")
		wantPage(t, "alice", p, http.StatusOK, `id="locked"`, "two-factor authentication is <strong>on</strong>", "phone", "10 unused backup codes", `id="unlock"`)
	})
	t.Run("Unlock", func(t *testing.T) {
		page := e.get("/admin/users/alice")
		if p := e.post("/admin/users/alice/unlock", url.Values{}); p.status != http.StatusForbidden {
			t.Errorf("unlock without token: %d, want 403", p.status)
		}
		if p := e.post("/admin/users/alice/unlock", url.Values{"csrf": {csrf(t, page)}}, "Origin", "https://evil.example"); p.status != http.StatusForbidden {
			t.Errorf("unlock from another site: %d, want 403", p.status)
		}
		if !e.user("alice").Locked(e.clock.Now()) {
			t.Fatal("a refused unlock unlocked")
		}
		p := e.post("/admin/users/alice/unlock", url.Values{"csrf": {csrf(t, page)}})
		if p.status != http.StatusSeeOther || p.location() != "/admin/users/alice?notice=unlocked" {
			t.Fatalf("unlock: %d to %q", p.status, p.location())
		}
		if u := e.user("alice"); u.Locked(e.clock.Now()) || u.Failures != 0 {
			t.Errorf("after unlock: locked %v, failures %d", u.Locked(e.clock.Now()), u.Failures)
		}
		wantPage(t, "unlocked", e.get(p.location()), http.StatusOK, "the user is unlocked")
		events, _ := e.svc.AuditEvents(context.Background(), twofa.AuditFilter{Tenant: "acme", User: "alice", Limit: 1000})
		last := events[len(events)-1]
		if last.Type != twofa.EventUnlocked || last.Actor != "key:"+adminKey.ID {
			t.Errorf("last event %s by %q, want user_unlocked by key:%s", last.Type, last.Actor, adminKey.ID)
		}
	})
	t.Run("Disable", func(t *testing.T) {
		confirm := e.get("/admin/users/bob/disable")
		wantPage(t, "confirm", confirm, http.StatusOK, "can't be undone", `action="/admin/users/bob/disable"`)
		if p := e.post("/admin/users/bob/disable", url.Values{}); p.status != http.StatusForbidden {
			t.Errorf("disable without token: %d, want 403", p.status)
		}
		if len(e.user("bob").Devices) != 1 {
			t.Fatal("a refused disable disabled")
		}
		p := e.post("/admin/users/bob/disable", url.Values{"csrf": {csrf(t, confirm)}})
		if p.status != http.StatusSeeOther || p.location() != "/admin/users/bob?notice=disabled" {
			t.Fatalf("disable: %d to %q", p.status, p.location())
		}
		if u := e.user("bob"); len(u.Devices) != 0 || u.BackupCodes != 0 {
			t.Errorf("after disable: %d devices, %d codes", len(u.Devices), u.BackupCodes)
		}
		wantPage(t, "disabled", e.get(p.location()), http.StatusOK, "two-factor authentication is <strong>off</strong>")
	})
	t.Run("OddID", func(t *testing.T) {
		p := e.get("/admin?q=" + url.QueryEscape("a/b c"))
		wantPage(t, "odd id", p, http.StatusOK, `href="/admin/users/a%2Fb%20c"`)
		wantPage(t, "odd user", e.get("/admin/users/a%2Fb%20c"), http.StatusOK, "User a/b c")
	})
}

func TestAdmin_Audit(t *testing.T) {
	e := newPagesEnv(t, false)
	admin, _ := e.adminKey("acme")
	e.lock("alice")
	e.enrolled("bob", "Laptop")
	e.signedIn(admin)
	ctx := context.Background()
	all, err := e.svc.AuditEvents(ctx, twofa.AuditFilter{Tenant: "acme", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	count := func(f func(*twofa.AuditEvent) bool) (n int) {
		for _, ev := range all {
			if f(ev) {
				n++
			}
		}
		return n
	}
	listed := regexp.MustCompile(`<li id="event-(\d+)">`)

	for _, tc := range []struct {
		name, query string
		want        int
		each        string
	}{
		{"Default", "", len(all), ""},
		{"User", "user=bob", count(func(ev *twofa.AuditEvent) bool { return ev.User == "bob" }), "User <a href=\"/admin/users/bob\">bob</a>"},
		{"Type", "type=verify_failed", count(func(ev *twofa.AuditEvent) bool { return ev.Type == twofa.EventVerifyFailed }), "verify_failed"},
		{"UserAndType", "user=bob&type=verify_failed", 0, ""},
		{"AfterSeq", "after=" + strconv.FormatInt(all[3].Seq, 10), len(all) - 4, ""},
		{"AfterDate", "after=2026-03-01", len(all), ""},
		{"AfterTime", "after=2026-03-02+00:00", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := e.get("/admin/audit?" + tc.query)
			wantPage(t, tc.name, p, http.StatusOK, `<label for="type">`, `<label for="user">`, `<label for="after">`)
			items := strings.Split(p.body, `<li id="event-`)[1:]
			if got := len(listed.FindAllString(p.body, -1)); got != min(tc.want, 50) {
				t.Errorf("listed %d events, want %d", got, min(tc.want, 50))
			}
			for _, it := range items {
				if !strings.Contains(it, tc.each) {
					t.Errorf("event does not match filter %q: %s", tc.each, it)
				}
			}
		})
	}
	t.Run("Invalid", func(t *testing.T) {
		wantPage(t, "bad after", e.get("/admin/audit?after=yesterday"), http.StatusUnprocessableEntity, "must be an entry number")
		wantPage(t, "bad type", e.get("/admin/audit?type=nope"), http.StatusUnprocessableEntity, "choose an event type")
	})
	t.Run("Last24Hours", func(t *testing.T) {
		e.clock.Add(25 * time.Hour)
		e.signedIn(admin)
		e.enrolled("carol", "Tablet")
		fresh, _ := e.svc.AuditEvents(ctx, twofa.AuditFilter{Tenant: "acme", After: all[len(all)-1].Seq, Limit: 1000})
		p := e.get("/admin/audit")
		if got := len(listed.FindAllString(p.body, -1)); got != len(fresh) || len(fresh) == 0 {
			t.Errorf("last 24 hours: listed %d events, want %d", got, len(fresh))
		}
	})
	t.Run("Paging", func(t *testing.T) {
		e.enrolled("dave", "Phone")
		for range 60 {
			if err := e.svc.Unlock(ctx, twofa.UserRef{Tenant: "acme", User: "dave"}); err != nil {
				t.Fatal(err)
			}
		}
		p := e.get("/admin/audit?user=dave&type=user_unlocked")
		if got := len(listed.FindAllString(p.body, -1)); got != 50 {
			t.Errorf("first page: %d events, want 50", got)
		}
		next := regexp.MustCompile(`id="next" class="button" href="([^"]+)"`).FindStringSubmatch(p.body)
		if next == nil {
			t.Fatalf("no next page: %s", p.body)
		}
		p = e.get(strings.ReplaceAll(next[1], "&amp;", "&"))
		if got := len(listed.FindAllString(p.body, -1)); got != 10 {
			t.Errorf("second page: %d events, want 10", got)
		}
	})
}

func TestAdmin_Chart(t *testing.T) {
	e := newPagesEnv(t, false)
	admin, _ := e.adminKey("acme")
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "alice"}
	k, _ := e.enrolled("alice", "Phone")
	verify := func(code string) {
		t.Helper()
		if _, err := e.svc.Verify(ctx, ref, code); err != nil {
			t.Fatal(err)
		}
	}
	verify(wrong(k, e.clock.Now())) // a day ago: not in the chart
	e.clock.Add(24 * time.Hour)     // 2 March, 12:00:30
	for range 3 {
		verify(k.TOTP(e.clock.Now()))
		e.clock.Add(30 * time.Second)
	}
	verify(k.TOTP(e.clock.Now().Add(-30 * time.Second))) // the last code again
	e.clock.Add(2 * time.Hour)                           // 14:02
	verify(wrong(k, e.clock.Now()))
	verify(wrong(k, e.clock.Now()))

	e.signedIn(admin)
	p := e.get("/admin/chart")
	wantPage(t, "chart", p, http.StatusOK, `<svg id="chart"`, `aria-hidden="true"`, "<caption>", `<th scope="col">Succeeded</th>`,
		"Succeeded: 3", "Failed: 2", "Replayed code: 1", "Locked out: 0")
	bars := regexp.MustCompile(`<rect class="bar" data-kind="([a-z_]+)" data-count="(\d+)"[^>]*><title>([^<]*)</title>`).FindAllStringSubmatch(p.body, -1)
	got := map[string]string{}
	for _, b := range bars {
		got[b[1]] = b[2] + " " + b[3]
	}
	want := map[string]string{
		"verify_succeeded": "3 12:00–13:00 UTC: 3 succeeded",
		"replay_rejected":  "1 12:00–13:00 UTC: 1 replayed code",
		"verify_failed":    "2 14:00–15:00 UTC: 2 failed",
	}
	if len(got) != len(want) || len(bars) != len(want) {
		t.Errorf("bars %v, want %v", got, want)
	}
	for kind, w := range want {
		if got[kind] != w {
			t.Errorf("bar %s = %q, want %q", kind, got[kind], w)
		}
	}
	for _, row := range []string{
		`<tr><th scope="row">12:00</th><td>3</td><td>0</td><td>1</td><td>0</td></tr>`,
		`<tr><th scope="row">14:00</th><td>0</td><td>2</td><td>0</td><td>0</td></tr>`,
		`<tr><th scope="row">15:00</th><td>0</td><td>0</td><td>0</td><td>0</td></tr>`, // 15:00 yesterday: the first hour
	} {
		if !strings.Contains(p.body, row) {
			t.Errorf("table lacks %s", row)
		}
	}
	if n := strings.Count(p.body, `<tr><th scope="row">`); n != 24 {
		t.Errorf("table has %d hours, want 24", n)
	}
}

func TestAdmin_TenantIsolation(t *testing.T) {
	e := newPagesEnv(t, false)
	e.lock("alice")
	other, _ := e.adminKey("other")
	o := e.newBrowser()
	o.signedIn(other)

	wantPage(t, "other's view of alice", o.get("/admin/users/alice"), http.StatusOK, "two-factor authentication is <strong>off</strong>", "no devices")
	if p := o.get("/admin/audit?after=0"); strings.Contains(p.body, `<li id="event-`) && strings.Contains(p.body, "alice") {
		t.Errorf("tenant other sees acme's audit log: %s", p.body)
	}
	page := o.get("/admin/users/alice")
	o.post("/admin/users/alice/unlock", url.Values{"csrf": {csrf(t, page)}})
	o.post("/admin/users/alice/disable", url.Values{"csrf": {csrf(t, page)}})
	if u := e.user("alice"); !u.Locked(e.clock.Now()) || len(u.Devices) != 1 {
		t.Errorf("other's admin changed acme's alice: locked %v, %d devices", u.Locked(e.clock.Now()), len(u.Devices))
	}
	if p := o.get("/admin/chart"); !strings.Contains(p.body, "Failed: 0") || strings.Contains(p.body, `class="bar"`) {
		t.Errorf("tenant other's chart counts acme's verifications")
	}
	if p := o.get("/admin?q=a"); strings.Contains(p.body, ">alice</a>") {
		t.Error("tenant other finds acme's alice")
	}
	// A session cookie of one tenant does not become another's: it is signed.
	e.signedIn(func() string { s, _ := e.adminKey("acme"); return s }())
	if p := e.get("/admin"); !strings.Contains(p.body, `id="tenant">acme<`) {
		t.Errorf("acme's admin sees another tenant")
	}
}

func TestAdmin_Keys(t *testing.T) {
	e := newPagesEnv(t, false)
	admin, _ := e.adminKey("acme")
	e.enrolled("alice", "Phone")
	e.signedIn(admin)
	p := e.get("/admin/keys")
	wantPage(t, "keys", p, http.StatusOK, "master key <strong>1</strong>", "no rotation is under way", "twofa keys rotate", "Rotation runbook")
}

func TestAdmin_TLS(t *testing.T) {
	e := newPagesEnv(t, true)
	admin, _ := e.adminKey("acme")
	p := e.login(admin)
	if ck := p.header.Get("Set-Cookie"); !strings.HasPrefix(ck, "__Host-twofa_admin=") || !strings.Contains(ck, "Secure") {
		t.Errorf("Set-Cookie under TLS = %q", ck)
	}
	if got := e.get("/admin").header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
		t.Errorf("HSTS = %q", got)
	}
}

// countingStore counts the listings of API keys.
type countingStore struct {
	twofa.Store
	apiKeys atomic.Int64
}

func (s *countingStore) APIKeys(ctx context.Context, tenant string) ([]*twofa.APIKey, error) {
	s.apiKeys.Add(1)
	return s.Store.APIKeys(ctx, tenant)
}

func mustSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "twofa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newService(t *testing.T, st twofa.Store, c *twofatest.Clock) *twofa.Service {
	t.Helper()
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(1, map[uint32][]byte{1: key})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := twofa.NewService(context.Background(), st, kr, twofa.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// newPagesEnvOn is newPagesEnv on a Service of the test's making, with
// the handler's options (its clock is c's).
func newPagesEnvOn(t *testing.T, svc *twofa.Service, c *twofatest.Clock, opts web.Options) *pagesEnv {
	t.Helper()
	opts.Now = c.Now
	e := &pagesEnv{t: t, svc: svc, clock: c, srv: httptest.NewServer(web.NewHandler(svc, opts))}
	t.Cleanup(e.srv.Close)
	e.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	e.client.Jar, _ = cookiejar.New(nil)
	var err error
	if e.appKey, _, err = svc.CreateAPIKey(context.Background(), "acme", "app", twofa.ScopeApp); err != nil {
		t.Fatal(err)
	}
	return e
}
