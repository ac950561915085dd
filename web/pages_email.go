package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

// The email factor on the hosted pages: adding an address from an
// enrollment or manage link, and "email me a code" on the prompt.

// emailData is the email page's: the address form, or, once a code was
// sent, the form for it.
type emailData struct {
	Done         bool // confirmed, from an enrollment link
	Sent         bool
	Address      string // typed, or where the code went (masked on the prompt)
	Action       string // where the code goes
	ResendAction string
	Button       string
	ResendIn     int // seconds until a resend is taken
	Back         string
	BackText     string
}

// emailOffer is what the prompt offers by email.
type emailOffer struct {
	Offer    bool // the user has an email device
	Only     bool // and nothing else: no app, no backup codes
	Sent     bool // a code is on its way
	Address  string
	ResendIn int
}

// resendIn is how many seconds remain until the challenge takes a
// resend, rounded up, for the page's countdown: a button back a fraction
// of a second early would be refused. A count of seconds, not a time, so
// that a visitor's clock set wrong does not shift it.
func (s *server) resendIn(c *twofa.Challenge) int {
	d := c.LastSentAt.Add(twofa.ResendGap).Sub(s.now())
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// emailOn reports whether this server sends email, without which the
// pages offer no email.
func (s *server) emailOn() bool { return s.svc.Delivers(twofa.ChannelEmail) }

// maskAddress shows enough of an address for its owner to know it, and
// little to anyone else: "j***@example.com".
func maskAddress(a string) string {
	at := strings.LastIndexByte(a, '@')
	if at < 1 {
		return "your email address"
	}
	return a[:1] + "***" + a[at:]
}

func (s *server) emailView(ss *session, data emailData, problem string) view {
	if ss.Kind == kindManage {
		data.Back, data.BackText = "/manage", "Back to your devices"
	} else {
		data.Back, data.BackText = "/enroll", "Use an authenticator app instead"
	}
	return view{Title: "Add an email address", Error: problem, CSRF: ss.CSRF, Data: data}
}

// emailPage asks for the address to add, or, while a code is on its way,
// for the code.
func (s *server) emailPage(w http.ResponseWriter, r *http.Request, ss *session) {
	if r.URL.Query().Get("notice") == "confirmed" && ss.Kind == kindEnroll {
		v := s.emailView(ss, emailData{Done: true}, "")
		v.Title = "Your email address is confirmed"
		s.render(w, r, http.StatusOK, "email.html", v)
		return
	}
	if !s.emailOn() {
		status, msg := s.emailProblem(r, twofa.ErrUnavailable)
		s.renderError(w, r, status, "Email isn't available", msg, errorPage{NextURL: "/" + ss.Kind, NextText: "Back"})
		return
	}
	if need, err := s.needsProof(r, ss); err != nil || need {
		if err != nil {
			s.enrollProblem(w, r, ss, err)
			return
		}
		s.render(w, r, http.StatusOK, "confirm.html", emailProveView(ss, ""))
		return
	}
	if ss.PendingEmail != "" {
		if c, err := s.svc.Challenge(r.Context(), ss.ref(), ss.Challenge); err == nil && c.State(s.now()) == twofa.ChallengePending {
			s.render(w, r, http.StatusOK, "email.html", s.emailView(ss, s.emailSent(r, ss, c), ""))
			return
		}
	}
	s.render(w, r, http.StatusOK, "email.html", s.emailView(ss, emailData{}, ""))
}

// emailProveView asks for a current code before an address is added, as
// for a device (needsProof), and comes back to the address form.
func emailProveView(ss *session, problem string) view {
	v := proveView(ss, problem)
	d := v.Data.(confirmData)
	d.Form.Action = "/enroll/email/prove"
	d.Intro = "Before you add an email address, type a code from a device you already have, or one of your backup codes."
	v.Data = d
	return v
}

// emailProve checks a current code of the user, through the one attempt
// path, and lets the session add an address.
func (s *server) emailProve(w http.ResponseWriter, r *http.Request, ss *session) {
	if problem, status := s.confirmCode(r, ss); problem != "" {
		s.render(w, r, status, "confirm.html", emailProveView(ss, problem))
		return
	}
	ss.Proven = true
	if err := s.setSession(w, r, ss); err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	seeOther(w, r, "/enroll/email")
}

// emailSent is the code form of the session's email enrollment.
func (s *server) emailSent(r *http.Request, ss *session, c *twofa.Challenge) emailData {
	d := emailData{Sent: true, Action: "/enroll/email/confirm", ResendAction: "/enroll/email/resend", Button: "Confirm",
		ResendIn: s.resendIn(c)}
	if u, err := s.svc.UserStatus(r.Context(), ss.ref()); err == nil {
		if dev := u.Device(c.DeviceID); dev != nil {
			d.Address = dev.Address
		}
	}
	return d
}

// emailBegin adds a pending email device and sends it a code.
func (s *server) emailBegin(w http.ResponseWriter, r *http.Request, ss *session) {
	if need, err := s.needsProof(r, ss); err != nil || need {
		if err != nil {
			s.enrollProblem(w, r, ss, err)
			return
		}
		s.render(w, r, http.StatusForbidden, "confirm.html", emailProveView(ss, ""))
		return
	}
	address := strings.TrimSpace(r.PostForm.Get("address"))
	en, err := s.svc.BeginEmailEnrollment(r.Context(), ss.ref(), address, "")
	if err != nil {
		status, msg := s.emailProblem(r, err)
		s.render(w, r, status, "email.html", s.emailView(ss, emailData{Address: address}, msg))
		return
	}
	ss.PendingEmail, ss.Challenge = en.Device.ID, en.Challenge.ID
	if err := s.setSession(w, r, ss); err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	d := emailData{Sent: true, Address: en.Device.Address, Action: "/enroll/email/confirm", ResendAction: "/enroll/email/resend",
		Button: "Confirm", ResendIn: s.resendIn(en.Challenge)}
	s.render(w, r, http.StatusOK, "email.html", s.emailView(ss, d, ""))
}

// emailProblem explains why an address cannot be added or a code sent.
func (s *server) emailProblem(r *http.Request, err error) (int, string) {
	status, msg := s.codeProblem(r, err)
	switch {
	case errors.Is(err, twofa.ErrUnavailable):
		msg = "This site can't send email codes. Use an authenticator app instead."
	case errors.Is(err, twofa.ErrAddressTaken):
		msg = "That address is already one of your ways to sign in."
	case errors.Is(err, twofa.ErrRestrictedOnly):
		msg = "Email can only be a backup way to sign in. Set up an authenticator app first, then add your email address."
	case twofa.ErrorCode(err) == twofa.EINVALID:
		msg = "That doesn't look like an email address. Type it as jane@example.com."
	case errors.Is(err, twofa.ErrDeviceLimit):
		msg = "You have the most devices allowed. Remove one you no longer use, then add this address."
	case errors.Is(err, twofa.ErrRateLimited):
		// Too soon after the last code, or too many codes lately.
		var te *twofa.Error
		if errors.As(err, &te) && !te.Until.IsZero() {
			msg = "We can send another code at " + s.untilText(te.Until) + ". Any code we sent you in the last 10 minutes works."
		}
	}
	return status, msg
}

// emailCodeProblem explains an emailed code the Service refused.
func (s *server) emailCodeProblem(r *http.Request, err error) (int, string) {
	status, msg := s.codeProblem(r, err)
	if errors.Is(err, twofa.ErrMalformedCode) {
		msg = "That doesn't look like a code. Type the 8 digits from the newest email we sent you (spaces are fine)."
	}
	return status, msg
}

// emailConfirm checks the code of the session's email enrollment.
func (s *server) emailConfirm(w http.ResponseWriter, r *http.Request, ss *session) {
	if ss.PendingEmail == "" {
		seeOther(w, r, "/enroll/email")
		return
	}
	again := func(status int, msg string) {
		d := emailData{Sent: true, Action: "/enroll/email/confirm", ResendAction: "/enroll/email/resend", Button: "Confirm"}
		if c, err := s.svc.Challenge(r.Context(), ss.ref(), ss.Challenge); err == nil {
			d = s.emailSent(r, ss, c)
		}
		s.render(w, r, status, "email.html", s.emailView(ss, d, msg))
	}
	res, err := s.svc.ConfirmEmail(r.Context(), ss.ref(), ss.PendingEmail, ss.Challenge, digitsOnly(r.PostForm.Get("code")))
	if ended(err) {
		s.emailEnded(w, r, ss)
		return
	}
	if err != nil {
		again(s.emailCodeProblem(r, err))
		return
	}
	if !res.Valid {
		status := http.StatusUnprocessableEntity
		msg := "That code didn't work. Type the 8-digit code from the newest email we sent you."
		if !res.LockedUntil.IsZero() {
			status, msg = http.StatusTooManyRequests, msg+" "+s.lockedText(res.LockedUntil)
		}
		again(status, msg)
		return
	}
	ss.PendingEmail, ss.Challenge, ss.Proven = "", "", false
	if ss.Kind == kindManage {
		ss.Stage = ""
	} else {
		ss.Stage = stageDone
	}
	if err := s.setSession(w, r, ss); err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	if ss.Kind == kindManage {
		seeOther(w, r, "/manage?notice=email")
		return
	}
	seeOther(w, r, "/enroll/email?notice=confirmed")
}

// ended reports whether err says the challenge is over: spent, expired,
// out of attempts, or gone with its device.
func ended(err error) bool {
	return errors.Is(err, twofa.ErrChallengeEnded) || errors.Is(err, twofa.ErrNotFound)
}

// emailEnded forgets the session's email enrollment, whose challenge is
// over, and says to start again.
func (s *server) emailEnded(w http.ResponseWriter, r *http.Request, ss *session) {
	ss.PendingEmail, ss.Challenge = "", ""
	if err := s.setSession(w, r, ss); err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	s.renderError(w, r, http.StatusGone, "This code no longer works",
		"The code expired, was used, or was typed wrong too many times. Start again to get a new one.",
		errorPage{NextURL: "/enroll/email", NextText: "Start again"})
}

// emailResend sends another code for the session's email enrollment.
func (s *server) emailResend(w http.ResponseWriter, r *http.Request, ss *session) {
	if ss.PendingEmail == "" {
		seeOther(w, r, "/enroll/email")
		return
	}
	c, err := s.svc.ResendChallenge(r.Context(), ss.ref(), ss.Challenge)
	if ended(err) {
		s.emailEnded(w, r, ss)
		return
	}
	if err != nil {
		status, msg := s.emailProblem(r, err)
		d := emailData{Sent: true, Action: "/enroll/email/confirm", ResendAction: "/enroll/email/resend", Button: "Confirm"}
		if c, err := s.svc.Challenge(r.Context(), ss.ref(), ss.Challenge); err == nil {
			d = s.emailSent(r, ss, c)
		}
		s.render(w, r, status, "email.html", s.emailView(ss, d, msg))
		return
	}
	v := s.emailView(ss, s.emailSent(r, ss, c), "")
	v.Notice = resentNotice
	s.render(w, r, http.StatusOK, "email.html", v)
}

// digitsOnly drops the spaces people type in long codes.
func digitsOnly(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, code)
}

// promptEmail sends a sign-in code to the user's email.
func (s *server) promptEmail(w http.ResponseWriter, r *http.Request, ss *session) {
	req, ok := s.promptRequest(w, r, ss)
	if !ok {
		return
	}
	c, err := s.svc.StartChallenge(r.Context(), ss.ref(), twofa.FactorEmail, "")
	if err != nil {
		status, msg := s.emailProblem(r, err)
		s.renderPrompt(w, r, ss, req.ReturnURL, status, msg, false)
		return
	}
	ss.Challenge = c.ID
	if err := s.setSession(w, r, ss); err != nil {
		s.badPromptRequest(w, r, err)
		return
	}
	s.renderPrompt(w, r, ss, req.ReturnURL, http.StatusOK, "", false)
}

// promptEmailResend sends another sign-in code.
func (s *server) promptEmailResend(w http.ResponseWriter, r *http.Request, ss *session) {
	req, ok := s.promptRequest(w, r, ss)
	if !ok {
		return
	}
	if ss.Challenge == "" {
		s.renderPrompt(w, r, ss, req.ReturnURL, http.StatusOK, "", false)
		return
	}
	_, err := s.svc.ResendChallenge(r.Context(), ss.ref(), ss.Challenge)
	if ended(err) {
		s.promptEmailEnded(w, r, ss, req.ReturnURL)
		return
	}
	if err != nil {
		status, msg := s.emailProblem(r, err)
		s.renderPrompt(w, r, ss, req.ReturnURL, status, msg, false)
		return
	}
	status, v := s.promptView(r, ss, req.ReturnURL, http.StatusOK, "", false)
	v.Notice = resentNotice
	s.render(w, r, status, "prompt.html", v, formOrigin(req.ReturnURL)...)
}

// resentNotice confirms a resend.
const resentNotice = "We sent another code. Any code we sent you in the last 10 minutes works."

// promptEmailEnded forgets the prompt's challenge, which is over, and
// offers another.
func (s *server) promptEmailEnded(w http.ResponseWriter, r *http.Request, ss *session, returnURL string) {
	ss.Challenge = ""
	if err := s.setSession(w, r, ss); err != nil {
		s.badPromptRequest(w, r, err)
		return
	}
	s.renderPrompt(w, r, ss, returnURL, http.StatusGone, "That code no longer works: it expired, was used, or was typed wrong too many times. Ask for a new one.", false)
}

// promptEmailVerify checks an emailed code and, when it is valid, sends
// the user back with a signed result.
func (s *server) promptEmailVerify(w http.ResponseWriter, r *http.Request, ss *session) {
	req, ok := s.promptRequest(w, r, ss)
	if !ok {
		return
	}
	if ss.Challenge == "" {
		s.renderPrompt(w, r, ss, req.ReturnURL, http.StatusOK, "", false)
		return
	}
	res, err := s.svc.VerifyChallenge(r.Context(), ss.ref(), ss.Challenge, digitsOnly(r.PostForm.Get("code")))
	if ended(err) {
		s.promptEmailEnded(w, r, ss, req.ReturnURL)
		return
	}
	if err != nil {
		status, msg := s.emailCodeProblem(r, err)
		s.renderPrompt(w, r, ss, req.ReturnURL, status, msg, true)
		return
	}
	if !res.Valid {
		status, msg := http.StatusUnprocessableEntity, "That code didn't work. Type the 8-digit code from the newest email we sent you."
		if !res.LockedUntil.IsZero() {
			status, msg = http.StatusTooManyRequests, msg+" "+s.lockedText(res.LockedUntil)
		}
		s.renderPrompt(w, r, ss, req.ReturnURL, status, msg, true)
		return
	}
	s.promptPassed(w, r, req, res)
}
