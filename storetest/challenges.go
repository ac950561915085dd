package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

// newChallenge returns a challenge of the user's device with n codes,
// created at at, each valid 10 minutes.
func newChallenge(ref twofa.UserRef, id, device string, at time.Time, n int) *twofa.Challenge {
	c := &twofa.Challenge{
		ID: id, Tenant: ref.Tenant, User: ref.User, DeviceID: device, Factor: twofa.FactorEmail, Purpose: twofa.PurposeSignIn,
		Sends: 1, LastSentAt: at, CreatedAt: at, ExpiresAt: at.Add(10 * time.Minute),
	}
	for i := range n {
		c.Codes = append(c.Codes, twofa.ChallengeCode{Hash: []byte(fmt.Sprintf("%s-code-%d", id, i)), ExpiresAt: at.Add(10 * time.Minute)})
	}
	return c
}

func mustChallenge(t *testing.T, s twofa.Store, ref twofa.UserRef, id string) *twofa.Challenge {
	t.Helper()
	c, err := s.Challenge(t.Context(), ref, id)
	if err != nil {
		t.Fatalf("Challenge(%s, %s) = %v", ref, id, err)
	}
	return c
}

// wantChallenge compares every field of a challenge.
func wantChallenge(t *testing.T, what string, got, want *twofa.Challenge) {
	t.Helper()
	same := got.ID == want.ID && got.Tenant == want.Tenant && got.User == want.User && got.DeviceID == want.DeviceID &&
		got.Factor == want.Factor && got.Purpose == want.Purpose && got.Attempts == want.Attempts && got.Sends == want.Sends &&
		got.LastSentAt.Equal(want.LastSentAt) && got.CreatedAt.Equal(want.CreatedAt) && got.ExpiresAt.Equal(want.ExpiresAt) &&
		got.ConsumedAt.Equal(want.ConsumedAt) && len(got.Codes) == len(want.Codes)
	for i := 0; same && i < len(got.Codes); i++ {
		same = bytes.Equal(got.Codes[i].Hash, want.Codes[i].Hash) && got.Codes[i].ExpiresAt.Equal(want.Codes[i].ExpiresAt)
	}
	if !same {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// challengeAttempt makes an attempt that reads the challenge and writes
// the effects; seen gets the challenge the check saw.
func challengeAttempt(ctx context.Context, s twofa.Store, ref twofa.UserRef, id string, at time.Time, seen **twofa.Challenge, effects ...twofa.Effect) error {
	return s.Attempt(ctx, twofa.AttemptRequest{Ref: ref, Now: at, Reads: twofa.AttemptReads{Challenge: id}},
		func(st *twofa.AttemptState) (*twofa.Outcome, error) {
			if seen != nil {
				*seen = st.Challenge
			}
			return &twofa.Outcome{Effects: effects, Events: []*twofa.AuditEvent{newEvent(twofa.EventChallengeVerified, ref, "")}}, nil
		})
}

func testChallenges(t *testing.T, open Opener) {
	at := now0.Add(time.Hour)

	t.Run("CreateAndRead", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		c := newChallenge(alice, "chl_1", "dev_a", at.In(time.FixedZone("UTC+5:30", 5*3600+1800)), 1)
		wantNoErr(t, "CreateChallenge", s.CreateChallenge(t.Context(), c, newEvent(twofa.EventChallengeCreated, alice, "dev_a")))
		wantChallenge(t, "challenge", mustChallenge(t, s, alice, "chl_1"), c)
		for _, ref := range []twofa.UserRef{bob, otherAlice, nobody} {
			_, err := s.Challenge(t.Context(), ref, "chl_1")
			wantErr(t, fmt.Sprintf("Challenge(%s)", ref), err, twofa.ErrNotFound)
		}
		err := s.CreateChallenge(t.Context(), newChallenge(nobody, "chl_2", "dev_x", at, 1), newEvent(twofa.EventChallengeCreated, nobody, ""))
		wantErr(t, "CreateChallenge(unknown user)", err, twofa.ErrNotFound)
		wantLog(t, s, twofa.EventChallengeCreated)
	})

	t.Run("AddCode", func(t *testing.T) {
		// A resend adds a code, keeps the three newest, counts the send
		// and moves the expiry; it is refused within the gap, and once the
		// challenge is no longer pending.
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		c := newChallenge(alice, "chl_1", "dev_a", at, 1)
		wantNoErr(t, "CreateChallenge", s.CreateChallenge(t.Context(), c, nil))
		gap := 30 * time.Second
		err := s.AddChallengeCode(t.Context(), alice, "chl_1", twofa.ChallengeCode{Hash: []byte("early"), ExpiresAt: at.Add(11 * time.Minute)}, at.Add(29*time.Second), gap, nil)
		var e *twofa.Error
		if !errors.Is(err, twofa.ErrRateLimited) || !errors.As(err, &e) || !e.Until.Equal(at.Add(gap)) {
			t.Errorf("AddChallengeCode within the gap = %v, want ErrRateLimited until %v", err, at.Add(gap))
		}
		want := c
		for i := 1; i <= 4; i++ {
			now := at.Add(time.Duration(i) * time.Minute)
			k := twofa.ChallengeCode{Hash: []byte(fmt.Sprint("resend-", i)), ExpiresAt: now.Add(10 * time.Minute)}
			wantNoErr(t, "AddChallengeCode", s.AddChallengeCode(t.Context(), alice, "chl_1", k, now, gap, newEvent(twofa.EventChallengeResent, alice, "dev_a")))
			want.Codes = append(want.Codes, k)
			if len(want.Codes) > twofa.MaxLiveCodes {
				want.Codes = want.Codes[1:]
			}
			want.Sends, want.LastSentAt, want.ExpiresAt = i+1, now, k.ExpiresAt
			wantChallenge(t, fmt.Sprint("after resend ", i), mustChallenge(t, s, alice, "chl_1"), want)
		}
		_, err = s.Challenge(t.Context(), alice, "chl_1")
		wantNoErr(t, "Challenge", err)
		for _, tt := range []struct {
			name string
			ref  twofa.UserRef
			id   string
			now  time.Time
			want error
		}{
			{"Unknown", alice, "chl_nope", at.Add(time.Hour), twofa.ErrNotFound},
			{"OtherUser", bob, "chl_1", at.Add(5 * time.Minute), twofa.ErrNotFound},
			{"Expired", alice, "chl_1", want.ExpiresAt, twofa.ErrChallengeEnded},
		} {
			err := s.AddChallengeCode(t.Context(), tt.ref, tt.id, twofa.ChallengeCode{Hash: []byte("x"), ExpiresAt: tt.now.Add(time.Minute)}, tt.now, gap, nil)
			wantErr(t, "AddChallengeCode "+tt.name, err, tt.want)
		}
		// Spent: consumed, or out of attempts.
		wantNoErr(t, "consume", challengeAttempt(t.Context(), s, alice, "chl_1", at.Add(5*time.Minute), nil, twofa.ConsumeChallenge{ID: "chl_1"}))
		err = s.AddChallengeCode(t.Context(), alice, "chl_1", twofa.ChallengeCode{Hash: []byte("x"), ExpiresAt: at.Add(time.Hour)}, at.Add(6*time.Minute), gap, nil)
		wantErr(t, "AddChallengeCode(consumed)", err, twofa.ErrChallengeEnded)
		c2 := newChallenge(alice, "chl_2", "dev_a", at, 1)
		wantNoErr(t, "CreateChallenge", s.CreateChallenge(t.Context(), c2, nil))
		for range twofa.MaxChallengeAttempts {
			wantNoErr(t, "fail", challengeAttempt(t.Context(), s, alice, "chl_2", at, nil, twofa.FailChallenge{ID: "chl_2"}))
		}
		err = s.AddChallengeCode(t.Context(), alice, "chl_2", twofa.ChallengeCode{Hash: []byte("x"), ExpiresAt: at.Add(time.Hour)}, at.Add(time.Minute), gap, nil)
		wantErr(t, "AddChallengeCode(out of attempts)", err, twofa.ErrChallengeEnded)
	})

	t.Run("AttemptReadsAndEffects", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		create(t, s, alice, "dev_p", at)
		enroll(t, s, bob, "dev_b", now0)
		c := newChallenge(alice, "chl_1", "dev_a", at, 2)
		wantNoErr(t, "CreateChallenge", s.CreateChallenge(t.Context(), c, nil))
		wantNoErr(t, "CreateChallenge", s.CreateChallenge(t.Context(), newChallenge(bob, "chl_b", "dev_b", at, 1), nil))
		var seen *twofa.Challenge
		wantNoErr(t, "attempt", challengeAttempt(t.Context(), s, alice, "chl_1", at, &seen, twofa.FailChallenge{ID: "chl_1"}))
		if seen == nil {
			t.Fatal("the attempt saw no challenge")
		}
		wantChallenge(t, "challenge the attempt saw", seen, c)
		// Another user's challenge reads as none.
		wantNoErr(t, "attempt", challengeAttempt(t.Context(), s, alice, "chl_b", at, &seen))
		if seen != nil {
			t.Errorf("alice's attempt saw bob's challenge %+v", seen)
		}
		c.Attempts = 1
		wantChallenge(t, "after a failure", mustChallenge(t, s, alice, "chl_1"), c)

		wantNoErr(t, "consume", challengeAttempt(t.Context(), s, alice, "chl_1", at.Add(time.Minute), nil,
			twofa.ConsumeChallenge{ID: "chl_1"}, twofa.UseDevice{DeviceID: "dev_a"}, twofa.ActivateDevice{DeviceID: "dev_p"}))
		c.ConsumedAt = at.Add(time.Minute)
		wantChallenge(t, "after consuming", mustChallenge(t, s, alice, "chl_1"), c)
		if d := mustDevice(t, s, alice, "dev_a"); !d.LastUsedAt.Equal(at.Add(time.Minute)) {
			t.Errorf("dev_a LastUsedAt = %v, want %v", d.LastUsedAt, at.Add(time.Minute))
		}
		if d := mustDevice(t, s, alice, "dev_p"); d.Status != twofa.StatusActive || !d.ConfirmedAt.Equal(at.Add(time.Minute)) || !d.ExpiresAt.IsZero() {
			t.Errorf("dev_p after ActivateDevice: %+v", d)
		}
		// Every condition that fails writes nothing.
		create(t, s, alice, "dev_late", now0) // expired by at
		for _, tt := range []struct {
			name string
			e    twofa.Effect
		}{
			{"ConsumeTwice", twofa.ConsumeChallenge{ID: "chl_1"}},
			{"FailConsumed", twofa.FailChallenge{ID: "chl_1"}},
			{"ConsumeOthers", twofa.ConsumeChallenge{ID: "chl_b"}},
			{"ActivateActive", twofa.ActivateDevice{DeviceID: "dev_a"}},
			{"ActivateExpired", twofa.ActivateDevice{DeviceID: "dev_late"}},
			{"ActivateOthers", twofa.ActivateDevice{DeviceID: "dev_b"}},
			{"UsePending", twofa.UseDevice{DeviceID: "dev_late"}},
			{"UseOthers", twofa.UseDevice{DeviceID: "dev_b"}},
		} {
			err := challengeAttempt(t.Context(), s, alice, "chl_1", at.Add(2*time.Minute), nil, twofa.UseDevice{DeviceID: "dev_a"}, tt.e)
			wantErr(t, tt.name, err, twofa.ErrReplayed)
		}
		if d := mustDevice(t, s, alice, "dev_a"); !d.LastUsedAt.Equal(at.Add(time.Minute)) {
			t.Errorf("dev_a LastUsedAt = %v after refused attempts", d.LastUsedAt)
		}
		if c := mustChallenge(t, s, bob, "chl_b"); !c.ConsumedAt.IsZero() {
			t.Errorf("bob's challenge consumed through alice")
		}
	})

	t.Run("RaceOneConsumes", func(t *testing.T) {
		o := openStore(t, open)
		enroll(t, o, alice, "dev_a", now0)
		wantNoErr(t, "CreateChallenge", o.CreateChallenge(t.Context(), newChallenge(alice, "chl_1", "dev_a", at, 1), nil))
		errs := race(t, o, 32, true, func(ctx context.Context, _ int, s twofa.Store) error {
			return s.Attempt(ctx, twofa.AttemptRequest{Ref: alice, Now: at, Reads: twofa.AttemptReads{Challenge: "chl_1"}},
				func(st *twofa.AttemptState) (*twofa.Outcome, error) {
					if !st.Challenge.ConsumedAt.IsZero() {
						return nil, twofa.ErrChallengeEnded
					}
					return &twofa.Outcome{Effects: []twofa.Effect{twofa.ConsumeChallenge{ID: "chl_1"}},
						Events: []*twofa.AuditEvent{newEvent(twofa.EventChallengeVerified, alice, "dev_a")}}, nil
				})
		})
		won, ended := 0, 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, twofa.ErrChallengeEnded):
				ended++
			default:
				t.Errorf("attempt #%d = %v", i, err)
			}
		}
		if won != 1 || ended != 31 {
			t.Errorf("%d consumed and %d found it spent, want 1 and 31", won, ended)
		}
		wantLog(t, o, twofa.EventChallengeVerified)
	})

	t.Run("Delete", func(t *testing.T) {
		s := openStore(t, open)
		enroll(t, s, alice, "dev_a", now0)
		old := newChallenge(alice, "chl_old", "dev_a", now0, 2) // expires now0+10m
		live := newChallenge(alice, "chl_live", "dev_a", at, 1)
		spent := newChallenge(alice, "chl_spent", "dev_a", at, 1)
		for _, c := range []*twofa.Challenge{old, live, spent} {
			wantNoErr(t, "CreateChallenge", s.CreateChallenge(t.Context(), c, nil))
		}
		wantNoErr(t, "consume", challengeAttempt(t.Context(), s, alice, "chl_spent", at, nil, twofa.ConsumeChallenge{ID: "chl_spent"}))
		n, err := s.DeleteChallenges(t.Context(), at.Add(time.Second))
		if err != nil || n != 2 {
			t.Errorf("DeleteChallenges = %d, %v; want 2", n, err)
		}
		mustChallenge(t, s, alice, "chl_live")
		for _, id := range []string{"chl_old", "chl_spent"} {
			_, err := s.Challenge(t.Context(), alice, id)
			wantErr(t, "Challenge("+id+")", err, twofa.ErrNotFound)
		}
	})

	t.Run("AddressIndex", func(t *testing.T) {
		// A device's address index is kept, and one user cannot hold one
		// index twice; another user can.
		s := openStore(t, open)
		d := newDevice(alice, "dev_e1", now0)
		d.Kind, d.AddressIndex = twofa.KindEmail, []byte("index-of-jane@example.com")
		_, err := s.CreateDevice(t.Context(), d, 10, now0, nil)
		wantNoErr(t, "CreateDevice", err)
		if got := mustDevice(t, s, alice, "dev_e1"); !bytes.Equal(got.AddressIndex, d.AddressIndex) || got.Kind != twofa.KindEmail {
			t.Errorf("device %+v, want its address index kept", got)
		}
		again := newDevice(alice, "dev_e2", now0)
		again.Kind, again.AddressIndex = twofa.KindEmail, d.AddressIndex
		_, err = s.CreateDevice(t.Context(), again, 10, now0, newEvent(twofa.EventEnrollStarted, alice, "dev_e2"))
		wantErr(t, "CreateDevice(same address)", err, twofa.ErrAddressTaken)
		noDevice(t, s, alice, "dev_e2")
		bobs := newDevice(bob, "dev_e3", now0)
		bobs.Kind, bobs.AddressIndex = twofa.KindEmail, d.AddressIndex
		_, err = s.CreateDevice(t.Context(), bobs, 10, now0, nil)
		wantNoErr(t, "CreateDevice(bob, same address)", err)
		if got := mustUser(t, s, alice); len(got.Devices) != 1 {
			t.Errorf("alice has %d devices, want 1", len(got.Devices))
		}
		plain := enroll(t, s, bob, "dev_totp", now0)
		if got := mustDevice(t, s, bob, plain.ID); got.AddressIndex != nil {
			t.Errorf("a TOTP device has address index %x, want none", got.AddressIndex)
		}
	})

	t.Run("RestrictedOnly", func(t *testing.T) {
		s := openStore(t, open)
		want := func(call string, tenant string, want bool) {
			t.Helper()
			if got, err := s.RestrictedOnly(t.Context(), tenant); err != nil || got != want {
				t.Errorf("%s: RestrictedOnly(%s) = %t, %v; want %t", call, tenant, got, err, want)
			}
		}
		want("before any setting", "acme", false)
		wantNoErr(t, "SetRestrictedOnly(true)", s.SetRestrictedOnly(t.Context(), "acme", true, now0, newEvent(twofa.EventTenantUpdated, twofa.UserRef{Tenant: "acme"}, "")))
		want("after true", "acme", true)
		want("another tenant", "globex", false)
		wantNoErr(t, "SetRestrictedOnly(false)", s.SetRestrictedOnly(t.Context(), "acme", false, now0, nil))
		want("after false", "acme", false)
		wantLog(t, s, twofa.EventTenantUpdated)
	})
}
