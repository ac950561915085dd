package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error codes: the vocabulary of Error.Code. Each has one HTTP status.
const (
	CodeInvalid      = "invalid"      // 400, or 415 for a wrong Content-Type
	CodeNotFound     = "not_found"    // 404
	CodeConflict     = "conflict"     // 409
	CodeUnauthorized = "unauthorized" // 401
	CodeForbidden    = "forbidden"    // 403
	CodeRateLimited  = "rate_limited" // 429
	CodeTooLarge     = "too_large"    // 413
	CodeInternal     = "internal"     // 500
)

// Reasons refine a code; these are the ones the API gives today.
const (
	ReasonMalformedCode   = "malformed_code"     // invalid: not of the form of any of the user's factors
	ReasonNotEnrolled     = "not_enrolled"       // not_found: the user has no active factor
	ReasonExpired         = "expired"            // not_found: the enrollment expired
	ReasonDeviceLimit     = "device_limit"       // conflict: the user has the most devices allowed
	ReasonLocked          = "locked"             // rate_limited: too many failed codes
	ReasonRateLimited     = "rate_limited"       // rate_limited: over a rate limit
	ReasonDuplicateSecret = "duplicate_secret"   // conflict: an imported secret the user already has
	ReasonAddressTaken    = "address_taken"      // conflict: the user already has this email address
	ReasonRestricted      = "restricted_factor"  // conflict: email would be the user's only factor
	ReasonChallengeEnded  = "challenge_ended"    // not_found: the challenge was spent, expired or ran out of attempts
	ReasonUnavailable     = "factor_unavailable" // conflict: the server delivers no email (no SMTP server)
)

// Error is an error response of the API. Match it with errors.As or the
// Is* predicates. Its text never holds the API key or a code.
type Error struct {
	Status  int    // the HTTP status; 0 for a request refused before sending
	Code    string // one of the Code constants
	Reason  string // a finer reason, such as ReasonLocked; may be empty
	Message string // for people; safe to log
	// Fields names the problem with each field of an invalid request body.
	Fields map[string]string
	// RetryAfter is how long to wait before trying again, from the
	// Retry-After header of a 429; 0 when the server gave none, as for a
	// lock that only an administrator can end.
	RetryAfter time.Duration
	// Until is when a lock or limit ends; zero if not given.
	Until time.Time
}

func (e *Error) Error() string {
	s := "twofa: "
	if e.Status != 0 {
		s += strconv.Itoa(e.Status) + " "
	}
	s += e.Code
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// codeOf is the code of a status, for error bodies that are not twofa's,
// such as a proxy's.
var codeOf = map[int]string{
	http.StatusBadRequest:            CodeInvalid,
	http.StatusUnauthorized:          CodeUnauthorized,
	http.StatusForbidden:             CodeForbidden,
	http.StatusNotFound:              CodeNotFound,
	http.StatusConflict:              CodeConflict,
	http.StatusRequestEntityTooLarge: CodeTooLarge,
	http.StatusUnsupportedMediaType:  CodeInvalid,
	http.StatusTooManyRequests:       CodeRateLimited,
}

// parseError turns an error response into an *Error.
func parseError(resp *http.Response, raw []byte) *Error {
	var body struct {
		Error *struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Reason  string            `json:"reason"`
			Fields  map[string]string `json:"fields"`
			Until   *time.Time        `json:"until"`
		} `json:"error"`
	}
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil && body.Error.Code != "" {
		b := body.Error
		e.Code, e.Message, e.Reason, e.Fields = b.Code, b.Message, b.Reason, b.Fields
		if b.Until != nil {
			e.Until = *b.Until
		}
	} else {
		// Not twofa's answer: a proxy's, say. Its body is not quoted,
		// since it might echo the request.
		e.Code = codeOf[resp.StatusCode]
		if e.Code == "" {
			e.Code = CodeInternal
		}
		e.Message = fmt.Sprintf("unexpected response: %s", http.StatusText(resp.StatusCode))
	}
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func hasCode(err error, code, reason string) bool {
	e, ok := errorsAs(err)
	return ok && e.Code == code && (reason == "" || e.Reason == reason)
}

// IsLocked reports whether err says the user is locked out after too many
// failed codes. Every code, right or wrong, is refused until the lock
// ends: see the Error's RetryAfter and Until.
func IsLocked(err error) bool { return hasCode(err, CodeRateLimited, ReasonLocked) }

// IsRateLimited reports whether err is a 429, for a lock or a rate limit.
func IsRateLimited(err error) bool { return hasCode(err, CodeRateLimited, "") }

// IsMalformedCode reports whether the code was not of the form of any of
// the user's factors, such as too short: ask the user to retype it.
func IsMalformedCode(err error) bool { return hasCode(err, CodeInvalid, ReasonMalformedCode) }

// IsInvalid reports whether the request was refused as invalid.
func IsInvalid(err error) bool { return hasCode(err, CodeInvalid, "") }

// IsNotFound reports whether the user, device or enrollment was not found
// (IsNotEnrolled included).
func IsNotFound(err error) bool { return hasCode(err, CodeNotFound, "") }

// IsNotEnrolled reports whether the user has no second factor enrolled.
func IsNotEnrolled(err error) bool { return hasCode(err, CodeNotFound, ReasonNotEnrolled) }

// IsUnauthorized reports whether the API key was missing, unknown or revoked.
func IsUnauthorized(err error) bool { return hasCode(err, CodeUnauthorized, "") }

// IsForbidden reports whether the API key lacks the scope, such as an app
// key on an admin route.
func IsForbidden(err error) bool { return hasCode(err, CodeForbidden, "") }
