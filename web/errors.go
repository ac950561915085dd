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

// statusOf maps every error code to its HTTP status: the one table.
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

const codeTooLarge = "too_large"

// apiError is the body of an error response:
//
//	{"error": {"code": "invalid", "message": "...", "reason": "...", "fields": {...}}}
type apiError struct {
	status  int
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Reason  string            `json:"reason,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
	Until   *time.Time        `json:"until,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

var errTooLarge = &apiError{status: http.StatusRequestEntityTooLarge, Code: codeTooLarge, Message: "request body is larger than 64 KiB"}

func invalid(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, Code: twofa.EINVALID, Message: msg}
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
		e := &apiError{status: statusOf[te.Code], Code: te.Code, Message: te.Message, Reason: te.Reason}
		if e.status == 0 {
			e.status = http.StatusInternalServerError
		}
		if !te.Until.IsZero() {
			u := te.Until.UTC()
			e.Until = &u
		}
		return e
	}
	if errors.Is(err, context.Canceled) {
		return &apiError{status: 499, Code: twofa.EINTERNAL, Message: "request canceled"}
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return &apiError{status: http.StatusInternalServerError, Code: twofa.EINTERNAL, Message: "internal error"}
}

// writeError writes err as an error response, with Retry-After for 429s.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toAPIError(r.Context(), s.log, err)
	if e.status == http.StatusTooManyRequests && e.Until != nil && e.Until.Before(twofa.Forever) {
		secs := math.Ceil(time.Until(*e.Until).Seconds())
		if s.now != nil {
			secs = math.Ceil(e.Until.Sub(s.now()).Seconds())
		}
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(secs))))
	}
	encode(w, e.status, struct {
		Error *apiError `json:"error"`
	}{e})
}
