package web

import "net/http"

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
