package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

var adminLoginNotices = map[string]string{
	"out":     "You signed out.",
	"revoked": "Your key is no longer an admin key (it may have been revoked). Sign in with another.",
}

// handleAdminLoginPage shows the sign-in form, under a session that holds
// only the form's CSRF token.
func (s *server) handleAdminLoginPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ss, err := s.session(r, cookieAdmin); err == nil && ss.Kind == kindAdmin {
			seeOther(w, r, "/admin")
			return
		}
		s.renderLogin(w, r, http.StatusOK, "", adminLoginNotices[r.URL.Query().Get("notice")])
	})
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

// handleAdminLogin signs in with an admin API key. The key is checked
// before anything else: a valid admin key always signs in, and the limiter
// answers only for keys that do not (admin_limit.go).
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
		tooMany := func(until time.Time) {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(until.Sub(now).Seconds()))))
			s.renderLogin(w, r, http.StatusTooManyRequests, "There have been too many failed sign-ins from your address. Please wait until "+s.untilText(until)+" and try again.", "")
		}
		k, err := s.svc.Authenticate(twofa.WithMeta(r.Context(), meta), strings.TrimSpace(r.PostForm.Get("key")))
		switch {
		case twofa.ErrorCode(err) == twofa.EUNAUTHORIZED:
			n, until := lim.fail(meta.IP, now)
			if n > adminMaxFails {
				tooMany(until) // not logged: the log says so once, below
				return
			}
			if n == adminMaxFails {
				s.log.WarnContext(r.Context(), "admin console: failed sign-in; later ones from this address are answered 429 and not logged", "ip", meta.IP, "until", until)
			} else {
				s.log.WarnContext(r.Context(), "admin console: failed sign-in", "ip", meta.IP)
			}
			s.renderLogin(w, r, http.StatusUnauthorized, "That key isn't valid. Paste the whole admin API key, which begins with tfa_.", "")
			return
		case err != nil:
			status, msg := s.codeProblem(r, err)
			s.renderLogin(w, r, status, msg, "")
			return
		case k.Scope != twofa.ScopeAdmin:
			// Over the budget, an application key is answered as a wrong
			// one: the address learns no more than while it was within it.
			if until, spent := lim.spent(meta.IP, now); spent {
				tooMany(until)
				return
			}
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
