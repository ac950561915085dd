package twofa_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
)

func TestNormalizeEmail(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"jane@example.com", "jane@example.com"},
		{"  Jane.Doe+2fa@Example.COM ", "Jane.Doe+2fa@example.com"},
		{"j@x.io", "j@x.io"},
		{"", ""},
		{"jane", ""},
		{"jane@", ""},
		{"@example.com", ""},
		{"jane@example", ""},
		{"jane@example..com", ""},
		{"jane@.example.com", ""},
		{"Jane <jane@example.com>", ""},
		{"jane doe@example.com", ""},
		{"jane@example.com\r\nBcc: x@evil.com", ""},
		{`"jane"@example.com`, ""},
		{"jane@exa mple.com", ""},
		{strings.Repeat("a", 65) + "@example.com", ""},
		{"a@" + strings.Repeat("b", 250) + ".com", ""},
		{"jane@example.com,bob@example.com", ""},
	} {
		got, err := twofa.NormalizeEmail(tt.in)
		if tt.want == "" {
			if err == nil || twofa.ErrorCode(err) != twofa.EINVALID {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want an invalid error", tt.in, got, err)
			}
			continue
		}
		if got != tt.want || err != nil {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// outbox returns the messages of the tenant, oldest first, opened.
func (f *fixture) outbox(t *testing.T, tenant string) []twofatest.Mail {
	t.Helper()
	return twofatest.Outbox(t, f.store, f.keys, tenant)
}

// lastCode returns the code of the newest code message to address.
func (f *fixture) lastCode(t *testing.T, ref twofa.UserRef, address string) string {
	t.Helper()
	return twofatest.LastCode(t, f.store, f.keys, ref, address)
}

// notices returns, by address, the event types the user was told of.
func (f *fixture) notices(t *testing.T, ref twofa.UserRef) map[string][]twofa.EventType {
	t.Helper()
	n := map[string][]twofa.EventType{}
	for _, m := range f.outbox(t, ref.Tenant) {
		if m.Kind == twofa.KindNotice && m.User == ref.User {
			n[m.Body.To] = append(n[m.Body.To], m.Body.Event.Type)
		}
	}
	return n
}

// withEmail gives ref a TOTP device and a confirmed email address.
func (f *fixture) withEmail(t *testing.T, ref twofa.UserRef, address string) string {
	t.Helper()
	ctx := context.Background()
	en, err := f.svc.BeginEmailEnrollment(ctx, ref, address, "")
	if err != nil {
		t.Fatalf("BeginEmailEnrollment: %v", err)
	}
	res, err := f.svc.ConfirmEmail(ctx, ref, en.Device.ID, en.Challenge.ID, f.lastCode(t, ref, address))
	if err != nil || !res.Valid {
		t.Fatalf("ConfirmEmail: %+v, %v", res, err)
	}
	return en.Device.ID
}

func TestService_EmailEnrollment(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		ref := twofa.UserRef{Tenant: "acme", User: "emma"}

		// Email alone is refused unless the tenant allows it.
		_, err := f.svc.BeginEmailEnrollment(ctx, ref, "emma@example.com", "")
		if !errors.Is(err, twofa.ErrRestrictedOnly) {
			t.Fatalf("email as the first factor: %v; want ErrRestrictedOnly", err)
		}
		f.enroll(t, ref, "Phone")
		_, err = f.svc.BeginEmailEnrollment(ctx, ref, "not an address", "")
		if twofa.ErrorCode(err) != twofa.EINVALID {
			t.Errorf("a bad address: %v; want invalid", err)
		}

		en, err := f.svc.BeginEmailEnrollment(ctx, ref, "Emma@Example.COM", "Work")
		if err != nil {
			t.Fatalf("BeginEmailEnrollment: %v", err)
		}
		if d := en.Device; d.Kind != twofa.KindEmail || d.Status != twofa.StatusPending || d.Address != "Emma@example.com" || d.Name != "Work" {
			t.Errorf("device %+v", d)
		}
		if c := en.Challenge; c.Purpose != twofa.PurposeConfirm || c.DeviceID != en.Device.ID || !c.ExpiresAt.Equal(f.clock.Now().Add(10*time.Minute)) {
			t.Errorf("challenge %+v", c)
		}
		code := f.lastCode(t, ref, "Emma@example.com")
		if len(code) != 8 {
			t.Errorf("code %q, want 8 digits", code)
		}
		// The address is sealed at rest: no row holds it.
		u, _ := f.store.User(ctx, ref)
		if d := u.Device(en.Device.ID); d == nil || strings.Contains(string(d.Secret), "Emma") || d.Address != "" {
			t.Errorf("stored device holds the address in the clear: %+v", d)
		}
		if _, err := f.svc.BeginEmailEnrollment(ctx, ref, "Emma@EXAMPLE.com", ""); !errors.Is(err, twofa.ErrAddressTaken) {
			t.Errorf("the same address again, pending: %v; want ErrAddressTaken", err)
		}

		// A wrong code is a failed attempt of the user and of the challenge.
		wrong := fmt.Sprintf("%08d", (atoi(code)+1)%100000000)
		res, err := f.svc.ConfirmEmail(ctx, ref, en.Device.ID, en.Challenge.ID, wrong)
		if err != nil || res.Valid || res.Reason != twofa.ReasonInvalidCode {
			t.Fatalf("a wrong code: %+v, %v", res, err)
		}
		if u, _ := f.svc.UserStatus(ctx, ref); u.Failures != 1 {
			t.Errorf("failures after a wrong code: %d, want 1", u.Failures)
		}
		if c, _ := f.svc.Challenge(ctx, ref, en.Challenge.ID); c.Attempts != 1 {
			t.Errorf("challenge attempts %d, want 1", c.Attempts)
		}
		for _, bad := range []string{"1234567", "123456789", "abcdefgh", "１２３４５６７８"} {
			if _, err := f.svc.ConfirmEmail(ctx, ref, en.Device.ID, en.Challenge.ID, bad); !errors.Is(err, twofa.ErrMalformedCode) {
				t.Errorf("ConfirmEmail(%q): %v; want ErrMalformedCode", bad, err)
			}
		}
		// Another device's challenge does not confirm this one.
		if _, err := f.svc.ConfirmEmail(ctx, ref, "dev_other", en.Challenge.ID, code); !errors.Is(err, twofa.ErrNotFound) {
			t.Errorf("ConfirmEmail(another device): %v; want ErrNotFound", err)
		}
		res, err = f.svc.ConfirmEmail(ctx, ref, en.Device.ID, en.Challenge.ID, code)
		if err != nil || !res.Valid || res.Factor != twofa.FactorEmail || res.Device != en.Device.ID {
			t.Fatalf("the right code: %+v, %v", res, err)
		}
		u, _ = f.svc.UserStatus(ctx, ref)
		if d := u.Device(en.Device.ID); d == nil || d.Status != twofa.StatusActive || d.Address != "Emma@example.com" || u.Failures != 0 {
			t.Errorf("after confirming: %+v, failures %d", d, u.Failures)
		}
		if _, err := f.svc.ConfirmEmail(ctx, ref, en.Device.ID, en.Challenge.ID, code); !errors.Is(err, twofa.ErrChallengeEnded) {
			t.Errorf("the code again: %v; want ErrChallengeEnded", err)
		}
		// The new address is told it was added.
		if got := f.notices(t, ref); !slices.Equal(got["Emma@example.com"], []twofa.EventType{twofa.EventEnrollConfirmed}) {
			t.Errorf("notices %v; want enrollment_confirmed to the new address", got)
		}
		if _, err := f.svc.BeginEmailEnrollment(ctx, ref, "Emma@example.com", ""); !errors.Is(err, twofa.ErrAddressTaken) {
			t.Errorf("an address the user has: %v; want ErrAddressTaken", err)
		}

		// The tenant may allow email alone.
		solo := twofa.UserRef{Tenant: "acme", User: "solo"}
		if err := f.svc.SetRestrictedOnly(ctx, "acme", true); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.BeginEmailEnrollment(ctx, solo, "solo@example.com", ""); err != nil {
			t.Errorf("email alone where the tenant allows it: %v", err)
		}
	})
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestService_EmailChallenge(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		ref := twofa.UserRef{Tenant: "acme", User: "carl"}
		f.enroll(t, ref, "Phone")
		dev := f.withEmail(t, ref, "carl@example.com")

		c, err := f.svc.StartChallenge(ctx, ref, twofa.FactorEmail, "")
		if err != nil || c.DeviceID != dev || c.Purpose != twofa.PurposeSignIn {
			t.Fatalf("StartChallenge: %+v, %v", c, err)
		}
		first := f.lastCode(t, ref, "carl@example.com")
		// A resend within 30 s is refused; after it, earlier codes stay valid.
		if _, err := f.svc.ResendChallenge(ctx, ref, c.ID); !errors.Is(err, twofa.ErrRateLimited) {
			t.Errorf("an early resend: %v; want ErrRateLimited", err)
		}
		var codes = []string{first}
		for i := range 3 {
			f.clock.Add(31 * time.Second)
			c2, err := f.svc.ResendChallenge(ctx, ref, c.ID)
			if err != nil || c2.Sends != i+2 || len(c2.Codes) != min(i+2, twofa.MaxLiveCodes) {
				t.Fatalf("resend %d: %+v, %v", i+1, c2, err)
			}
			codes = append(codes, f.lastCode(t, ref, "carl@example.com"))
		}
		// Four codes sent: the first is no longer live, and a wrong code
		// counts against the user and the challenge.
		res, err := f.svc.VerifyChallenge(ctx, ref, c.ID, codes[0])
		if err != nil || res.Valid {
			t.Errorf("the oldest of four codes: %+v, %v; want invalid", res, err)
		}
		res, err = f.svc.VerifyChallenge(ctx, ref, c.ID, codes[1])
		if err != nil || !res.Valid || res.Factor != twofa.FactorEmail || res.Device != dev {
			t.Fatalf("an older live code: %+v, %v", res, err)
		}
		if u, _ := f.svc.UserStatus(ctx, ref); u.Failures != 0 || u.Device(dev).LastUsedAt.IsZero() {
			t.Errorf("after a right code: failures %d, device %+v", u.Failures, u.Device(dev))
		}
		for _, code := range codes[2:] {
			if _, err := f.svc.VerifyChallenge(ctx, ref, c.ID, code); !errors.Is(err, twofa.ErrChallengeEnded) {
				t.Errorf("another code of a spent challenge: %v; want ErrChallengeEnded", err)
			}
		}

		// Five wrong codes end a challenge; they also lock the user, and a
		// new challenge's right code is refused while locked. (A new
		// quarter of an hour: the sends above used this one's five.)
		f.clock.Add(15 * time.Minute)
		c, err = f.svc.StartChallenge(ctx, ref, twofa.FactorEmail, dev)
		if err != nil {
			t.Fatal(err)
		}
		right := f.lastCode(t, ref, "carl@example.com")
		wrong := fmt.Sprintf("%08d", (atoi(right)+1)%100000000)
		for i := range twofa.MaxChallengeAttempts {
			res, err := f.svc.VerifyChallenge(ctx, ref, c.ID, wrong)
			if err != nil || res.Valid || (i == 4) != !res.LockedUntil.IsZero() {
				t.Fatalf("wrong code %d: %+v, %v", i+1, res, err)
			}
		}
		f.clock.Add(time.Minute)
		if _, err := f.svc.VerifyChallenge(ctx, ref, c.ID, right); !errors.Is(err, twofa.ErrChallengeEnded) {
			t.Errorf("the right code after 5 wrong ones: %v; want ErrChallengeEnded", err)
		}
		// The lock was told to the address.
		if got := f.notices(t, ref)["carl@example.com"]; !slices.Contains(got, twofa.EventLocked) {
			t.Errorf("notices %v; want user_locked", got)
		}
		// A challenge expires with its codes.
		c, _ = f.svc.StartChallenge(ctx, ref, twofa.FactorEmail, "")
		code := f.lastCode(t, ref, "carl@example.com")
		f.clock.Add(10 * time.Minute)
		if _, err := f.svc.VerifyChallenge(ctx, ref, c.ID, code); !errors.Is(err, twofa.ErrChallengeEnded) {
			t.Errorf("an expired code: %v; want ErrChallengeEnded", err)
		}
		// Unknown challenges and users.
		if _, err := f.svc.VerifyChallenge(ctx, ref, "chl_nope", code); !errors.Is(err, twofa.ErrNotFound) {
			t.Errorf("an unknown challenge: %v; want ErrNotFound", err)
		}
		if _, err := f.svc.StartChallenge(ctx, twofa.UserRef{Tenant: "acme", User: "nobody"}, twofa.FactorEmail, ""); !errors.Is(err, twofa.ErrNotEnrolled) {
			t.Errorf("a user without email: %v; want ErrNotEnrolled", err)
		}
	})
}

func TestService_EmailChallengeRace(t *testing.T) {
	// One right code raced 32 times is valid once.
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		ref := twofa.UserRef{Tenant: "acme", User: "race"}
		f.enroll(t, ref, "Phone")
		f.withEmail(t, ref, "race@example.com")
		c, err := f.svc.StartChallenge(ctx, ref, twofa.FactorEmail, "")
		if err != nil {
			t.Fatal(err)
		}
		code := f.lastCode(t, ref, "race@example.com")
		var mu sync.Mutex
		valid, ended, other := 0, 0, 0
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				res, err := f.svc.VerifyChallenge(ctx, ref, c.ID, code)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && res.Valid:
					valid++
				case errors.Is(err, twofa.ErrChallengeEnded):
					ended++
				default:
					other++
					t.Errorf("unexpected: %+v, %v", res, err)
				}
			})
		}
		wg.Wait()
		if valid != 1 || ended != 31 {
			t.Errorf("%d valid, %d found the challenge spent, %d other; want 1, 31, 0", valid, ended, other)
		}
	})
}

func TestService_SendLimits(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "spam"}
	f.enroll(t, ref, "Phone")
	f.withEmail(t, ref, "spam@example.com") // send 1
	for i := 2; i <= 5; i++ {
		if _, err := f.svc.StartChallenge(ctx, ref, twofa.FactorEmail, ""); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if _, err := f.svc.StartChallenge(ctx, ref, twofa.FactorEmail, ""); !errors.Is(err, twofa.ErrRateLimited) {
		t.Errorf("a 6th send in 15 minutes: %v; want ErrRateLimited", err)
	}
	// The address's limit follows it to another user.
	other := twofa.UserRef{Tenant: "acme", User: "other"}
	f.enroll(t, other, "Phone")
	if _, err := f.svc.BeginEmailEnrollment(ctx, other, "spam@example.com", ""); !errors.Is(err, twofa.ErrRateLimited) {
		t.Errorf("the same address for another user: %v; want ErrRateLimited", err)
	}
	f.clock.Add(15 * time.Minute)
	if _, err := f.svc.StartChallenge(ctx, ref, twofa.FactorEmail, ""); err != nil {
		t.Errorf("a send 15 minutes later: %v", err)
	}
}

func TestService_Notices(t *testing.T) {
	// Every confirmed address is told of each factor change, in the
	// transaction of the change; a user without email gets nothing.
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "nina"}
	_, k, codes := f.enroll(t, ref, "Phone")
	e1 := f.withEmail(t, ref, "nina@example.com")
	f.withEmail(t, ref, "nina@work.example")
	phone := ""
	u, _ := f.svc.UserStatus(ctx, ref)
	for _, d := range u.ActiveDevices() {
		if d.Kind == twofa.KindTOTP {
			phone = d.ID
		}
	}
	steps := []struct {
		name string
		do   func() error
		want twofa.EventType
	}{
		{"Rename", func() error { return f.svc.RenameDevice(ctx, ref, phone, "Old phone") }, twofa.EventDeviceRenamed},
		{"Regenerate", func() error {
			var err error
			codes, err = f.svc.RegenerateBackupCodes(ctx, ref)
			return err
		}, twofa.EventBackupCodesIssued},
		{"AddTOTP", func() error { f.enroll(t, ref, "Tablet"); return nil }, twofa.EventEnrollConfirmed},
		{"Lock", func() error {
			for range 5 {
				f.svc.Verify(ctx, ref, wrongCode(k, f.clock.Now()))
			}
			return nil
		}, twofa.EventLocked},
		{"Unlock", func() error { return f.svc.Unlock(ctx, ref) }, twofa.EventUnlocked},
		{"BackupCodesLow", func() error {
			for _, c := range codes[:8] { // 2 left after the 8th
				if res, err := f.svc.Verify(ctx, ref, c); err != nil || !res.Valid {
					return fmt.Errorf("backup code: %+v, %v", res, err)
				}
			}
			return nil
		}, twofa.EventBackupCodeUsed},
		{"RevokeEmail", func() error { return f.svc.RevokeDevice(ctx, ref, e1) }, twofa.EventDeviceRevoked},
		{"Disable", func() error { return f.svc.Disable(ctx, ref) }, twofa.EventDisabled},
	}
	for _, s := range steps {
		before := f.notices(t, ref)
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		after := f.notices(t, ref)
		for _, addr := range []string{"nina@example.com", "nina@work.example"} {
			if s.name == "Disable" && addr == "nina@example.com" {
				continue // removed just before
			}
			added := after[addr][len(before[addr]):]
			if !slices.Contains(added, s.want) {
				t.Errorf("%s: %s was told %v, want %s", s.name, addr, added, s.want)
			}
		}
	}
	// The backup-code notices came only with the last uses: 2 codes left.
	n := 0
	for _, e := range f.notices(t, ref)["nina@work.example"] {
		if e == twofa.EventBackupCodeUsed {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d backup-code notices, want 1 (with 2 codes left)", n)
	}
	// No email, no notices.
	plain := twofa.UserRef{Tenant: "acme", User: "plain"}
	f.enroll(t, plain, "Phone")
	f.svc.RegenerateBackupCodes(ctx, plain)
	if got := f.notices(t, plain); len(got) != 0 {
		t.Errorf("a user without email got notices %v", got)
	}
}

func TestService_EmailUnavailable(t *testing.T) {
	// A server that delivers no email says so, rather than queueing codes
	// that nobody sends.
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "nomail"}
	f.enroll(t, ref, "Phone")
	f.withEmail(t, ref, "nomail@example.com")
	svc, err := twofa.NewService(ctx, store, f.keys, twofa.Options{Now: f.clock.Now, Channels: []twofa.Channel{twofa.ChannelWebhook}})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Delivers(twofa.ChannelEmail) || !svc.Delivers(twofa.ChannelWebhook) || !f.svc.Delivers(twofa.ChannelEmail) {
		t.Errorf("Delivers: email %t, webhook %t, email without Channels %t; want false, true, true",
			svc.Delivers(twofa.ChannelEmail), svc.Delivers(twofa.ChannelWebhook), f.svc.Delivers(twofa.ChannelEmail))
	}
	before := len(f.outbox(t, "acme"))
	if _, err := svc.BeginEmailEnrollment(ctx, ref, "other@example.com", ""); !errors.Is(err, twofa.ErrUnavailable) {
		t.Errorf("BeginEmailEnrollment: %v; want ErrUnavailable", err)
	}
	if _, err := svc.StartChallenge(ctx, ref, twofa.FactorEmail, ""); !errors.Is(err, twofa.ErrUnavailable) {
		t.Errorf("StartChallenge: %v; want ErrUnavailable", err)
	}
	if n := len(f.outbox(t, "acme")); n != before {
		t.Errorf("%d messages queued by refused calls", n-before)
	}
}

// A resend is refused once the challenge's device is no longer what the
// challenge was for: no code of an enrollment whose time ran out can
// confirm it, so none is sent.
func TestService_ResendAfterEnrollmentExpired(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		ref := twofa.UserRef{Tenant: "acme", User: "lena"}
		const address = "lena@example.com"
		f.enroll(t, ref, "Phone")
		en, err := f.svc.BeginEmailEnrollment(ctx, ref, address, "")
		if err != nil {
			t.Fatal(err)
		}
		// A resend just before the enrollment expires keeps the
		// challenge pending for 10 more minutes.
		f.clock.Add(f.svc.Policy().EnrollTTL - 30*time.Second)
		if _, err := f.svc.ResendChallenge(ctx, ref, en.Challenge.ID); err != nil {
			t.Fatalf("a resend before the enrollment expires: %v", err)
		}
		f.clock.Add(time.Minute)
		code := f.lastCode(t, ref, address)
		if _, err := f.svc.ConfirmEmail(ctx, ref, en.Device.ID, en.Challenge.ID, code); !errors.Is(err, twofa.ErrChallengeEnded) {
			t.Fatalf("confirming an expired enrollment: %v; want ErrChallengeEnded", err)
		}
		_, err = f.svc.ResendChallenge(ctx, ref, en.Challenge.ID)
		if !errors.Is(err, twofa.ErrChallengeEnded) {
			t.Errorf("a resend for an expired enrollment: %v; want ErrChallengeEnded", err)
		}
		if n := twofatest.Codes(t, f.store, f.keys, ref, address); n != 2 {
			t.Errorf("%d codes sent, want 2: none for an enrollment that cannot be confirmed", n)
		}
	})
}

func TestService_ResendWhileLocked(t *testing.T) {
	// A locked user gets no more codes: they could not type them.
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "locked"}
	_, k, _ := f.enroll(t, ref, "Phone")
	f.withEmail(t, ref, "locked@example.com")
	c, err := f.svc.StartChallenge(ctx, ref, twofa.FactorEmail, "")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		f.svc.Verify(ctx, ref, wrongCode(k, f.clock.Now()))
	}
	f.clock.Add(twofa.ResendGap + time.Second) // the first lock (30 s) is over
	if res, err := f.svc.Verify(ctx, ref, wrongCode(k, f.clock.Now())); err != nil || res.LockedUntil.IsZero() {
		t.Fatalf("a 6th failure: %+v, %v; want a lock of a minute", res, err)
	}
	if _, err := f.svc.ResendChallenge(ctx, ref, c.ID); !errors.Is(err, twofa.ErrLocked) {
		t.Errorf("a resend while locked: %v; want ErrLocked", err)
	}
}
