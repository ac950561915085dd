package twofa

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twofa/twofa/otp"
)

// Factors that verify a code.
const (
	FactorTOTP       = "totp"
	FactorBackupCode = "backup_code"
)

// Reasons a well-formed code is refused.
const (
	ReasonInvalidCode = "invalid_code"
	ReasonReplayed    = "replayed"
)

// VerifyResult is the answer to a well-formed code.
type VerifyResult struct {
	Valid  bool
	Reason string // when not valid: ReasonInvalidCode or ReasonReplayed
	Factor string // when valid: FactorTOTP or FactorBackupCode
	Device string // the matching TOTP device
	// BackupCodesRemaining is the user's unused backup codes after this.
	BackupCodesRemaining int
	// LockedUntil is set when this failure locked the user.
	LockedUntil time.Time
}

// Verify answers whether code is the user's second factor, now, for the
// first time. It tries every active TOTP device, or, when the code has the
// form of a backup code, the user's backup codes.
//
// Errors, for which no failure is counted (the per-IP and per-tenant
// limits count every attempt all the same): ErrNotEnrolled (no active
// factor), ErrMalformedCode (a code of no factor's form; limited per
// user), LockedError (too many failures), ErrRateLimited.
//
// A TOTP code is checked and counted in one store transaction that holds
// the user (Store.Attempt): parallel guesses are taken one at a time, so
// they cannot outrun the lockout, and a time step is accepted only if it
// is newer than the device's last accepted step, so of any number of
// concurrent requests with one code, in any number of processes, exactly
// one is valid. A backup code is counted as a failure before it is
// checked, and spent with a compare-and-set.
func (s *Service) Verify(ctx context.Context, ref UserRef, code string) (*VerifyResult, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	now := s.now()
	limits := s.verifyLimits(ctx, ref)
	if _, ok := normalizeBackupCode(code); ok {
		if err := s.applyLimits(ctx, limits, now); err != nil {
			return nil, err
		}
		return s.verifyBackup(ctx, ref, code, now)
	}
	// A step that another change (a resync) accepted between the read and
	// the write makes the store answer ErrReplayed, changing nothing but
	// the limits' counts; the next try sees it, and counts nothing again.
	// Twice in a row would take two such changes.
	for try := 0; ; try++ {
		res, err := s.verifyTOTP(ctx, ref, code, now, limits)
		if errors.Is(err, ErrReplayed) && try < 2 {
			limits = nil
			continue
		}
		return res, err
	}
}

// malformedError carries a malformed code's error out of an attempt.
type malformedError struct{ err error }

func (e *malformedError) Error() string { return e.err.Error() }

// verifyTOTP makes one attempt with a code of no backup code's form.
func (s *Service) verifyTOTP(ctx context.Context, ref UserRef, code string, now time.Time, limits []verifyLimit) (*VerifyResult, error) {
	var res *VerifyResult
	a := AttemptRequest{Ref: ref, Now: now}
	for _, l := range limits {
		a.Hits = append(a.Hits, LimitHit{Key: l.key, Window: time.Minute})
	}
	err := s.store.Attempt(ctx, a, func(u *User, counts []int) (*Outcome, error) {
		for i, l := range limits {
			if counts[i] > l.max {
				return nil, l.refusal(now)
			}
		}
		devices := u.ActiveDevices()
		if len(devices) == 0 && u.BackupCodes == 0 {
			return nil, ErrNotEnrolled
		}
		if _, err := classify(code, devices); err != nil {
			return nil, &malformedError{err}
		}
		if u.Locked(now) {
			return nil, LockedError(u.LockedUntil)
		}
		match, m, err := s.matchTOTP(devices, code, now)
		if err != nil {
			return nil, err
		}
		if match != nil && m.Step > match.LastStep {
			e := s.event(ctx, EventVerifySucceeded, ref, match.ID, now)
			e.Factor = FactorTOTP
			e.Detail = fmt.Sprintf("step offset %+d", m.Offset)
			res = &VerifyResult{Valid: true, Factor: FactorTOTP, Device: match.ID, BackupCodesRemaining: u.BackupCodes}
			return &Outcome{
				Accept: &StepAcceptance{DeviceID: match.ID, Step: m.Step, Drift: clampDrift(m.Offset, s.policy.MaxDrift), Now: now},
				Events: []*AuditEvent{e},
			}, nil
		}
		reason, device := ReasonInvalidCode, ""
		if match != nil {
			reason, device = ReasonReplayed, match.ID
		}
		var events []*AuditEvent
		res, events = s.failure(ctx, ref, device, FactorTOTP, reason, u.Failures+1, now)
		o := &Outcome{Failures: u.Failures + 1, LockedUntil: u.LockedUntil, Events: events}
		if !res.LockedUntil.IsZero() {
			o.LockedUntil = res.LockedUntil
		}
		return o, nil
	})
	var me *malformedError
	switch {
	case errors.As(err, &me):
		return nil, s.refuseMalformed(ctx, ref, now, me.err)
	case errors.Is(err, ErrNotFound):
		return nil, ErrNotEnrolled
	case err != nil:
		return nil, err
	}
	s.logLock(ctx, ref, res)
	return res, nil
}

// matchTOTP checks code against every TOTP device, with no early exit, so
// the time taken does not tell which device, if any, matched. It prefers a
// match that is not a replay; match is nil when no device matched.
func (s *Service) matchTOTP(devices []*Device, code string, now time.Time) (match *Device, m otp.Match, err error) {
	for _, d := range devices {
		if d.Kind != KindTOTP {
			continue
		}
		k, err := s.key(d)
		if err != nil {
			return nil, otp.Match{}, err
		}
		dm, err := k.Verify(code, now, s.policy.windowFor(d.Drift))
		if err != nil {
			continue // another device's length; classify saw one that fits
		}
		if dm.Valid && (match == nil || match.LastStep >= m.Step && dm.Step > d.LastStep) {
			match, m = d, dm
		}
	}
	return match, m, nil
}

// verifyBackup makes one attempt with a code of a backup code's form.
func (s *Service) verifyBackup(ctx context.Context, ref UserRef, code string, now time.Time) (*VerifyResult, error) {
	u, err := s.store.User(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, err
	}
	if len(u.ActiveDevices()) == 0 && u.BackupCodes == 0 {
		return nil, ErrNotEnrolled
	}
	if u.Locked(now) {
		return nil, LockedError(u.LockedUntil)
	}
	failures, err := s.store.BeginAttempt(ctx, ref, now, s.policy.LockUntil)
	if err != nil {
		return nil, err
	}
	return s.verifyBackupCode(ctx, u, code, failures, now)
}

// classify tells which factor a code has the form of: a TOTP code of some
// active device's length, or a backup code.
func classify(code string, devices []*Device) (string, error) {
	if _, ok := normalizeBackupCode(code); ok {
		return FactorBackupCode, nil
	}
	var first error
	for _, d := range devices {
		_, err := otp.ParseCode(code, d.Params.Digits)
		if err == nil {
			return FactorTOTP, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		return "", &Error{Code: EINVALID, Reason: ErrMalformedCode.Reason, Message: "code is not a backup code (such as " + backupExample + ")"}
	}
	return "", malformed(first)
}

// verifyLimit is one of the limits on verifications: at most max a
// minute under key.
type verifyLimit struct {
	key, what string
	max       int
}

func (l verifyLimit) refusal(now time.Time) error {
	return RateLimitedError(l.what, now.Truncate(time.Minute).Add(time.Minute))
}

// verifyLimits returns the per-tenant and per-IP limits that apply. The
// IP is the end user's, as the calling application reports it: every
// request of a tenant comes from its servers, so their address would
// limit everyone.
func (s *Service) verifyLimits(ctx context.Context, ref UserRef) []verifyLimit {
	var ls []verifyLimit
	if n := s.policy.TenantVerifyPerMinute; n > 0 {
		ls = append(ls, verifyLimit{"verify-tenant:" + ref.Tenant, "verifications for this tenant", n})
	}
	if ip := MetaFrom(ctx).IP; ip != "" && s.policy.VerifyPerIPPerMinute > 0 {
		ls = append(ls, verifyLimit{"verify-ip:" + ref.Tenant + ":" + ip, "verifications from this IP address", s.policy.VerifyPerIPPerMinute})
	}
	return ls
}

// applyLimits counts an attempt against each limit and refuses it if one
// is exceeded.
func (s *Service) applyLimits(ctx context.Context, limits []verifyLimit, now time.Time) error {
	for _, l := range limits {
		n, err := s.store.Hit(ctx, l.key, time.Minute, now)
		if err != nil {
			return err
		}
		if n > l.max {
			return l.refusal(now)
		}
	}
	return nil
}

// refuseMalformed records a malformed code against the user's limit.
// Malformed input is not a guess, so it is not a failure, but an
// unbounded stream of it would still cost us work and log space.
func (s *Service) refuseMalformed(ctx context.Context, ref UserRef, now time.Time, err error) error {
	n, herr := s.store.Hit(ctx, "malformed:"+ref.String(), time.Minute, now)
	if herr != nil {
		return herr
	}
	if n > s.policy.MalformedPerMinute {
		return RateLimitedError("malformed codes", now.Truncate(time.Minute).Add(time.Minute))
	}
	return err
}

// clampDrift bounds a learned drift: the window reaches at most MaxDrift
// steps beyond the policy's window.
func clampDrift(offset, bound int) int {
	return max(-bound, min(bound, offset))
}

// fail records a failed backup code attempt (already counted by
// BeginAttempt) and, if it locked the user, the lock.
func (s *Service) fail(ctx context.Context, ref UserRef, device, factor, reason string, failures int, now time.Time) (*VerifyResult, error) {
	res, events := s.failure(ctx, ref, device, factor, reason, failures, now)
	s.audit(ctx, events...)
	s.logLock(ctx, ref, res)
	return res, nil
}

// failure returns the answer to the attempt that made failures
// consecutive failures, and its audit events: the failure and, if it
// locks the user, the lock.
func (s *Service) failure(ctx context.Context, ref UserRef, device, factor, reason string, failures int, now time.Time) (*VerifyResult, []*AuditEvent) {
	t := EventVerifyFailed
	if reason == ReasonReplayed {
		t = EventReplayRejected
	}
	e := s.event(ctx, t, ref, device, now)
	e.Factor, e.Reason, e.Detail = factor, reason, fmt.Sprintf("%d consecutive failure%s", failures, plural(failures))
	events := []*AuditEvent{e}
	res := &VerifyResult{Reason: reason}
	if until := s.policy.LockUntil(failures, now); !until.IsZero() {
		res.LockedUntil = until
		l := s.event(ctx, EventLocked, ref, "", now)
		l.Detail = fmt.Sprintf("after %d consecutive failures, until %s", failures, until.UTC().Format(time.RFC3339))
		events = append(events, l)
	}
	return res, events
}

// logLock logs a lockout that an answer reports.
func (s *Service) logLock(ctx context.Context, ref UserRef, res *VerifyResult) {
	if res != nil && !res.LockedUntil.IsZero() {
		s.log.WarnContext(ctx, "user locked out", "tenant", ref.Tenant, "user", ref.User, "until", res.LockedUntil)
	}
}

// ResyncResult is the outcome of a resync.
type ResyncResult struct {
	Valid  bool
	Reason string // "invalid_code", "not_consecutive", "clock_too_far", "first_code_saved"
	Drift  int    // the device's drift in steps, when valid
	// ClockSkew is how far the device's clock seems off (positive: ahead).
	ClockSkew time.Duration
}

// Resync relearns a device's clock drift from two consecutive codes,
// searched in a wide window (Policy.ResyncWindow steps either side). Given
// only code1, it remembers it for Policy.ResyncMemory and a later call with
// the next code completes the pair. The accepted step is burnt like any
// other. Resync is rate limited per user, audited, refused while the user
// is locked, and never clears a lock or failure count.
//
// A drift larger than MaxDrift steps beyond the window is refused as
// "clock_too_far": a phone that far off has a wrong clock, and the user
// should set it to automatic time rather than have twofa follow it.
func (s *Service) Resync(ctx context.Context, ref UserRef, deviceID, code1, code2 string) (*ResyncResult, error) {
	u, err := s.user(ctx, ref)
	if err != nil {
		return nil, err
	}
	now := s.now()
	d := u.Device(deviceID)
	if d == nil || d.Status != StatusActive || d.Kind != KindTOTP {
		return nil, fmt.Errorf("no active TOTP device %q: %w", deviceID, ErrNotFound)
	}
	if _, err := otp.ParseCode(code1, d.Params.Digits); err != nil {
		return nil, malformed(err)
	}
	if _, err := otp.ParseCode(code2, d.Params.Digits); err != nil && code2 != "" {
		return nil, malformed(err)
	}
	if u.Locked(now) {
		return nil, LockedError(u.LockedUntil)
	}
	n, err := s.store.Hit(ctx, "resync:"+ref.String(), time.Hour, now)
	if err != nil {
		return nil, err
	}
	if n > s.policy.ResyncPerHour {
		return nil, RateLimitedError("resync attempts", now.Truncate(time.Hour).Add(time.Hour))
	}
	k, err := s.key(d)
	if err != nil {
		return nil, err
	}
	wide := otp.Window{Behind: s.policy.ResyncWindow, Ahead: s.policy.ResyncWindow}
	cur := d.Params.Step(now)
	find := func(code string) (uint64, bool) {
		m, err := k.Verify(code, now, wide)
		return m.Step, err == nil && m.Valid && m.Step > d.LastStep
	}
	failed := func(reason string) (*ResyncResult, error) {
		e := s.event(ctx, EventResyncFailed, ref, d.ID, now)
		e.Factor, e.Reason = FactorTOTP, reason
		s.audit(ctx, e)
		return &ResyncResult{Reason: reason}, nil
	}
	first, ok := find(code1)
	if !ok {
		return failed(ReasonInvalidCode)
	}
	var second uint64
	switch {
	case code2 != "":
		if second, ok = find(code2); !ok {
			return failed(ReasonInvalidCode)
		}
	case !d.ResyncAt.IsZero() && now.Sub(d.ResyncAt) <= s.policy.ResyncMemory:
		// code1 completes the pair begun earlier.
		first, second = d.ResyncStep, first
	default:
		e := s.event(ctx, EventResyncStarted, ref, d.ID, now)
		e.Factor = FactorTOTP
		if err := s.store.SetResync(ctx, ref, d.ID, first, now, e); err != nil {
			return nil, err
		}
		return &ResyncResult{Reason: "first_code_saved"}, nil
	}
	if second != first+1 {
		return failed("not_consecutive")
	}
	offset := int(int64(second) - int64(cur))
	skew := time.Duration(offset*d.Params.Period) * time.Second
	if limit := s.policy.MaxDrift + max(s.policy.Window.Behind, s.policy.Window.Ahead); offset > limit || -offset > limit {
		res, err := failed("clock_too_far")
		if res != nil {
			res.ClockSkew = skew
		}
		return res, err
	}
	drift := clampDrift(offset, s.policy.MaxDrift)
	e := s.event(ctx, EventResyncSucceeded, ref, d.ID, now)
	e.Factor, e.Detail = FactorTOTP, fmt.Sprintf("drift %+d steps", drift)
	err = s.store.AcceptStep(ctx, StepAcceptance{Ref: ref, DeviceID: d.ID, Step: second, Drift: drift, Now: now, Event: e})
	if errors.Is(err, ErrReplayed) {
		return failed(ReasonReplayed)
	}
	if err != nil {
		return nil, err
	}
	return &ResyncResult{Valid: true, Drift: drift, ClockSkew: skew}, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
