package web

// The admin console: a tenant's administrators sign in with an admin API
// key and find users, unlock or disable them, read the audit log, see the
// last day's verifications by outcome, and the state of key rotation. It
// runs on the hosted pages' machinery (pages.go): a signed session cookie
// of its own, CSRF tokens on every form, the pages' headers. An admin of
// one tenant sees that tenant only. Routes: admin_routes.go; this file
// keeps the console's sessions, and each page has a file of its own
// (admin_login.go, admin_users.go, admin_audit.go, admin_chart.go,
// admin_keys.go).

import (
	"context"
	"net/http"
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
func (s *server) withAdmin(keys *adminKeys, h pageHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss, err := s.session(r, cookieAdmin)
		if err != nil || ss.Kind != kindAdmin {
			seeOther(w, r, "/admin/login")
			return
		}
		ctx := twofa.WithMeta(r.Context(), visitorMeta(r, "key:"+ss.User))
		ok, err := keys.valid(ctx, s.svc, ss, s.now())
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

// adminKeyTTL bounds how long a console session may outlive the
// revocation of its key: as long as the API accepts a revoked key.
const adminKeyTTL = 5 * time.Second

// adminKeys remembers, for a few seconds, which keys are unrevoked admin
// keys of their tenant, so that a console request does not list its
// tenant's keys, revoked ones included, every time.
type adminKeys struct {
	mu sync.Mutex
	m  map[string]adminKeyState // by key ID
}

type adminKeyState struct {
	tenant  string
	admin   bool // an unrevoked admin key of tenant
	expires time.Time
}

// valid reports whether the session's key is still an unrevoked admin key
// of its tenant, so that revoking a key ends its sessions (within
// adminKeyTTL). One listing of a tenant's keys answers for all of them.
func (c *adminKeys) valid(ctx context.Context, svc *twofa.Service, ss *session, now time.Time) (bool, error) {
	c.mu.Lock()
	st, ok := c.m[ss.User]
	c.mu.Unlock()
	if ok && now.Before(st.expires) && st.tenant == ss.Tenant {
		return st.admin, nil
	}
	keys, err := svc.APIKeys(ctx, ss.Tenant)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > 10000 {
		c.m = map[string]adminKeyState{} // bounded: a flood forgets, it does not grow
	}
	admin := false
	for _, k := range keys {
		ok := k.Tenant == ss.Tenant && k.Scope == twofa.ScopeAdmin && k.RevokedAt.IsZero()
		if k.Scope == twofa.ScopeAdmin {
			c.m[k.ID] = adminKeyState{tenant: k.Tenant, admin: ok, expires: now.Add(adminKeyTTL)}
		}
		if k.ID == ss.User {
			admin = ok
		}
	}
	return admin, nil
}
