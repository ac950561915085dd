// Package otp implements one-time passwords: HOTP (RFC 4226) and TOTP
// (RFC 6238) with SHA-1, SHA-256 and SHA-512, otpauth:// key URIs, base32
// secrets and QR codes.
//
// It is a library of its own: no database, no HTTP. Verification reports the
// matched time step and its offset from the current one, which is what replay
// protection and drift tracking need; every candidate in the window is
// computed and compared in constant time, and the hot path allocates nothing.
//
// A Key precomputes the HMAC state of a secret. It is safe for concurrent use,
// but serialises callers: give each goroutine its own Key if one secret is
// verified from many goroutines at once.
package otp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"
)

// Algorithm is the HMAC hash function of a key.
type Algorithm uint8

// The algorithms of RFC 6238. The zero value is SHA1, the default that every
// authenticator app supports.
const (
	SHA1 Algorithm = iota
	SHA256
	SHA512
)

// String returns the upper-case name used in key URIs: "SHA1", "SHA256" or "SHA512".
func (a Algorithm) String() string {
	switch a {
	case SHA1:
		return "SHA1"
	case SHA256:
		return "SHA256"
	case SHA512:
		return "SHA512"
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// ParseAlgorithm parses an algorithm name, in any case, with or without a
// hyphen ("sha-256").
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToUpper(strings.ReplaceAll(s, "-", "")) {
	case "SHA1":
		return SHA1, nil
	case "SHA256":
		return SHA256, nil
	case "SHA512":
		return SHA512, nil
	}
	return 0, fmt.Errorf("otp: unknown algorithm %q: want SHA1, SHA256 or SHA512", truncate(s, 16))
}

func (a Algorithm) new() func() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New
	case SHA512:
		return sha512.New
	}
	return sha1.New
}

// SecretSize is the recommended secret length in bytes for the algorithm:
// the size of its HMAC output (RFC 6238 §5.1).
func (a Algorithm) SecretSize() int {
	switch a {
	case SHA256:
		return 32
	case SHA512:
		return 64
	}
	return 20
}

// Limits of Params.
const (
	MinDigits     = 6
	MaxDigits     = 8
	DefaultDigits = 6
	DefaultPeriod = 30 // seconds
	// MaxPeriod bounds the period of a key this package computes codes
	// for or parses from a URI: wide, to work with keys other systems
	// made. A server may hold its own devices to less (NIST SP 800-63B
	// asks for at most two minutes).
	MaxPeriod = 3600
)

// Params are the parameters a prover and verifier share besides the secret.
// The zero value means SHA1, 6 digits, a 30-second period and T0 = 0.
type Params struct {
	Algorithm Algorithm
	Digits    int   // 6, 7 or 8; 0 means 6
	Period    int   // TOTP time step in seconds; 0 means 30
	T0        int64 // TOTP start time, Unix seconds
}

// Normalize fills in defaults and checks the parameters.
func (p Params) Normalize() (Params, error) {
	if p.Digits == 0 {
		p.Digits = DefaultDigits
	}
	if p.Period == 0 {
		p.Period = DefaultPeriod
	}
	switch {
	case p.Algorithm > SHA512:
		return p, fmt.Errorf("otp: unknown algorithm %d", p.Algorithm)
	case p.Digits < MinDigits || p.Digits > MaxDigits:
		return p, fmt.Errorf("otp: digits must be %d to %d, got %d", MinDigits, MaxDigits, p.Digits)
	case p.Period < 1 || p.Period > MaxPeriod:
		return p, fmt.Errorf("otp: period must be 1 to %d seconds, got %d", MaxPeriod, p.Period)
	case p.T0 < 0:
		return p, fmt.Errorf("otp: T0 must not be negative, got %d", p.T0)
	}
	return p, nil
}

// Step returns the TOTP time step (the HOTP counter) at time t:
// floor((t - T0) / period). Times before T0 give step 0.
func (p Params) Step(t time.Time) uint64 {
	p, _ = p.Normalize()
	return p.step(t)
}

// step is Step for normalized parameters.
func (p *Params) step(t time.Time) uint64 {
	s := t.Unix() - p.T0
	if s < 0 {
		return 0
	}
	return uint64(s) / uint64(p.Period)
}

// StepTime returns the time at which a step begins.
func (p Params) StepTime(step uint64) time.Time {
	p, _ = p.Normalize()
	return time.Unix(p.T0+int64(step)*int64(p.Period), 0)
}

// MinSecretSize is the shortest secret accepted, 128 bits (RFC 4226 R6).
const MinSecretSize = 16

// ErrSecretTooShort is returned for secrets shorter than MinSecretSize.
var ErrSecretTooShort = fmt.Errorf("otp: secret must be at least %d bytes (128 bits)", MinSecretSize)

var pow10 = [...]uint32{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// Key is a secret with its parameters and precomputed HMAC state.
type Key struct {
	p Params

	mu  sync.Mutex // guards the fields below, the scratch state of one HMAC
	mac hash.Hash
	msg [8]byte
	sum [sha512.Size]byte
}

// NewKey returns a Key for secret, which it does not retain.
func NewKey(secret []byte, p Params) (*Key, error) {
	p, err := p.Normalize()
	if err != nil {
		return nil, err
	}
	if len(secret) < MinSecretSize {
		return nil, ErrSecretTooShort
	}
	k := &Key{p: p, mac: hmac.New(p.Algorithm.new(), secret)}
	// hmac keeps the padded key states and restores them on Reset.
	k.mac.Reset()
	return k, nil
}

// Params returns the key's normalized parameters.
func (k *Key) Params() Params { return k.p }

// String hides the secret so that a Key is safe to print or log.
func (k *Key) String() string {
	return fmt.Sprintf("otp.Key{%s, %d digits, %ds}", k.p.Algorithm, k.p.Digits, k.p.Period)
}

// GoString hides the secret under %#v as well.
func (k *Key) GoString() string { return k.String() }

// value computes HOTP(K, counter) as a number below 10^digits.
// The caller holds k.mu.
func (k *Key) value(counter uint64) uint32 {
	binary.BigEndian.PutUint64(k.msg[:], counter)
	k.mac.Reset()
	k.mac.Write(k.msg[:])
	sum := k.mac.Sum(k.sum[:0])
	off := sum[len(sum)-1] & 0x0f // dynamic truncation, RFC 4226 §5.3
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	// Constant divisors compile to multiplications; this is the hot path.
	switch k.p.Digits {
	case 6:
		return v % 1000000
	case 7:
		return v % 10000000
	}
	return v % 100000000
}

// AppendHOTP appends the HOTP code for counter to dst.
func (k *Key) AppendHOTP(dst []byte, counter uint64) []byte {
	k.mu.Lock()
	v := k.value(counter)
	k.mu.Unlock()
	for i := k.p.Digits - 1; i >= 0; i-- {
		dst = append(dst, byte('0'+v/pow10[i]%10))
	}
	return dst
}

// HOTP returns the code for counter, with leading zeros.
func (k *Key) HOTP(counter uint64) string {
	var buf [MaxDigits]byte
	return string(k.AppendHOTP(buf[:0], counter))
}

// TOTP returns the code at time t.
func (k *Key) TOTP(t time.Time) string { return k.HOTP(k.p.step(t)) }

// Window is the set of time steps a TOTP verification accepts, relative to
// the current step: from current-Behind to current+Ahead. Behind or Ahead may
// be negative to shift a window learned from clock drift, but the window must
// hold at least one step and at most MaxWindow steps.
type Window struct {
	Behind int
	Ahead  int
}

// DefaultWindow accepts the previous, current and next step, as RFC 6238
// §5.2 recommends.
var DefaultWindow = Window{Behind: 1, Ahead: 1}

// MaxWindow bounds the steps one verification computes, which bounds both
// its cost and an attacker's odds.
const MaxWindow = 101

// Size returns the number of steps in the window.
func (w Window) Size() int { return w.Behind + w.Ahead + 1 }

// Shift returns the window moved by drift steps.
func (w Window) Shift(drift int) Window {
	return Window{Behind: w.Behind - drift, Ahead: w.Ahead + drift}
}

// Match is the outcome of a verification that got a well-formed code.
type Match struct {
	Valid  bool
	Step   uint64 // the matched step (TOTP) or counter (HOTP); 0 when not valid
	Offset int    // Step minus the current step (TOTP) or the start counter (HOTP)
}

// ErrWindow is returned for a window with no steps or more than MaxWindow.
var ErrWindow = fmt.Errorf("otp: window must hold 1 to %d steps", MaxWindow)

// Verify checks code against the steps of window w around time t. An error
// means the code is malformed (see ParseCode) or the window is invalid; a
// well-formed wrong code gives Match{Valid: false} and no error.
//
// Every step in the window is computed and compared in constant time with no
// early exit, so the time taken reveals neither whether nor where a code
// matched. When several steps match, the latest wins: replay protection keeps
// the last accepted step and needs the newest candidate.
func (k *Key) Verify(code string, t time.Time, w Window) (Match, error) {
	n := w.Size()
	if n < 1 || n > MaxWindow {
		return Match{}, ErrWindow
	}
	in, err := ParseCode(code, k.p.Digits)
	if err != nil {
		return Match{}, err
	}
	cur := int64(k.p.step(t))
	first := cur - int64(w.Behind)
	if first < 0 { // the window reaches before T0; those steps do not exist
		n += int(first)
		first = 0
		if n < 1 {
			return Match{}, nil
		}
	}
	m := k.match(in, uint64(first), n)
	if m.Valid {
		m.Offset = int(int64(m.Step) - cur)
	}
	return m, nil
}

// VerifyHOTP checks code against counters start to start+lookAhead. The
// caller stores Step+1 as the next start after a valid match.
func (k *Key) VerifyHOTP(code string, start uint64, lookAhead int) (Match, error) {
	n := lookAhead + 1
	if lookAhead < 0 || n > MaxWindow || start > ^uint64(0)-uint64(lookAhead) {
		return Match{}, ErrWindow
	}
	in, err := ParseCode(code, k.p.Digits)
	if err != nil {
		return Match{}, err
	}
	m := k.match(in, start, n)
	if m.Valid {
		m.Offset = int(m.Step - start)
	}
	return m, nil
}

// match compares in with the codes of n counters from first, in constant time.
func (k *Key) match(in uint32, first uint64, n int) Match {
	found, idx := 0, 0
	k.mu.Lock()
	for i := 0; i < n; i++ {
		eq := subtle.ConstantTimeEq(int32(k.value(first+uint64(i))), int32(in))
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	k.mu.Unlock()
	if found == 0 {
		return Match{}
	}
	return Match{Valid: true, Step: first + uint64(idx)}
}

// Errors of ParseCode, all matching ErrMalformedCode under errors.Is.
var (
	ErrMalformedCode = errors.New("otp: malformed code")
	ErrCodeLength    = &codeError{"wrong number of digits"}
	ErrCodeNotDigits = &codeError{"code must contain only the ASCII digits 0-9"}
)

type codeError struct{ msg string }

func (e *codeError) Error() string        { return "otp: " + e.msg }
func (e *codeError) Is(target error) bool { return target == ErrMalformedCode }

// lengthError says how many digits were wanted without echoing the input.
type lengthError struct{ want, got int }

func (e *lengthError) Error() string {
	return fmt.Sprintf("otp: code must be %d digits, got %d", e.want, e.got)
}
func (e *lengthError) Is(target error) bool {
	return target == ErrMalformedCode || target == ErrCodeLength
}

// maxCodeInput bounds the input ParseCode reads, spaces included.
const maxCodeInput = 64

// ParseCode validates a code typed by a person and returns its value. It
// accepts exactly digits ASCII digits, ignoring spaces ("123 456"). Letters,
// punctuation and non-ASCII digits (Arabic-Indic, full-width) give
// ErrCodeNotDigits; any other count of digits gives ErrCodeLength. Both match
// ErrMalformedCode, so callers can tell a malformed code from a wrong one.
// Errors never contain the input.
func ParseCode(code string, digits int) (uint32, error) {
	if len(code) > maxCodeInput {
		return 0, &lengthError{want: digits, got: len(code)}
	}
	var v uint32
	n := 0
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case c == ' ':
		case c >= '0' && c <= '9':
			if n < MaxDigits {
				v = v*10 + uint32(c-'0')
			}
			n++
		default:
			return 0, ErrCodeNotDigits
		}
	}
	if n != digits {
		return 0, &lengthError{want: digits, got: n}
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
