package web

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/prompt"
)

// The hosted prompt, like Duo's: an application sends its user to
//
//	GET /prompt?tenant=T&request=TOKEN
//
// with a request signed as package prompt describes. twofa asks for a code
// and, once one is valid, redirects to the request's return URL with
//
//	twofa_result=TOKEN
//
// appended to its query: a prompt.Result the application checks with
// prompt.ParseResult, within prompt.ResultLife. A user who gives up is sent back with
// twofa_error=cancelled instead.
const (
	ParamResult = "twofa_result"
	ParamError  = "twofa_error"
)

// promptData is the prompt page's.
type promptData struct {
	Form      codeForm
	CancelURL string
	NoFactor  bool // nothing to verify: the form is left out
	Email     emailOffer
}

// handlePromptPage checks the application's request and asks for a code.
// A bad request never redirects: its return URL is not to be trusted.
func (s *server) handlePromptPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		tenant, token := q.Get("tenant"), q.Get("request")
		if tenant == "" || token == "" {
			s.renderError(w, r, http.StatusBadRequest, "This sign-in request can't be used",
				"This page needs a sign-in request from the site you came from. Go back to that site and sign in again.",
				errorPage{Detail: "the query needs tenant and request parameters"})
			return
		}
		ctx := twofa.WithMeta(r.Context(), visitorMeta(r, "page:prompt"))
		req, err := s.svc.PromptRequest(ctx, tenant, token)
		if err != nil {
			s.badPromptRequest(w, r, err)
			return
		}
		exp := time.Unix(req.ExpiresAt, 0)
		ss := newSession(kindPrompt, req.Tenant, req.User, exp)
		ss.Request = token
		if err := s.setSession(w, r, ss); err != nil {
			s.badPromptRequest(w, r, err)
			return
		}
		s.renderPrompt(w, r.WithContext(ctx), ss, req.ReturnURL, http.StatusOK, "", false)
	})
}

// renderPrompt shows the prompt for the session's user: the code forms,
// "email me a code" when they have an email address, or the form for an
// emailed code when one is on its way. A problem, or the user's lock,
// shows above them.
func (s *server) renderPrompt(w http.ResponseWriter, r *http.Request, ss *session, returnURL string, status int, problem string, invalid bool) {
	status, v := s.promptView(r, ss, returnURL, status, problem, invalid)
	s.render(w, r, status, "prompt.html", v, formOrigin(returnURL)...)
}

// promptView is renderPrompt's page and status.
func (s *server) promptView(r *http.Request, ss *session, returnURL string, status int, problem string, invalid bool) (int, view) {
	data := promptData{CancelURL: withParam(returnURL, ParamError, "cancelled"), Form: promptForm(ss, invalid)}
	u, err := s.svc.UserStatus(r.Context(), ss.ref())
	switch {
	case err != nil:
		status, problem = s.codeProblem(r, err)
	case len(u.ActiveDevices()) == 0 && u.BackupCodes == 0:
		data.NoFactor = true
		status, problem = s.codeProblem(r, twofa.ErrNotEnrolled)
	case u.Locked(s.now()) && problem == "":
		status, problem = http.StatusTooManyRequests, s.lockedText(u.LockedUntil)
	}
	if u != nil && s.emailOn() {
		app := false
		for _, d := range u.ActiveDevices() {
			data.Email.Offer = data.Email.Offer || d.Kind == twofa.KindEmail
			app = app || d.Kind != twofa.KindEmail
		}
		// Email alone, where the tenant allows it: no app or backup code
		// to ask for.
		data.Email.Only = data.Email.Offer && !app && u.BackupCodes == 0
	}
	if ss.Challenge != "" && u != nil {
		if c, err := s.svc.Challenge(r.Context(), ss.ref(), ss.Challenge); err == nil && c.State(s.now()) == twofa.ChallengePending {
			data.Email.Sent, data.Email.ResendIn = true, s.resendIn(c)
			if d := u.Device(c.DeviceID); d != nil {
				data.Email.Address = maskAddress(d.Address)
			}
		}
	}
	return status, view{Title: "Confirm it's you", Error: problem, CSRF: ss.CSRF, Data: data}
}

func promptForm(ss *session, invalid bool) codeForm {
	return codeForm{Action: "/prompt", CSRF: ss.CSRF, Button: "Verify", Invalid: invalid}
}

func (s *server) badPromptRequest(w http.ResponseWriter, r *http.Request, err error) {
	if twofa.ErrorCode(err) != twofa.EINVALID {
		status, msg := s.codeProblem(r, err)
		s.renderError(w, r, status, "This sign-in request can't be used", msg, errorPage{})
		return
	}
	msg := "The site that sent you here made a request we can't accept. Go back to that site and try again; if this keeps happening, tell its support team."
	if strings.Contains(twofa.ErrorMessage(err), "expired") {
		msg = "This sign-in request has expired. Go back to the site you came from and sign in again."
	}
	s.renderError(w, r, http.StatusBadRequest, "This sign-in request can't be used", msg, errorPage{Detail: twofa.ErrorMessage(err)})
}

// promptRequest checks the session's request again (the tenant's return
// URLs or key may have changed); when it fails, the page says so and ends
// the session.
func (s *server) promptRequest(w http.ResponseWriter, r *http.Request, ss *session) (*prompt.Request, bool) {
	req, err := s.svc.PromptRequest(r.Context(), ss.Tenant, ss.Request)
	if err != nil {
		s.clearSession(w, r, cookiePrompt)
		s.badPromptRequest(w, r, err)
		return nil, false
	}
	return req, true
}

// promptVerify checks the code and, when it is valid, sends the user back
// with a signed result.
func (s *server) promptVerify(w http.ResponseWriter, r *http.Request, ss *session) {
	req, ok := s.promptRequest(w, r, ss)
	if !ok {
		return
	}
	res, err := s.svc.Verify(r.Context(), ss.ref(), r.PostForm.Get("code"))
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.renderPrompt(w, r, ss, req.ReturnURL, status, msg, true)
		return
	}
	if !res.Valid {
		status := http.StatusUnprocessableEntity
		if !res.LockedUntil.IsZero() {
			status = http.StatusTooManyRequests
		}
		s.renderPrompt(w, r, ss, req.ReturnURL, status, s.resultProblem(res), true)
		return
	}
	s.promptPassed(w, r, req, res)
}

// promptPassed sends the user back with a signed result.
func (s *server) promptPassed(w http.ResponseWriter, r *http.Request, req *prompt.Request, res *twofa.VerifyResult) {
	tok, err := s.svc.PromptResult(r.Context(), req, res)
	if err != nil {
		status, msg := s.codeProblem(r, err)
		s.render(w, r, status, "error.html", view{Title: "We couldn't send you back", Error: msg, Data: errorPage{}})
		return
	}
	s.clearSession(w, r, cookiePrompt)
	seeOther(w, r, withParam(req.ReturnURL, ParamResult, tok), formOrigin(req.ReturnURL)...)
}

// withParam appends a query parameter to a URL, keeping the rest of the
// query as the application wrote it.
func withParam(raw, key, value string) string {
	base, frag, hasFrag := strings.Cut(raw, "#")
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
		if strings.HasSuffix(base, "?") || strings.HasSuffix(base, "&") {
			sep = ""
		}
	}
	out := base + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
	if hasFrag {
		out += "#" + frag
	}
	return out
}

// formOrigin returns the origin of a return URL for the page's
// form-action, or nothing if it has characters a CSP source must not.
func formOrigin(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil
	}
	for _, c := range u.Host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return nil
		}
	}
	return []string{u.Scheme + "://" + u.Host}
}
