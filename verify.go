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
// Errors, for which no failure is counted: ErrNotEnrolled (no active
// factor), ErrMalformedCode (a code of no factor's form; limited per
// user), LockedError (too many failures), ErrRateLimited.
//
// Every code is checked and counted in one store transaction that holds
// the user (Service.attempt): parallel guesses are taken one at a time, so
// they cannot outrun the lockout; a TOTP step is accepted only if it is
// newer than the device's last accepted step, and a backup code only if
// unused, so of any number of concurrent requests with one code, in any
// number of processes, exactly one is valid.
func (s *Service) Verify(ctx context.Context, ref UserRef, code string) (*VerifyResult, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	v, err := s.attempt(ctx, ref, codeAttempt{code: code})
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, err
	}
	return v.result(), nil
}

// A factorAttempt is the part of an attempt that one factor knows: what
// state it reads, and how it judges the user's input. Service.attempt
// runs it inside the store's transaction, with everything every factor
// shares around it: limits, lockout, counting, audit.
type factorAttempt interface {
	// reads names the state the check needs beyond the user and devices.
	reads(s *Service, ref UserRef) AttemptReads
	// limits are this factor's limits on judged attempts: attempts that
	// reach judge, valid or not, count; refusals do not.
	limits(s *Service, ref UserRef) []limit
	// form refuses input of no acceptable form, for which no failure is
	// counted (the malformed-input limit counts it instead), and any
	// other error that is not a guess (ErrNotEnrolled, ErrNotFound).
	form(s *Service, u *User) error
	// judge decides a well-formed guess by a user who is not locked.
	judge(s *Service, st *AttemptState, now time.Time) (*verdict, error)
}

// verdict is a factor's judgement of one guess.
type verdict struct {
	valid   bool
	factor  string
	device  string
	reason  string   // when not valid: ReasonInvalidCode or ReasonReplayed
	effects []Effect // when valid
	// failEffects are written with a failure, such as a challenge's
	// spent budget.
	failEffects []Effect
	// notify: the success is news to the user's email addresses (a
	// factor confirmed, backup codes running low), and to the device
	// noticeDevice too, if it is not active yet.
	notify       bool
	noticeDevice string
	// ok and failed are the audit events of a success and a failure; a
	// failure with reason replayed is EventReplayRejected.
	ok, failed EventType
	detail     string // of the success event
	remaining  int    // backup codes left after this
	drift      int    // the drift a resync learned
	// lockedUntil is set when this failure locked the user.
	lockedUntil time.Time
}

func (v *verdict) result() *VerifyResult {
	if !v.valid {
		return &VerifyResult{Reason: v.reason, LockedUntil: v.lockedUntil}
	}
	return &VerifyResult{Valid: true, Factor: v.factor, Device: v.device, BackupCodesRemaining: v.remaining}
}

// limit is a limit on attempts: at most max in window under key.
type limit struct {
	LimitHit
	what string
	max  int
}

func (l limit) refusal(now time.Time) error {
	start, _, _, err := l.Slot(now)
	until := now.Add(l.Window)
	if err == nil {
		// The next slot boundary: the earliest the count can fall.
		until = time.UnixMicro(start).Add(l.Window / time.Duration(max(l.Buckets, 1)))
	}
	return RateLimitedError(l.what, until)
}

func hitsOf(ls []limit) []LimitHit {
	hs := make([]LimitHit, len(ls))
	for i, l := range ls {
		hs[i] = l.LimitHit
	}
	return hs
}

// attemptLimits are the limits of one attempt. Only the tenant's are
// counted before the check, whatever it decides; the others are read
// before it and counted with the outcomes they limit, so that a refusal
// that costs nothing (a locked user, malformed input) spends no budget.
type attemptLimits struct {
	counted   []limit // counted before the check
	perIP     *limit  // failed code checks from the end user's address
	daily     *limit  // the user's rolling failure budget
	malform   limit   // the user's malformed input
	judged    []limit // the factor's, on judged attempts
	peeks     []limit // perIP, daily and judged, in order, when set
	ipPeek    int     // index in peeks, or -1
	dayPeek   int
	judgePeek int
}

// limitsFor returns the limits of an attempt on ref.
func (s *Service) limitsFor(ctx context.Context, ref UserRef, f factorAttempt) *attemptLimits {
	p := s.policy
	l := &attemptLimits{ipPeek: -1, dayPeek: -1}
	if n := p.TenantVerifyPerMinute; n > 0 {
		l.counted = append(l.counted, limit{LimitHit{Key: "verify-tenant:" + ref.Tenant, Window: time.Minute}, "attempts for this tenant", n})
	}
	// The IP is the end user's, as the calling application reports it:
	// every request of a tenant comes from its servers, so their address
	// would limit everyone.
	if ip := MetaFrom(ctx).IP; ip != "" && p.VerifyPerIPPerMinute > 0 {
		l.perIP = &limit{LimitHit{Key: "verify-ip:" + ref.Tenant + ":" + ip, Window: time.Minute}, "failed attempts from this IP address", p.VerifyPerIPPerMinute}
		l.ipPeek = len(l.peeks)
		l.peeks = append(l.peeks, *l.perIP)
	}
	if n := p.MaxFailuresPerDay; n > 0 {
		l.daily = &limit{LimitHit{Key: "fail-day:" + ref.String(), Window: 24 * time.Hour, Buckets: 24}, "failed attempts today", n}
		l.dayPeek = len(l.peeks)
		l.peeks = append(l.peeks, *l.daily)
	}
	// The malformed-input limit is counted, and checked, only when the
	// input is malformed (Outcome.Over): most attempts never pay for it.
	l.malform = limit{LimitHit{Key: "malformed:" + ref.String(), Window: time.Minute}, "malformed codes", p.MalformedPerMinute}
	l.judged = f.limits(s, ref)
	l.judgePeek = len(l.peeks)
	l.peeks = append(l.peeks, l.judged...)
	return l
}

// malformedError marks a refusal that the malformed-input limit counts.
type malformedError struct{ err error }

func (e *malformedError) Error() string { return e.err.Error() }
func (e *malformedError) Unwrap() error { return e.err }

// attempt makes one attempt through the one attempt path: the store's
// Attempt reads the user and the factor's state and holds the user while
// the check below refuses the attempt (limits, malformed input, lock) or
// has the factor judge it, and then writes what the judgement changes,
// the failure count and lock, the limits' counts and the audit events,
// in the same transaction. Every factor's guesses go through here, so
// none can be guessed outside the lockout.
func (s *Service) attempt(ctx context.Context, ref UserRef, f factorAttempt) (*verdict, error) {
	now := s.now()
	// The check makes the events, in the store's transaction, where the
	// store must not be asked for the tenant's webhook.
	ctx = s.withWebhook(ctx, ref.Tenant)
	lim := s.limitsFor(ctx, ref, f)
	req := AttemptRequest{Ref: ref, Now: now, Hits: hitsOf(lim.counted), Peeks: hitsOf(lim.peeks), Reads: f.reads(s, ref)}
	counted := lim.counted
	// An effect whose condition failed (a change that does not hold the
	// user came in between) makes the store answer ErrReplayed, writing
	// nothing but the hits; the next try sees the change and counts the
	// hits no more. Three such changes in a row would be needed to fail.
	for try := 0; ; try++ {
		var v *verdict
		err := s.store.Attempt(ctx, req, func(st *AttemptState) (*Outcome, error) {
			for i, l := range counted {
				if st.Hits[i] > l.max {
					return nil, l.refusal(now)
				}
			}
			if lim.perIP != nil && st.Peeks[lim.ipPeek] >= lim.perIP.max {
				return nil, lim.perIP.refusal(now)
			}
			if err := f.form(s, st.User); err != nil {
				var me *malformedError
				if !errors.As(err, &me) {
					return nil, err
				}
				return &Outcome{Failures: st.User.Failures, LockedUntil: st.User.LockedUntil, Err: me.err,
					Over: &OverLimit{Hit: lim.malform.LimitHit, Max: lim.malform.max, Err: lim.malform.refusal(now)}}, nil
			}
			u := st.User
			if u.Locked(now) {
				return nil, LockedError(u.LockedUntil)
			}
			for i, l := range lim.judged {
				if st.Peeks[lim.judgePeek+i] >= l.max {
					return nil, l.refusal(now)
				}
			}
			if lim.daily != nil && st.Peeks[lim.dayPeek] >= lim.daily.max {
				until := lim.daily.refusal(now).(*Error).Until
				return nil, &Error{Code: ERATELIMITED, Reason: ErrLocked.Reason, Until: until,
					Message: "too many failed attempts today: locked until " + until.UTC().Format(time.RFC3339)}
			}
			var err error
			if v, err = f.judge(s, st, now); err != nil {
				return nil, err
			}
			if v.valid {
				e := s.event(ctx, v.ok, ref, v.device, now)
				e.Factor, e.Detail = v.factor, v.detail
				if v.notify {
					s.attachNotices(ctx, e, st.User, st.User.Device(v.noticeDevice))
				}
				return &Outcome{Effects: v.effects, Hits: hitsOf(lim.judged), Events: []*AuditEvent{e}}, nil
			}
			o := s.failure(ctx, ref, v, st, lim, now)
			o.Hits = append(o.Hits, hitsOf(lim.judged)...)
			return o, nil
		})
		if errors.Is(err, ErrReplayed) && try < 2 {
			req.Hits, counted = nil, nil
			continue
		}
		if err != nil {
			return nil, err
		}
		if !v.lockedUntil.IsZero() {
			s.log.WarnContext(ctx, "user locked out", "tenant", ref.Tenant, "user", ref.User, "until", v.lockedUntil)
		}
		return v, nil
	}
}

// failure returns the outcome of a failed guess: one more consecutive
// failure, the lock it brings, the limits that count failures, and the
// audit events: the failure and, if it locks the user, the lock.
func (s *Service) failure(ctx context.Context, ref UserRef, v *verdict, st *AttemptState, lim *attemptLimits, now time.Time) *Outcome {
	u := st.User
	n := u.Failures + 1
	t := v.failed
	if v.reason == ReasonReplayed {
		t = EventReplayRejected
	}
	e := s.event(ctx, t, ref, v.device, now)
	e.Factor, e.Reason, e.Detail = v.factor, v.reason, fmt.Sprintf("%d consecutive failure%s", n, plural(n))
	o := &Outcome{Effects: v.failEffects, Failures: n, LockedUntil: u.LockedUntil, Events: []*AuditEvent{e}}
	if until := s.policy.LockUntil(n, now); !until.IsZero() {
		o.LockedUntil, v.lockedUntil = until, until
		l := s.event(ctx, EventLocked, ref, "", now)
		l.Detail = fmt.Sprintf("after %d consecutive failures, until %s", n, until.UTC().Format(time.RFC3339))
		s.attachNotices(ctx, l, u, nil)
		o.Events = append(o.Events, l)
	}
	if lim.perIP != nil {
		o.Hits = append(o.Hits, lim.perIP.LimitHit)
	}
	if lim.daily != nil {
		o.Hits = append(o.Hits, lim.daily.LimitHit)
		if spent := st.Peeks[lim.dayPeek] + 1; spent >= lim.daily.max {
			until := lim.daily.refusal(now).(*Error).Until
			if v.lockedUntil.Before(until) {
				v.lockedUntil = until
			}
			l := s.event(ctx, EventLocked, ref, "", now)
			l.Detail = fmt.Sprintf("daily failure budget of %d spent", lim.daily.max)
			s.attachNotices(ctx, l, u, nil)
			o.Events = append(o.Events, l)
		}
	}
	return o
}

// codeAttempt is a code typed for Verify: a TOTP code of one of the
// user's devices, or a backup code.
type codeAttempt struct{ code string }

func (c codeAttempt) backup() (string, bool) { return normalizeBackupCode(c.code) }

func (c codeAttempt) reads(s *Service, ref UserRef) AttemptReads {
	if norm, ok := c.backup(); ok {
		// The store finds the code by its hash: a keyed hash of 75 random
		// bits leaves nothing to learn from how long the lookup takes.
		return AttemptReads{BackupCode: s.backupHash(ref, norm)}
	}
	return AttemptReads{}
}

func (codeAttempt) limits(*Service, UserRef) []limit { return nil }

func (c codeAttempt) form(_ *Service, u *User) error {
	devices := u.ActiveDevices()
	if len(devices) == 0 && u.BackupCodes == 0 {
		return ErrNotEnrolled
	}
	if _, err := classify(c.code, devices); err != nil {
		return &malformedError{err}
	}
	return nil
}

func (c codeAttempt) judge(s *Service, st *AttemptState, now time.Time) (*verdict, error) {
	u := st.User
	if norm, ok := c.backup(); ok {
		v := &verdict{factor: FactorBackupCode, ok: EventBackupCodeUsed, failed: EventVerifyFailed, reason: ReasonInvalidCode}
		if st.BackupCodeFound {
			v.valid, v.remaining = true, u.BackupCodes-1
			v.effects = []Effect{SpendBackupCode{Hash: s.backupHash(u.Ref(), norm)}}
			v.detail = fmt.Sprintf("%d left", v.remaining)
			v.notify = v.remaining <= lowBackupCodes
		}
		return v, nil
	}
	match, m, err := s.matchTOTP(u.ActiveDevices(), c.code, now)
	if err != nil {
		return nil, err
	}
	v := &verdict{factor: FactorTOTP, ok: EventVerifySucceeded, failed: EventVerifyFailed, reason: ReasonInvalidCode, remaining: u.BackupCodes}
	switch {
	case match != nil && m.Step > match.LastStep:
		v.valid, v.device = true, match.ID
		v.detail = fmt.Sprintf("step offset %+d", m.Offset)
		v.effects = []Effect{AcceptStep{DeviceID: match.ID, Step: m.Step, Drift: clampDrift(m.Offset, s.policy.MaxDrift)}}
	case match != nil:
		v.reason, v.device = ReasonReplayed, match.ID
	}
	return v, nil
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

// clampDrift bounds a learned drift to MaxDrift steps either way.
func clampDrift(offset, bound int) int {
	return max(-bound, min(bound, offset))
}

// ResyncResult is the outcome of a resync: valid or not, and nothing in
// between, so that a resync tells a guesser no more than a verification.
type ResyncResult struct {
	Valid bool
	Drift int // the device's learned drift in steps, when valid
	// LockedUntil is set when this failure locked the user.
	LockedUntil time.Time
}

// Resync relearns a device's clock drift from two consecutive codes typed
// from it, code1 then code2, found up to Policy.MaxDrift steps beyond the
// window either way. It is an attempt like Verify, through the same path:
// a wrong pair is a failed attempt (the same count, lock, backoff, hard
// lock and limits), refused while the user is locked, and a valid pair
// burns both steps and clears the failures, as a valid code does. Resync
// is also limited per user (Policy.ResyncPerHour).
//
// The answer is valid or invalid: whether one of the codes matched, or
// how far off the clock is, stays unsaid, since either would make resync
// a better guessing oracle than Verify. Errors: ErrNotFound (no such
// active TOTP device), ErrMalformedCode, LockedError, ErrRateLimited.
func (s *Service) Resync(ctx context.Context, ref UserRef, deviceID, code1, code2 string) (*ResyncResult, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	v, err := s.attempt(ctx, ref, resyncAttempt{device: deviceID, code1: code1, code2: code2})
	if err != nil {
		return nil, err
	}
	return &ResyncResult{Valid: v.valid, Drift: v.drift, LockedUntil: v.lockedUntil}, nil
}

// resyncAttempt is a pair of consecutive codes typed for Resync.
type resyncAttempt struct{ device, code1, code2 string }

func (resyncAttempt) reads(*Service, UserRef) AttemptReads { return AttemptReads{} }

func (resyncAttempt) limits(s *Service, ref UserRef) []limit {
	return []limit{{LimitHit{Key: "resync:" + ref.String(), Window: time.Hour}, "resync attempts", s.policy.ResyncPerHour}}
}

func (r resyncAttempt) form(_ *Service, u *User) error {
	d := u.Device(r.device)
	if d == nil || d.Status != StatusActive || d.Kind != KindTOTP {
		return fmt.Errorf("no active TOTP device %q: %w", r.device, ErrNotFound)
	}
	for _, c := range []string{r.code1, r.code2} {
		if _, err := otp.ParseCode(c, d.Params.Digits); err != nil {
			return &malformedError{malformed(err)}
		}
	}
	return nil
}

func (r resyncAttempt) judge(s *Service, st *AttemptState, now time.Time) (*verdict, error) {
	d := st.User.Device(r.device)
	v := &verdict{factor: FactorTOTP, device: d.ID, ok: EventResyncSucceeded, failed: EventResyncFailed, reason: ReasonInvalidCode}
	k, err := s.key(d)
	if err != nil {
		return nil, err
	}
	// The latest step that code2 matches within the reach, then code1 at
	// the step before it: each compared in constant time over its window.
	reach := s.policy.resyncReach()
	m2, err := k.Verify(r.code2, now, otp.Window{Behind: reach, Ahead: reach})
	if err != nil || !m2.Valid || m2.Step < 1 {
		return v, nil
	}
	first := m2.Step - 1
	m1, err := k.Verify(r.code1, d.Params.StepTime(first), otp.Window{})
	if err != nil || !m1.Valid || m1.Step != first || first <= d.LastStep {
		return v, nil
	}
	v.valid = true
	v.drift = clampDrift(m2.Offset, s.policy.MaxDrift)
	v.detail = fmt.Sprintf("drift %+d steps", v.drift)
	v.effects = []Effect{AcceptStep{DeviceID: d.ID, Step: m2.Step, Drift: v.drift}}
	return v, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
