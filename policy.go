package twofa

import (
	"fmt"
	"time"

	"github.com/twofa/twofa/otp"
)

// Policy is what an operator may tune. DefaultPolicy gives the defaults;
// the zero value is not a usable policy.
type Policy struct {
	// Window is the TOTP steps accepted around the current one (default
	// ±1, RFC 6238 §5.2). Asymmetric windows are allowed.
	Window otp.Window
	// MaxDrift bounds the learned clock drift of a device, in steps
	// (default 2). Drift moves the window; it never widens it.
	MaxDrift int
	// ClockHintWindow is how many steps either side the enrollment page
	// looks for a code typed on a phone with a wrong clock, to say so
	// (default 20, ±10 minutes at 30 s). Whoever enrolls holds the secret,
	// so the hint tells them nothing new.
	ClockHintWindow int
	// ResyncPerHour limits resync attempts per user (default 5).
	ResyncPerHour int

	// TOTP holds the parameters of new devices, unless a request sets
	// them (default SHA1, 6 digits, 30 s: the only set every app honours).
	TOTP otp.Params
	// Issuer names the service in authenticator apps (default "twofa").
	Issuer string
	// EnrollTTL is how long an enrollment waits for its confirmation code
	// (default 10 minutes).
	EnrollTTL time.Duration
	// MaxDevices caps a user's devices, pending ones included (default 5).
	MaxDevices int
	// BackupCodes is the number of codes in a set (default 10).
	BackupCodes int

	// LockAfter consecutive failures lock the user for LockBase, doubling
	// with each further failure up to LockMax (defaults 5, 30 s, 15 min).
	LockAfter int
	LockBase  time.Duration
	LockMax   time.Duration
	// HardLockAfter consecutive failures lock the user until an
	// administrator unlocks them (default 100, NIST SP 800-63B's ceiling).
	HardLockAfter int
	// MaxFailuresPerDay, when above 0, is a rolling budget of failed
	// attempts per user over any 24 hours that, unlike the consecutive
	// count, a success does not reset (default 0: off). Spent, it refuses
	// the user's attempts until old failures leave the 24 hours.
	MaxFailuresPerDay int
	// MalformedPerMinute limits malformed codes per user: they are not
	// guesses, and do not count as failures, but are limited too
	// (default 20).
	MalformedPerMinute int

	// VerifyPerIPPerMinute limits failed code checks per end-user IP
	// address in a tenant, as the calling application reports it
	// (default 600; 0: no limit). Only wrong and replayed codes count:
	// refusals that cost an attacker nothing (a locked or unknown user,
	// malformed input) do not spend the budget of others behind the same
	// address. Once spent, every attempt from the address is refused
	// until the minute ends. TenantVerifyPerMinute limits a whole
	// tenant's attempts (default 0: no limit).
	VerifyPerIPPerMinute  int
	TenantVerifyPerMinute int
}

// DefaultPolicy returns the default policy.
func DefaultPolicy() Policy {
	return Policy{
		Window:             otp.DefaultWindow,
		MaxDrift:           2,
		ClockHintWindow:    20,
		ResyncPerHour:      5,
		TOTP:               otp.Params{Algorithm: otp.SHA1, Digits: 6, Period: 30},
		Issuer:             "twofa",
		EnrollTTL:          10 * time.Minute,
		MaxDevices:         5,
		BackupCodes:        10,
		LockAfter:          5,
		LockBase:           30 * time.Second,
		LockMax:            15 * time.Minute,
		HardLockAfter:      100,
		MalformedPerMinute: 20,

		VerifyPerIPPerMinute: 600,
	}
}

// MaxDevicePeriod is the longest TOTP period of a device the Service
// enrolls, imports or is configured for: NIST SP 800-63B asks that a
// time-based nonce change at least every two minutes. It is narrower on
// purpose than otp.MaxPeriod, the bound of the otp library, which computes
// and parses keys of any period other systems use (up to an hour); the
// check below keeps twofa's limit inside the library's.
const MaxDevicePeriod = 120

// A compile-time check: this constant overflows uint if MaxDevicePeriod
// ever exceeds otp.MaxPeriod, which the otp package would then refuse.
const _ = uint(otp.MaxPeriod - MaxDevicePeriod)

// Validate checks that the policy is usable.
func (p Policy) Validate() error {
	t, err := p.TOTP.Normalize()
	switch {
	case err != nil:
		return fmt.Errorf("policy: %w", err)
	case t.Period > MaxDevicePeriod:
		return fmt.Errorf("policy: TOTP period must be at most %d seconds", MaxDevicePeriod)
	case p.Window.Behind < 0 || p.Window.Ahead < 0:
		return fmt.Errorf("policy: window must include the current step")
	case p.Window.Size() > otp.MaxWindow || 2*p.resyncReach()+1 > otp.MaxWindow:
		return fmt.Errorf("policy: window and drift must stay within %d steps", otp.MaxWindow)
	case p.MaxDrift < 0 || p.ClockHintWindow < 1 || 2*p.ClockHintWindow+1 > otp.MaxWindow:
		return fmt.Errorf("policy: drift and clock hint window out of range")
	case p.ResyncPerHour < 1:
		return fmt.Errorf("policy: resync limit must be positive")
	case p.EnrollTTL <= 0 || p.MaxDevices < 1 || p.BackupCodes < 1 || p.BackupCodes > 100:
		return fmt.Errorf("policy: enrollment TTL, device cap and backup code count must be positive (at most 100 codes)")
	case p.LockAfter < 1 || p.LockBase <= 0 || p.LockMax < p.LockBase:
		return fmt.Errorf("policy: lockout must start after at least 1 failure, with 0 < base <= max")
	case p.HardLockAfter < p.LockAfter || p.HardLockAfter > 100:
		return fmt.Errorf("policy: hard lock must come after the first lock and at most at 100 failures (NIST SP 800-63B)")
	case p.MaxFailuresPerDay < 0:
		return fmt.Errorf("policy: daily failure budget must not be negative (0: off)")
	case p.MalformedPerMinute < 1:
		return fmt.Errorf("policy: malformed-code limit must be positive")
	case p.VerifyPerIPPerMinute < 0 || p.TenantVerifyPerMinute < 0:
		return fmt.Errorf("policy: verification limits must not be negative (0: no limit)")
	}
	return nil
}

// LockUntil returns until when a user with this many consecutive failures
// is locked, or the zero time for none: LockBase at LockAfter failures,
// doubling with each further one up to LockMax, and Forever from
// HardLockAfter on.
func (p Policy) LockUntil(failures int, now time.Time) time.Time {
	switch {
	case failures >= p.HardLockAfter:
		return Forever
	case failures < p.LockAfter:
		return time.Time{}
	}
	d := p.LockBase
	for i := p.LockAfter; i < failures && d < p.LockMax; i++ {
		d *= 2
	}
	return now.Add(min(d, p.LockMax))
}

// windowFor returns the TOTP window of a device with the given learned
// drift: the policy's window moved by the drift, so that it accepts as
// many steps as ever, around where the device's clock is. A device whose
// clock is set right again after a drift of more than the window's reach
// resyncs.
func (p Policy) windowFor(drift int) otp.Window { return p.Window.Shift(drift) }

// resyncReach is how far from the current step a resync may find a pair
// of codes: the furthest the window reaches with the largest drift.
func (p Policy) resyncReach() int { return p.MaxDrift + max(p.Window.Behind, p.Window.Ahead) }
