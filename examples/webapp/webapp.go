// Package webapp is a small web site that adds twofa to its password
// sign-in, as any application would: it knows twofa only through the HTTP
// API (package client) and the signed messages of the hosted prompt
// (package prompt). `twofa demo` runs it next to a twofa server.
//
// The flow, the recipe's "secure user login":
//
//  1. The user signs in with a password (argon2id hashes, constant-time
//     comparison).
//  2. The site asks twofa whether the user has a second factor
//     (GET /v1/users/{id}). If not, the user is signed in, and the home
//     page offers to set one up: the site asks twofa for an enrollment link
//     and sends the user to it.
//  3. If so, the site sends the user to twofa's /prompt with a signed
//     request whose fresh nonce it keeps in its own session cookie. twofa
//     asks for a code and sends the user back to /2fa with a signed result,
//     which the site checks against the kept nonce: only then is the user
//     signed in.
package webapp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twofa/twofa/client"
	"github.com/twofa/twofa/prompt"
)

// Config is what the site needs to know of itself and of twofa.
type Config struct {
	TwofaURL  string // where browsers and this site reach twofa, such as http://127.0.0.1:8080
	APIKey    string // an app API key of the tenant
	Tenant    string
	PromptKey []byte // the tenant's prompt key (twofa tenant prompt-key)
	// BaseURL is where browsers reach this site; BaseURL+"/2fa" must be
	// registered as a return URL of the tenant (twofa tenant return-urls).
	BaseURL string
	// Accounts maps user names to HashPassword hashes. The user name is
	// also the user's ID at twofa.
	Accounts map[string]string
	Logger   *slog.Logger     // nil: discard
	Now      func() time.Time // nil: time.Now
}

type site struct {
	cfg    Config
	twofa  *client.Client
	hc     *http.Client
	cookie []byte // signs the session cookie; a new one each start
	csp    string
	log    *slog.Logger
	now    func() time.Time
}

//go:embed templates/page.html static/style.css
var files embed.FS

var pageTmpl = template.Must(template.ParseFS(files, "templates/page.html"))

// NewHandler returns the site.
func NewHandler(cfg Config) (http.Handler, error) {
	tw, err := url.Parse(cfg.TwofaURL)
	if err != nil || tw.Host == "" {
		return nil, fmt.Errorf("webapp: twofa URL %q is not an absolute URL", cfg.TwofaURL)
	}
	if len(cfg.PromptKey) < prompt.KeySize || cfg.APIKey == "" || cfg.Tenant == "" || cfg.BaseURL == "" {
		return nil, errors.New("webapp: the config needs an API key, a tenant, a prompt key and the base URL")
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	s := &site{cfg: cfg, hc: hc, twofa: client.New(cfg.TwofaURL, cfg.APIKey, client.WithHTTPClient(hc)),
		cookie: make([]byte, 32), log: cfg.Logger, now: cfg.Now}
	rand.Read(s.cookie)
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	// The sign-in and set-up forms redirect to twofa, and browsers apply
	// form-action to a form's redirects.
	s.csp = "default-src 'none'; style-src 'self'; form-action 'self' " + tw.Scheme + "://" + tw.Host + "; base-uri 'none'; frame-ancestors 'none'"

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("POST /signin", s.form(s.signIn))
	mux.HandleFunc("GET /2fa", s.promptReturn)
	mux.HandleFunc("POST /setup", s.form(s.setUp))
	mux.HandleFunc("POST /signout", s.form(s.signOut))
	mux.HandleFunc("GET /style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		b, _ := files.ReadFile("static/style.css")
		w.Write(b)
	})
	return s.headers(mux), nil
}

// headers: no page is cached, framed or sniffed; HSTS under TLS.
func (s *site) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", s.csp)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=63072000")
		}
		next.ServeHTTP(w, r)
	})
}

// session is the visit's state, in a cookie signed by the site.
type session struct {
	User      string `json:"u,omitempty"` // signed in
	TwoFactor bool   `json:"f,omitempty"` // with a second factor
	Pending   string `json:"p,omitempty"` // password checked; waiting for the prompt
	Nonce     string `json:"n,omitempty"` // of the prompt request
	CSRF      string `json:"c"`
	Exp       int64  `json:"e"`
}

const (
	cookieName  = "demo_session" // not twofa's: on 127.0.0.1 the two share cookies
	sessionLife = 8 * time.Hour
)

func (s *site) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.cookie)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// load returns the visit's session, or a new empty one.
func (s *site) load(r *http.Request) *session {
	if c, err := r.Cookie(cookieName); err == nil {
		payload, sig, _ := strings.Cut(c.Value, ".")
		got, _ := base64.RawURLEncoding.DecodeString(sig)
		b, _ := base64.RawURLEncoding.DecodeString(payload)
		var ss session
		if hmac.Equal(got, s.mac(payload)) && json.Unmarshal(b, &ss) == nil && ss.CSRF != "" && s.now().Before(time.Unix(ss.Exp, 0)) {
			return &ss
		}
	}
	return s.fresh()
}

// fresh returns a new session with a new CSRF token, as after every
// change of who is signed in.
func (s *site) fresh() *session {
	var b [24]byte
	rand.Read(b[:])
	return &session{CSRF: base64.RawURLEncoding.EncodeToString(b[:]), Exp: s.now().Add(sessionLife).Unix()}
}

func (s *site) save(w http.ResponseWriter, r *http.Request, ss *session) {
	b, _ := json.Marshal(ss)
	payload := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload)),
		Path: "/", MaxAge: int(sessionLife.Seconds()), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

// view is the page template's.
type view struct {
	Page, Title, Error, Notice, CSRF, User string
	TwoFactor, Enrolled                    bool
}

func (s *site) render(w http.ResponseWriter, status int, v view) {
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, "page", v); err != nil {
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (s *site) signInPage(w http.ResponseWriter, r *http.Request, ss *session, status int, problem, notice string) {
	s.save(w, r, ss)
	s.render(w, status, view{Page: "signin", Title: "Sign in", Error: problem, Notice: notice, CSRF: ss.CSRF, User: r.PostFormValue("username")})
}

var notices = map[string]string{"out": "You signed out."}

// home shows the signed-in user's page, or the sign-in form.
func (s *site) home(w http.ResponseWriter, r *http.Request) {
	ss := s.load(r)
	if ss.User == "" {
		s.signInPage(w, r, ss, http.StatusOK, "", notices[r.URL.Query().Get("notice")])
		return
	}
	u, err := s.twofa.User(s.endUser(r), ss.User)
	if err != nil {
		s.log.Error("asking twofa about a user", "err", err)
		s.render(w, http.StatusBadGateway, view{Page: "home", Title: "Welcome", User: ss.User, TwoFactor: ss.TwoFactor, CSRF: ss.CSRF, Enrolled: true,
			Error: "We couldn't reach the two-factor service to show your settings. Please try again in a moment."})
		return
	}
	s.render(w, http.StatusOK, view{Page: "home", Title: "Welcome", User: ss.User, TwoFactor: ss.TwoFactor, Enrolled: u.Enrolled, CSRF: ss.CSRF})
}

// form parses a form post and checks its CSRF token and origin.
func (s *site) form(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		ss := s.load(r)
		origin := r.Header.Get("Origin")
		if r.ParseForm() != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(ss.CSRF)) != 1 ||
			origin != "" && origin != s.cfg.BaseURL && origin != "http://"+r.Host && origin != "https://"+r.Host {
			s.signInPage(w, r, ss, http.StatusForbidden, "That form was out of date or came from another site. Please try again.", "")
			return
		}
		h(w, r, ss)
	}
}

// endUser reports the browser's address and agent to twofa with each call.
func (s *site) endUser(r *http.Request) context.Context {
	ip := r.RemoteAddr
	if i := strings.LastIndexByte(ip, ':'); i > 0 {
		ip = strings.Trim(ip[:i], "[]")
	}
	return client.WithEndUser(r.Context(), ip, r.UserAgent())
}

// signIn checks the password, then hands over to twofa's prompt if the
// user has a second factor. A real site would also limit attempts.
func (s *site) signIn(w http.ResponseWriter, r *http.Request, ss *session) {
	name := strings.TrimSpace(r.PostForm.Get("username"))
	hash, ok := s.cfg.Accounts[name]
	if !ok {
		hash = dummyHash
	}
	if !checkPassword(hash, r.PostForm.Get("password")) || !ok {
		s.signInPage(w, r, ss, http.StatusUnauthorized, "That user name and password don't match. Please try again.", "")
		return
	}
	u, err := s.twofa.User(s.endUser(r), name)
	if err != nil {
		// Fail closed: without an answer, the second factor may be needed.
		s.log.Error("asking twofa about a user", "err", err)
		s.signInPage(w, r, ss, http.StatusBadGateway, "We couldn't reach the two-factor service. Please try again in a moment.", "")
		return
	}
	ss = s.fresh()
	if !u.Enrolled {
		ss.User = name
		s.save(w, r, ss)
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	ss.Pending, ss.Nonce = name, prompt.NewNonce()
	req, err := prompt.SignRequest(s.cfg.PromptKey, prompt.Request{
		Tenant: s.cfg.Tenant, User: name, ReturnURL: s.cfg.BaseURL + "/2fa", Nonce: ss.Nonce,
		ExpiresAt: s.now().Add(5 * time.Minute).Unix(),
	})
	if err != nil {
		s.signInPage(w, r, s.fresh(), http.StatusInternalServerError, "Something went wrong on our side. Please try again.", "")
		return
	}
	s.save(w, r, ss)
	q := url.Values{"tenant": {s.cfg.Tenant}, "request": {req}}
	http.Redirect(w, r, strings.TrimSuffix(s.cfg.TwofaURL, "/")+"/prompt?"+q.Encode(), http.StatusSeeOther)
}

// promptReturn accepts twofa's signed result for the pending sign-in.
func (s *site) promptReturn(w http.ResponseWriter, r *http.Request) {
	ss := s.load(r)
	pending, nonce := ss.Pending, ss.Nonce
	ss.Pending, ss.Nonce = "", "" // a result is good once
	q := r.URL.Query()
	if pending == "" {
		s.signInPage(w, r, ss, http.StatusBadRequest, "Your sign-in had ended. Please sign in again.", "")
		return
	}
	if q.Get("twofa_error") != "" {
		s.signInPage(w, r, ss, http.StatusOK, "", "You cancelled the sign-in.")
		return
	}
	res, err := prompt.ParseResult(s.cfg.PromptKey, q.Get("twofa_result"), s.cfg.Tenant, nonce, s.now())
	if err != nil || res.User != pending {
		s.log.Warn("refused a prompt result", "err", err)
		s.signInPage(w, r, ss, http.StatusForbidden, "We couldn't confirm your code. Please sign in again.", "")
		return
	}
	ss = s.fresh()
	ss.User, ss.TwoFactor = pending, true
	s.save(w, r, ss)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// setUp asks twofa for an enrollment link and sends the user to it.
func (s *site) setUp(w http.ResponseWriter, r *http.Request, ss *session) {
	if ss.User == "" {
		s.signInPage(w, r, ss, http.StatusUnauthorized, "Please sign in first.", "")
		return
	}
	link, err := s.enrollmentLink(r.Context(), ss.User)
	if err != nil {
		s.log.Error("asking twofa for an enrollment link", "err", err)
		s.render(w, http.StatusBadGateway, view{Page: "home", Title: "Welcome", User: ss.User, TwoFactor: ss.TwoFactor, CSRF: ss.CSRF,
			Error: "We couldn't reach the two-factor service. Please try again in a moment."})
		return
	}
	http.Redirect(w, r, link, http.StatusSeeOther)
}

func (s *site) enrollmentLink(ctx context.Context, user string) (string, error) {
	l, err := s.twofa.EnrollmentLink(ctx, user)
	if err != nil {
		return "", err
	}
	return l.URL, nil
}

func (s *site) signOut(w http.ResponseWriter, r *http.Request, _ *session) {
	s.save(w, r, s.fresh())
	http.Redirect(w, r, "/?notice=out", http.StatusSeeOther)
}
