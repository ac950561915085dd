package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/client"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/web"
)

// code is the newest code the server sent to the user's address.
func (s *server) code(t *testing.T, user, address string) string {
	t.Helper()
	return twofatest.LastCode(t, s.store, s.keys, twofa.UserRef{Tenant: "acme", User: user}, address)
}

// otherCode is a well-formed code that is not code.
func otherCode(code string) string {
	var n int
	fmt.Sscanf(code, "%d", &n)
	return fmt.Sprintf("%08d", (n+1)%100000000)
}

// apiError is err as a *client.Error, or a failure.
func apiError(t *testing.T, what string, err error) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: got %v, want an API error", what, err)
	}
	return e
}

func TestClient_Email(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	s.enroll(t, "alice")
	const address = "alice@example.com"

	t.Run("ReasonRestricted", func(t *testing.T) {
		// bob has no other factor, and the tenant does not allow email alone.
		_, err := s.app.EnrollEmail(ctx, "bob", "bob@example.com", "")
		if e := apiError(t, "EnrollEmail(bob)", err); e.Status != 409 || e.Code != client.CodeConflict || e.Reason != client.ReasonRestricted {
			t.Errorf("EnrollEmail(bob) = %+v, want 409 %s", e, client.ReasonRestricted)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		for _, a := range []string{"", "alice", "Alice <alice@example.com>", "alice@example.com\r\nBcc: x@example.com"} {
			if _, err := s.app.EnrollEmail(ctx, "alice", a, ""); !client.IsInvalid(err) {
				t.Errorf("EnrollEmail(%q): got %v, want invalid", a, err)
			}
		}
	})

	en, err := s.app.EnrollEmail(ctx, "alice", " alice@EXAMPLE.com", "Work mail")
	if err != nil {
		t.Fatalf("EnrollEmail: %v", err)
	}
	now := s.clock.Now()
	if d := en.Device; d.ID == "" || d.Type != "email" || d.Status != "pending" || d.Name != "Work mail" || d.Address != address || !d.Restricted {
		t.Errorf("EnrollEmail device = %+v", d)
	}
	want := client.Challenge{ID: en.Challenge.ID, Factor: "email", Purpose: "confirm_email", DeviceID: en.Device.ID, State: "pending",
		ExpiresAt: now.Add(10 * time.Minute), ResendAfter: now.Add(30 * time.Second), AttemptsLeft: 5, CodeDigits: 8}
	if got := en.Challenge; !strings.HasPrefix(got.ID, "chl_") || !challengeEqual(got, want) {
		t.Errorf("EnrollEmail challenge = %+v, want %+v", got, want)
	}
	confirmCode := s.code(t, "alice", address)

	t.Run("ReasonAddressTaken", func(t *testing.T) {
		_, err := s.app.EnrollEmail(ctx, "alice", "alice@Example.Com", "")
		if e := apiError(t, "the same address", err); e.Status != 409 || e.Reason != client.ReasonAddressTaken {
			t.Errorf("the same address: %+v, want 409 %s", e, client.ReasonAddressTaken)
		}
	})
	t.Run("ConfirmWrong", func(t *testing.T) {
		res, err := s.app.ConfirmEmail(ctx, "alice", en.Device.ID, en.Challenge.ID, otherCode(confirmCode))
		if err != nil || res.Valid || res.Reason != "invalid_code" {
			t.Errorf("ConfirmEmail(wrong) = %+v, %v", res, err)
		}
		if _, err := s.app.ConfirmEmail(ctx, "alice", en.Device.ID, en.Challenge.ID, "123456"); !client.IsMalformedCode(err) {
			t.Errorf("ConfirmEmail(6 digits): got %v, want malformed", err)
		}
		if _, err := s.app.ConfirmEmail(ctx, "alice", "", en.Challenge.ID, confirmCode); !client.IsInvalid(err) {
			t.Errorf("ConfirmEmail without a device: got %v, want invalid", err)
		}
	})
	res, err := s.app.ConfirmEmail(ctx, "alice", en.Device.ID, en.Challenge.ID, confirmCode)
	if want := (client.VerifyResult{Valid: true, Factor: "email", DeviceID: en.Device.ID, BackupCodesRemaining: 10}); err != nil || *res != want {
		t.Fatalf("ConfirmEmail = %+v, %v; want %+v", res, err, want)
	}
	u, err := s.app.User(ctx, "alice")
	if err != nil || len(u.Devices) != 2 || u.Devices[1].Address != address || u.Devices[1].Status != "active" {
		t.Errorf("User after ConfirmEmail = %+v, %v", u, err)
	}

	s.clock.Add(time.Minute)
	c, err := s.app.StartChallenge(ctx, "alice", "email", "")
	if err != nil {
		t.Fatalf("StartChallenge: %v", err)
	}
	now = s.clock.Now()
	want = client.Challenge{ID: c.ID, Factor: "email", Purpose: "sign_in", DeviceID: en.Device.ID, State: "pending",
		ExpiresAt: now.Add(10 * time.Minute), ResendAfter: now.Add(30 * time.Second), AttemptsLeft: 5, CodeDigits: 8}
	if !challengeEqual(*c, want) || c.ID == en.Challenge.ID {
		t.Errorf("StartChallenge = %+v, want %+v", c, want)
	}
	first := s.code(t, "alice", address)

	t.Run("ResendRateLimited", func(t *testing.T) {
		s.clock.Add(10 * time.Second)
		_, err := s.app.ResendChallenge(ctx, "alice", c.ID)
		e := apiError(t, "ResendChallenge too soon", err)
		if !client.IsRateLimited(err) || e.Status != 429 || e.Reason != client.ReasonRateLimited || !e.Until.Equal(c.ResendAfter) ||
			e.RetryAfter != 20*time.Second {
			t.Errorf("ResendChallenge too soon: %+v, want 429 until %v, retry after 20s", e, c.ResendAfter)
		}
		if got := s.code(t, "alice", address); got != first {
			t.Errorf("a refused resend sent a code")
		}
	})
	s.clock.Add(20 * time.Second)
	r, err := s.app.ResendChallenge(ctx, "alice", c.ID)
	if err != nil {
		t.Fatalf("ResendChallenge: %v", err)
	}
	now = s.clock.Now()
	want.ExpiresAt, want.ResendAfter = now.Add(10*time.Minute), now.Add(30*time.Second)
	if !challengeEqual(*r, want) {
		t.Errorf("ResendChallenge = %+v, want %+v", r, want)
	}
	second := s.code(t, "alice", address)
	if second == first {
		t.Errorf("the resend sent the same code")
	}

	t.Run("VerifyWrong", func(t *testing.T) {
		res, err := s.app.VerifyChallenge(ctx, "alice", c.ID, otherCode(second))
		if err != nil || res.Valid || res.Reason != "invalid_code" {
			t.Errorf("VerifyChallenge(wrong) = %+v, %v", res, err)
		}
		got, err := s.app.Challenge(ctx, "alice", c.ID)
		if err != nil || got.State != "pending" || got.AttemptsLeft != 4 {
			t.Errorf("Challenge after a wrong code = %+v, %v; want pending, 4 attempts left", got, err)
		}
		if _, err := s.app.VerifyChallenge(ctx, "alice", c.ID, "1234"); !client.IsMalformedCode(err) {
			t.Errorf("VerifyChallenge(1234): got %v, want malformed", err)
		}
	})
	// The first code still works after the resend.
	res, err = s.app.VerifyChallenge(ctx, "alice", c.ID, first)
	if want := (client.VerifyResult{Valid: true, Factor: "email", DeviceID: en.Device.ID, BackupCodesRemaining: 10}); err != nil || *res != want {
		t.Fatalf("VerifyChallenge = %+v, %v; want %+v", res, err, want)
	}
	if got, err := s.app.Challenge(ctx, "alice", c.ID); err != nil || got.State != "verified" {
		t.Errorf("Challenge after the right code = %+v, %v; want verified", got, err)
	}

	t.Run("ReasonChallengeEnded", func(t *testing.T) {
		for what, call := range map[string]func() error{
			"VerifyChallenge": func() error { _, err := s.app.VerifyChallenge(ctx, "alice", c.ID, second); return err },
			"ResendChallenge": func() error {
				s.clock.Add(30 * time.Second)
				_, err := s.app.ResendChallenge(ctx, "alice", c.ID)
				return err
			},
		} {
			e := apiError(t, what, call())
			if e.Status != 404 || e.Code != client.CodeNotFound || e.Reason != client.ReasonChallengeEnded || !client.IsNotFound(e) {
				t.Errorf("%s of a spent challenge: %+v, want 404 %s", what, e, client.ReasonChallengeEnded)
			}
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		if _, err := s.app.Challenge(ctx, "alice", "chl_nope"); !client.IsNotFound(err) {
			t.Errorf("Challenge(chl_nope): got %v", err)
		}
		// Another user's challenge is not found.
		if _, err := s.app.Challenge(ctx, "bob", c.ID); !client.IsNotFound(err) {
			t.Errorf("bob's view of alice's challenge: got %v", err)
		}
		for what, call := range map[string]func() error{
			"VerifyChallenge": func() error { _, err := s.app.VerifyChallenge(ctx, "alice", "", first); return err },
			"ResendChallenge": func() error { _, err := s.app.ResendChallenge(ctx, "alice", ""); return err },
			"Challenge":       func() error { _, err := s.app.Challenge(ctx, "alice", ""); return err },
		} {
			err := call()
			if e := apiError(t, what, err); !client.IsInvalid(err) || e.Status != 0 || e.Message != "challenge ID is empty" {
				t.Errorf("%s without an ID: %+v, want invalid before sending: challenge ID is empty", what, e)
			}
		}
	})
	t.Run("StartInvalid", func(t *testing.T) {
		if _, err := s.app.StartChallenge(ctx, "alice", "sms", ""); !client.IsInvalid(err) {
			t.Errorf("StartChallenge(sms): got %v, want invalid", err)
		}
		if _, err := s.app.StartChallenge(ctx, "alice", "email", "dev_nope"); !client.IsNotFound(err) {
			t.Errorf("StartChallenge(dev_nope): got %v, want not found", err)
		}
		s.enroll(t, "carol")
		if _, err := s.app.StartChallenge(ctx, "carol", "email", ""); !client.IsNotEnrolled(err) {
			t.Errorf("StartChallenge for a user without email: got %v, want not_enrolled", err)
		}
	})
	t.Run("SendLimit", func(t *testing.T) {
		// Five codes in 15 minutes per user: the confirmation's, the
		// sign-in's and its resend were three.
		for i := range 2 {
			s.clock.Add(time.Second)
			if _, err := s.app.StartChallenge(ctx, "alice", "email", en.Device.ID); err != nil {
				t.Fatalf("StartChallenge %d: %v", i, err)
			}
		}
		_, err := s.app.StartChallenge(ctx, "alice", "email", en.Device.ID)
		if e := apiError(t, "a sixth code", err); e.Status != 429 || e.Reason != client.ReasonRateLimited || e.Until.IsZero() || e.RetryAfter <= 0 {
			t.Errorf("a sixth code in 15 minutes: %+v, want 429 with a time to retry", e)
		}
	})
}

// challengeEqual compares challenges, their times as instants.
func challengeEqual(a, b client.Challenge) bool {
	ta, tb := [2]time.Time{a.ExpiresAt, a.ResendAfter}, [2]time.Time{b.ExpiresAt, b.ResendAfter}
	a.ExpiresAt, a.ResendAfter, b.ExpiresAt, b.ResendAfter = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b && ta[0].Equal(tb[0]) && ta[1].Equal(tb[1])
}

func TestClient_EmailUnavailable(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	s.enroll(t, "alice")
	// The same store, served by a Service that sends no email.
	svc, err := twofa.NewService(ctx, s.store.(twofa.Store), s.keys, twofa.Options{Now: s.clock.Now, Channels: []twofa.Channel{twofa.ChannelWebhook}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(web.NewHandler(svc, web.Options{Now: s.clock.Now}))
	t.Cleanup(hs.Close)
	app := client.New(hs.URL, s.appKey)
	for what, call := range map[string]func() error{
		"EnrollEmail":    func() error { _, err := app.EnrollEmail(ctx, "alice", "alice@example.com", ""); return err },
		"StartChallenge": func() error { _, err := app.StartChallenge(ctx, "alice", "email", ""); return err },
	} {
		e := apiError(t, what, call())
		if e.Status != 409 || e.Code != client.CodeConflict || e.Reason != client.ReasonUnavailable {
			t.Errorf("%s on a server without email: %+v, want 409 %s", what, e, client.ReasonUnavailable)
		}
	}
}
