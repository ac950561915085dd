package twofa

import (
	"errors"
	"fmt"
	"time"
)

// Error codes: the whole error vocabulary of twofa. The web package maps
// each to an HTTP status in one table.
const (
	EINVALID      = "invalid"      // the request is malformed
	ENOTFOUND     = "not_found"    // no such user, device or enrollment
	ECONFLICT     = "conflict"     // the request conflicts with the state, such as the device limit
	EUNAUTHORIZED = "unauthorized" // no or unknown credentials
	EFORBIDDEN    = "forbidden"    // credentials lack the scope
	ERATELIMITED  = "rate_limited" // locked out or over a limit; RetryAfter says for how long
	EINTERNAL     = "internal"     // anything else; details go to the log, never to the caller
)

// Error is an error the caller can act on: a code from the vocabulary
// above, a finer machine-readable reason, and a message safe to show.
// Messages never hold secrets or codes.
type Error struct {
	Code    string
	Reason  string // such as "locked" or "device_limit"; may be empty
	Message string
	// Until is when a rate_limited condition ends; Forever when only an
	// administrator can end it.
	Until time.Time
}

func (e *Error) Error() string { return "twofa: " + e.Message }

// Is matches errors of the same code and reason, so the sentinels below
// work with errors.Is whatever the message of the error a store or the
// Service built. An error without a reason matches only itself (errors.Is
// compares identity before calling Is): two such errors that happen to
// share a code and a text are still two different conditions, and a
// caller who needs to tell one apart gives it a reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason != "" && t.Code == e.Code && t.Reason == e.Reason
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err: its *Error's code, or EINTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EINTERNAL
}

// ErrorMessage returns the message of err that is safe to show the caller.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Sentinel errors that stores and the Service return; match them with errors.Is.
var (
	// ErrNotFound: no such user, device, enrollment or backup code.
	ErrNotFound = &Error{Code: ENOTFOUND, Reason: "not_found", Message: "not found"}
	// ErrNotEnrolled: the user has no active second factor.
	ErrNotEnrolled = &Error{Code: ENOTFOUND, Reason: "not_enrolled", Message: "user has no second factor enrolled"}
	// ErrReplayed: the code's time step is not newer than the last accepted one.
	ErrReplayed = &Error{Code: ECONFLICT, Reason: "replayed", Message: "code already used"}
	// ErrDeviceLimit: the user has as many devices as the policy allows.
	ErrDeviceLimit = &Error{Code: ECONFLICT, Reason: "device_limit", Message: "device limit reached"}
	// ErrExpired: the enrollment expired before it was confirmed.
	ErrExpired = &Error{Code: ENOTFOUND, Reason: "expired", Message: "enrollment expired"}
	// ErrMalformedCode: the code is not of the form of any factor.
	ErrMalformedCode = &Error{Code: EINVALID, Reason: "malformed_code", Message: "malformed code"}
	// ErrLocked: too many failures; the *Error's Until says until when.
	ErrLocked = &Error{Code: ERATELIMITED, Reason: "locked", Message: "locked"}
	// ErrRateLimited: over a rate limit; Until says until when.
	ErrRateLimited = &Error{Code: ERATELIMITED, Reason: "rate_limited", Message: "rate limited"}
	// ErrDuplicate: one of the user's active devices already has this secret.
	ErrDuplicate = &Error{Code: ECONFLICT, Reason: "duplicate_secret", Message: "the user already has a device with this secret"}
)

// LockedError returns the error of a user locked until the given time.
func LockedError(until time.Time) *Error {
	msg := "too many failed attempts: locked until " + until.UTC().Format(time.RFC3339)
	if !until.Before(Forever) {
		msg = "too many failed attempts: locked until an administrator unlocks"
	}
	return &Error{Code: ERATELIMITED, Reason: "locked", Message: msg, Until: until}
}

// RateLimitedError returns the error of a limit that resets at until.
func RateLimitedError(what string, until time.Time) *Error {
	return &Error{Code: ERATELIMITED, Reason: "rate_limited", Message: "too many " + what + ": try again after " + until.UTC().Format(time.RFC3339), Until: until}
}
