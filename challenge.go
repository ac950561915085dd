package twofa

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// A challenge is a code twofa delivers to one of the user's devices (an
// email address today; a phone next) and the user types back. Every
// delivered factor shares this framework: codes kept only as keyed
// hashes, resends that keep earlier codes valid, one attempt budget per
// challenge, and every guess through the one attempt path, so that it
// counts towards the user's lockout like a TOTP code.

// Challenge purposes.
const (
	PurposeSignIn  = "sign_in"       // a second factor at sign-in
	PurposeConfirm = "confirm_email" // proves an address while enrolling it
)

// Challenge states, as GET reports them.
const (
	ChallengePending  = "pending"  // waiting for a code
	ChallengeVerified = "verified" // a right code was typed; spent
	ChallengeExpired  = "expired"  // every code expired, or the budget is spent
)

// Challenge is one delivered-code challenge of a user.
type Challenge struct {
	ID       string
	Tenant   string
	User     string
	DeviceID string // the device the codes go to
	Factor   string // FactorEmail
	Purpose  string // PurposeSignIn or PurposeConfirm

	// Codes are the live codes, oldest first: hashes only.
	Codes []ChallengeCode
	// Attempts counts wrong codes typed, shared by every code.
	Attempts int
	// Sends counts codes sent; LastSentAt is the last.
	Sends      int
	LastSentAt time.Time

	CreatedAt  time.Time
	ExpiresAt  time.Time // when its newest code expires
	ConsumedAt time.Time // when a right code spent it
}

// Ref returns the challenge's user.
func (c *Challenge) Ref() UserRef { return UserRef{Tenant: c.Tenant, User: c.User} }

// ChallengeCode is one code of a challenge: its keyed hash and expiry.
type ChallengeCode struct {
	Hash      []byte
	ExpiresAt time.Time
}

// deviceFits reports whether d is still what the challenge was for: an
// address removed since, or an enrollment that expired, ends it.
func (c *Challenge) deviceFits(d *Device, now time.Time) bool {
	if d == nil || d.ID != c.DeviceID {
		return false
	}
	if c.Purpose == PurposeConfirm {
		return d.Status == StatusPending && d.ExpiresAt.After(now)
	}
	return d.Status == StatusActive
}

// State returns the challenge's state at now.
func (c *Challenge) State(now time.Time) string {
	switch {
	case !c.ConsumedAt.IsZero():
		return ChallengeVerified
	case !c.ExpiresAt.After(now) || c.Attempts >= MaxChallengeAttempts:
		return ChallengeExpired
	}
	return ChallengePending
}

// Limits of delivered codes.
const (
	// MaxChallengeAttempts is the wrong codes one challenge takes, all
	// its codes together; each also counts towards the user's lockout.
	MaxChallengeAttempts = 5
	// MaxLiveCodes is how many codes of one challenge are valid at once:
	// a resend keeps earlier ones, since mail is slow and users type the
	// older code.
	MaxLiveCodes = 3
)

// ChallengeStore keeps challenges. They are verified by an attempt
// (AttemptReads.Challenge, ConsumeChallenge, FailChallenge).
type ChallengeStore interface {
	// CreateChallenge stores a new challenge with its first code, and
	// appends e (which carries the code's message) in the same
	// transaction. ErrNotFound if the user is unknown.
	CreateChallenge(ctx context.Context, c *Challenge, e *AuditEvent) error

	// AddChallengeCode adds a code to the user's challenge (a resend),
	// atomically: only if the challenge is pending at now (not consumed,
	// not expired, budget not spent) and its last send was at least gap
	// before now. The challenge then keeps its MaxLiveCodes newest codes,
	// counts the send, and expires with the new code. e is appended in
	// the same transaction. ErrNotFound (no such challenge of the user),
	// ErrExpired (no longer pending), or a RateLimitedError until the gap
	// has passed.
	AddChallengeCode(ctx context.Context, ref UserRef, id string, code ChallengeCode, now time.Time, gap time.Duration, e *AuditEvent) error

	// Challenge returns the user's challenge with its live codes.
	// ErrNotFound.
	Challenge(ctx context.Context, ref UserRef, id string) (*Challenge, error)

	// DeleteChallenges deletes challenges that ended (expired or were
	// consumed) before before, and returns how many.
	DeleteChallenges(ctx context.Context, before time.Time) (int, error)
}

// ConsumeChallenge spends a challenge whose code was right. Condition:
// not yet consumed.
type ConsumeChallenge struct{ ID string }

// FailChallenge counts a wrong code against a challenge's budget.
// Condition: not yet consumed.
type FailChallenge struct{ ID string }

// ActivateDevice makes a pending device active, as its confirmation
// code's challenge is spent. Condition: the device is a pending device of
// the user that has not expired.
type ActivateDevice struct{ DeviceID string }

// UseDevice records the use of an active device (LastUsedAt). Condition:
// the device is an active device of the user.
type UseDevice struct{ DeviceID string }

func (ConsumeChallenge) effect() {}
func (FailChallenge) effect()    {}
func (ActivateDevice) effect()   {}
func (UseDevice) effect()        {}

// newCode returns a code of n random decimal digits, from crypto/rand.
func newCode(n int) (string, error) {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rand.Reader, max)
	if err != nil {
		return "", fmt.Errorf("generating a code: %w", err)
	}
	return fmt.Sprintf("%0*d", n, v), nil
}

// codeHash is the stored form of a delivered code: HMAC-SHA-256 under a
// key sealed in the store, over the challenge and the code, so that a
// stolen database yields no code and a code is bound to its challenge.
func (s *Service) codeHash(challenge, code string) []byte {
	m := hmac.New(sha256.New, s.codeKey)
	var buf [binary.MaxVarintLen64]byte
	for _, f := range []string{"twofa/challenge-code/v1", challenge, code} {
		m.Write(buf[:binary.PutUvarint(buf[:], uint64(len(f)))])
		m.Write([]byte(f))
	}
	return m.Sum(nil)
}

// challengeAttempt is a code typed for a challenge.
type challengeAttempt struct {
	id, code string
	digits   int
	// purpose and device are what the challenge must be for (device:
	// any when empty).
	purpose, device string
}

func (c challengeAttempt) reads(*Service, UserRef) AttemptReads {
	return AttemptReads{Challenge: c.id}
}

func (challengeAttempt) limits(*Service, UserRef) []limit { return nil }

func (c challengeAttempt) form(_ *Service, u *User) error {
	if !validDigits(c.code, c.digits) {
		return &malformedError{&Error{Code: EINVALID, Reason: ErrMalformedCode.Reason,
			Message: fmt.Sprintf("code must be %d ASCII digits", c.digits)}}
	}
	return nil
}

func (c challengeAttempt) judge(s *Service, st *AttemptState, now time.Time) (*verdict, error) {
	ch := st.Challenge
	if ch == nil || ch.Purpose != c.purpose || c.device != "" && ch.DeviceID != c.device {
		return nil, fmt.Errorf("challenge %q: %w", c.id, ErrNotFound)
	}
	if ch.State(now) != ChallengePending {
		return nil, ErrChallengeEnded
	}
	if !ch.deviceFits(st.User.Device(ch.DeviceID), now) {
		return nil, ErrChallengeEnded
	}
	v := &verdict{factor: ch.Factor, device: ch.DeviceID, reason: ReasonInvalidCode,
		ok: EventChallengeVerified, failed: EventVerifyFailed, remaining: st.User.BackupCodes}
	// Every live code is compared, with no early exit.
	want := s.codeHash(ch.ID, c.code)
	match := 0
	for _, k := range ch.Codes {
		// (When a code expires is no secret; whether it matches is.)
		match |= subtle.ConstantTimeCompare(k.Hash, want) & boolInt(k.ExpiresAt.After(now))
	}
	if match == 1 {
		v.valid = true
		v.effects = []Effect{ConsumeChallenge{ID: ch.ID}}
		if ch.Purpose == PurposeConfirm {
			v.ok = EventEnrollConfirmed
			v.effects = append(v.effects, ActivateDevice{DeviceID: ch.DeviceID})
			v.notify, v.noticeDevice = true, ch.DeviceID
		} else {
			v.effects = append(v.effects, UseDevice{DeviceID: ch.DeviceID})
		}
		return v, nil
	}
	v.failEffects = []Effect{FailChallenge{ID: ch.ID}}
	return v, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// validDigits reports whether code is exactly n ASCII digits.
func validDigits(code string, n int) bool {
	if len(code) != n {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// ErrChallengeEnded: the challenge was spent, expired, or ran out of
// attempts; ask for a new one.
var ErrChallengeEnded = &Error{Code: ENOTFOUND, Reason: "challenge_ended", Message: "this challenge has ended: ask for a new code"}

// VerifyChallenge answers whether code is a live code of the user's
// challenge: the same answer as Verify, through the same attempt path (a
// wrong code is a failed attempt of the user, and counts against the
// challenge's budget). Errors: ErrNotFound (no such challenge of the
// user), ErrChallengeEnded, ErrMalformedCode, LockedError,
// ErrRateLimited.
func (s *Service) VerifyChallenge(ctx context.Context, ref UserRef, id, code string) (*VerifyResult, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	return s.verifyChallenge(ctx, ref, challengeAttempt{id: id, code: code, digits: EmailCodeDigits, purpose: PurposeSignIn})
}

// ConfirmEmail confirms the user's pending email device with a code of
// the challenge its enrollment sent, through the attempt path as every
// code is: a wrong one is a failed attempt of the user. A right one makes
// the device active and tells every confirmed address of the user, the
// new one included. Errors as VerifyChallenge's.
func (s *Service) ConfirmEmail(ctx context.Context, ref UserRef, deviceID, challengeID, code string) (*VerifyResult, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	return s.verifyChallenge(ctx, ref, challengeAttempt{id: challengeID, code: code, digits: EmailCodeDigits, purpose: PurposeConfirm, device: deviceID})
}

func (s *Service) verifyChallenge(ctx context.Context, ref UserRef, c challengeAttempt) (*VerifyResult, error) {
	v, err := s.attempt(ctx, ref, c)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("challenge %q: %w", c.id, ErrNotFound)
		}
		return nil, err
	}
	return v.result(), nil
}
