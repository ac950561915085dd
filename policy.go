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
	// MaxDrift bounds the learned clock drift of a device, in steps beyond
	// the window (default 2).
	MaxDrift int
	// ResyncWindow is how many steps either side a resync searches
	// (default 20, ±10 minutes at 30 s).
	ResyncWindow int
	// ResyncMemory is how long the first code of a resync pair is
	// remembered (default 5 minutes).
	ResyncMemory time.Duration
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
	// MalformedPerMinute limits malformed codes per user: they are not
	// guesses, and do not count as failures, but are limited too
	// (default 20).
	MalformedPerMinute int

	// VerifyPerIPPerMinute limits verifications per end-user IP address in
	// a tenant, as the calling application reports it (default 600; 0: no
	// limit). TenantVerifyPerMinute limits a whole tenant's verifications
	// (default 0: no limit).
	VerifyPerIPPerMinute  int
	TenantVerifyPerMinute int
}

// DefaultPolicy returns the default policy.
func DefaultPolicy() Policy {
	return Policy{
		Window:             otp.DefaultWindow,
		MaxDrift:           2,
		ResyncWindow:       20,
		ResyncMemory:       5 * time.Minute,
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
	case p.Window.Size() < 1 || p.Window.Size()+2*p.MaxDrift > otp.MaxWindow:
		return fmt.Errorf("policy: window must hold 1 to %d steps with drift", otp.MaxWindow)
	case p.Window.Behind < 0 || p.Window.Ahead < 0:
		return fmt.Errorf("policy: window must include the current step")
	case p.MaxDrift < 0 || p.ResyncWindow < 1 || 2*p.ResyncWindow+1 > otp.MaxWindow:
		return fmt.Errorf("policy: drift and resync window out of range")
	case p.ResyncMemory <= 0 || p.ResyncPerHour < 1:
		return fmt.Errorf("policy: resync memory and limit must be positive")
	case p.EnrollTTL <= 0 || p.MaxDevices < 1 || p.BackupCodes < 1 || p.BackupCodes > 100:
		return fmt.Errorf("policy: enrollment TTL, device cap and backup code count must be positive (at most 100 codes)")
	case p.LockAfter < 1 || p.LockBase <= 0 || p.LockMax < p.LockBase:
		return fmt.Errorf("policy: lockout must start after at least 1 failure, with 0 < base <= max")
	case p.HardLockAfter < p.LockAfter || p.HardLockAfter > 100:
		return fmt.Errorf("policy: hard lock must come after the first lock and at most at 100 failures (NIST SP 800-63B)")
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
// drift: the policy's window, extended by the drift in its direction. The
// base window always stays, so a phone whose clock is set right again
// keeps working; the extension costs at most MaxDrift steps of odds.
func (p Policy) windowFor(drift int) otp.Window {
	w := p.Window
	if drift > 0 {
		w.Ahead += drift
	} else {
		w.Behind -= drift
	}
	return w
}
