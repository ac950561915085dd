package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

// lockUntil is the default policy's: the 5th failure locks for 30 s, the
// 6th for 60 s, and so on.
var lockUntil = twofa.DefaultPolicy().LockUntil

// wantLocked fails unless err is ErrLocked carrying until.
func wantLocked(t *testing.T, call string, err error, until time.Time) {
	t.Helper()
	var e *twofa.Error
	if !errors.Is(err, twofa.ErrLocked) || !errors.As(err, &e) {
		t.Errorf("%s = %v, want ErrLocked until %v", call, err, until)
		return
	}
	if !e.Until.Equal(until) {
		t.Errorf("%s: Until = %v, want %v", call, e.Until, until)
	}
}

func testBeginAttempt(t *testing.T, open Opener) {
	t.Run("Counts", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		for want := 1; want <= 4; want++ {
			n, err := s.BeginAttempt(t.Context(), alice, now0, lockUntil)
			if n != want || err != nil {
				t.Fatalf("BeginAttempt #%d = %d, %v; want %d, nil", want, n, err, want)
			}
			wantFailures(t, s, alice, want, time.Time{})
		}
		n, err := s.BeginAttempt(t.Context(), alice, now0, lockUntil)
		if n != 5 || err != nil {
			t.Fatalf("BeginAttempt #5 = %d, %v; want 5, nil", n, err)
		}
		wantFailures(t, s, alice, 5, now0.Add(30*time.Second))
	})

	t.Run("ErrLocked", func(t *testing.T) {
		// While locked nothing is counted; at the end of the lock counting
		// resumes where it was, and the next lock is longer.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		failN(t, s, alice, 5, now0)
		until := now0.Add(30 * time.Second)
		for _, at := range []time.Time{now0, now0.Add(10 * time.Second), until.Add(-time.Microsecond)} {
			n, err := s.BeginAttempt(t.Context(), alice, at, lockUntil)
			wantLocked(t, fmt.Sprintf("BeginAttempt(%v) = %d,", at.Sub(now0), n), err, until)
		}
		wantFailures(t, s, alice, 5, until)

		n, err := s.BeginAttempt(t.Context(), alice, until, lockUntil)
		if n != 6 || err != nil {
			t.Fatalf("BeginAttempt at the end of the lock = %d, %v; want 6, nil", n, err)
		}
		wantFailures(t, s, alice, 6, until.Add(60*time.Second))
		_, err = s.BeginAttempt(t.Context(), alice, until.Add(time.Second), lockUntil)
		wantLocked(t, "BeginAttempt(locked again)", err, until.Add(60*time.Second))
	})

	t.Run("LockUntilArgs", func(t *testing.T) {
		// lockUntil gets the new count and now; a lock that is not after
		// now is no lock.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		at := now0.Add(time.Hour)
		var calls []int
		lock := func(failures int, now time.Time) time.Time {
			if !now.Equal(at) {
				t.Errorf("lockUntil called with now = %v, want %v", now, at)
			}
			calls = append(calls, failures)
			if failures < 3 {
				return now // not after now: no lock
			}
			return now.Add(time.Duration(failures) * time.Minute)
		}
		for want := 1; want <= 3; want++ {
			n, err := s.BeginAttempt(t.Context(), alice, at, lock)
			if n != want || err != nil {
				t.Fatalf("BeginAttempt #%d = %d, %v; want %d, nil", want, n, err, want)
			}
			if want < 3 && mustUser(t, s, alice).Locked(at) {
				t.Errorf("after BeginAttempt #%d the user is locked; lockUntil returned now", want)
			}
		}
		// A store may retry a transaction and call lockUntil again, but
		// only ever with the count it is about to store.
		calls = slices.Compact(calls)
		if !slices.Equal(calls, []int{1, 2, 3}) {
			t.Errorf("lockUntil called with failures %v, want 1, 2, 3", calls)
		}
		wantFailures(t, s, alice, 3, at.Add(3*time.Minute))
	})

	t.Run("Forever", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		forever := func(int, time.Time) time.Time { return twofa.Forever }
		if _, err := s.BeginAttempt(t.Context(), alice, now0, forever); err != nil {
			t.Fatalf("BeginAttempt = %v", err)
		}
		wantFailures(t, s, alice, 1, twofa.Forever)
		_, err := s.BeginAttempt(t.Context(), alice, now0.AddDate(100, 0, 0), lockUntil)
		wantLocked(t, "BeginAttempt a century later", err, twofa.Forever)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		for _, ref := range []twofa.UserRef{nobody, otherAlice} {
			n, err := s.BeginAttempt(t.Context(), ref, now0, lockUntil)
			wantErr(t, fmt.Sprintf("BeginAttempt(%s) = %d,", ref, n), err, twofa.ErrNotFound)
		}
		wantFailures(t, s, alice, 0, time.Time{})
	})

	t.Run("RacePessimistic", func(t *testing.T) {
		// 40 guesses at once from two handles: the count comes first, so
		// exactly LockAfter (5) get through, with counts 1 to 5, and the
		// other 35 find the user locked and are not counted.
		o := openStore(t, open)
		enroll(t, o, alice, "dev_a", now0)
		until := now0.Add(30 * time.Second)
		type result struct {
			n   int
			err error
		}
		results := race(t, o, 40, true, func(ctx context.Context, _ int, s twofa.Store) result {
			n, err := s.BeginAttempt(ctx, alice, now0, lockUntil)
			return result{n, err}
		})
		var counts []int
		locked := 0
		for i, r := range results {
			var e *twofa.Error
			switch {
			case r.err == nil:
				counts = append(counts, r.n)
			case errors.Is(r.err, twofa.ErrLocked) && errors.As(r.err, &e) && e.Until.Equal(until):
				locked++
			default:
				t.Errorf("BeginAttempt #%d = %d, %v", i, r.n, r.err)
			}
		}
		slices.Sort(counts)
		if !slices.Equal(counts, []int{1, 2, 3, 4, 5}) || locked != 35 {
			t.Errorf("counts %v and %d locked, want 1 to 5 and 35 locked until %v", counts, locked, until)
		}
		wantFailures(t, o, alice, 40-locked, until)
	})
}

// wantAccepted checks that call accepted step of alice's device d at at,
// with the drift, forgetting any resync; that alice's failures are
// cleared; and that the log holds the one success.
func wantAccepted(t *testing.T, s twofa.Store, call string, d *twofa.Device, step uint64, drift int, at time.Time) {
	t.Helper()
	w := *d
	w.LastStep, w.Drift, w.LastUsedAt = step, drift, at
	wantDevice(t, "device after "+call, mustDevice(t, s, alice, d.ID), &w)
	wantFailures(t, s, alice, 0, time.Time{})
	wantLog(t, s, twofa.EventVerifySucceeded)
}

// accept returns a StepAcceptance of step for the device, with an event.
func accept(ref twofa.UserRef, id string, step uint64, drift int, now time.Time, reset bool) twofa.StepAcceptance {
	return twofa.StepAcceptance{
		Ref: ref, DeviceID: id, Step: step, Drift: drift, Now: now, ResetFailures: reset,
		Event: newEvent(twofa.EventVerifySucceeded, ref, id),
	}
}

func testAcceptStep(t *testing.T, open Opener) {
	at := now0.Add(time.Hour)

	t.Run("OK", func(t *testing.T) {
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		wantNoErr(t, "SetResync", s.SetResync(t.Context(), alice, d.ID, firstStep+50, at.Add(-time.Minute), nil))
		failN(t, s, alice, 5, at)
		wantNoErr(t, "AcceptStep", s.AcceptStep(t.Context(), accept(alice, d.ID, firstStep+120, -2, at, true)))
		wantAccepted(t, s, "AcceptStep", d, firstStep+120, -2, at)
	})

	t.Run("KeepFailures", func(t *testing.T) {
		// ResetFailures false, as for the first code of a resync pair.
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		failN(t, s, alice, 5, at)
		wantNoErr(t, "AcceptStep", s.AcceptStep(t.Context(), accept(alice, d.ID, firstStep+1, 1, at, false)))
		wantFailures(t, s, alice, 5, at.Add(30*time.Second))
		if got := mustDevice(t, s, alice, d.ID); got.LastStep != firstStep+1 || got.Drift != 1 {
			t.Errorf("LastStep, Drift = %d, %d; want %d, 1", got.LastStep, got.Drift, firstStep+1)
		}
	})

	t.Run("ErrReplayed", func(t *testing.T) {
		// The same or an older step changes nothing at all.
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		wantNoErr(t, "AcceptStep", s.AcceptStep(t.Context(), accept(alice, d.ID, firstStep+10, 1, at, true)))
		wantNoErr(t, "SetResync", s.SetResync(t.Context(), alice, d.ID, firstStep+30, at, nil))
		failN(t, s, alice, 2, at)
		before := mustDevice(t, s, alice, d.ID)
		for _, step := range []uint64{firstStep + 10, firstStep + 9, firstStep, 0} {
			err := s.AcceptStep(t.Context(), accept(alice, d.ID, step, -1, at.Add(time.Minute), true))
			wantErr(t, fmt.Sprintf("AcceptStep(LastStep%+d)", int64(step)-int64(firstStep+10)), err, twofa.ErrReplayed)
		}
		wantDevice(t, "device after replays", mustDevice(t, s, alice, d.ID), before)
		wantFailures(t, s, alice, 2, time.Time{})
		wantLog(t, s, twofa.EventVerifySucceeded)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		create(t, s, alice, "dev_pending", now0)
		enroll(t, s, bob, "dev_bob", now0)
		failN(t, s, alice, 2, at)
		for _, tt := range []struct {
			name string
			ref  twofa.UserRef
			id   string
		}{
			{"Pending", alice, "dev_pending"},
			{"UnknownDevice", alice, "dev_unknown"},
			{"OtherUsersDevice", alice, "dev_bob"},
			{"UnknownUser", nobody, "dev_a"},
		} {
			err := s.AcceptStep(t.Context(), accept(tt.ref, tt.id, firstStep+1, 0, at, true))
			wantErr(t, fmt.Sprintf("%s: AcceptStep(%s, %s)", tt.name, tt.ref, tt.id), err, twofa.ErrNotFound)
		}
		if d := mustDevice(t, s, bob, "dev_bob"); d.LastStep != firstStep {
			t.Errorf("bob's LastStep = %d, want %d", d.LastStep, firstStep)
		}
		if d := mustDevice(t, s, alice, "dev_pending"); d.Status != twofa.StatusPending || d.LastStep != 0 {
			t.Errorf("pending device became %s at step %d", d.Status, d.LastStep)
		}
		wantFailures(t, s, alice, 2, time.Time{})
		wantLog(t, s)
	})

	// raceSame has n goroutines accept one step at once and checks that
	// exactly one wins.
	raceSame := func(t *testing.T, n int, across bool) {
		o := openStore(t, open)
		d := enroll(t, o, alice, "dev_a", now0)
		failN(t, o, alice, 3, at)
		errs := race(t, o, n, across, func(ctx context.Context, _ int, s twofa.Store) error {
			return s.AcceptStep(ctx, accept(alice, d.ID, firstStep+1, 0, at, true))
		})
		won, replayed := 0, 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, twofa.ErrReplayed):
				replayed++
			default:
				t.Errorf("AcceptStep #%d = %v", i, err)
			}
		}
		if won != 1 || replayed != n-1 {
			t.Errorf("%d accepted and %d ErrReplayed, want 1 and %d", won, replayed, n-1)
		}
		if got := mustDevice(t, o, alice, d.ID).LastStep; got != firstStep+1 {
			t.Errorf("LastStep = %d, want %d", got, firstStep+1)
		}
		wantFailures(t, o, alice, 0, time.Time{})
		wantLog(t, o, twofa.EventVerifySucceeded)
	}
	t.Run("RaceOneWinner", func(t *testing.T) { raceSame(t, 32, false) })
	t.Run("RaceAcrossHandles", func(t *testing.T) { raceSame(t, 32, true) })

	t.Run("RaceNewestWins", func(t *testing.T) {
		// Different steps at once: whatever the order, the newest is
		// accepted and ends as LastStep, and every acceptance was newer
		// than the one before it.
		o := openStore(t, open)
		d := enroll(t, o, alice, "dev_a", now0)
		const n = 16
		errs := race(t, o, n, true, func(ctx context.Context, i int, s twofa.Store) error {
			return s.AcceptStep(ctx, accept(alice, d.ID, firstStep+1+uint64(i), i, at, true))
		})
		for i, err := range errs {
			if err != nil && !errors.Is(err, twofa.ErrReplayed) {
				t.Errorf("AcceptStep #%d = %v", i, err)
			}
		}
		if errs[n-1] != nil {
			t.Errorf("AcceptStep of the newest step = %v, want nil", errs[n-1])
		}
		if got := mustDevice(t, o, alice, d.ID); got.LastStep != firstStep+n || got.Drift != n-1 {
			t.Errorf("LastStep, Drift = %d, %d; want %d, %d", got.LastStep, got.Drift, firstStep+n, n-1)
		}
		accepted := 0
		for _, err := range errs {
			if err == nil {
				accepted++
			}
		}
		if log := allEvents(t, o); len(log) != accepted {
			t.Errorf("audit log has %d events for %d acceptances", len(log), accepted)
		}
	})
}

func testSetResync(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		for i, step := range []uint64{firstStep + 40, firstStep + 41} { // the second replaces the first
			at := now0.Add(time.Duration(i+1)*time.Minute + 123*time.Microsecond)
			wantNoErr(t, "SetResync", s.SetResync(t.Context(), alice, d.ID, step, at, newEvent(twofa.EventResyncStarted, alice, d.ID)))
			w := *d
			w.ResyncStep, w.ResyncAt = step, at
			wantDevice(t, "device after SetResync", mustDevice(t, s, alice, d.ID), &w)
		}
		wantLog(t, s, twofa.EventResyncStarted, twofa.EventResyncStarted)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		enroll(t, s, bob, "dev_bob", now0)
		for _, tt := range []struct {
			name string
			ref  twofa.UserRef
			id   string
		}{
			{"UnknownDevice", alice, "dev_unknown"},
			{"OtherUsersDevice", alice, "dev_bob"},
			{"UnknownUser", nobody, "dev_a"},
		} {
			err := s.SetResync(t.Context(), tt.ref, tt.id, firstStep+40, now0, newEvent(twofa.EventResyncStarted, tt.ref, tt.id))
			wantErr(t, fmt.Sprintf("%s: SetResync(%s, %s)", tt.name, tt.ref, tt.id), err, twofa.ErrNotFound)
		}
		if d := mustDevice(t, s, bob, "dev_bob"); d.ResyncStep != 0 {
			t.Errorf("bob's ResyncStep = %d, want 0", d.ResyncStep)
		}
		wantLog(t, s)
	})
}

func testUnlock(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		enroll(t, s, bob, "dev_bob", now0)
		failN(t, s, alice, 5, now0)
		failN(t, s, bob, 2, now0)
		wantNoErr(t, "Unlock", s.Unlock(t.Context(), alice, newEvent(twofa.EventUnlocked, alice, "")))
		wantFailures(t, s, alice, 0, time.Time{})
		wantFailures(t, s, bob, 2, time.Time{})

		forever := func(int, time.Time) time.Time { return twofa.Forever }
		if _, err := s.BeginAttempt(t.Context(), alice, now0, forever); err != nil {
			t.Fatalf("BeginAttempt = %v", err)
		}
		wantNoErr(t, "Unlock(Forever)", s.Unlock(t.Context(), alice, nil))
		wantFailures(t, s, alice, 0, time.Time{})
		wantNoErr(t, "Unlock(not locked)", s.Unlock(t.Context(), alice, nil))
		wantLog(t, s, twofa.EventUnlocked)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		err := s.Unlock(t.Context(), nobody, newEvent(twofa.EventUnlocked, nobody, ""))
		wantErr(t, "Unlock(unknown)", err, twofa.ErrNotFound)
		wantLog(t, s)
	})
}

// attemptCheck is the check of a verification as the Service makes it: it
// accepts step if it is newer than the device's last step and otherwise
// counts a failure, locking at the default policy's threshold.
func attemptCheck(id string, step uint64, now time.Time) func(u *twofa.User, _ []int) (*twofa.Outcome, error) {
	return func(u *twofa.User, _ []int) (*twofa.Outcome, error) {
		if u.Locked(now) {
			return nil, twofa.LockedError(u.LockedUntil)
		}
		if d := u.Device(id); d != nil && step > d.LastStep {
			return &twofa.Outcome{
				Accept: &twofa.StepAcceptance{DeviceID: id, Step: step, Drift: 1, Now: now},
				Events: []*twofa.AuditEvent{newEvent(twofa.EventVerifySucceeded, u.Ref(), id)},
			}, nil
		}
		n := u.Failures + 1
		o := &twofa.Outcome{Failures: n, LockedUntil: u.LockedUntil, Events: []*twofa.AuditEvent{newEvent(twofa.EventReplayRejected, u.Ref(), id)}}
		if until := twofa.DefaultPolicy().LockUntil(n, now); !until.IsZero() {
			o.LockedUntil = until
			o.Events = append(o.Events, newEvent(twofa.EventLocked, u.Ref(), ""))
		}
		return o, nil
	}
}

func testAttempt(t *testing.T, open Opener) {
	at := now0.Add(time.Hour)

	t.Run("Accept", func(t *testing.T) {
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		wantNoErr(t, "SetResync", s.SetResync(t.Context(), alice, d.ID, firstStep+50, at.Add(-time.Minute), nil))
		failN(t, s, alice, 3, at)
		var seen *twofa.User
		err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice}, func(u *twofa.User, _ []int) (*twofa.Outcome, error) {
			seen = u
			return &twofa.Outcome{
				Accept: &twofa.StepAcceptance{DeviceID: d.ID, Step: firstStep + 7, Drift: -1, Now: at},
				Events: []*twofa.AuditEvent{newEvent(twofa.EventVerifySucceeded, alice, d.ID)},
			}, nil
		})
		wantNoErr(t, "Attempt", err)
		if seen == nil || seen.Failures != 3 || seen.Device(d.ID) == nil || seen.Device(d.ID).LastStep != firstStep {
			t.Fatalf("check saw %+v, want alice with 3 failures and dev_a at step %d", seen, uint64(firstStep))
		}
		wantAccepted(t, s, "Attempt", d, firstStep+7, -1, at)
	})

	t.Run("CountAndLock", func(t *testing.T) {
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		until := at.Add(time.Minute)
		err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice}, func(u *twofa.User, _ []int) (*twofa.Outcome, error) {
			return &twofa.Outcome{Failures: u.Failures + 7, LockedUntil: until, Events: []*twofa.AuditEvent{
				newEvent(twofa.EventVerifyFailed, alice, ""), newEvent(twofa.EventLocked, alice, ""),
			}}, nil
		})
		wantNoErr(t, "Attempt", err)
		wantFailures(t, s, alice, 7, until)
		wantDevice(t, "device after a failure", mustDevice(t, s, alice, d.ID), d)
		wantLog(t, s, twofa.EventVerifyFailed, twofa.EventLocked)
		// An outcome that changes nothing writes only its events.
		err = s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice}, func(u *twofa.User, _ []int) (*twofa.Outcome, error) {
			return &twofa.Outcome{Failures: u.Failures, LockedUntil: u.LockedUntil}, nil
		})
		wantNoErr(t, "Attempt (no change)", err)
		wantFailures(t, s, alice, 7, until)
		wantLog(t, s, twofa.EventVerifyFailed, twofa.EventLocked)
	})

	t.Run("CheckError", func(t *testing.T) {
		// The check's error comes back as it is, and nothing is written.
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		failN(t, s, alice, 2, at)
		mine := errors.New("the check's own error")
		for _, want := range []error{mine, twofa.LockedError(at), twofa.ErrNotEnrolled} {
			err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice}, func(u *twofa.User, _ []int) (*twofa.Outcome, error) { return nil, want })
			if err != want {
				t.Errorf("Attempt = %v, want the check's %v itself", err, want)
			}
		}
		wantDevice(t, "device after refused checks", mustDevice(t, s, alice, d.ID), d)
		wantFailures(t, s, alice, 2, time.Time{})
		wantLog(t, s)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		for _, ref := range []twofa.UserRef{nobody, otherAlice} {
			called := false
			err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: ref}, func(u *twofa.User, _ []int) (*twofa.Outcome, error) {
				called = true
				return &twofa.Outcome{Failures: 1}, nil
			})
			wantErr(t, fmt.Sprintf("Attempt(%s)", ref), err, twofa.ErrNotFound)
			if called {
				t.Errorf("Attempt(%s) called check for an unknown user", ref)
			}
		}
		wantLog(t, s)
	})

	t.Run("ErrReplayed", func(t *testing.T) {
		// An outcome accepting a step that is not newer, or a device that
		// is not active, writes nothing at all: not its failures, not its
		// events.
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		create(t, s, alice, "dev_pending", now0)
		for _, tt := range []struct {
			id   string
			step uint64
		}{{d.ID, firstStep}, {d.ID, firstStep - 1}, {"dev_pending", firstStep + 1}, {"dev_unknown", firstStep + 1}} {
			err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice}, func(u *twofa.User, _ []int) (*twofa.Outcome, error) {
				return &twofa.Outcome{
					Accept:   &twofa.StepAcceptance{DeviceID: tt.id, Step: tt.step, Now: at},
					Failures: 9, LockedUntil: at.Add(time.Hour),
					Events: []*twofa.AuditEvent{newEvent(twofa.EventVerifySucceeded, alice, tt.id)},
				}, nil
			})
			wantErr(t, fmt.Sprintf("Attempt accepting %s step %d", tt.id, tt.step), err, twofa.ErrReplayed)
		}
		wantDevice(t, "device after replays", mustDevice(t, s, alice, d.ID), d)
		wantFailures(t, s, alice, 0, time.Time{})
		wantLog(t, s)
	})

	t.Run("Hits", func(t *testing.T) {
		// The hits are counted first and given to check in order, and
		// they stand whatever becomes of the attempt.
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		hits := []twofa.LimitHit{{Key: "a", Window: time.Minute}, {Key: "b", Window: time.Hour}}
		req := func(ref twofa.UserRef) twofa.AttemptRequest {
			return twofa.AttemptRequest{Ref: ref, Now: at, Hits: hits}
		}
		var seen [][]int
		record := func(o *twofa.Outcome, err error) func(*twofa.User, []int) (*twofa.Outcome, error) {
			return func(u *twofa.User, counts []int) (*twofa.Outcome, error) {
				seen = append(seen, slices.Clone(counts))
				return o, err
			}
		}
		mine := errors.New("refused by the check")
		wantErr(t, "Attempt (check refuses)", s.Attempt(t.Context(), req(alice), record(nil, mine)), mine)
		wantErr(t, "Attempt (unknown user)", s.Attempt(t.Context(), req(nobody), record(nil, nil)), twofa.ErrNotFound)
		replay := &twofa.Outcome{Accept: &twofa.StepAcceptance{DeviceID: d.ID, Step: firstStep, Now: at}, Failures: 3,
			Events: []*twofa.AuditEvent{newEvent(twofa.EventVerifySucceeded, alice, d.ID)}}
		wantErr(t, "Attempt (replayed)", s.Attempt(t.Context(), req(alice), record(replay, nil)), twofa.ErrReplayed)
		ok := &twofa.Outcome{Accept: &twofa.StepAcceptance{DeviceID: d.ID, Step: firstStep + 1, Now: at},
			Events: []*twofa.AuditEvent{newEvent(twofa.EventVerifySucceeded, alice, d.ID)}}
		wantNoErr(t, "Attempt", s.Attempt(t.Context(), req(alice), record(ok, nil)))
		if want := [][]int{{1, 1}, {3, 3}, {4, 4}}; !slices.EqualFunc(seen, want, slices.Equal) {
			t.Errorf("check saw counts %v, want %v (the unknown user's attempt counted too)", seen, want)
		}
		if n, err := s.Hit(t.Context(), "a", time.Minute, at); err != nil || n != 5 {
			t.Errorf("Hit(a) after 4 attempts = %d, %v; want 5", n, err)
		}
		wantFailures(t, s, alice, 0, time.Time{})
		wantLog(t, s, twofa.EventVerifySucceeded)
	})

	// raceOne has n attempts with one code at once, as n requests would:
	// exactly one is accepted, every other is counted, and the count is
	// exact, because every check saw the user as the attempt before it
	// left them.
	raceOne := func(t *testing.T, n int, across bool) {
		o := openStore(t, open)
		d := enroll(t, o, alice, "dev_a", now0)
		errs := race(t, o, n, across, func(ctx context.Context, _ int, s twofa.Store) error {
			return s.Attempt(ctx, twofa.AttemptRequest{Ref: alice}, attemptCheck(d.ID, firstStep+1, at))
		})
		locked := 0
		for i, err := range errs {
			var te *twofa.Error
			switch {
			case err == nil:
			case errors.As(err, &te) && te.Reason == "locked":
				locked++
			default:
				t.Errorf("Attempt #%d = %v", i, err)
			}
		}
		if got := mustDevice(t, o, alice, d.ID).LastStep; got != firstStep+1 {
			t.Errorf("LastStep = %d, want %d", got, firstStep+1)
		}
		log := wantLogTypes(t, o)
		accepted, rejected := log[twofa.EventVerifySucceeded], log[twofa.EventReplayRejected]
		if accepted != 1 {
			t.Errorf("%d attempts accepted, want exactly 1", accepted)
		}
		// The default policy locks at the fifth consecutive failure; the
		// success may come before or among them.
		u := mustUser(t, o, alice)
		if rejected+locked+accepted != n || u.Failures > rejected || rejected > 5 || log[twofa.EventLocked] > 1 {
			t.Errorf("%d accepted, %d rejected, %d refused as locked, %d failures left, %d locks; want %d in all, at most 5 rejected",
				accepted, rejected, locked, u.Failures, log[twofa.EventLocked], n)
		}
		if rejected == 5 && u.Failures == 5 && !u.Locked(at) {
			t.Errorf("5 consecutive failures left alice unlocked")
		}
	}
	t.Run("RaceOneWinner", func(t *testing.T) { raceOne(t, 32, false) })
	t.Run("RaceAcrossHandles", func(t *testing.T) { raceOne(t, 32, true) })

	t.Run("RaceCountsEveryAttempt", func(t *testing.T) {
		// Concurrent failures are counted one by one: none is lost.
		o := openStore(t, open)
		enroll(t, o, alice, "dev_a", now0)
		const n = 24
		seen := make([]int, n)
		errs := race(t, o, n, true, func(ctx context.Context, i int, s twofa.Store) error {
			return s.Attempt(ctx, twofa.AttemptRequest{Ref: alice}, func(u *twofa.User, _ []int) (*twofa.Outcome, error) {
				seen[i] = u.Failures
				return &twofa.Outcome{Failures: u.Failures + 1}, nil
			})
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("Attempt #%d = %v", i, err)
			}
		}
		wantFailures(t, o, alice, n, time.Time{})
		slices.Sort(seen)
		for i, v := range seen {
			if v != i {
				t.Fatalf("checks saw failure counts %v, want 0 to %d, each once", seen, n-1)
			}
		}
	})
}

// wantLogTypes returns how many events of each type the log holds, and
// checks that the chain verifies.
func wantLogTypes(t *testing.T, s twofa.Store) map[twofa.EventType]int {
	t.Helper()
	n := map[twofa.EventType]int{}
	for _, e := range allEvents(t, s) {
		n[e.Type]++
	}
	return n
}
