package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

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
