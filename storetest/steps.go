package storetest

import (
	"math"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

// testStepRange: TOTP steps are kept in 64-bit signed columns. No real
// clock comes near 2^63 steps, so a step above math.MaxInt64 is invalid
// input: every store refuses it with EINVALID (a 400, not a 500), and
// writes nothing; MaxInt64 itself is kept.
func testStepRange(t *testing.T, open Opener) {
	const tooBig = uint64(math.MaxInt64) + 1
	wantInvalid := func(t *testing.T, call string, err error) {
		t.Helper()
		if code := twofa.ErrorCode(err); code != twofa.EINVALID {
			t.Errorf("%s = %v (code %q), want code %q", call, err, code, twofa.EINVALID)
		}
	}
	at := now0

	t.Run("CreateDevice", func(t *testing.T) {
		s := openStore(t, open)
		d := newDevice(alice, "dev_last", at)
		d.LastStep = tooBig
		_, err := s.CreateDevice(t.Context(), d, 100, at, newEvent(twofa.EventEnrollStarted, alice, d.ID))
		wantInvalid(t, "CreateDevice("+d.ID+")", err)
		if _, err := s.User(t.Context(), alice); err == nil {
			noDevice(t, s, alice, "dev_last")
		}
		wantLog(t, s)
	})

	t.Run("ActivateDevice", func(t *testing.T) {
		s := openStore(t, open)
		d := create(t, s, alice, "dev_a", at)
		_, err := s.ActivateDevice(t.Context(), twofa.Activation{Ref: alice, DeviceID: d.ID, Step: tooBig, Now: at.Add(time.Minute),
			BackupCodes: codeHashes("steps", 3), Event: newEvent(twofa.EventEnrollConfirmed, alice, d.ID)})
		wantInvalid(t, "ActivateDevice(MaxInt64+1)", err)
		wantDevice(t, "device after a refused ActivateDevice", mustDevice(t, s, alice, d.ID), d)
		wantCodes(t, s, alice, 0)
		wantLog(t, s)

		_, err = s.ActivateDevice(t.Context(), twofa.Activation{Ref: alice, DeviceID: d.ID, Step: math.MaxInt64, Now: at.Add(time.Minute)})
		wantNoErr(t, "ActivateDevice(MaxInt64)", err)
		if got := mustDevice(t, s, alice, d.ID).LastStep; got != math.MaxInt64 {
			t.Errorf("LastStep = %d, want %d", got, uint64(math.MaxInt64))
		}
	})

	t.Run("AttemptAcceptStep", func(t *testing.T) {
		s := openStore(t, open)
		d := enroll(t, s, alice, "dev_a", at)
		failN(t, s, alice, 2, at)
		before := len(allEvents(t, s))
		err := acceptStep(t.Context(), s, alice, d.ID, tooBig, 0, at.Add(time.Minute), newEvent(twofa.EventVerifySucceeded, alice, d.ID))
		wantInvalid(t, "accepting step MaxInt64+1", err)
		wantDevice(t, "device after a refused step", mustDevice(t, s, alice, d.ID), d)
		wantFailures(t, s, alice, 2, time.Time{})
		if after := len(allEvents(t, s)); after != before {
			t.Errorf("a refused step appended %d audit entries, want none", after-before)
		}
		wantNoErr(t, "accepting step MaxInt64", acceptStep(t.Context(), s, alice, d.ID, math.MaxInt64, 0, at.Add(time.Minute), nil))
	})
}
