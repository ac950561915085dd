// Package webhook signs, verifies and sends webhooks as the Standard
// Webhooks specification (standardwebhooks.com) describes them: a JSON
// POST whose headers webhook-id, webhook-timestamp and webhook-signature
// let the receiver check, with a shared secret, that twofa sent it, that
// nothing changed on the way, and that it is not an old one replayed.
//
// The signature is HMAC-SHA256, under the secret, of
// "webhook-id.webhook-timestamp.body"; the header holds "v1," and its
// base64, and may hold several such signatures separated by spaces (one
// per secret while a secret is being replaced). A secret is written
// "whsec_" and the base64 of 24 to 64 random bytes.
//
// twofa sends every audit event of a tenant that has a webhook through
// its outbox (Sender); SMS and push gateways that call back reuse Sign and
// Verify.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a signed webhook.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a webhook secret, so secret scanners and people can
// tell it from other keys.
const SecretPrefix = "whsec_"

// Secret sizes, in bytes: the specification asks for 24 at least and
// allows up to 64; NewSecret makes 32.
const (
	MinSecret = 24
	MaxSecret = 64
	secretLen = 32
)

// Tolerance is how far a webhook's timestamp may be from the receiver's
// clock, either way, before Verify refuses it as a replay (or a clock far
// off).
const Tolerance = 5 * time.Minute

// Errors of Verify and DecodeSecret.
var (
	ErrMissingHeader = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrTimestamp     = errors.New("webhook: timestamp too far from now (a replay, or a clock off by more than 5 minutes)")
	ErrSignature     = errors.New("webhook: no valid signature")
	ErrSecret        = errors.New(`webhook: a secret is "whsec_" and the base64 of 24 to 64 bytes`)
)

// NewSecret returns a new random secret of 32 bytes.
func NewSecret() ([]byte, error) {
	key := make([]byte, secretLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("webhook: generating a secret: %w", err)
	}
	return key, nil
}

// EncodeSecret writes a secret as the receiver is given it: "whsec_" and
// its standard base64.
func EncodeSecret(key []byte) string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// DecodeSecret reads a secret written by EncodeSecret. Like the
// specification's libraries, it takes the base64 without the prefix too.
func DecodeSecret(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil || len(key) < MinSecret || len(key) > MaxSecret {
		return nil, ErrSecret
	}
	return key, nil
}

// Sign returns the signature of a webhook, "v1," and the base64 of
// HMAC-SHA256(key, id "." unix seconds "." body). id must not hold a
// ".": twofa's message IDs never do.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, strconv.FormatInt(ts.Unix(), 10), body))
}

func mac(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// SetHeaders sets the three headers of a webhook with this id, sent at
// ts, signed with each key in turn (one signature per key, separated by
// spaces, so a receiver that knows any of them accepts it).
func SetHeaders(h http.Header, id string, ts time.Time, body []byte, keys ...[]byte) {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, ts, body)
	}
	// Header names are case-insensitive: Set writes them as Webhook-Id
	// and so on, which every receiver matches to the specification's
	// lower-case names (and HTTP/2 sends in lower case anyway).
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
}

// Verify checks a received webhook: its headers h and its body exactly as
// received (before any JSON decoding), at the receiver's time now. It
// returns nil if the timestamp is within Tolerance of now and one of the
// v1 signatures is that of one of keys. Signatures are compared in
// constant time. Then use the webhook-id to drop a webhook already
// processed: a sender repeats one whose answer it did not get.
func Verify(h http.Header, body []byte, now time.Time, keys ...[]byte) error {
	id, ts, sigs := header(h, HeaderID), header(h, HeaderTimestamp), header(h, HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeader
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrTimestamp
	}
	if d := now.Unix() - sec; d > int64(Tolerance/time.Second) || d < -int64(Tolerance/time.Second) {
		return ErrTimestamp
	}
	want := make([][]byte, len(keys))
	for i, k := range keys {
		want[i] = mac(k, id, ts, body)
	}
	for _, sig := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue // another scheme (v1a) or a later version
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got, w) {
				return nil
			}
		}
	}
	return ErrSignature
}

// header reads a header by its canonical or its lower-case name: a
// server's http.Header has the canonical one, a hand-built one may have
// either.
func header(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
