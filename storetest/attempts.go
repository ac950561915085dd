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

// fail makes one failed attempt of the user at now under the default
// policy, as the Service would: refused while locked, otherwise one more
// consecutive failure and the lock it brings.
func fail(ctx context.Context, s twofa.Store, ref twofa.UserRef, now time.Time) error {
	return s.Attempt(ctx, twofa.AttemptRequest{Ref: ref, Now: now}, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
		u := st.User
		if u.Locked(now) {
			return nil, twofa.LockedError(u.LockedUntil)
		}
		o := &twofa.Outcome{Failures: u.Failures + 1, LockedUntil: u.LockedUntil}
		if until := twofa.DefaultPolicy().LockUntil(o.Failures, now); !until.IsZero() {
			o.LockedUntil = until
		}
		return o, nil
	})
}

// acceptStep accepts a step of the device through Attempt, as a valid
// code would: the failures are cleared and e is appended.
func acceptStep(ctx context.Context, s twofa.Store, ref twofa.UserRef, id string, step uint64, drift int, now time.Time, e *twofa.AuditEvent) error {
	return s.Attempt(ctx, twofa.AttemptRequest{Ref: ref, Now: now}, func(*twofa.AttemptState) (*twofa.Outcome, error) {
		return &twofa.Outcome{Effects: []twofa.Effect{twofa.AcceptStep{DeviceID: id, Step: step, Drift: drift}}, Events: []*twofa.AuditEvent{e}}, nil
	})
}

// spendCode spends the user's backup code with this hash through Attempt,
// as a valid backup code would, and returns how many unused codes remain.
// ErrNotFound when the user has no unused code with the hash.
func spendCode(ctx context.Context, s twofa.Store, ref twofa.UserRef, hash []byte, now time.Time, e *twofa.AuditEvent) (remaining int, err error) {
	err = s.Attempt(ctx, twofa.AttemptRequest{Ref: ref, Now: now, Reads: twofa.AttemptReads{BackupCode: hash}},
		func(st *twofa.AttemptState) (*twofa.Outcome, error) {
			if !st.BackupCodeFound {
				return nil, twofa.ErrNotFound
			}
			remaining = st.User.BackupCodes - 1
			return &twofa.Outcome{Effects: []twofa.Effect{twofa.SpendBackupCode{Hash: hash}}, Events: []*twofa.AuditEvent{e}}, nil
		})
	return remaining, err
}

// wantAccepted checks that call accepted step of alice's device d at at,
// with the drift; that alice's failures are cleared; and that the log
// holds the one success.
func wantAccepted(t *testing.T, s twofa.Store, call string, d *twofa.Device, step uint64, drift int, at time.Time) {
	t.Helper()
	w := *d
	w.LastStep, w.Drift, w.LastUsedAt = step, drift, at
	wantDevice(t, "device after "+call, mustDevice(t, s, alice, d.ID), &w)
	wantFailures(t, s, alice, 0, time.Time{})
	wantLog(t, s, twofa.EventVerifySucceeded)
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

		err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: now0}, func(*twofa.AttemptState) (*twofa.Outcome, error) {
			return &twofa.Outcome{Failures: 100, LockedUntil: twofa.Forever}, nil
		})
		wantNoErr(t, "Attempt (hard lock)", err)
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
func attemptCheck(id string, step uint64, now time.Time) func(*twofa.AttemptState) (*twofa.Outcome, error) {
	return func(st *twofa.AttemptState) (*twofa.Outcome, error) {
		u := st.User
		if u.Locked(now) {
			return nil, twofa.LockedError(u.LockedUntil)
		}
		if d := u.Device(id); d != nil && step > d.LastStep {
			return &twofa.Outcome{
				Effects: []twofa.Effect{twofa.AcceptStep{DeviceID: id, Step: step, Drift: 1}},
				Events:  []*twofa.AuditEvent{newEvent(twofa.EventVerifySucceeded, u.Ref(), id)},
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
		failN(t, s, alice, 3, at)
		var seen *twofa.User
		err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: at}, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
			seen = st.User
			return &twofa.Outcome{
				Effects: []twofa.Effect{twofa.AcceptStep{DeviceID: d.ID, Step: firstStep + 7, Drift: -1}},
				Events:  []*twofa.AuditEvent{newEvent(twofa.EventVerifySucceeded, alice, d.ID)},
			}, nil
		})
		wantNoErr(t, "Attempt", err)
		if seen == nil || seen.Failures != 3 || seen.Device(d.ID) == nil || seen.Device(d.ID).LastStep != firstStep {
			t.Fatalf("check saw %+v, want alice with 3 failures and dev_a at step %d", seen, uint64(firstStep))
		}
		wantAccepted(t, s, "Attempt", d, firstStep+7, -1, at)
	})

	t.Run("AcceptStepBeyond32Bits", func(t *testing.T) {
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		const step = 1<<40 + 3
		wantNoErr(t, "Attempt", acceptStep(t.Context(), s, alice, d.ID, step, 2, at, newEvent(twofa.EventVerifySucceeded, alice, d.ID)))
		wantAccepted(t, s, "Attempt", d, step, 2, at)
	})

	t.Run("CountAndLock", func(t *testing.T) {
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		until := at.Add(time.Minute)
		err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: at}, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
			return &twofa.Outcome{Failures: st.User.Failures + 7, LockedUntil: until, Events: []*twofa.AuditEvent{
				newEvent(twofa.EventVerifyFailed, alice, ""), newEvent(twofa.EventLocked, alice, ""),
			}}, nil
		})
		wantNoErr(t, "Attempt", err)
		wantFailures(t, s, alice, 7, until)
		wantDevice(t, "device after a failure", mustDevice(t, s, alice, d.ID), d)
		wantLog(t, s, twofa.EventVerifyFailed, twofa.EventLocked)
		// An outcome that changes nothing writes only its events.
		err = s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: at}, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
			return &twofa.Outcome{Failures: st.User.Failures, LockedUntil: st.User.LockedUntil}, nil
		})
		wantNoErr(t, "Attempt (no change)", err)
		wantFailures(t, s, alice, 7, until)
		wantLog(t, s, twofa.EventVerifyFailed, twofa.EventLocked)
	})

	t.Run("Forever", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: at}, func(*twofa.AttemptState) (*twofa.Outcome, error) {
			return &twofa.Outcome{Failures: 1, LockedUntil: twofa.Forever}, nil
		})
		wantNoErr(t, "Attempt", err)
		wantFailures(t, s, alice, 1, twofa.Forever)
		err = fail(t.Context(), s, alice, at.AddDate(100, 0, 0))
		wantLocked(t, "a failure a century later", err, twofa.Forever)
	})

	t.Run("CheckError", func(t *testing.T) {
		// The check's error comes back as it is, and nothing is written.
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		failN(t, s, alice, 2, at)
		mine := errors.New("the check's own error")
		for _, want := range []error{mine, twofa.LockedError(at), twofa.ErrNotEnrolled} {
			err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: at}, func(*twofa.AttemptState) (*twofa.Outcome, error) { return nil, want })
			if err != want {
				t.Errorf("Attempt = %v, want the check's %v itself", err, want)
			}
		}
		wantDevice(t, "device after refused checks", mustDevice(t, s, alice, d.ID), d)
		wantFailures(t, s, alice, 2, time.Time{})
		wantLog(t, s)
	})

	t.Run("OutcomeErr", func(t *testing.T) {
		// An outcome's Err comes back as it is, after the outcome is
		// written: a refusal that still counts.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		mine := errors.New("refused, and counted")
		err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: at}, func(*twofa.AttemptState) (*twofa.Outcome, error) {
			return &twofa.Outcome{Failures: 2, Hits: []twofa.LimitHit{{Key: "k", Window: time.Minute}},
				Events: []*twofa.AuditEvent{newEvent(twofa.EventVerifyFailed, alice, "")}, Err: mine}, nil
		})
		if err != mine {
			t.Errorf("Attempt = %v, want the outcome's %v itself", err, mine)
		}
		wantFailures(t, s, alice, 2, time.Time{})
		wantLog(t, s, twofa.EventVerifyFailed)
		if n, err := s.Hit(t.Context(), "k", time.Minute, at); err != nil || n != 2 {
			t.Errorf("Hit(k) after the attempt = %d, %v; want 2", n, err)
		}
	})

	t.Run("OutcomeOver", func(t *testing.T) {
		// A limit the outcome counts decides the answer once its count,
		// this event included, exceeds its Max; the outcome is written
		// either way.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		under, over := errors.New("under the limit"), errors.New("over the limit")
		for i, want := range []error{under, under, over, over} {
			err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: at}, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
				return &twofa.Outcome{Err: under, Events: []*twofa.AuditEvent{newEvent(twofa.EventVerifyFailed, alice, "")},
					Over: &twofa.OverLimit{Hit: twofa.LimitHit{Key: "over", Window: time.Minute}, Max: 2, Err: over}}, nil
			})
			if err != want {
				t.Errorf("attempt %d = %v, want %v", i+1, err, want)
			}
		}
		wantLog(t, s, twofa.EventVerifyFailed, twofa.EventVerifyFailed, twofa.EventVerifyFailed, twofa.EventVerifyFailed)
		if n, err := s.Hit(t.Context(), "over", time.Minute, at); err != nil || n != 5 {
			t.Errorf("Hit(over) after 4 attempts = %d, %v; want 5", n, err)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		for _, ref := range []twofa.UserRef{nobody, otherAlice} {
			called := false
			err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: ref, Now: at}, func(*twofa.AttemptState) (*twofa.Outcome, error) {
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
		// An effect whose condition fails (a step that is not newer; a
		// device that is not an active device of the user; a spent,
		// unknown or other user's backup code) writes nothing at all: not
		// the other effects, not its failures, not its events.
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", now0)
		create(t, s, alice, "dev_pending", now0)
		enroll(t, s, bob, "dev_bob", now0)
		codes := withCodes(t, s, alice, "a", 3)
		bobs := withCodes(t, s, bob, "b", 3)
		_, err := spendCode(t.Context(), s, alice, codes[0], at, nil)
		wantNoErr(t, "spending a code", err)
		good := twofa.SpendBackupCode{Hash: codes[1]}
		for _, tt := range []struct {
			name string
			e    twofa.Effect
		}{
			{"SameStep", twofa.AcceptStep{DeviceID: d.ID, Step: firstStep}},
			{"OlderStep", twofa.AcceptStep{DeviceID: d.ID, Step: firstStep - 1}},
			{"ZeroStep", twofa.AcceptStep{DeviceID: d.ID, Step: 0}},
			{"PendingDevice", twofa.AcceptStep{DeviceID: "dev_pending", Step: firstStep + 1}},
			{"UnknownDevice", twofa.AcceptStep{DeviceID: "dev_unknown", Step: firstStep + 1}},
			{"OtherUsersDevice", twofa.AcceptStep{DeviceID: "dev_bob", Step: firstStep + 1}},
			{"SpentCode", twofa.SpendBackupCode{Hash: codes[0]}},
			{"UnknownCode", twofa.SpendBackupCode{Hash: codeHashes("z", 1)[0]}},
			{"OtherUsersCode", twofa.SpendBackupCode{Hash: bobs[0]}},
		} {
			err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: at}, func(*twofa.AttemptState) (*twofa.Outcome, error) {
				return &twofa.Outcome{
					Effects:  []twofa.Effect{good, tt.e},
					Failures: 9, LockedUntil: at.Add(time.Hour),
					Hits:   []twofa.LimitHit{{Key: "outcome", Window: time.Minute}},
					Events: []*twofa.AuditEvent{newEvent(twofa.EventVerifySucceeded, alice, d.ID)},
				}, nil
			})
			wantErr(t, "Attempt with effect "+tt.name, err, twofa.ErrReplayed)
		}
		wantDevice(t, "device after replays", mustDevice(t, s, alice, d.ID), d)
		if p := mustDevice(t, s, alice, "dev_pending"); p.Status != twofa.StatusPending || p.LastStep != 0 {
			t.Errorf("pending device became %s at step %d", p.Status, p.LastStep)
		}
		if b := mustDevice(t, s, bob, "dev_bob"); b.LastStep != firstStep {
			t.Errorf("bob's LastStep = %d, want %d", b.LastStep, firstStep)
		}
		wantFailures(t, s, alice, 0, time.Time{})
		wantCodes(t, s, alice, 2)
		wantCodes(t, s, bob, 3)
		if n, err := s.Hit(t.Context(), "outcome", time.Minute, at); err != nil || n != 1 {
			t.Errorf("Hit(outcome) = %d, %v; want 1: no outcome counted", n, err)
		}
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
		record := func(o *twofa.Outcome, err error) func(*twofa.AttemptState) (*twofa.Outcome, error) {
			return func(st *twofa.AttemptState) (*twofa.Outcome, error) {
				seen = append(seen, slices.Clone(st.Hits))
				return o, err
			}
		}
		mine := errors.New("refused by the check")
		wantErr(t, "Attempt (check refuses)", s.Attempt(t.Context(), req(alice), record(nil, mine)), mine)
		wantErr(t, "Attempt (unknown user)", s.Attempt(t.Context(), req(nobody), record(nil, nil)), twofa.ErrNotFound)
		replay := &twofa.Outcome{Effects: []twofa.Effect{twofa.AcceptStep{DeviceID: d.ID, Step: firstStep}}, Failures: 3,
			Events: []*twofa.AuditEvent{newEvent(twofa.EventVerifySucceeded, alice, d.ID)}}
		wantErr(t, "Attempt (replayed)", s.Attempt(t.Context(), req(alice), record(replay, nil)), twofa.ErrReplayed)
		ok := &twofa.Outcome{Effects: []twofa.Effect{twofa.AcceptStep{DeviceID: d.ID, Step: firstStep + 1}},
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

	t.Run("PeeksAndOutcomeHits", func(t *testing.T) {
		// Peeks are read, not counted; an outcome's hits count once it is
		// written, and only then.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		ip := twofa.LimitHit{Key: "ip", Window: time.Minute}
		var seen []int
		attempt := func(o *twofa.Outcome, err error) error {
			return s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: at, Peeks: []twofa.LimitHit{ip}},
				func(st *twofa.AttemptState) (*twofa.Outcome, error) {
					seen = append(seen, st.Peeks[0])
					return o, err
				})
		}
		mine := errors.New("refused by the check")
		wantErr(t, "Attempt (refused)", attempt(nil, mine), mine)
		wantNoErr(t, "Attempt (counts nothing)", attempt(&twofa.Outcome{}, nil))
		wantNoErr(t, "Attempt (counts ip)", attempt(&twofa.Outcome{Failures: 1, Hits: []twofa.LimitHit{ip}}, nil))
		wantNoErr(t, "Attempt (counts ip)", attempt(&twofa.Outcome{Failures: 2, Hits: []twofa.LimitHit{ip}}, nil))
		wantNoErr(t, "Attempt", attempt(&twofa.Outcome{Failures: 2}, nil))
		if want := []int{0, 0, 0, 1, 2}; !slices.Equal(seen, want) {
			t.Errorf("check saw ip counts %v, want %v", seen, want)
		}
		// The next minute starts afresh.
		wantNoErr(t, "Attempt", s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: at.Truncate(time.Minute).Add(time.Minute), Peeks: []twofa.LimitHit{ip}},
			func(st *twofa.AttemptState) (*twofa.Outcome, error) {
				if st.Peeks[0] != 0 {
					t.Errorf("ip count in the next minute = %d, want 0", st.Peeks[0])
				}
				return &twofa.Outcome{Failures: 2}, nil
			}))
	})

	t.Run("RollingWindow", func(t *testing.T) {
		// A window of 24 slots: a count is the sum of the last 24 hours'
		// slots, and an event leaves it a whole window after its slot
		// began.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		day := twofa.LimitHit{Key: "day", Window: 24 * time.Hour, Buckets: 24}
		base := time.Date(2025, time.March, 14, 0, 0, 0, 0, time.UTC)
		peek := func(when time.Time) int {
			var n int
			err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: when, Peeks: []twofa.LimitHit{day}},
				func(st *twofa.AttemptState) (*twofa.Outcome, error) {
					n = st.Peeks[0]
					return &twofa.Outcome{}, nil
				})
			wantNoErr(t, "Attempt (peek)", err)
			return n
		}
		hit := func(when time.Time) int {
			var n int
			err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: when, Hits: []twofa.LimitHit{day}},
				func(st *twofa.AttemptState) (*twofa.Outcome, error) {
					n = st.Hits[0]
					return &twofa.Outcome{}, nil
				})
			wantNoErr(t, "Attempt (hit)", err)
			return n
		}
		for _, tt := range []struct {
			at       time.Duration
			hit      bool
			want     int
			describe string
		}{
			{10 * time.Minute, true, 1, "first event"},
			{50 * time.Minute, true, 2, "same slot"},
			{5*time.Hour + time.Minute, true, 3, "a later slot"},
			{23*time.Hour + 59*time.Minute, false, 3, "all within 24 slots"},
			{24 * time.Hour, false, 1, "the first slot has left"},
			{29*time.Hour + time.Minute, false, 0, "the later slot has left"},
			{29*time.Hour + 2*time.Minute, true, 1, "counting again"},
		} {
			var got int
			if tt.hit {
				got = hit(base.Add(tt.at))
			} else {
				got = peek(base.Add(tt.at))
			}
			if got != tt.want {
				t.Errorf("%s at +%v: count %d, want %d", tt.describe, tt.at, got, tt.want)
			}
		}
	})

	// raceOne has n attempts with one code at once, as n requests would:
	// exactly one is accepted, every other is counted, and the count is
	// exact, because every check saw the user as the attempt before it
	// left them.
	raceOne := func(t *testing.T, n int, across bool) {
		o := openStore(t, open)
		d := enroll(t, o, alice, "dev_a", now0)
		errs := race(t, o, n, across, func(ctx context.Context, _ int, s twofa.Store) error {
			return s.Attempt(ctx, twofa.AttemptRequest{Ref: alice, Now: at}, attemptCheck(d.ID, firstStep+1, at))
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

	t.Run("RaceLockout", func(t *testing.T) {
		// 40 wrong guesses at once from two handles: exactly LockAfter (5)
		// are counted, with counts 1 to 5, and the other 35 find the user
		// locked and are not counted.
		o := openStore(t, open)
		enroll(t, o, alice, "dev_a", now0)
		until := at.Add(30 * time.Second)
		errs := race(t, o, 40, true, func(ctx context.Context, _ int, s twofa.Store) error { return fail(ctx, s, alice, at) })
		counted, locked := 0, 0
		for i, err := range errs {
			var e *twofa.Error
			switch {
			case err == nil:
				counted++
			case errors.Is(err, twofa.ErrLocked) && errors.As(err, &e) && e.Until.Equal(until):
				locked++
			default:
				t.Errorf("attempt #%d = %v", i, err)
			}
		}
		if counted != 5 || locked != 35 {
			t.Errorf("%d counted and %d locked, want 5 and 35 locked until %v", counted, locked, until)
		}
		wantFailures(t, o, alice, 5, until)
	})

	t.Run("RaceCountsEveryAttempt", func(t *testing.T) {
		// Concurrent failures are counted one by one: none is lost.
		o := openStore(t, open)
		enroll(t, o, alice, "dev_a", now0)
		const n = 24
		seen := make([]int, n)
		errs := race(t, o, n, true, func(ctx context.Context, i int, s twofa.Store) error {
			return s.Attempt(ctx, twofa.AttemptRequest{Ref: alice, Now: at}, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
				seen[i] = st.User.Failures
				return &twofa.Outcome{Failures: st.User.Failures + 1}, nil
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

	t.Run("RaceNewestWins", func(t *testing.T) {
		// Different steps at once: whatever the order, the newest is
		// accepted and ends as LastStep, and every acceptance was newer
		// than the one before it.
		o := openStore(t, open)
		d := enroll(t, o, alice, "dev_a", now0)
		const n = 16
		errs := race(t, o, n, true, func(ctx context.Context, i int, s twofa.Store) error {
			return s.Attempt(ctx, twofa.AttemptRequest{Ref: alice, Now: at}, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
				step := firstStep + 1 + uint64(i)
				if step <= st.User.Device(d.ID).LastStep {
					return nil, twofa.ErrReplayed
				}
				return &twofa.Outcome{Effects: []twofa.Effect{twofa.AcceptStep{DeviceID: d.ID, Step: step, Drift: i}},
					Events: []*twofa.AuditEvent{newEvent(twofa.EventVerifySucceeded, alice, d.ID)}}, nil
			})
		})
		accepted := 0
		for i, err := range errs {
			switch {
			case err == nil:
				accepted++
			case !errors.Is(err, twofa.ErrReplayed):
				t.Errorf("Attempt #%d = %v", i, err)
			}
		}
		if errs[n-1] != nil {
			t.Errorf("Attempt with the newest step = %v, want nil", errs[n-1])
		}
		if got := mustDevice(t, o, alice, d.ID); got.LastStep != firstStep+n || got.Drift != n-1 {
			t.Errorf("LastStep, Drift = %d, %d; want %d, %d", got.LastStep, got.Drift, firstStep+n, n-1)
		}
		if log := allEvents(t, o); len(log) != accepted {
			t.Errorf("audit log has %d events for %d acceptances", len(log), accepted)
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
