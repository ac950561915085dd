package web

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/twofa/twofa"
)

// statusOf maps every error code to its HTTP status: the one table, for
// the API and the hosted pages alike (see statusFor).
var statusOf = map[string]int{
	twofa.EINVALID:      http.StatusBadRequest,
	twofa.ENOTFOUND:     http.StatusNotFound,
	twofa.ECONFLICT:     http.StatusConflict,
	twofa.EUNAUTHORIZED: http.StatusUnauthorized,
	twofa.EFORBIDDEN:    http.StatusForbidden,
	twofa.ERATELIMITED:  http.StatusTooManyRequests,
	codeTooLarge:        http.StatusRequestEntityTooLarge,
	twofa.EINTERNAL:     http.StatusInternalServerError,
}

// reasonStatus refines statusOf where HTTP has a more precise status for
// one reason of a code; the code the caller branches on stays the same.
var reasonStatus = map[codeReason]int{
	{twofa.EINVALID, reasonContentType}:      http.StatusUnsupportedMediaType,
	{twofa.EINVALID, reasonMethodNotAllowed}: http.StatusMethodNotAllowed,
	{twofa.EINTERNAL, reasonCanceled}:        statusClientClosed,
}

type codeReason struct{ code, reason string }

const (
	codeTooLarge = "too_large"

	reasonContentType      = "content_type"       // a body that is not JSON
	reasonMethodNotAllowed = "method_not_allowed" // a known path, another method
	reasonCanceled         = "canceled"           // the client went away

	// statusClientClosed is nginx's status for a client that went away
	// before the answer: it shows in logs and metrics, never to a client.
	statusClientClosed = 499
)

// statusFor returns the HTTP status of an error of this code and reason,
// from the tables above; 500 for a code they do not know.
func statusFor(code, reason string) int {
	if s, ok := reasonStatus[codeReason{code, reason}]; ok {
		return s
	}
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// apiError is the body of an error response:
//
//	{"error": {"code": "invalid", "message": "...", "reason": "...", "fields": {...}}}
//
// Its status follows from its code and reason.
type apiError struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Reason  string            `json:"reason,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
	Until   *time.Time        `json:"until,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

// status is the HTTP status of the response that carries e.
func (e *apiError) status() int { return statusFor(e.Code, e.Reason) }

var errTooLarge = &apiError{Code: codeTooLarge, Message: "request body is larger than 64 KiB"}

func invalid(msg string) *apiError {
	return &apiError{Code: twofa.EINVALID, Message: msg}
}

// toAPIError turns any error into what the caller sees. Internal errors are
// logged with the request ID and shown as "internal error": their text may
// name tables, hosts or worse.
func toAPIError(ctx context.Context, log *slog.Logger, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var te *twofa.Error
	if errors.As(err, &te) {
		e := &apiError{Code: te.Code, Message: te.Message, Reason: te.Reason}
		if !te.Until.IsZero() {
			u := te.Until.UTC()
			e.Until = &u
		}
		return e
	}
	if errors.Is(err, context.Canceled) {
		return &apiError{Code: twofa.EINTERNAL, Reason: reasonCanceled, Message: "request canceled"}
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return &apiError{Code: twofa.EINTERNAL, Message: "internal error"}
}

// writeError writes err as an error response, with Retry-After for 429s.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toAPIError(r.Context(), s.log, err)
	st := e.status()
	if st == http.StatusTooManyRequests && e.Until != nil && e.Until.Before(twofa.Forever) {
		secs := math.Ceil(time.Until(*e.Until).Seconds())
		if s.now != nil {
			secs = math.Ceil(e.Until.Sub(s.now()).Seconds())
		}
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(secs))))
	}
	encode(w, st, struct {
		Error *apiError `json:"error"`
	}{e})
}
