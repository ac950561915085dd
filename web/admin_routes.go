package web

import "net/http"

// addAdminRoutes is the table of contents of the admin console (admin.go):
// every page but the sign-in needs a session of an admin API key.
func (s *server) addAdminRoutes(mux *http.ServeMux) {
	lim := &loginLimiter{}
	mux.HandleFunc("GET /admin/login", s.adminLoginPage)
	mux.Handle("POST /admin/login", s.handleAdminLogin(lim))
	mux.Handle("POST /admin/logout", s.handleAdminLogout())

	mux.Handle("GET /admin", s.withAdmin(s.adminUsers))
	mux.Handle("GET /admin/users/{user_id}", s.withAdmin(s.adminUser))
	mux.Handle("POST /admin/users/{user_id}/unlock", s.withAdmin(s.adminUnlock))
	mux.Handle("GET /admin/users/{user_id}/disable", s.withAdmin(s.adminDisablePage))
	mux.Handle("POST /admin/users/{user_id}/disable", s.withAdmin(s.adminDisable))
	mux.Handle("GET /admin/audit", s.withAdmin(s.adminAudit))
	mux.Handle("GET /admin/chart", s.withAdmin(s.adminChart))
	mux.Handle("GET /admin/keys", s.withAdmin(s.adminKeys))
}
