package web

import "net/http"

// addPageRoutes is the table of contents of the hosted pages, the HTML
// that people open. (The API routes that hand out links are in routes.go.)
func (s *server) addPageRoutes(mux *http.ServeMux) {
	mux.Handle("GET /static/", handleStatic())
	mux.Handle("GET /l/{token}", s.handleOpenLink())

	links := []string{kindEnroll, kindManage}
	manage := []string{kindManage}
	mux.Handle("GET /enroll", s.withSession(cookieLink, links, s.enrollPage))
	mux.Handle("POST /enroll", s.withSession(cookieLink, links, s.enrollConfirm))
	mux.Handle("POST /enroll/prove", s.withSession(cookieLink, links, s.enrollProve))
	mux.Handle("POST /enroll/restart", s.withSession(cookieLink, links, s.enrollRestart))
	mux.Handle("POST /enroll/saved", s.withSession(cookieLink, links, s.enrollSaved))
	mux.Handle("GET /enroll/email", s.withSession(cookieLink, links, s.emailPage))
	mux.Handle("POST /enroll/email", s.withSession(cookieLink, links, s.emailBegin))
	mux.Handle("POST /enroll/email/prove", s.withSession(cookieLink, links, s.emailProve))
	mux.Handle("POST /enroll/email/confirm", s.withSession(cookieLink, links, s.emailConfirm))
	mux.Handle("POST /enroll/email/resend", s.withSession(cookieLink, links, s.emailResend))

	mux.Handle("GET /manage", s.withSession(cookieLink, manage, s.managePage))
	mux.Handle("POST /manage/rename", s.withSession(cookieLink, manage, s.manageRename))
	mux.Handle("GET /manage/remove", s.withSession(cookieLink, manage, s.manageRemovePage))
	mux.Handle("POST /manage/remove", s.withSession(cookieLink, manage, s.manageRemove))
	mux.Handle("GET /manage/backup-codes", s.withSession(cookieLink, manage, s.manageCodesPage))
	mux.Handle("POST /manage/backup-codes", s.withSession(cookieLink, manage, s.manageCodes))

	mux.Handle("GET /prompt", s.handlePromptPage())
	mux.Handle("POST /prompt", s.withSession(cookiePrompt, []string{kindPrompt}, s.promptVerify))
	mux.Handle("POST /prompt/email", s.withSession(cookiePrompt, []string{kindPrompt}, s.promptEmail))
	mux.Handle("POST /prompt/email/verify", s.withSession(cookiePrompt, []string{kindPrompt}, s.promptEmailVerify))
	mux.Handle("POST /prompt/email/resend", s.withSession(cookiePrompt, []string{kindPrompt}, s.promptEmailResend))
}
