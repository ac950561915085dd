package web

import (
	"net/http"

	"github.com/twofa/twofa"
)

// addRoutes is the table of contents of the API: every route, its handler
// and who may call it.
//
// Handlers come in two shapes. An API route, and a page that comes before
// any session (opening a link, the prompt's first page, the console's
// sign-in), is made by a maker, func (s *server) handleX() http.Handler,
// which can set up what the handler needs once. A page of a session is a
// pageHandler, func (s *server) xPage(w, r, ss *session), mounted by
// withSession or withAdmin, which find and check the session first.
func (s *server) addRoutes(mux *http.ServeMux) {
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", s.handleReadyz())
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.Handle("GET /v1/openapi.json", handleOpenAPI())

	app := s.requireScope(false)
	admin := s.requireScope(true)
	mux.Handle("POST /v1/users/{user_id}/totp", app(s.handleEnroll()))
	mux.Handle("POST /v1/users/{user_id}/totp/{device_id}/confirm", app(s.handleConfirm()))
	mux.Handle("POST /v1/users/{user_id}/totp/{device_id}/resync", app(s.handleResync()))
	mux.Handle("POST /v1/users/{user_id}/verify", app(s.handleVerify()))
	mux.Handle("GET /v1/users/{user_id}", app(s.handleUser()))
	mux.Handle("DELETE /v1/users/{user_id}", app(s.handleDisable()))
	mux.Handle("DELETE /v1/users/{user_id}/devices/{device_id}", app(s.handleRevokeDevice()))
	mux.Handle("POST /v1/users/{user_id}/backup-codes", app(s.handleBackupCodes()))
	mux.Handle("POST /v1/users/{user_id}/enrollment-links", app(s.handleCreateLink(twofa.LinkEnroll)))
	mux.Handle("POST /v1/users/{user_id}/manage-links", app(s.handleCreateLink(twofa.LinkManage)))
	mux.Handle("POST /v1/users/{user_id}/email", app(s.handleEnrollEmail()))
	mux.Handle("POST /v1/users/{user_id}/email/{device_id}/confirm", app(s.handleConfirmEmail()))
	mux.Handle("POST /v1/users/{user_id}/challenges", app(s.handleStartChallenge()))
	mux.Handle("GET /v1/users/{user_id}/challenges/{challenge_id}", app(s.handleGetChallenge()))
	mux.Handle("POST /v1/users/{user_id}/challenges/{challenge_id}/resend", app(s.handleResendChallenge()))
	mux.Handle("POST /v1/users/{user_id}/challenges/{challenge_id}/verify", app(s.handleVerifyChallenge()))

	mux.Handle("POST /v1/users/{user_id}/unlock", admin(s.handleUnlock()))
	mux.Handle("GET /v1/audit", admin(s.handleAudit()))
	mux.Handle("GET /v1/audit/verify", admin(s.handleAuditVerify()))
	mux.Handle("PUT /v1/webhook", admin(s.handleSetWebhook()))
	mux.Handle("GET /v1/webhook", admin(s.handleWebhook()))
	mux.Handle("DELETE /v1/webhook", admin(s.handleRemoveWebhook()))
	mux.Handle("GET /v1/outbox", admin(s.handleOutbox()))
	mux.Handle("POST /v1/outbox/{message_id}/retry", admin(s.handleOutboxRetry()))

	s.addPageRoutes(mux) // the hosted pages and the links to them: pages_routes.go
	s.addAdminRoutes(mux)
}
