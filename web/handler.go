// Package web serves twofa's HTTP API: NewHandler wraps a twofa.Service in
// an http.Handler. Handlers decode, call the Service and encode; the rules
// live in the Service.
package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

// Options configure the handler. The zero value works.
type Options struct {
	Logger *slog.Logger
	// Ready reports whether the service can serve, for /readyz; nil: always.
	Ready func(context.Context) error
	// Now is the clock, for Retry-After; nil: time.Now.
	Now func() time.Time
	// PublicURL is where users reach twofa, such as
	// "https://2fa.example.com", for the links the API hands out; empty:
	// derived from each request's Host and TLS.
	PublicURL string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For or
	// Forwarded header names the client of the hosted pages, and whose
	// entries X-End-User-IP chains skip (clientip.go); nil: none, and a
	// page's client is the connection's peer.
	TrustedProxies []netip.Prefix
	// Sends, if set, is exported at /metrics: the outbox worker's tries.
	Sends *SendCounter
}

type server struct {
	svc     *twofa.Service
	log     *slog.Logger
	ready   func(context.Context) error
	now     func() time.Time
	metrics *metrics
	// publicURL has no trailing slash; empty: derive from the request.
	publicURL string
	trusted   []netip.Prefix
}

// NewHandler returns the HTTP API of svc.
func NewHandler(svc *twofa.Service, opts Options) http.Handler {
	s := &server{svc: svc, log: opts.Logger, ready: opts.Ready, now: opts.Now, metrics: newMetrics(), publicURL: strings.TrimSuffix(opts.PublicURL, "/"),
		trusted: slices.Clone(opts.TrustedProxies)}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.metrics.watchOutbox(svc, opts.Sends, s.now, s.log)
	mux := http.NewServeMux()
	s.addRoutes(mux)
	var h http.Handler = s.jsonMisses(mux)
	if len(s.trusted) > 0 {
		h = s.resolveClient(h)
	}
	return s.logRequests(s.recoverPanics(securityHeaders(h)))
}

// resolveClient finds the client's address behind the trusted proxies
// once, for visitorMeta. Without trusted proxies the client is the peer,
// and the request is left as it is.
func (s *server) resolveClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), keyClientIP, clientIP(r, s.trusted))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requestClientIP is the client's address that resolveClient found, or
// else the peer's.
func requestClientIP(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(keyClientIP).(netip.Addr); ok {
		return a
	}
	return clientIP(r, nil)
}

// jsonMisses answers requests no route matches with JSON errors: 404 for
// an unknown path, 405 (with Allow) for a known path and another method.
func (s *server) jsonMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusWriter{ResponseWriter: discardBody{w}}
		h.ServeHTTP(rec, r) // the mux's own 404, 405 or redirect, for its status and headers
		switch rec.status {
		case http.StatusMethodNotAllowed:
			s.writeError(w, r, &apiError{Code: twofa.EINVALID, Reason: reasonMethodNotAllowed, Message: "method not allowed here: see the Allow header"})
		case http.StatusNotFound:
			s.writeError(w, r, &apiError{Code: twofa.ENOTFOUND, Message: "no such route: see /v1/openapi.json"})
		default:
			w.WriteHeader(rec.status)
		}
	})
}

// discardBody lets the mux set headers and a status but drops its text body.
type discardBody struct{ http.ResponseWriter }

func (d discardBody) WriteHeader(status int) {
	if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
		d.ResponseWriter.WriteHeader(status)
	}
}
func (discardBody) Write(b []byte) (int, error) { return len(b), nil }

type ctxKey int

const (
	keyAPIKey ctxKey = iota
	keyRequestID
	keyClientIP
)

// Headers by which the calling application reports its end user.
const (
	HeaderEndUserIP    = "X-End-User-IP"
	HeaderEndUserAgent = "X-End-User-Agent"
)

// requireScope authenticates the bearer API key, requiring admin scope if
// asked, and puts the key and the request's Meta in the context.
func (s *server) requireScope(admin bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			auth := r.Header.Get("Authorization")
			scheme, secret, ok := strings.Cut(auth, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") { // schemes are case-insensitive (RFC 9110)
				w.Header().Set("WWW-Authenticate", `Bearer realm="twofa"`)
				s.writeError(w, r, twofa.Errorf(twofa.EUNAUTHORIZED, "missing API key: send Authorization: Bearer <key>"))
				return
			}
			k, err := s.svc.Authenticate(r.Context(), strings.TrimSpace(secret))
			if err != nil {
				if twofa.ErrorCode(err) == twofa.EUNAUTHORIZED {
					w.Header().Set("WWW-Authenticate", `Bearer realm="twofa", error="invalid_token"`)
				}
				s.writeError(w, r, err)
				return
			}
			if admin && k.Scope != twofa.ScopeAdmin {
				s.writeError(w, r, twofa.Errorf(twofa.EFORBIDDEN, "this route needs an admin API key"))
				return
			}
			m := twofa.Meta{Actor: "key:" + k.ID, UserAgent: r.Header.Get(HeaderEndUserAgent)}
			// An empty header is an absent one, as it always was.
			if ips := r.Header.Values(HeaderEndUserIP); slices.ContainsFunc(ips, func(v string) bool { return v != "" }) {
				addr, err := endUserIP(ips, s.trusted)
				if err != nil {
					s.writeError(w, r, invalid(err.Error()))
					return
				}
				m.IP = addr.String()
			}
			if len(m.UserAgent) > 512 {
				m.UserAgent = m.UserAgent[:512]
			}
			ctx := context.WithValue(r.Context(), keyAPIKey, k)
			next.ServeHTTP(w, r.WithContext(twofa.WithMeta(ctx, m)))
		})
	}
}

// ref returns the user named in the path, in the API key's tenant: one
// tenant never reaches another's users.
func ref(r *http.Request) twofa.UserRef {
	k := r.Context().Value(keyAPIKey).(*twofa.APIKey)
	return twofa.UserRef{Tenant: k.Tenant, User: r.PathValue("user_id")}
}

// statusWriter remembers the status for the log and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logRequests gives each request an ID and logs one line per request:
// method, route pattern, status and duration. Never bodies or headers,
// which hold codes and keys.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [8]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), keyRequestID, id))
		next.ServeHTTP(sw, r)
		d := time.Since(start)
		pattern := r.Pattern
		if pattern == "" {
			pattern = "unmatched"
		}
		s.metrics.observe(pattern, sw.status, d)
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("request_id", id), slog.String("method", r.Method), slog.String("route", pattern),
			slog.Int("status", sw.status), slog.Duration("duration", d))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// recoverPanics turns a panic into a 500 and a log line with the stack but
// not the panic's value, which could hold anything.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				id, _ := r.Context().Value(keyRequestID).(string)
				s.log.ErrorContext(r.Context(), "panic serving request", "request_id", id, "path_pattern", r.Pattern, "type", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
				s.writeError(w, r, fmt.Errorf("panic"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// securityHeaders: API responses are never cached by default, framed or
// sniffed.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
