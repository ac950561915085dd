package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

func testSpendBackupCode(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		// An attempt reads whether the code is an unused one of the user's;
		// each code is spent once.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		hs := withCodes(t, s, alice, "a", 3)
		failN(t, s, alice, 4, now0)
		for i, h := range hs {
			n, err := spendCode(t.Context(), s, alice, h, now0, newEvent(twofa.EventBackupCodeUsed, alice, ""))
			if n != len(hs)-1-i || err != nil {
				t.Errorf("spending code #%d = %d, %v; want %d, nil", i, n, err, len(hs)-1-i)
			}
			wantFailures(t, s, alice, 0, time.Time{})
			wantCodes(t, s, alice, len(hs)-1-i)
			failN(t, s, alice, 1, now0)
		}
		wantLog(t, s, twofa.EventBackupCodeUsed, twofa.EventBackupCodeUsed, twofa.EventBackupCodeUsed)
	})

	t.Run("NotFound", func(t *testing.T) {
		// A spent, unknown, other user's or other tenant's code is not
		// found; nothing is spent.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		enroll(t, s, bob, "dev_bob", now0)
		enroll(t, s, otherAlice, "dev_other", now0)
		hs := withCodes(t, s, alice, "a", 3)
		bobs := withCodes(t, s, bob, "b", 3)
		_, err := spendCode(t.Context(), s, alice, hs[0], now0, nil)
		wantNoErr(t, "spending a code", err)
		for _, tt := range []struct {
			name string
			ref  twofa.UserRef
			hash []byte
		}{
			{"Spent", alice, hs[0]},
			{"Unknown", alice, codeHashes("z", 1)[0]},
			{"OtherUsersCode", alice, bobs[0]},
			{"OtherTenant", otherAlice, hs[1]},
		} {
			found := true
			err := s.Attempt(t.Context(), twofa.AttemptRequest{Ref: tt.ref, Now: now0, Reads: twofa.AttemptReads{BackupCode: tt.hash}},
				func(st *twofa.AttemptState) (*twofa.Outcome, error) {
					found = st.BackupCodeFound
					return &twofa.Outcome{}, nil
				})
			wantNoErr(t, tt.name+": Attempt", err)
			if found {
				t.Errorf("%s: BackupCodeFound = true, want false", tt.name)
			}
		}
		wantCodes(t, s, alice, 2)
		wantCodes(t, s, bob, 3)
		wantLog(t, s)
	})

	t.Run("PerUser", func(t *testing.T) {
		// Two users may hold codes with the same hash; each spends his own.
		s := openStore(t, open)
		for _, ref := range []twofa.UserRef{alice, bob, otherAlice} {
			enroll(t, s, ref, "dev_"+ref.Tenant+"_"+ref.User, now0)
			withCodes(t, s, ref, "same", 2)
		}
		h := codeHashes("same", 2)[1]
		for _, ref := range []twofa.UserRef{alice, bob, otherAlice} {
			n, err := spendCode(t.Context(), s, ref, h, now0, nil)
			if n != 1 || err != nil {
				t.Errorf("spending %s's code = %d, %v; want 1, nil", ref, n, err)
			}
		}
	})

	t.Run("RaceOneWinner", func(t *testing.T) {
		o := openStore(t, open)
		enroll(t, o, alice, "dev_a", now0)
		hs := withCodes(t, o, alice, "a", 3)
		type result struct {
			n   int
			err error
		}
		results := race(t, o, 32, true, func(ctx context.Context, _ int, s twofa.Store) result {
			n, err := spendCode(ctx, s, alice, hs[1], now0, newEvent(twofa.EventBackupCodeUsed, alice, ""))
			return result{n, err}
		})
		won, lost := 0, 0
		for i, r := range results {
			switch {
			case r.err == nil && r.n == 2:
				won++
			case errors.Is(r.err, twofa.ErrNotFound):
				lost++
			default:
				t.Errorf("spending #%d = %d, %v", i, r.n, r.err)
			}
		}
		if won != 1 || lost != 31 {
			t.Errorf("%d spent the code and %d found it spent, want 1 and 31", won, lost)
		}
		wantCodes(t, o, alice, 2)
		wantLog(t, o, twofa.EventBackupCodeUsed)
	})
}

func testReplaceBackupCodes(t *testing.T, open Opener) {
	t.Run("OK", func(t *testing.T) {
		// The new set replaces the old one, used codes and unused.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		old := withCodes(t, s, alice, "old", 4)
		_, err := spendCode(t.Context(), s, alice, old[0], now0, nil)
		wantNoErr(t, "spending a code", err)
		failN(t, s, alice, 2, now0)
		hs := codeHashes("new", 10)
		wantNoErr(t, "ReplaceBackupCodes", s.ReplaceBackupCodes(t.Context(), alice, hs, now0, newEvent(twofa.EventBackupCodesIssued, alice, "")))
		wantCodes(t, s, alice, 10)
		for i, h := range old {
			_, err := spendCode(t.Context(), s, alice, h, now0, nil)
			wantErr(t, fmt.Sprintf("spending old code %d", i), err, twofa.ErrNotFound)
		}
		wantFailures(t, s, alice, 2, time.Time{}) // replacing codes is no successful check
		n, err := spendCode(t.Context(), s, alice, hs[9], now0, nil)
		if n != 9 || err != nil {
			t.Errorf("spending a new code = %d, %v; want 9, nil", n, err)
		}
		wantLog(t, s, twofa.EventBackupCodesIssued)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s := openStore(t, open)
		err := s.ReplaceBackupCodes(t.Context(), nobody, codeHashes("a", 2), now0, newEvent(twofa.EventBackupCodesIssued, nobody, ""))
		wantErr(t, "ReplaceBackupCodes(unknown)", err, twofa.ErrNotFound)
		wantLog(t, s)
	})
}
