package web

import "net/http"

// addAdminRoutes is the table of contents of the admin console (admin.go):
// every page but the sign-in needs a session of an admin API key.
func (s *server) addAdminRoutes(mux *http.ServeMux) {
	lim := &loginLimiter{}
	keys := &adminKeys{}
	admin := func(h pageHandler) http.Handler { return s.withAdmin(keys, h) }
	mux.Handle("GET /admin/login", s.handleAdminLoginPage())
	mux.Handle("POST /admin/login", s.handleAdminLogin(lim))
	mux.Handle("POST /admin/logout", s.handleAdminLogout())

	mux.Handle("GET /admin", admin(s.adminUsers))
	mux.Handle("GET /admin/users/{user_id}", admin(s.adminUser))
	mux.Handle("POST /admin/users/{user_id}/unlock", admin(s.adminUnlock))
	mux.Handle("GET /admin/users/{user_id}/disable", admin(s.adminDisablePage))
	mux.Handle("POST /admin/users/{user_id}/disable", admin(s.adminDisable))
	mux.Handle("GET /admin/audit", admin(s.adminAudit))
	mux.Handle("GET /admin/chart", admin(s.adminChart))
	mux.Handle("GET /admin/keys", admin(s.adminKeys))
}
