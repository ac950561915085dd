package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
)

type linkResponse struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// handleCreateLink hands the application a single-use link to one of its
// user's pages, for the user to open within LinkTTL.
func (s *server) handleCreateLink(kind twofa.LinkKind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := decode[noBody](w, r, true); err != nil {
			s.writeError(w, r, err)
			return
		}
		token, l, err := s.svc.CreateLink(r.Context(), ref(r), kind)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusCreated, linkResponse{URL: s.baseURL(r) + "/l/" + token, ExpiresAt: l.ExpiresAt.UTC()})
	})
}

// handleOpenLink spends a link, starts a session for it and redirects, so
// that the token leaves the address bar, the history and any Referer.
func (s *server) handleOpenLink() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			// Link checkers in mail and chat try links with HEAD; only a
			// person's GET spends one.
			pageHeaders(w, r)
			w.WriteHeader(http.StatusOK)
			return
		}
		ctx := twofa.WithMeta(r.Context(), visitorMeta(r, "page:link"))
		l, err := s.svc.OpenLink(ctx, r.PathValue("token"))
		switch {
		case errors.Is(err, twofa.ErrExpired):
			s.renderError(w, r, http.StatusGone, "This link has expired",
				"Links work for 15 minutes after they are made, and only once. Please ask for a new link.", errorPage{})
			return
		case errors.Is(err, twofa.ErrNotFound):
			s.renderError(w, r, http.StatusNotFound, "This link doesn't work",
				"It may have been used already (each link works only once), or only part of it was copied. Please ask for a new link.", errorPage{})
			return
		case err != nil:
			status, msg := s.codeProblem(r, err)
			s.renderError(w, r, status, "This link doesn't work", msg, errorPage{})
			return
		}
		ss := newSession(string(l.Kind), l.Tenant, l.User, s.now().Add(sessionLife))
		ss.Link = l.ID
		if err := s.setSession(w, r, ss); err != nil {
			status, msg := s.codeProblem(r, err)
			s.renderError(w, r, status, "This link doesn't work", msg, errorPage{})
			return
		}
		seeOther(w, r, "/"+string(l.Kind))
	})
}

// enrollData is the enrollment page's. With no QR, an enrollment is under
// way whose secret was shown before and cannot be shown again.
type enrollData struct {
	QR      template.URL // data: URL of a PNG
	URI     template.URL // otpauth://, for phones that add it from a tap
	Secret  string       // grouped in fours
	Raw     string       // for the copy button
	Name    string
	Digits  int
	Expires time.Time
	Manage  bool
	Email   bool // email is available, as another way
}

// doneData is the done page's.
type doneData struct {
	Manage      bool
	CodesMissed bool // the codes page was left without saying they were saved
}

// codesData is the backup codes page's.
type codesData struct {
	Codes []string
	// Where "I have saved them" goes: POST with the CSRF token, or a GET.
	SavedAction string
	SavedPost   bool
}

// enrollPage shows a new QR code and secret, or, when an enrollment of
// this session is under way, the form for its code.
func (s *server) enrollPage(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	if ss.Stage != "" {
		s.render(w, r, http.StatusOK, "done.html", view{Title: "You're all set", Data: doneData{Manage: ss.Kind == kindManage, CodesMissed: ss.Stage == stageCodes}})
		return
	}
	if d := s.pendingDevice(r, ss); d != nil {
		s.render(w, r, http.StatusOK, "enroll.html", view{Title: "Add your authenticator app", CSRF: ss.CSRF,
			Data: enrollData{Name: "", Digits: d.Params.Digits, Expires: d.ExpiresAt, Manage: ss.Kind == kindManage, Email: s.emailOn()}})
		return
	}
	if need, err := s.needsProof(r, ss); err != nil || need {
		if err != nil {
			s.enrollProblem(w, r, ss, err)
			return
		}
		s.render(w, r, http.StatusOK, "confirm.html", proveView(ss, ""))
		return
	}
	en, err := s.svc.BeginEnrollment(ctx, ss.ref(), twofa.EnrollRequest{})
	if err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	qr, err := en.QR()
	var png []byte
	if err == nil {
		png, err = qr.PNG(256, otp.DefaultQuietZone)
	}
	if err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	ss.Pending = en.Device.ID
	if err := s.setSession(w, r, ss); err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	raw := otp.EncodeSecret(en.Secret)
	s.render(w, r, http.StatusOK, "enroll.html", view{Title: "Add your authenticator app", CSRF: ss.CSRF, Data: enrollData{
		QR:     template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)),
		URI:    template.URL(en.URI),
		Secret: groupSecret(raw), Raw: raw, Digits: en.Device.Params.Digits, Expires: en.ExpiresAt,
		Manage: ss.Kind == kindManage, Email: s.emailOn(),
	}})
}

// needsProof reports whether the session must prove a current factor of
// the user before adding one: whoever holds a link to an enrolled user's
// pages could otherwise add an authenticator of their own, and receive
// fresh backup codes, with the link alone. (The API does not ask: the
// application calling it has signed its user in.)
func (s *server) needsProof(r *http.Request, ss *session) (bool, error) {
	if ss.Proven {
		return false, nil
	}
	u, err := s.svc.UserStatus(r.Context(), ss.ref())
	if err != nil {
		return false, err
	}
	return u.Enrolled(), nil
}

func proveView(ss *session, problem string) view {
	d := confirmData{
		Form:  codeForm{Action: "/enroll/prove", CSRF: ss.CSRF, Button: "Continue", Invalid: problem != ""},
		Intro: "Before you add a device, type a code from a device you already have, or one of your backup codes.",
	}
	if ss.Kind == kindManage {
		d.Cancel = "/manage"
	}
	return view{Title: "Confirm it's you", Error: problem, CSRF: ss.CSRF, Data: d}
}

// enrollProve checks a current code of the user, through the one attempt
// path (a wrong one is a failed attempt), and lets the session add a
// device.
func (s *server) enrollProve(w http.ResponseWriter, r *http.Request, ss *session) {
	if problem, status := s.confirmCode(r, ss); problem != "" {
		s.render(w, r, status, "confirm.html", proveView(ss, problem))
		return
	}
	ss.Proven = true
	if err := s.setSession(w, r, ss); err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	seeOther(w, r, "/enroll")
}

// pendingDevice returns the session's enrollment if it still waits for
// its code.
func (s *server) pendingDevice(r *http.Request, ss *session) *twofa.Device {
	if ss.Pending == "" {
		return nil
	}
	u, err := s.svc.UserStatus(r.Context(), ss.ref())
	if err != nil {
		return nil
	}
	if d := u.Device(ss.Pending); d != nil && d.Status == twofa.StatusPending && d.ExpiresAt.After(s.now()) {
		return d
	}
	return nil
}

// groupSecret writes a base32 secret in groups of four, for typing.
func groupSecret(raw string) string {
	var b strings.Builder
	for i, c := range raw {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// enrollProblem explains why an enrollment cannot begin.
func (s *server) enrollProblem(w http.ResponseWriter, r *http.Request, ss *session, err error) {
	p := errorPage{}
	if ss.Kind == kindManage {
		p = errorPage{NextURL: "/manage", NextText: "Back to your devices"}
	}
	if errors.Is(err, twofa.ErrDeviceLimit) {
		s.renderError(w, r, http.StatusConflict, "You have the most devices allowed",
			fmt.Sprintf("You already have %d devices, the most allowed. Remove one you no longer use, then add the new one.", s.svc.Policy().MaxDevices), p)
		return
	}
	status, msg := s.codeProblem(r, err)
	s.renderError(w, r, status, "We couldn't start the setup", msg, p)
}

// maxName is the longest device name, as the Service allows.
const maxName = 64

// enrollConfirm checks the code of the session's enrollment, then names
// the device and shows the user's first backup codes, if any.
func (s *server) enrollConfirm(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	if ss.Stage != "" || ss.Pending == "" {
		seeOther(w, r, "/enroll")
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	again := func(status int, msg string) {
		digits := s.svc.Policy().TOTP.Digits
		s.render(w, r, status, "enroll.html", view{Title: "Add your authenticator app", Error: msg, CSRF: ss.CSRF,
			Data: enrollData{Name: name, Digits: digits, Manage: ss.Kind == kindManage, Email: s.emailOn()}})
	}
	if utf8.RuneCountInString(name) > maxName || len(name) > maxName {
		again(http.StatusUnprocessableEntity, fmt.Sprintf("Please keep the device name to %d characters or fewer.", maxName))
		return
	}
	// The user may have enrolled another way since this enrollment began:
	// then this one too needs a current factor.
	if need, err := s.needsProof(r, ss); err != nil || need {
		if err != nil {
			s.enrollProblem(w, r, ss, err)
			return
		}
		s.render(w, r, http.StatusForbidden, "confirm.html", proveView(ss, "Your account has a device now: confirm it's you before adding this one."))
		return
	}
	res, err := s.svc.ConfirmEnrollment(ctx, ss.ref(), ss.Pending, r.PostForm.Get("code"))
	if errors.Is(err, twofa.ErrExpired) || errors.Is(err, twofa.ErrNotFound) {
		ss.Pending = ""
		if err := s.setSession(w, r, ss); err != nil {
			s.enrollProblem(w, r, ss, err)
			return
		}
		s.renderError(w, r, http.StatusGone, "This setup has expired",
			"The setup waited too long for a code, so its QR code no longer works. Start again to get a new one, and remove the old entry from your app.",
			errorPage{NextURL: "/enroll", NextText: "Start again"})
		return
	}
	if err != nil {
		again(s.codeProblem(r, err))
		return
	}
	if !res.Valid {
		msg := "That code didn't work. Make sure you scanned the QR code above (or typed the key) and type the code your app shows now."
		if res.ClockSkew != 0 {
			msg = clockHint(res.ClockSkew)
		}
		again(http.StatusUnprocessableEntity, msg)
		return
	}
	if name != "" && name != res.Device.Name {
		if err := s.svc.RenameDevice(ctx, ss.ref(), res.Device.ID, name); err != nil {
			// The device works; only its name is the default.
			s.log.WarnContext(ctx, "naming a device after its enrollment", "err", err)
		}
	}
	ss.Pending, ss.Proven = "", false
	switch {
	case len(res.BackupCodes) > 0:
		ss.Stage = stageCodes
	case ss.Kind == kindManage:
		ss.Stage = ""
	default:
		ss.Stage = stageDone
	}
	if err := s.setSession(w, r, ss); err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	switch {
	case len(res.BackupCodes) > 0:
		s.render(w, r, http.StatusOK, "codes.html", view{Title: "Save your backup codes", CSRF: ss.CSRF,
			Data: codesData{Codes: res.BackupCodes, SavedAction: "/enroll/saved", SavedPost: true}})
	case ss.Kind == kindManage:
		seeOther(w, r, "/manage?notice=added")
	default:
		seeOther(w, r, "/enroll")
	}
}

// clockHint explains a code that matched a step outside the window.
// Positive skew: the phone is ahead.
func clockHint(skew time.Duration) string {
	dir := "ahead"
	if skew < 0 {
		dir, skew = "behind", -skew
	}
	amount := fmt.Sprintf("%d seconds", int(skew.Seconds()))
	if skew >= 2*time.Minute {
		amount = fmt.Sprintf("%d minutes", int(skew.Round(time.Minute).Minutes()))
	}
	return fmt.Sprintf("That code is right, but for another time: your phone's clock seems about %s %s. "+
		"Turn on automatic date and time in your phone's settings, then type the new code your app shows.", amount, dir)
}

// enrollRestart drops the session's enrollment, so that the next visit
// begins another with a new secret.
func (s *server) enrollRestart(w http.ResponseWriter, r *http.Request, ss *session) {
	if d := s.pendingDevice(r, ss); d != nil {
		// Only a pending device: the session's device may since have been
		// confirmed, and then it is the user's.
		if err := s.svc.RevokeDevice(r.Context(), ss.ref(), d.ID); err != nil && !errors.Is(err, twofa.ErrNotFound) {
			s.enrollProblem(w, r, ss, err)
			return
		}
	}
	ss.Pending = ""
	if err := s.setSession(w, r, ss); err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	seeOther(w, r, "/enroll")
}

// enrollSaved ends the backup codes page.
func (s *server) enrollSaved(w http.ResponseWriter, r *http.Request, ss *session) {
	if ss.Stage != stageCodes {
		seeOther(w, r, "/enroll")
		return
	}
	next := "/enroll"
	if ss.Kind == kindManage {
		ss.Stage, next = "", "/manage?notice=added"
	} else {
		ss.Stage = stageDone
	}
	if err := s.setSession(w, r, ss); err != nil {
		s.enrollProblem(w, r, ss, err)
		return
	}
	seeOther(w, r, next)
}
