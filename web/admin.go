package web

// The admin console: a tenant's administrators sign in with an admin API
// key and find users, unlock or disable them, read the audit log, see the
// last day's verifications by outcome, and the state of key rotation. It
// runs on the hosted pages' machinery (pages.go): a signed session cookie
// of its own, CSRF tokens on every form, the pages' headers. An admin of
// one tenant sees that tenant only. Routes: admin_routes.go.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twofa/twofa"
)

// Session kinds of the console. An admin session's Tenant is its key's
// tenant and its User the key's ID: it holds no secret, and each request
// checks that the key still is an unrevoked admin key.
const (
	kindAdmin      = "admin"
	kindAdminLogin = "admin_login" // the sign-in form's, for its CSRF token
	cookieAdmin    = "twofa_admin"
)

const (
	adminIdle = 30 * time.Minute // a console session ends after this long unused
	adminPage = 50               // rows per page of users and of audit events
)

// adminBase is what every console page's data holds, for its navigation.
type adminBase struct {
	Nav    string // the current section: users, audit, chart or keys
	Tenant string
}

// withAdmin requires a console session whose key is still an unrevoked
// admin key, checks CSRF on POST, keeps the session alive for adminIdle
// more, and records the key as the actor of what the handler does.
func (s *server) withAdmin(h pageHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss, err := s.session(r, cookieAdmin)
		if err != nil || ss.Kind != kindAdmin {
			seeOther(w, r, "/admin/login")
			return
		}
		ctx := twofa.WithMeta(r.Context(), visitorMeta(r, "key:"+ss.User))
		ok, err := s.adminKeyValid(ctx, ss)
		if err != nil {
			status, msg := s.codeProblem(r, err)
			s.renderError(w, r, status, "The console is unavailable", msg, errorPage{})
			return
		}
		if !ok {
			s.clearSession(w, r, cookieAdmin)
			seeOther(w, r, "/admin/login?notice=revoked")
			return
		}
		if r.Method == http.MethodPost {
			if !s.parseForm(w, r) {
				return
			}
			if !s.checkCSRF(r, ss) {
				s.renderError(w, r, http.StatusForbidden, "Please try again",
					"This form could not be accepted: it may be out of date or was sent from another site. Go back, reload the page and try again.",
					errorPage{NextURL: "/admin", NextText: "Back to the console"})
				return
			}
		}
		ss.Exp = s.now().Add(adminIdle).Unix()
		if err := s.setSession(w, r, ss); err != nil {
			status, msg := s.codeProblem(r, err)
			s.renderError(w, r, status, "The console is unavailable", msg, errorPage{})
			return
		}
		h(w, r.WithContext(ctx), ss)
	})
}

// adminKeyValid reports whether the session's key is still an unrevoked
// admin key of its tenant, so that revoking a key ends its sessions.
func (s *server) adminKeyValid(ctx context.Context, ss *session) (bool, error) {
	keys, err := s.svc.APIKeys(ctx, ss.Tenant)
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if k.ID == ss.User {
			return k.Tenant == ss.Tenant && k.Scope == twofa.ScopeAdmin && k.RevokedAt.IsZero(), nil
		}
	}
	return false, nil
}

// loginLimiter counts failed sign-ins per client address. It is in memory
// because the Service offers no public counter (the Store's Hit serves the
// Service's own rules), so each replica counts on its own. An admin key
// has 256 random bits: the limit is against noise in the logs and load on
// the database, not against guessing.
type loginLimiter struct {
	mu    sync.Mutex
	fails map[string]loginFails
}

type loginFails struct {
	n     int
	since time.Time
}

const (
	adminMaxFails   = 10
	adminFailWindow = 15 * time.Minute
)

// blocked reports whether ip has failed too often, and until when.
func (l *loginLimiter) blocked(ip string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.fails[ip]
	until := f.since.Add(adminFailWindow)
	return until, ok && f.n >= adminMaxFails && now.Before(until)
}

func (l *loginLimiter) fail(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fails == nil || len(l.fails) > 10000 {
		l.fails = map[string]loginFails{} // bounded: a flood forgets, it does not grow
	}
	f := l.fails[ip]
	if !now.Before(f.since.Add(adminFailWindow)) {
		f = loginFails{since: now}
	}
	f.n++
	l.fails[ip] = f
}

var adminLoginNotices = map[string]string{
	"out":     "You signed out.",
	"revoked": "Your key is no longer an admin key (it may have been revoked). Sign in with another.",
}

// adminLoginPage shows the sign-in form, under a session that holds only
// the form's CSRF token.
func (s *server) adminLoginPage(w http.ResponseWriter, r *http.Request) {
	if ss, err := s.session(r, cookieAdmin); err == nil && ss.Kind == kindAdmin {
		seeOther(w, r, "/admin")
		return
	}
	s.renderLogin(w, r, http.StatusOK, "", adminLoginNotices[r.URL.Query().Get("notice")])
}

func (s *server) renderLogin(w http.ResponseWriter, r *http.Request, status int, problem, notice string) {
	ss := newSession(kindAdminLogin, "-", "-", s.now().Add(adminIdle))
	if err := s.setSession(w, r, ss); err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "The console is unavailable", msg, errorPage{})
		return
	}
	s.render(w, r, status, "admin_login.html", view{Title: "Sign in to the admin console", Error: problem, Notice: notice, CSRF: ss.CSRF})
}

// handleAdminLogin signs in with an admin API key.
func (s *server) handleAdminLogin(lim *loginLimiter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss, err := s.session(r, cookieAdmin)
		if err != nil {
			s.renderLogin(w, r, http.StatusForbidden, "The sign-in form had expired. Please try again.", "")
			return
		}
		if !s.parseForm(w, r) {
			return
		}
		if !s.checkCSRF(r, ss) {
			s.renderLogin(w, r, http.StatusForbidden, "This form could not be accepted: it may be out of date or was sent from another site. Please try again.", "")
			return
		}
		meta := visitorMeta(r, "page:admin")
		now := s.now()
		if until, blocked := lim.blocked(meta.IP, now); blocked {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(until.Sub(now).Seconds()))))
			s.renderLogin(w, r, http.StatusTooManyRequests, "There have been too many failed sign-ins from your address. Please wait until "+s.untilText(until)+" and try again.", "")
			return
		}
		k, err := s.svc.Authenticate(twofa.WithMeta(r.Context(), meta), strings.TrimSpace(r.PostForm.Get("key")))
		switch {
		case twofa.ErrorCode(err) == twofa.EUNAUTHORIZED:
			lim.fail(meta.IP, now)
			s.log.WarnContext(r.Context(), "admin console: failed sign-in", "ip", meta.IP)
			s.renderLogin(w, r, http.StatusUnauthorized, "That key isn't valid. Paste the whole admin API key, which begins with tfa_.", "")
			return
		case err != nil:
			status, msg := s.codeProblem(r, err)
			s.renderLogin(w, r, status, msg, "")
			return
		case k.Scope != twofa.ScopeAdmin:
			s.renderLogin(w, r, http.StatusForbidden, "That is an application key. The console needs an admin key: an operator makes one with twofa apikey create --admin.", "")
			return
		}
		// A new session, with a new CSRF token, for the signed-in admin.
		if err := s.setSession(w, r, newSession(kindAdmin, k.Tenant, k.ID, now.Add(adminIdle))); err != nil {
			status, msg := s.codeProblem(r, err)
			s.renderLogin(w, r, status, msg, "")
			return
		}
		s.log.InfoContext(r.Context(), "admin console: signed in", "key", k.ID, "tenant", k.Tenant, "ip", meta.IP)
		seeOther(w, r, "/admin")
	})
}

// handleAdminLogout ends the console session.
func (s *server) handleAdminLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss, err := s.session(r, cookieAdmin)
		if err != nil {
			seeOther(w, r, "/admin/login")
			return
		}
		if !s.parseForm(w, r) {
			return
		}
		if !s.checkCSRF(r, ss) {
			s.renderError(w, r, http.StatusForbidden, "Please try again",
				"This form could not be accepted. Go back, reload the page and try again.", errorPage{})
			return
		}
		s.clearSession(w, r, cookieAdmin)
		seeOther(w, r, "/admin/login?notice=out")
	})
}

// adminUsersData is the users page's.
type adminUsersData struct {
	adminBase
	Query string
	Users []adminUserRow
	Open  string // the page of the user the query names exactly
	Next  string // the next page's URL; empty on the last
}

type adminUserRow struct {
	ID, URL     string
	Devices     int
	BackupCodes int
	Locked      bool
}

func adminUserURL(id string) string { return "/admin/users/" + url.PathEscape(id) }

// adminUsers finds the tenant's users by the start of their ID.
func (s *server) adminUsers(w http.ResponseWriter, r *http.Request, ss *session) {
	q := r.URL.Query()
	prefix := strings.TrimSpace(q.Get("q"))
	d := adminUsersData{adminBase: adminBase{Nav: "users", Tenant: ss.Tenant}, Query: prefix}
	users, err := s.svc.Users(r.Context(), ss.Tenant, prefix, q.Get("after"), adminPage+1)
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.render(w, r, status, "admin_users.html", view{Title: "Users", Error: msg, CSRF: ss.CSRF, Data: d})
		return
	}
	if len(users) > adminPage {
		users = users[:adminPage]
		d.Next = "/admin?" + url.Values{"q": {prefix}, "after": {users[len(users)-1].ID}}.Encode()
	}
	now := s.now()
	for _, u := range users {
		d.Users = append(d.Users, adminUserRow{ID: u.ID, URL: adminUserURL(u.ID), Devices: len(u.ActiveDevices()), BackupCodes: u.BackupCodes, Locked: u.Locked(now)})
	}
	if prefix != "" && !slices.ContainsFunc(d.Users, func(u adminUserRow) bool { return u.ID == prefix }) {
		d.Open = adminUserURL(prefix)
	}
	s.render(w, r, http.StatusOK, "admin_users.html", view{Title: "Users", CSRF: ss.CSRF, Data: d})
}

// adminUserData is a user's page.
type adminUserData struct {
	adminBase
	ID, URL, AuditURL string
	Devices           []adminDevice
	BackupCodes       int
	Failures          int
	Locked            string // why and until when; empty when not locked
	Enrolled          bool
	Disable           bool // the disable confirmation
}

type adminDevice struct {
	ID, Name, Status        string
	Added, LastUsed, Expiry time.Time
}

var adminUserNotices = map[string]string{
	"unlocked": "The user is unlocked: their failures are cleared.",
	"disabled": "Two-factor authentication is off for this user: their devices and backup codes are deleted.",
}

func (s *server) adminUserView(r *http.Request, ss *session) (adminUserData, error) {
	id := r.PathValue("user_id")
	u, err := s.svc.UserStatus(r.Context(), twofa.UserRef{Tenant: ss.Tenant, User: id})
	if err != nil {
		return adminUserData{}, err
	}
	d := adminUserData{
		adminBase: adminBase{Nav: "users", Tenant: ss.Tenant},
		ID:        u.ID, URL: adminUserURL(u.ID), AuditURL: "/admin/audit?" + url.Values{"user": {u.ID}, "after": {"0"}}.Encode(),
		BackupCodes: u.BackupCodes, Failures: u.Failures, Enrolled: u.Enrolled(),
	}
	for _, dev := range u.Devices {
		d.Devices = append(d.Devices, adminDevice{ID: dev.ID, Name: dev.Name, Status: string(dev.Status),
			Added: dev.CreatedAt, LastUsed: dev.LastUsedAt, Expiry: dev.ExpiresAt})
	}
	if u.Locked(s.now()) {
		d.Locked = "Locked after too many wrong codes until " + formatWhen(u.LockedUntil) + "."
		if !u.LockedUntil.Before(twofa.Forever) {
			d.Locked = "Locked after too many wrong codes, until an administrator unlocks them."
		}
	}
	return d, nil
}

// adminUser shows a user's factors and lock, with what may be done.
func (s *server) adminUser(w http.ResponseWriter, r *http.Request, ss *session) {
	d, err := s.adminUserView(r, ss)
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "We couldn't show that user", msg, errorPage{NextURL: "/admin", NextText: "Back to users"})
		return
	}
	s.render(w, r, http.StatusOK, "admin_user.html", view{Title: "User " + d.ID, Notice: adminUserNotices[r.URL.Query().Get("notice")], CSRF: ss.CSRF, Data: d})
}

// adminUnlock clears a user's failures and lock.
func (s *server) adminUnlock(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PathValue("user_id")
	err := s.svc.Unlock(r.Context(), twofa.UserRef{Tenant: ss.Tenant, User: id})
	if err != nil && !errors.Is(err, twofa.ErrNotFound) { // an unknown user has nothing to unlock
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "We couldn't unlock that user", msg, errorPage{NextURL: adminUserURL(id), NextText: "Back to the user"})
		return
	}
	seeOther(w, r, adminUserURL(id)+"?notice=unlocked")
}

// adminDisablePage asks before turning a user's 2FA off.
func (s *server) adminDisablePage(w http.ResponseWriter, r *http.Request, ss *session) {
	d, err := s.adminUserView(r, ss)
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "We couldn't show that user", msg, errorPage{NextURL: "/admin", NextText: "Back to users"})
		return
	}
	d.Disable = true
	s.render(w, r, http.StatusOK, "admin_user.html", view{Title: "Turn off two-factor authentication for " + d.ID + "?", CSRF: ss.CSRF, Data: d})
}

// adminDisable deletes a user's devices and backup codes.
func (s *server) adminDisable(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PathValue("user_id")
	if err := s.svc.Disable(r.Context(), twofa.UserRef{Tenant: ss.Tenant, User: id}); err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "We couldn't turn off two-factor authentication", msg, errorPage{NextURL: adminUserURL(id), NextText: "Back to the user"})
		return
	}
	seeOther(w, r, adminUserURL(id)+"?notice=disabled")
}

// auditTypes are the event types the audit page filters by.
var auditTypes = []twofa.EventType{
	twofa.EventVerifySucceeded, twofa.EventVerifyFailed, twofa.EventReplayRejected, twofa.EventLocked, twofa.EventUnlocked,
	twofa.EventBackupCodeUsed, twofa.EventBackupCodesIssued, twofa.EventEnrollStarted, twofa.EventEnrollConfirmed,
	twofa.EventEnrollFailed, twofa.EventEnrollExpired, twofa.EventDeviceRevoked, twofa.EventDeviceRenamed, twofa.EventDisabled,
	twofa.EventResyncStarted, twofa.EventResyncSucceeded, twofa.EventResyncFailed, twofa.EventLinkCreated, twofa.EventLinkUsed,
	twofa.EventPromptPassed, twofa.EventTenantUpdated, twofa.EventAPIKeyCreated, twofa.EventAPIKeyRevoked, twofa.EventKeysRotated,
}

// adminAuditData is the audit page's.
type adminAuditData struct {
	adminBase
	User, Type, After string // the filters as given
	Types             []twofa.EventType
	From              string // where the listing starts, in words
	Events            []adminEvent
	Next              string
	Invalid           bool // the After filter is the page's error
}

type adminEvent struct {
	*twofa.AuditEvent
	UserURL string
}

// Bounds of one audit page's scan, when a type filter skips events.
const (
	auditBatch    = 500
	auditMaxScans = 20
)

// adminAudit lists the tenant's audit events, oldest first, from a
// sequence number or a time (by default, the last 24 hours), filtered by
// user and type.
func (s *server) adminAudit(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	q := r.URL.Query()
	d := adminAuditData{adminBase: adminBase{Nav: "audit", Tenant: ss.Tenant},
		User: strings.TrimSpace(q.Get("user")), Type: q.Get("type"), After: strings.TrimSpace(q.Get("after")), Types: auditTypes}
	problem := func(status int, msg string) {
		s.render(w, r, status, "admin_audit.html", view{Title: "Audit log", Error: msg, CSRF: ss.CSRF, Data: d})
	}
	if d.Type != "" && !slices.Contains(auditTypes, twofa.EventType(d.Type)) {
		problem(http.StatusUnprocessableEntity, "Choose an event type from the list.")
		return
	}
	after, from, err := s.auditStart(ctx, ss.Tenant, d.After)
	if err != nil {
		if twofa.ErrorCode(err) == twofa.EINVALID {
			d.Invalid = true
			problem(http.StatusUnprocessableEntity, twofa.ErrorMessage(err))
			return
		}
		problem(s.codeProblem(r, err))
		return
	}
	d.From = from
	f := twofa.AuditFilter{Tenant: ss.Tenant, User: d.User, After: after, Limit: auditBatch}
	full := false
scan:
	for range auditMaxScans {
		events, err := s.svc.AuditEvents(ctx, f)
		if err != nil {
			problem(s.codeProblem(r, err))
			return
		}
		for _, e := range events {
			f.After = e.Seq
			if d.Type == "" || string(e.Type) == d.Type {
				d.Events = append(d.Events, adminEvent{AuditEvent: e, UserURL: adminUserURL(e.User)})
				if len(d.Events) == adminPage {
					full = true
					break scan
				}
			}
		}
		if len(events) < auditBatch {
			break
		}
		full = true // scanned the most a page may; there may be more
	}
	if full {
		d.Next = "/admin/audit?" + url.Values{"user": {d.User}, "type": {d.Type}, "after": {strconv.FormatInt(f.After, 10)}}.Encode()
	}
	s.render(w, r, http.StatusOK, "admin_audit.html", view{Title: "Audit log", CSRF: ss.CSRF, Data: d})
}

// auditStart reads the audit page's after filter: a sequence number, a
// date or a time in UTC, or nothing for the last 24 hours.
func (s *server) auditStart(ctx context.Context, tenant, after string) (int64, string, error) {
	if after == "" {
		t := s.now().Add(-24 * time.Hour)
		seq, err := s.seqBefore(ctx, tenant, t)
		return seq, "since " + formatWhen(t), err
	}
	if n, err := strconv.ParseInt(after, 10, 64); err == nil && n >= 0 {
		if n == 0 {
			return 0, "from the beginning", nil
		}
		return n, fmt.Sprintf("after entry %d", n), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, after, time.UTC); err == nil {
			seq, err := s.seqBefore(ctx, tenant, t)
			return seq, "since " + formatWhen(t), err
		}
	}
	return 0, "", twofa.Errorf(twofa.EINVALID, "“After” must be an entry number, a date such as 2026-03-01, or a UTC time such as 2026-03-01 14:30.")
}

// seqBefore returns the After that lists the tenant's audit events from
// the first at or after t. The log has no index by time, but its entries
// are appended in time order, so a binary search over sequence numbers,
// one indexed single-row query a step, finds the place without reading
// the log up to it.
func (s *server) seqBefore(ctx context.Context, tenant string, t time.Time) (int64, error) {
	// startsAt reports whether the listing after x starts at or after t.
	startsAt := func(x int64) (bool, *twofa.AuditEvent, error) {
		es, err := s.svc.AuditEvents(ctx, twofa.AuditFilter{Tenant: tenant, After: x, Limit: 1})
		if err != nil || len(es) == 0 {
			return true, nil, err
		}
		return !es[0].Time.Before(t), es[0], nil
	}
	ok, e, err := startsAt(0)
	if err != nil || ok {
		return 0, err
	}
	// Keep !startsAt(lo) and startsAt(hi); the answer is the least such hi.
	lo, hi := e.Seq-1, e.Seq
	for step := int64(1024); ; step *= 2 {
		ok, e, err := startsAt(hi)
		if err != nil {
			return 0, err
		}
		if ok {
			break
		}
		lo, hi = e.Seq-1, e.Seq+step
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, _, err := startsAt(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

// chartSeries are the outcomes the chart counts, with colours that keep
// at least 3:1 against white and apart from each other.
var chartSeries = []struct {
	Types []twofa.EventType
	Label string
	Color string
}{
	// A sign-in with a backup code succeeded as much as one with TOTP.
	{[]twofa.EventType{twofa.EventVerifySucceeded, twofa.EventBackupCodeUsed}, "Succeeded", "#0b57d0"},
	{[]twofa.EventType{twofa.EventVerifyFailed}, "Failed", "#b3261e"},
	{[]twofa.EventType{twofa.EventReplayRejected}, "Replayed code", "#8a5a00"},
	{[]twofa.EventType{twofa.EventLocked}, "Locked out", "#6a1b9a"},
}

// Geometry of the chart, in SVG user units.
const (
	chartW, chartH = 600, 260
	chartLeft      = 44
	chartTop       = 12
	chartBottom    = 36
	chartHours     = 24
	chartMaxEvents = 200000 // beyond this many events, the chart says it is partial
)

// adminChartData is the chart page's.
type adminChartData struct {
	adminBase
	Start, End time.Time
	Legend     []chartLegend
	Rows       []chartRow // the table: one row an hour
	Bars       []chartBar
	XLabels    []chartLabel
	YTicks     []chartLabel
	Max        int
	Partial    bool
	W, H       int
	Left, Base int // the plot's left edge and baseline
	Right      int
}

type chartLegend struct {
	Label, Color string
	Total        int
}

type chartRow struct {
	Hour   string
	Counts []int
	Total  int
}

type chartBar struct {
	X, Y, W, H  int
	Color, Kind string
	Count       int
	Title       string
}

type chartLabel struct {
	X, Y int
	Text string
}

// adminChart draws verifications by outcome over the last 24 hours, an
// hour a bar, as an SVG drawn here (no script) with the same numbers in a
// table for screen readers and for anyone who wants the figures.
func (s *server) adminChart(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	end := s.now().UTC().Truncate(time.Hour).Add(time.Hour)
	start := end.Add(-chartHours * time.Hour)
	counts := make([][]int, chartHours)
	for i := range counts {
		counts[i] = make([]int, len(chartSeries))
	}
	after, err := s.seqBefore(ctx, ss.Tenant, start)
	d := adminChartData{adminBase: adminBase{Nav: "chart", Tenant: ss.Tenant}, Start: start, End: end}
	seen := 0
	for err == nil {
		var events []*twofa.AuditEvent
		events, err = s.svc.AuditEvents(ctx, twofa.AuditFilter{Tenant: ss.Tenant, After: after, Limit: 1000})
		for _, e := range events {
			after = e.Seq
			h := int(e.Time.Sub(start) / time.Hour)
			if h < 0 || h >= chartHours {
				continue
			}
			for i, c := range chartSeries {
				if slices.Contains(c.Types, e.Type) {
					counts[h][i]++
				}
			}
		}
		seen += len(events)
		if len(events) < 1000 {
			break
		}
		if seen >= chartMaxEvents {
			d.Partial = true
			break
		}
	}
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "We couldn't draw the chart", msg, errorPage{NextURL: "/admin", NextText: "Back to the console"})
		return
	}
	d.layout(counts)
	s.render(w, r, http.StatusOK, "admin_chart.html", view{Title: "Verifications in the last 24 hours", CSRF: ss.CSRF, Data: d})
}

// layout places the bars, stacked by outcome, and the axes' labels.
func (d *adminChartData) layout(counts [][]int) {
	d.W, d.H, d.Left, d.Base, d.Right = chartW, chartH, chartLeft, chartH-chartBottom, chartW-4
	for _, c := range chartSeries {
		d.Legend = append(d.Legend, chartLegend{Label: c.Label, Color: c.Color})
	}
	for h, row := range counts {
		total := 0
		for i, n := range row {
			total += n
			d.Legend[i].Total += n
		}
		d.Max = max(d.Max, total)
		hour := d.Start.Add(time.Duration(h) * time.Hour)
		d.Rows = append(d.Rows, chartRow{Hour: hour.Format("15:04"), Counts: row, Total: total})
	}
	top := niceCeil(d.Max)
	plotH := d.Base - chartTop
	slot := float64(d.Right-d.Left) / chartHours
	for h, row := range d.Rows {
		x := d.Left + int(float64(h)*slot+slot*0.15)
		y := d.Base
		for i, n := range row.Counts {
			if n == 0 {
				continue
			}
			bh := max(1, n*plotH/top)
			y -= bh
			c := chartSeries[i]
			d.Bars = append(d.Bars, chartBar{X: x, Y: y, W: int(slot * 0.7), H: bh, Color: c.Color, Kind: string(c.Types[0]), Count: n,
				Title: fmt.Sprintf("%s–%s UTC: %d %s", row.Hour, d.Start.Add(time.Duration(h+1)*time.Hour).Format("15:04"), n, strings.ToLower(c.Label))})
		}
		if h%3 == 0 {
			d.XLabels = append(d.XLabels, chartLabel{X: d.Left + int(float64(h)*slot+slot/2), Y: d.Base + 18, Text: row.Hour})
		}
	}
	ticks := []int{0, top}
	if top%2 == 0 {
		ticks = []int{0, top / 2, top}
	}
	for _, v := range ticks {
		d.YTicks = append(d.YTicks, chartLabel{X: d.Left - 6, Y: d.Base - v*plotH/top, Text: strconv.Itoa(v)})
	}
}

// niceCeil rounds n up to 1, 2 or 5 times a power of ten, for the y axis.
func niceCeil(n int) int {
	if n <= 1 {
		return 1
	}
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}

// adminKeysData is the keys page's. The counts of sealed values span
// every tenant, so a tenant's admin sees the share re-sealed, not them:
// like the audit chain's head, other tenants' volume stays with the
// operator (twofa keys status).
type adminKeysData struct {
	adminBase
	Active   uint32
	Stale    bool
	Percent  int // of sealed values under the active key
	Runbook  string
	Commands []string
}

// adminKeys shows the state of master key rotation.
func (s *server) adminKeys(w http.ResponseWriter, r *http.Request, ss *session) {
	active, total, stale, err := s.svc.KeyStatus(r.Context())
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "We couldn't read the keys' state", msg, errorPage{NextURL: "/admin", NextText: "Back to the console"})
		return
	}
	d := adminKeysData{adminBase: adminBase{Nav: "keys", Tenant: ss.Tenant}, Active: active, Stale: stale > 0, Percent: 100,
		Runbook: "docs/operations.md, “Rotation runbook”"}
	if total > 0 {
		d.Percent = (total - stale) * 100 / total // rounded down: 100 only when done
	}
	s.render(w, r, http.StatusOK, "admin_keys.html", view{Title: "Master keys", CSRF: ss.CSRF, Data: d})
}
