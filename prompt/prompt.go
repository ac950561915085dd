// Package prompt defines the signed messages of twofa's hosted
// verification prompt, like Duo's: an application sends its user to twofa
// with a signed Request; twofa asks for a code and sends the user back with
// a signed Result that the application checks.
//
// A token is three dot-separated parts:
//
//	v1.<payload>.<mac>
//
// where payload is the message as JSON in unpadded base64url, and mac is
// HMAC-SHA-256, under the tenant's prompt key, of "twofa-prompt/v1/<kind>."
// followed by the payload, also in unpadded base64url. The kind ("request"
// or "result") is bound into the MAC, so a request can never pass for a
// result. Keys are 32 random bytes, shared by twofa and the application.
//
// The application makes a Request with a fresh Nonce kept in the user's
// session, and, on return, accepts a Result only if ParseResult accepts it
// and its Nonce equals the session's, which it then forgets: that makes a
// Result single-use. Results live 60 seconds.
//
// The package uses only the standard library, so applications can import
// it alone.
package prompt

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Request asks twofa to verify a user's second factor.
type Request struct {
	Tenant    string `json:"tenant"`
	User      string `json:"user"`
	ReturnURL string `json:"return_url"` // must be registered for the tenant
	Nonce     string `json:"nonce"`      // at least 16 characters, fresh per request
	ExpiresAt int64  `json:"exp"`        // Unix seconds; at most 10 minutes ahead
}

// Result is twofa's answer: the user proved their second factor.
type Result struct {
	Tenant    string `json:"tenant"`
	User      string `json:"user"`
	Nonce     string `json:"nonce"`  // the Request's
	Factor    string `json:"factor"` // "totp", "backup_code" or "email"
	Device    string `json:"device,omitempty"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

// Lifetimes.
const (
	MaxRequestLife = 10 * time.Minute
	ResultLife     = 60 * time.Second
	MinNonce       = 16
	KeySize        = 32
)

// Errors. Every parse failure wraps ErrInvalid; expiry also wraps ErrExpired.
var (
	ErrInvalid = errors.New("prompt: invalid token")
	ErrExpired = errors.New("prompt: token expired")
)

const version = "v1"

// NewKey returns a new random prompt key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("prompt: generating a key: %w", err)
	}
	return k, nil
}

// NewNonce returns a fresh random nonce for a Request.
func NewNonce() string {
	var b [18]byte
	rand.Read(b[:]) // crypto/rand.Read does not fail on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// SignRequest returns the token of r.
func SignRequest(key []byte, r Request) (string, error) {
	if err := r.check(); err != nil {
		return "", err
	}
	return sign(key, "request", r)
}

// SignResult returns the token of r.
func SignResult(key []byte, r Result) (string, error) {
	return sign(key, "result", r)
}

// ParseRequest checks a request token's MAC and lifetime at now and
// returns the request. The caller must still check ReturnURL against the
// tenant's registered URLs.
func ParseRequest(key []byte, token string, now time.Time) (*Request, error) {
	var r Request
	if err := parse(key, "request", token, &r); err != nil {
		return nil, err
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	switch exp := time.Unix(r.ExpiresAt, 0); {
	case !now.Before(exp):
		return nil, fmt.Errorf("%w: %w", ErrInvalid, ErrExpired)
	case exp.Sub(now) > MaxRequestLife:
		return nil, fmt.Errorf("%w: expiry more than %s ahead", ErrInvalid, MaxRequestLife)
	}
	return &r, nil
}

// ParseResult checks a result token's MAC, lifetime, tenant and nonce, and
// returns the result. wantNonce is the nonce the application kept for this
// user's request; it must forget it afterwards.
func ParseResult(key []byte, token, tenant, wantNonce string, now time.Time) (*Result, error) {
	var r Result
	if err := parse(key, "result", token, &r); err != nil {
		return nil, err
	}
	if !now.Before(time.Unix(r.ExpiresAt, 0)) || time.Unix(r.ExpiresAt, 0).Sub(now) > ResultLife+time.Minute {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, ErrExpired)
	}
	if r.Tenant != tenant {
		return nil, fmt.Errorf("%w: for another tenant", ErrInvalid)
	}
	if len(wantNonce) < MinNonce || !hmac.Equal([]byte(r.Nonce), []byte(wantNonce)) {
		return nil, fmt.Errorf("%w: nonce does not match this session's request", ErrInvalid)
	}
	return &r, nil
}

func (r Request) check() error {
	switch {
	case r.Tenant == "" || r.User == "":
		return fmt.Errorf("%w: tenant and user are required", ErrInvalid)
	case len(r.Nonce) < MinNonce || len(r.Nonce) > 128:
		return fmt.Errorf("%w: nonce must be %d to 128 characters", ErrInvalid, MinNonce)
	case !strings.HasPrefix(r.ReturnURL, "https://") && !strings.HasPrefix(r.ReturnURL, "http://"):
		return fmt.Errorf("%w: return URL must be http(s)", ErrInvalid)
	case r.ExpiresAt == 0:
		return fmt.Errorf("%w: expiry is required", ErrInvalid)
	}
	return nil
}

func mac(key []byte, kind, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("twofa-prompt/" + version + "/" + kind + "."))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func sign(key []byte, kind string, v any) (string, error) {
	if len(key) < KeySize {
		return "", fmt.Errorf("prompt: key must be at least %d bytes", KeySize)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return version + "." + payload + "." + base64.RawURLEncoding.EncodeToString(mac(key, kind, payload)), nil
}

// maxToken bounds what parse reads.
const maxToken = 4096

func parse(key []byte, kind, token string, v any) error {
	if len(key) < KeySize {
		return fmt.Errorf("prompt: key must be at least %d bytes", KeySize)
	}
	if len(token) > maxToken {
		return fmt.Errorf("%w: too long", ErrInvalid)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != version {
		return fmt.Errorf("%w: want %s.<payload>.<mac>", ErrInvalid, version)
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(got, mac(key, kind, parts[1])) {
		return fmt.Errorf("%w: bad signature", ErrInvalid)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("%w: malformed payload", ErrInvalid)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: malformed payload", ErrInvalid)
	}
	return nil
}
