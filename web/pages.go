package web

// The hosted pages' infrastructure: templates and assets embedded in the
// binary, signed session cookies, CSRF checks and per-page security
// headers. The pages themselves are in pages_enroll.go, pages_manage.go and
// pages_prompt.go; their routes in pages_routes.go.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

//go:embed templates/*.html static/*
var pageFiles embed.FS

// pageTemplates holds each page parsed with the layout, by file name.
var pageTemplates = func() map[string]*template.Template {
	names, err := fs.Glob(pageFiles, "templates/*.html")
	if err != nil {
		panic(err)
	}
	m := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" || base == "admin_layout.html" {
			continue
		}
		files := []string{"templates/layout.html", n}
		if strings.HasPrefix(base, "admin_") {
			files = append(files, "templates/admin_layout.html") // the console's navigation
		}
		m[base] = template.Must(template.New(base).Funcs(pageFuncs).ParseFS(pageFiles, files...))
	}
	return m
}()

// assetVersions are short content hashes of the static files, so that
// they may be cached for long and still change with a new release.
var assetVersions = func() map[string]string {
	m := map[string]string{}
	fs.WalkDir(pageFiles, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := pageFiles.ReadFile(p)
		sum := sha256.Sum256(b)
		m[strings.TrimPrefix(p, "static/")] = hex.EncodeToString(sum[:6])
		return nil
	})
	return m
}()

var pageFuncs = template.FuncMap{
	"asset": func(name string) string { return "/static/" + name + "?v=" + assetVersions[name] },
	"when":  formatWhen,
}

// formatWhen writes a time for people. The pages cannot know the user's
// time zone, so they say UTC.
func formatWhen(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2 Jan 2006, 15:04 UTC")
}

// view is what every page template gets.
type view struct {
	Title  string
	Error  string // what went wrong and what to do next; shown as an alert
	Notice string // a confirmation, such as "Device renamed."
	CSRF   string
	Data   any // the page's own fields
}

// render writes a page with its status and the pages' headers. formAction
// adds origins the page's forms may post or redirect to.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, page string, v view, formAction ...string) {
	var buf bytes.Buffer
	if err := pageTemplates[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.ErrorContext(r.Context(), "rendering a page", "page", page, "err", err)
		pageHeaders(w, r)
		http.Error(w, "Something went wrong on our side. Please try again in a moment.", http.StatusInternalServerError)
		return
	}
	pageHeaders(w, r, formAction...)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorPage shows a problem and, if next is set, a link to what to do.
type errorPage struct {
	Detail   string // for the site's developers
	NextURL  string
	NextText string
}

func (s *server) renderError(w http.ResponseWriter, r *http.Request, status int, title, msg string, p errorPage) {
	s.render(w, r, status, "error.html", view{Title: title, Error: msg, Data: p})
}

// pageCSP allows the pages' own scripts, styles and images (and the QR
// code's data: URL), and forms that post to twofa itself.
const pageCSP = "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// pageHeaders replaces the API's headers with the pages'. Every page is
// no-store: several show secrets or codes, and none is worth caching.
func pageHeaders(w http.ResponseWriter, r *http.Request, formAction ...string) {
	h := w.Header()
	csp := pageCSP
	if len(formAction) > 0 {
		// Chrome applies form-action to the redirect that follows a POST.
		csp = strings.Replace(csp, "form-action 'self'", "form-action 'self' "+strings.Join(formAction, " "), 1)
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer, browsers send
	// "Origin: null" on the pages' own form posts, which the CSRF check
	// refuses. Other sites still learn nothing.
	h.Set("Referrer-Policy", "same-origin")
	if r.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}

// handleStatic serves the embedded CSS and JavaScript.
func handleStatic() http.Handler {
	sub, err := fs.Sub(pageFiles, "static")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		files.ServeHTTP(w, r)
	})
}

// Session kinds: the kinds of link, and the prompt.
const (
	kindEnroll = string(twofa.LinkEnroll)
	kindManage = string(twofa.LinkManage)
	kindPrompt = "prompt"
)

// Cookie names. Links and the prompt use their own, so a prompt in one tab
// does not end a manage page in another.
const (
	cookieLink   = "twofa_link"
	cookiePrompt = "twofa_prompt"
)

// maxCookie bounds a session cookie's value; browsers keep about 4 KB.
const maxCookie = 3800

// session is the state of one person's visit, kept in a cookie signed
// with the Service's page key. It holds no secrets: only who the visit is
// for and where in a flow it is. The cookie lives as long as the flow may.
type session struct {
	Kind    string `json:"k"`           // kindEnroll, kindManage or kindPrompt
	Tenant  string `json:"t"`           //
	User    string `json:"u"`           //
	Link    string `json:"l,omitempty"` // the link's ID, for the audit log
	Pending string `json:"d,omitempty"` // the enrollment's pending device
	Stage   string `json:"s,omitempty"` // enrollment: "", stageCodes or stageDone
	// Proven: the visitor typed a current code or backup code of the user
	// in this session, so may add a device; cleared once one is added.
	Proven bool `json:"p,omitempty"`
	// PendingEmail and Challenge: an email device being enrolled, and the
	// challenge whose code was sent (for a prompt: a sign-in code).
	PendingEmail string `json:"m,omitempty"`
	Challenge    string `json:"h,omitempty"`
	Request      string `json:"r,omitempty"` // the prompt's signed request
	CSRF         string `json:"c"`           // the forms' token
	Exp          int64  `json:"e"`           // Unix seconds
}

// Stages of an enrollment after its code.
const (
	stageCodes = "codes" // confirmed; backup codes shown once
	stageDone  = "done"  // the user said they saved them
)

func (ss *session) ref() twofa.UserRef { return twofa.UserRef{Tenant: ss.Tenant, User: ss.User} }

// sessionLife is how long a link's pages stay open after the link.
const sessionLife = twofa.LinkTTL

func newSession(kind, tenant, user string, exp time.Time) *session {
	var b [32]byte
	rand.Read(b[:])
	return &session{Kind: kind, Tenant: tenant, User: user, CSRF: base64.RawURLEncoding.EncodeToString(b[:]), Exp: exp.Unix()}
}

// cookieOf returns the cookie that holds a kind of session.
func cookieOf(kind string) string {
	switch kind {
	case kindPrompt:
		return cookiePrompt
	case kindAdmin, kindAdminLogin:
		return cookieAdmin
	}
	return cookieLink
}

// cookieName is the name of a cookie in this request: under TLS, the
// browser keeps a __Host- cookie only if it is Secure, for this host
// alone, on Path=/.
func (s *server) cookieName(r *http.Request, cookie string) string {
	if s.secure(r) {
		return "__Host-" + cookie
	}
	return cookie
}

// secure reports whether cookies should be Secure: the request came over
// TLS, or twofa is published at an https URL behind a proxy.
func (s *server) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(s.publicURL, "https://")
}

// sessionMAC binds the payload to the cookie's name, so one kind of
// cookie does not pass for another.
func (s *server) sessionMAC(name, payload string) []byte {
	m := hmac.New(sha256.New, s.svc.PageKey())
	m.Write([]byte("twofa-page-session/v1/" + name + "."))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// setSession writes ss as the cookie of its kind.
func (s *server) setSession(w http.ResponseWriter, r *http.Request, ss *session) error {
	b, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	name := s.cookieName(r, cookieOf(ss.Kind))
	payload := base64.RawURLEncoding.EncodeToString(b)
	value := payload + "." + base64.RawURLEncoding.EncodeToString(s.sessionMAC(name, payload))
	if len(value) > maxCookie {
		return twofa.Errorf(twofa.EINVALID, "the session is too large for a cookie")
	}
	age := int(time.Unix(ss.Exp, 0).Sub(s.now()).Seconds())
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: max(age, 1),
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// clearSession deletes a session cookie.
func (s *server) clearSession(w http.ResponseWriter, r *http.Request, cookie string) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(r, cookie), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode,
	})
}

// Why a session cookie is refused.
var (
	errNoSession      = errors.New("no session")
	errBadSession     = errors.New("session cookie is not valid")
	errSessionExpired = errors.New("session expired")
)

// session reads and checks a session cookie.
func (s *server) session(r *http.Request, cookie string) (*session, error) {
	name := s.cookieName(r, cookie)
	c, err := r.Cookie(name)
	if err != nil {
		return nil, errNoSession
	}
	payload, sig, ok := strings.Cut(c.Value, ".")
	if !ok || len(c.Value) > maxCookie {
		return nil, errBadSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.sessionMAC(name, payload)) {
		return nil, errBadSession
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, errBadSession
	}
	var ss session
	if err := json.Unmarshal(b, &ss); err != nil || ss.CSRF == "" || ss.Tenant == "" || ss.User == "" {
		return nil, errBadSession
	}
	if !s.now().Before(time.Unix(ss.Exp, 0)) {
		return nil, errSessionExpired
	}
	return &ss, nil
}

// pageHandler is a page that needs a session.
type pageHandler func(w http.ResponseWriter, r *http.Request, ss *session)

// withSession loads the session of the cookie, requires one of the kinds,
// parses the form and checks CSRF on POST, and puts the request's Meta in
// the context.
func (s *server) withSession(cookie string, kinds []string, h pageHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss, err := s.session(r, cookie)
		if err != nil {
			s.sessionProblem(w, r, cookie, err)
			return
		}
		ok := false
		for _, k := range kinds {
			ok = ok || ss.Kind == k
		}
		if !ok {
			s.renderError(w, r, http.StatusForbidden, "This link can't do that",
				"Your link was made for something else. Ask for a new link for what you want to do.", errorPage{})
			return
		}
		if r.Method == http.MethodPost {
			if !s.parseForm(w, r) {
				return
			}
			if !s.checkCSRF(r, ss) {
				s.renderError(w, r, http.StatusForbidden, "Please try again",
					"This form could not be accepted: it may be out of date or was sent from another site. Go back, reload the page and try again.", errorPage{})
				return
			}
		}
		h(w, r.WithContext(s.pageMeta(r, ss)), ss)
	})
}

func (s *server) sessionProblem(w http.ResponseWriter, r *http.Request, cookie string, err error) {
	if cookie == cookiePrompt {
		s.renderError(w, r, http.StatusForbidden, "Your sign-in has ended",
			"This sign-in page is no longer open. Go back to the site you came from and sign in again.", errorPage{})
		return
	}
	msg := "Your session has ended. For your safety, these pages stay open for 15 minutes after you open your link: ask for a new link."
	if !errors.Is(err, errSessionExpired) {
		msg = "We couldn't find your session. Open the link you were given (each link works once) or ask for a new link."
	}
	s.renderError(w, r, http.StatusForbidden, "Your session has ended", msg, errorPage{})
}

// maxForm bounds a page's form body.
const maxForm = 16 << 10

// parseForm reads a URL-encoded form, answering for itself when it can't.
func (s *server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		s.renderError(w, r, http.StatusUnsupportedMediaType, "Please try again",
			"This page accepts only its own forms. Go back, reload the page and try again.", errorPage{})
		return false
	}
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Please try again",
			"The form could not be read. Go back, reload the page and try again.", errorPage{})
		return false
	}
	return true
}

// checkCSRF compares the form's token with the session's, in constant
// time, and, when the browser says where the form came from, that it came
// from twofa. The token is the defence; the origin check is a second one
// for browsers that send the header.
func (s *server) checkCSRF(r *http.Request, ss *session) bool {
	tok := r.PostForm.Get("csrf")
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(ss.CSRF)) != 1 {
		return false
	}
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		return true
	}
	u, err := url.Parse(from)
	if err != nil || u.Host == "" {
		return false // including "Origin: null"
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if p, err := url.Parse(s.publicURL); err == nil && s.publicURL != "" && strings.EqualFold(u.Host, p.Host) {
		return true
	}
	return false
}

// pageMeta puts the session's visitor in the context.
func (s *server) pageMeta(r *http.Request, ss *session) context.Context {
	actor := "page:" + ss.Kind
	if ss.Link != "" {
		actor = "link:" + ss.Link
	}
	return twofa.WithMeta(r.Context(), visitorMeta(r, actor))
}

// visitorMeta describes the person at a page for the audit log and the
// per-IP limits. Their address is the connection's, or, behind a trusted
// proxy, the one the proxy names (clientip.go).
func visitorMeta(r *http.Request, actor string) twofa.Meta {
	m := twofa.Meta{Actor: actor, UserAgent: r.UserAgent()}
	if a := requestClientIP(r); a.IsValid() {
		m.IP = a.String()
	}
	if len(m.UserAgent) > 512 {
		m.UserAgent = m.UserAgent[:512]
	}
	return m
}

// baseURL is where users reach twofa: the configured public URL, or this
// request's scheme and host.
func (s *server) baseURL(r *http.Request) string {
	if s.publicURL != "" {
		return s.publicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// seeOther redirects after a POST, or to leave a token out of the address bar.
func seeOther(w http.ResponseWriter, r *http.Request, to string, formAction ...string) {
	pageHeaders(w, r, formAction...)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// codeProblem puts a refused code, or an error of the Service about one,
// into words for the person at the page, with what to do next, and the
// status of the page that says so: the status the API gives the same
// error (statusFor), so that the pages and the API never disagree.
func (s *server) codeProblem(r *http.Request, err error) (int, string) {
	var te *twofa.Error
	if !errors.As(err, &te) || te.Code == twofa.EINTERNAL || statusOf[te.Code] == 0 {
		s.log.ErrorContext(r.Context(), "internal error on a page", "route", r.Pattern, "err", err)
		return statusFor(twofa.EINTERNAL, ""), "Something went wrong on our side. Please try again in a moment."
	}
	status := statusFor(te.Code, te.Reason)
	switch {
	case errors.Is(err, twofa.ErrMalformedCode):
		return status, "That doesn't look like a code. Type the 6 digits your authenticator app shows now (spaces are fine), or one of your backup codes."
	case errors.Is(err, twofa.ErrLocked):
		return status, s.lockedText(te.Until)
	case errors.Is(err, twofa.ErrRateLimited):
		return status, "There have been too many tries. Please wait until " + s.untilText(te.Until) + " and try again."
	case errors.Is(err, twofa.ErrNotEnrolled):
		return status, "You have no device or backup codes set up, so there is no code to check. Ask the site you came from for a link to set one up."
	}
	return status, te.Message
}

// resultProblem explains a code that was well formed but refused.
func (s *server) resultProblem(v *twofa.VerifyResult) string {
	msg := "That code didn't work. Type the code your authenticator app shows now, or one of your backup codes."
	if v.Reason == twofa.ReasonReplayed {
		msg = "That code was already used. Wait for your app to show the next code (up to 30 seconds), then type the new one."
	}
	if !v.LockedUntil.IsZero() {
		msg += " " + s.lockedText(v.LockedUntil)
	}
	return msg
}

func (s *server) lockedText(until time.Time) string {
	if !until.Before(twofa.Forever) {
		return "After too many wrong codes, your account is locked. Ask the site's administrator to unlock it."
	}
	return "After too many wrong codes, you need to wait until " + s.untilText(until) + " before trying again."
}

// untilText is a time in the next minutes, with how long until it.
func (s *server) untilText(t time.Time) string {
	d := t.Sub(s.now()).Round(time.Second)
	var in string
	switch {
	case d <= time.Minute:
		in = fmt.Sprintf("%d second%s", max(1, int(d.Seconds())), plural(max(1, int(d.Seconds()))))
	case d < 2*time.Hour:
		in = fmt.Sprintf("%d minutes", int((d + 59*time.Second).Minutes()))
	default:
		return formatWhen(t)
	}
	return t.UTC().Format("15:04:05 UTC") + " (in " + in + ")"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
