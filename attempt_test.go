package twofa_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
)

// Set moves the clock to t.
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// twofaWithStore returns a Service like f's, on store, which wraps f's.
func twofaWithStore(t *testing.T, f *fixture, store twofa.Store, p *twofa.Policy) *twofa.Service {
	t.Helper()
	svc, err := twofa.NewService(context.Background(), store, f.keys, twofa.Options{Policy: p, Now: f.clock.Now})
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	return svc
}

// stepCode returns the device's code steps away from now.
func stepCode(k *otp.Key, now time.Time, steps int) string {
	return k.TOTP(now.Add(time.Duration(steps) * 30 * time.Second))
}

func TestService_ResyncLocks(t *testing.T) {
	// A wrong resync is a failed attempt: five lock the user as five wrong
	// codes would, and a locked user can neither resync nor verify.
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		ref := twofa.UserRef{Tenant: "acme", User: "resync"}
		_, k, _ := f.enroll(t, ref, "Phone")
		dev := mustDevice(t, f, ref)
		f.clock.Add(time.Minute)
		now := f.clock.Now()
		for i := 1; i <= 5; i++ {
			res, err := f.svc.Resync(ctx, ref, dev, fmt.Sprintf("%06d", i), fmt.Sprintf("%06d", i+1))
			if err != nil || res.Valid {
				t.Fatalf("wrong resync %d: %+v, %v", i, res, err)
			}
			if locked := !res.LockedUntil.IsZero(); locked != (i == 5) {
				t.Errorf("wrong resync %d: LockedUntil %v", i, res.LockedUntil)
			}
		}
		until := now.Add(30 * time.Second)
		if u, _ := f.svc.UserStatus(ctx, ref); u.Failures != 5 || !u.LockedUntil.Equal(until) {
			t.Errorf("after 5 wrong resyncs: %d failures, locked until %v; want 5, %v", u.Failures, u.LockedUntil, until)
		}
		_, err := f.svc.Resync(ctx, ref, dev, stepCode(k, now, 0), stepCode(k, now, 1))
		wantLockedUntil(t, "a right resync while locked", err, until)
		_, err = f.svc.Verify(ctx, ref, stepCode(k, now, 0))
		wantLockedUntil(t, "a right code while locked", err, until)
		// The lock counts like any other: the next failure, after it, locks
		// for twice as long.
		f.clock.Add(30 * time.Second)
		res, err := f.svc.Verify(ctx, ref, wrongCode(k, f.clock.Now()))
		if want := f.clock.Now().Add(time.Minute); err != nil || !res.LockedUntil.Equal(want) {
			t.Errorf("a wrong code after 5 wrong resyncs: %+v, %v; want locked until %v", res, err, want)
		}
		events, err := f.svc.AuditEvents(ctx, twofa.AuditFilter{Tenant: "acme", User: "resync"})
		if err != nil {
			t.Fatal(err)
		}
		n := map[twofa.EventType]int{}
		for _, e := range events {
			n[e.Type]++
		}
		if n[twofa.EventResyncFailed] != 5 || n[twofa.EventVerifyFailed] != 1 || n[twofa.EventLocked] != 2 {
			t.Errorf("audit log has %v; want 5 resync_failed, 1 verify_failed and 2 user_locked", n)
		}
	})
}

func wantLockedUntil(t *testing.T, what string, err error, until time.Time) {
	t.Helper()
	var e *twofa.Error
	if !errors.Is(err, twofa.ErrLocked) || !errors.As(err, &e) || !e.Until.Equal(until) {
		t.Errorf("%s: %v; want locked until %v", what, err, until)
	}
}

func TestService_ResyncTellsNothing(t *testing.T) {
	// A pair whose first code is right for a step 3 ahead gets exactly the
	// answer of a pair of random codes, and the same audit entry: resync
	// is no better an oracle than verify.
	store, _ := openSQLite(t)
	p := twofa.DefaultPolicy()
	p.ResyncPerHour = 100
	f := newFixture(t, store, &p)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "oracle"}
	_, k, _ := f.enroll(t, ref, "Phone")
	dev := mustDevice(t, f, ref)
	f.clock.Add(time.Minute)
	now := f.clock.Now()
	wrong := wrongCode(k, now)
	type answer struct {
		res    twofa.ResyncResult
		err    error
		reason string
		detail string
	}
	try := func(code1, code2 string) answer {
		t.Helper()
		if err := f.svc.Unlock(ctx, ref); err != nil {
			t.Fatal(err)
		}
		res, err := f.svc.Resync(ctx, ref, dev, code1, code2)
		a := answer{err: err}
		if res != nil {
			a.res = *res
		}
		events, _ := f.svc.AuditEvents(ctx, twofa.AuditFilter{Tenant: "acme", User: "oracle"})
		e := events[len(events)-1]
		a.reason, a.detail = string(e.Type)+"/"+e.Reason, e.Detail
		return a
	}
	random := try(wrong, wrong)
	for _, tt := range []struct{ name, code1, code2 string }{
		{"FirstRight3Ahead", stepCode(k, now, 3), wrong},
		{"SecondRight3Ahead", wrong, stepCode(k, now, 3)},
		{"FirstRightNow", stepCode(k, now, 0), wrong},
		{"BothRightTooFar", stepCode(k, now, 8), stepCode(k, now, 9)},
		{"BothRightSameStep", stepCode(k, now, 2), stepCode(k, now, 2)},
	} {
		if got := try(tt.code1, tt.code2); got != random {
			t.Errorf("%s: %+v; want the answer to random codes, %+v", tt.name, got, random)
		}
	}
	if random.res.Valid || random.err != nil || random.reason != "resync_failed/invalid_code" {
		t.Errorf("random codes: %+v", random)
	}
}

func TestService_DriftMovesTheWindow(t *testing.T) {
	// Learned drift moves the window and never widens it: with the default
	// ±1 and a drift of +2, steps +1 to +3 are accepted and -1 and 0 are
	// not; with -2, steps -3 to -1.
	for _, tt := range []struct {
		drift  int
		offset int
		valid  bool
	}{
		{2, -1, false}, {2, 0, false}, {2, 1, true}, {2, 2, true}, {2, 3, true}, {2, 4, false},
		{-2, -4, false}, {-2, -3, true}, {-2, -2, true}, {-2, -1, true}, {-2, 0, false}, {-2, 1, false},
	} {
		t.Run(fmt.Sprintf("Drift%+d/Step%+d", tt.drift, tt.offset), func(t *testing.T) {
			store, _ := openSQLite(t)
			f := newFixture(t, store, nil)
			ctx := context.Background()
			ref := twofa.UserRef{Tenant: "acme", User: "drift"}
			_, k, _ := f.enroll(t, ref, "Phone")
			dev := mustDevice(t, f, ref)
			// Learn the drift with a pair 3 steps off (clamped to 2), then
			// move on far enough that no step of the test is burnt.
			f.clock.Add(10 * time.Minute)
			off := 2
			if tt.drift < 0 {
				off = -4
			}
			now := f.clock.Now()
			res, err := f.svc.Resync(ctx, ref, dev, stepCode(k, now, off), stepCode(k, now, off+1))
			if err != nil || !res.Valid || res.Drift != tt.drift {
				t.Fatalf("resync: %+v, %v; want drift %d", res, err, tt.drift)
			}
			f.clock.Add(10 * time.Minute)
			v, err := f.svc.Verify(ctx, ref, stepCode(k, f.clock.Now(), tt.offset))
			if err != nil || v.Valid != tt.valid || !v.Valid && v.Reason != twofa.ReasonInvalidCode {
				t.Errorf("code at step %+d: %+v, %v; want valid %v", tt.offset, v, err, tt.valid)
			}
		})
	}
}

func TestService_DailyFailureBudget(t *testing.T) {
	// With MaxFailuresPerDay, failures count against a rolling day that a
	// success does not reset: a guesser who lets the user sign in between
	// gets no more guesses.
	store, _ := openSQLite(t)
	p := twofa.DefaultPolicy()
	p.MaxFailuresPerDay = 10
	f := newFixture(t, store, &p)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "budget"}
	_, k, _ := f.enroll(t, ref, "Phone")
	f.clock.Add(time.Hour)
	start := f.clock.Now()
	verify := func(code string) (*twofa.VerifyResult, error) {
		t.Helper()
		f.clock.Add(30 * time.Second) // a fresh step for every code
		return f.svc.Verify(ctx, ref, code)
	}
	for round := range 3 {
		n := 4
		if round == 2 {
			n = 2
		}
		for i := range n {
			res, err := verify(wrongCode(k, f.clock.Now()))
			if err != nil || res.Valid {
				t.Fatalf("round %d, failure %d: %+v, %v", round, i, res, err)
			}
		}
		if round < 2 {
			if res, err := verify(k.TOTP(f.clock.Now())); err != nil || !res.Valid {
				t.Fatalf("round %d: a right code: %+v, %v", round, res, err)
			}
		}
	}
	// Ten failures today: even a right code is refused, though the
	// consecutive count is only 2.
	_, err := verify(k.TOTP(f.clock.Now()))
	var e *twofa.Error
	if !errors.Is(err, twofa.ErrLocked) || !errors.As(err, &e) || !e.Until.After(f.clock.Now()) {
		t.Fatalf("a right code after 10 failures today: %v; want ErrLocked", err)
	}
	// The budget comes back as the failures leave the 24 hours.
	f.clock.Set(start.Add(24*time.Hour + time.Hour))
	if res, err := f.svc.Verify(ctx, ref, k.TOTP(f.clock.Now())); err != nil || !res.Valid {
		t.Errorf("a right code a day later: %+v, %v", res, err)
	}
	// Off by default.
	f2 := newFixture(t, openStore(t), nil)
	ref2 := twofa.UserRef{Tenant: "acme", User: "nobudget"}
	_, k2, _ := f2.enroll(t, ref2, "Phone")
	for i := range 30 {
		f2.clock.Add(16 * time.Minute) // past every lock
		if _, err := f2.svc.Verify(ctx, ref2, wrongCode(k2, f2.clock.Now())); err != nil {
			t.Fatalf("failure %d without a budget: %v", i, err)
		}
		if i%4 == 3 {
			f2.clock.Add(30 * time.Second)
			if res, err := f2.svc.Verify(ctx, ref2, k2.TOTP(f2.clock.Now())); err != nil || !res.Valid {
				t.Fatalf("right code without a budget: %+v, %v", res, err)
			}
		}
	}
}

func openStore(t *testing.T) twofa.Store {
	s, _ := openSQLite(t)
	return s
}

func TestService_PerIPLimitCountsFailedChecks(t *testing.T) {
	// Behind one address, refusals that cost nothing (a locked user,
	// malformed codes, unknown users) and right codes spend nothing of the
	// address's budget; wrong codes do, and once it is spent every
	// attempt from the address is refused until the minute ends.
	store, _ := openSQLite(t)
	p := twofa.DefaultPolicy()
	p.VerifyPerIPPerMinute = 3
	f := newFixture(t, store, &p)
	ctx := twofa.WithMeta(context.Background(), twofa.Meta{IP: "203.0.113.9"})
	locked := twofa.UserRef{Tenant: "acme", User: "locked"}
	_, kl, _ := f.enroll(t, locked, "Phone")
	ok := twofa.UserRef{Tenant: "acme", User: "ok"}
	_, k, _ := f.enroll(t, ok, "Phone")
	f.clock.Set(f.clock.Now().Truncate(time.Minute).Add(time.Minute))
	for range 5 { // lock one user, from elsewhere
		f.svc.Verify(context.Background(), locked, wrongCode(kl, f.clock.Now()))
	}
	for i := range 50 {
		if _, err := f.svc.Verify(ctx, locked, kl.TOTP(f.clock.Now())); !errors.Is(err, twofa.ErrLocked) {
			t.Fatalf("locked user's attempt %d: %v", i, err)
		}
		if _, err := f.svc.Verify(ctx, ok, "12"); !errors.Is(err, twofa.ErrMalformedCode) && !errors.Is(err, twofa.ErrRateLimited) {
			t.Fatalf("malformed code %d: %v", i, err)
		}
		if _, err := f.svc.Verify(ctx, twofa.UserRef{Tenant: "acme", User: fmt.Sprint("ghost", i)}, "123456"); !errors.Is(err, twofa.ErrNotEnrolled) {
			t.Fatalf("unknown user %d: %v", i, err)
		}
	}
	step := 0
	right := func() (*twofa.VerifyResult, error) {
		step++
		return f.svc.Verify(ctx, ok, stepCode(k, f.clock.Now(), 0))
	}
	if res, err := right(); err != nil || !res.Valid {
		t.Fatalf("a right code after 150 free refusals: %+v, %v", res, err)
	}
	for i := range 3 {
		other := twofa.UserRef{Tenant: "acme", User: fmt.Sprint("victim", i)}
		_, kv, _ := f.enroll(t, other, "Phone")
		if res, err := f.svc.Verify(ctx, other, wrongCode(kv, f.clock.Now())); err != nil || res.Valid {
			t.Fatalf("wrong code %d: %+v, %v", i, res, err)
		}
	}
	_, err := f.svc.Verify(ctx, ok, wrongCode(k, f.clock.Now()))
	if !errors.Is(err, twofa.ErrRateLimited) {
		t.Errorf("after 3 wrong codes from the address: %v; want ErrRateLimited", err)
	}
	// Other addresses are not limited.
	other := twofa.WithMeta(context.Background(), twofa.Meta{IP: "198.51.100.1"})
	f.clock.Add(30 * time.Second)
	if res, err := f.svc.Verify(other, ok, k.TOTP(f.clock.Now())); err != nil || !res.Valid {
		t.Errorf("a right code from another address: %+v, %v", res, err)
	}
	f.clock.Add(time.Minute)
	if res, err := f.svc.Verify(ctx, ok, wrongCode(k, f.clock.Now())); err != nil || res.Valid {
		t.Errorf("a wrong code in the next minute: %+v, %v", res, err)
	}
}

// flakyStore hands the first attempt's check a view of the user in which
// every device's last step is one step older than it is, as a read made
// before another process accepted that step would be.
type flakyStore struct {
	twofa.Store
	calls atomic.Int64
	hits  [][]twofa.LimitHit
}

func (s *flakyStore) Attempt(ctx context.Context, a twofa.AttemptRequest, check func(*twofa.AttemptState) (*twofa.Outcome, error)) error {
	s.hits = append(s.hits, a.Hits)
	if s.calls.Add(1) > 1 {
		return s.Store.Attempt(ctx, a, check)
	}
	return s.Store.Attempt(ctx, a, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
		for _, d := range st.User.Devices {
			d.LastStep--
		}
		return check(st)
	})
}

func TestService_VerifyRetriesAfterAChangeInBetween(t *testing.T) {
	// A step accepted between an attempt's read and its write makes the
	// store refuse the write (ErrReplayed): Verify tries again, counting
	// the limits once, and answers what the second try sees.
	store, _ := openSQLite(t)
	p := twofa.DefaultPolicy()
	p.TenantVerifyPerMinute = 1000
	f := newFixture(t, store, &p)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "retry"}
	_, k, _ := f.enroll(t, ref, "Phone")
	f.clock.Add(30 * time.Second)
	code := k.TOTP(f.clock.Now())
	if res, err := f.svc.Verify(ctx, ref, code); err != nil || !res.Valid {
		t.Fatalf("first use: %+v, %v", res, err)
	}
	flaky := &flakyStore{Store: store}
	svc := twofaWithStore(t, f, flaky, &p)
	res, err := svc.Verify(ctx, ref, code)
	if err != nil || res.Valid || res.Reason != twofa.ReasonReplayed {
		t.Errorf("the code again, seen unused at first: %+v, %v; want replayed", res, err)
	}
	if n := flaky.calls.Load(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
	if len(flaky.hits) != 2 || len(flaky.hits[0]) != 1 || len(flaky.hits[1]) != 0 {
		t.Errorf("hits per try %v; want the tenant's once, on the first", flaky.hits)
	}
	if u, _ := f.svc.UserStatus(ctx, ref); u.Failures != 1 {
		t.Errorf("%d failures, want 1", u.Failures)
	}
}

// countingStore counts the store calls a Service makes.
type countingStore struct {
	twofa.Store
	calls []string
}

func (s *countingStore) Attempt(ctx context.Context, a twofa.AttemptRequest, check func(*twofa.AttemptState) (*twofa.Outcome, error)) error {
	s.calls = append(s.calls, "Attempt")
	return s.Store.Attempt(ctx, a, check)
}

func (s *countingStore) User(ctx context.Context, ref twofa.UserRef) (*twofa.User, error) {
	s.calls = append(s.calls, "User")
	return s.Store.User(ctx, ref)
}

func (s *countingStore) Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	s.calls = append(s.calls, "Hit")
	return s.Store.Hit(ctx, key, window, now)
}

func (s *countingStore) AppendAudit(ctx context.Context, events ...*twofa.AuditEvent) error {
	s.calls = append(s.calls, "AppendAudit")
	return s.Store.AppendAudit(ctx, events...)
}

func TestService_OneStoreCallPerAttempt(t *testing.T) {
	// Every verification, whatever its factor or outcome, is one store
	// call: the attempt.
	store, _ := openSQLite(t)
	p := twofa.DefaultPolicy()
	p.TenantVerifyPerMinute = 1000
	p.MaxFailuresPerDay = 50
	f := newFixture(t, store, &p)
	ctx := twofa.WithMeta(context.Background(), twofa.Meta{IP: "192.0.2.1"})
	ref := twofa.UserRef{Tenant: "acme", User: "calls"}
	_, k, codes := f.enroll(t, ref, "Phone")
	cs := &countingStore{Store: store}
	svc := twofaWithStore(t, f, cs, &p)
	f.clock.Add(30 * time.Second)
	for _, tt := range []struct{ name, code string }{
		{"Malformed", "12"},
		{"WrongTOTP", wrongCode(k, f.clock.Now())},
		{"RightTOTP", k.TOTP(f.clock.Now())},
		{"Replayed", k.TOTP(f.clock.Now())},
		{"WrongBackupCode", "00000-00000-00000"},
		{"RightBackupCode", codes[0]},
		{"SpentBackupCode", codes[0]},
	} {
		cs.calls = nil
		svc.Verify(ctx, ref, tt.code)
		if !slices.Equal(cs.calls, []string{"Attempt"}) {
			t.Errorf("%s: store calls %v; want one Attempt", tt.name, cs.calls)
		}
	}
}

func TestService_BackupCodesThroughTheAttempt(t *testing.T) {
	// Backup codes are checked, counted, locked and audited as TOTP codes
	// are: wrong ones lock, a right one is refused while locked and then
	// clears the failures, and each is spent once.
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		ref := twofa.UserRef{Tenant: "acme", User: "codes"}
		_, _, codes := f.enroll(t, ref, "Phone")
		for i := 1; i <= 5; i++ {
			res, err := f.svc.Verify(ctx, ref, fmt.Sprintf("00000-00000-0000%d", i))
			if err != nil || res.Valid || res.Reason != twofa.ReasonInvalidCode {
				t.Fatalf("wrong backup code %d: %+v, %v", i, res, err)
			}
		}
		until := f.clock.Now().Add(30 * time.Second)
		_, err := f.svc.Verify(ctx, ref, codes[0])
		wantLockedUntil(t, "a right backup code while locked", err, until)
		f.clock.Add(30 * time.Second)
		res, err := f.svc.Verify(ctx, ref, codes[0])
		if err != nil || !res.Valid || res.Factor != twofa.FactorBackupCode || res.BackupCodesRemaining != len(codes)-1 {
			t.Fatalf("a right backup code: %+v, %v", res, err)
		}
		if u, _ := f.svc.UserStatus(ctx, ref); u.Failures != 0 || u.BackupCodes != len(codes)-1 {
			t.Errorf("after a right backup code: %d failures, %d codes", u.Failures, u.BackupCodes)
		}
		res, err = f.svc.Verify(ctx, ref, codes[0])
		if err != nil || res.Valid {
			t.Errorf("a spent backup code: %+v, %v", res, err)
		}
		events, _ := f.svc.AuditEvents(ctx, twofa.AuditFilter{Tenant: "acme", User: "codes"})
		n := map[string]int{}
		for _, e := range events {
			n[string(e.Type)+"/"+e.Factor]++
		}
		if n["verify_failed/backup_code"] != 6 || n["backup_code_used/backup_code"] != 1 || n["user_locked/"] != 1 {
			t.Errorf("audit log %v; want 6 verify_failed, 1 backup_code_used, 1 user_locked", n)
		}
	})
}
