package twofa_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
)

func TestService_Verify(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "bob"}
	_, k, _ := f.enroll(t, ref, "Phone")
	f.clock.Add(time.Minute)

	tests := []struct {
		name       string
		ref        twofa.UserRef
		code       string
		wantErr    error
		wantCode   string // error code when wantErr is nil but an error is expected
		wantReason string
	}{
		{"ErrNotEnrolled", twofa.UserRef{Tenant: "acme", User: "nobody"}, "123456", twofa.ErrNotEnrolled, "", ""},
		{"OtherTenant", twofa.UserRef{Tenant: "other", User: "bob"}, k.TOTP(f.clock.Now()), twofa.ErrNotEnrolled, "", ""},
		{"ErrMalformedCode/TooShort", ref, "12345", twofa.ErrMalformedCode, "", ""},
		{"ErrMalformedCode/TooLong", ref, "1234567", twofa.ErrMalformedCode, "", ""},
		{"ErrMalformedCode/ArabicIndic", ref, "١٢٣٤٥٦", twofa.ErrMalformedCode, "", ""},
		{"ErrMalformedCode/FullWidth", ref, "１２３４５６", twofa.ErrMalformedCode, "", ""},
		{"ErrMalformedCode/Letters", ref, "abcdef", twofa.ErrMalformedCode, "", ""},
		{"ErrMalformedCode/Empty", ref, "", twofa.ErrMalformedCode, "", ""},
		{"ErrMalformedCode/Huge", ref, strings.Repeat("1", 100000), twofa.ErrMalformedCode, "", ""},
		{"InvalidUserID/Empty", twofa.UserRef{Tenant: "acme"}, "123456", nil, twofa.EINVALID, ""},
		{"InvalidUserID/NUL", twofa.UserRef{Tenant: "acme", User: "a\x00b"}, "123456", nil, twofa.EINVALID, ""},
		{"InvalidUserID/TooLong", twofa.UserRef{Tenant: "acme", User: strings.Repeat("u", 129)}, "123456", nil, twofa.EINVALID, ""},
		{"InvalidUserID/DotDot", twofa.UserRef{Tenant: "acme", User: ".."}, "123456", nil, twofa.EINVALID, ""},
		{"InvalidCode", ref, wrongCode(k, f.clock.Now()), nil, "", twofa.ReasonInvalidCode},
		{"InvalidBackupCode", ref, "00000-00000-00000", nil, "", twofa.ReasonInvalidCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.svc.Verify(ctx, tt.ref, tt.code)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %+v, %v; want %v", res, err, tt.wantErr)
				}
			case tt.wantCode != "":
				if twofa.ErrorCode(err) != tt.wantCode {
					t.Fatalf("got %+v, %v; want code %s", res, err, tt.wantCode)
				}
			default:
				if err != nil || res.Valid || res.Reason != tt.wantReason {
					t.Fatalf("got %+v, %v; want reason %s", res, err, tt.wantReason)
				}
			}
			if err != nil && strings.Contains(err.Error(), tt.code) && len(tt.code) >= 6 {
				t.Errorf("error %q echoes the code", err)
			}
		})
	}
	// Malformed input is not a failure...
	if u, _ := f.svc.UserStatus(ctx, ref); u.Failures != 2 {
		t.Errorf("failures = %d, want 2 (malformed codes do not count)", u.Failures)
	}
	// ...but it is limited.
	var err error
	for i := 0; i < 30 && !errors.Is(err, twofa.ErrRateLimited); i++ {
		_, err = f.svc.Verify(ctx, ref, "12")
	}
	if !errors.Is(err, twofa.ErrRateLimited) {
		t.Errorf("30 malformed codes in a minute: %v; want ErrRateLimited", err)
	}
}

// One valid code raced by 32 goroutines is valid exactly once.
func TestService_VerifyConcurrent(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ref := twofa.UserRef{Tenant: "acme", User: "carol"}
		_, k, backup := f.enroll(t, ref, "Phone")
		for round, code := range []string{"", backup[0]} {
			f.clock.Add(30 * time.Second)
			if round == 0 {
				code = k.TOTP(f.clock.Now())
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			valid, replayed, other := 0, 0, 0
			for i := 0; i < 32; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := f.svc.Verify(context.Background(), ref, code)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil && res.Valid:
						valid++
					case err == nil && !res.Valid:
						replayed++
					case errors.Is(err, twofa.ErrLocked):
						other++
					default:
						t.Errorf("unexpected: %v", err)
					}
				}()
			}
			wg.Wait()
			if valid != 1 {
				t.Errorf("round %d: %d valid (%d refused, %d locked out); want exactly 1", round, valid, replayed, other)
			}
			f.svc.Unlock(context.Background(), ref)
		}
	})
}

func TestService_Lockout(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "dave"}
	_, k, _ := f.enroll(t, ref, "Phone")
	// The default policy's schedule, written out: no lock for 4 failures,
	// 30 s at the 5th, doubling to a cap of 15 minutes, and a hard lock at
	// the 100th.
	lockFor := func(failures int) time.Duration {
		switch {
		case failures < 5:
			return 0
		case failures < 10:
			return []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute}[failures-5]
		}
		return 15 * time.Minute
	}
	const hardLockAfter = 100
	// Let every lock expire, so each failure is counted, up to the hard lock.
	for i := 1; i <= hardLockAfter; i++ {
		now := f.clock.Now()
		res, err := f.svc.Verify(ctx, ref, wrongCode(k, now))
		if err != nil {
			t.Fatalf("failure %d: %v", i, err)
		}
		want := now.Add(lockFor(i))
		switch {
		case i == hardLockAfter:
			want = twofa.Forever
		case lockFor(i) == 0:
			want = time.Time{}
		}
		if !res.LockedUntil.Equal(want) {
			t.Fatalf("failure %d: locked until %v, want %v", i, res.LockedUntil, want)
		}
		if i < hardLockAfter {
			f.clock.Add(16 * time.Minute)
		}
	}
	f.clock.Add(24 * time.Hour)
	_, err := f.svc.Verify(ctx, ref, k.TOTP(f.clock.Now()))
	var te *twofa.Error
	if !errors.As(err, &te) || !errors.Is(err, twofa.ErrLocked) || !te.Until.Equal(twofa.Forever) {
		t.Fatalf("after %d failures and a day: %v; want locked until an administrator unlocks", hardLockAfter, err)
	}
	// Resync never unlocks.
	if _, err := f.svc.Resync(ctx, ref, mustDevice(t, f, ref), k.TOTP(f.clock.Now()), k.TOTP(f.clock.Now().Add(30*time.Second))); !errors.Is(err, twofa.ErrLocked) {
		t.Errorf("resync while locked: %v; want ErrLocked", err)
	}
	if err := f.svc.Unlock(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if res, err := f.svc.Verify(ctx, ref, k.TOTP(f.clock.Now())); err != nil || !res.Valid {
		t.Fatalf("after Unlock: %+v, %v", res, err)
	}
}

func mustDevice(t *testing.T, f *fixture, ref twofa.UserRef) string {
	t.Helper()
	u, err := f.svc.UserStatus(context.Background(), ref)
	if err != nil || len(u.Devices) == 0 {
		t.Fatalf("UserStatus: %+v, %v", u, err)
	}
	return u.Devices[0].ID
}

func TestService_Resync(t *testing.T) {
	store, _ := openSQLite(t)
	p := twofa.DefaultPolicy()
	p.ResyncPerHour = 8
	f := newFixture(t, store, &p)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "erin"}
	_, k, _ := f.enroll(t, ref, "Token")
	dev := mustDevice(t, f, ref)
	at := func(steps int) string { return k.TOTP(f.clock.Now().Add(time.Duration(steps) * 30 * time.Second)) }

	f.clock.Add(time.Minute)
	// A device three steps ahead is outside the window.
	if res, _ := f.svc.Verify(ctx, ref, at(3)); res.Valid {
		t.Fatal("a code 3 steps ahead verified before resync")
	}
	tests := []struct {
		name      string
		code1     string
		code2     string
		wantValid bool
		wantDrift int
	}{
		{"NotConsecutive", at(3), at(5), false, 0},
		{"Reversed", at(4), at(3), false, 0},
		{"FirstWrong", wrongCode(k, f.clock.Now()), at(4), false, 0},
		{"SecondWrong", at(3), wrongCode(k, f.clock.Now()), false, 0},
		{"TooFar", at(8), at(9), false, 0},
		{"Valid", at(2), at(3), true, 2},
		{"Replayed", at(2), at(3), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Wrong pairs are failures: unlock, so each case is judged.
			if err := f.svc.Unlock(ctx, ref); err != nil {
				t.Fatal(err)
			}
			res, err := f.svc.Resync(ctx, ref, dev, tt.code1, tt.code2)
			want := &twofa.ResyncResult{Valid: tt.wantValid, Drift: tt.wantDrift}
			if err != nil || *res != *want {
				t.Fatalf("got %+v, %v; want %+v", res, err, want)
			}
		})
	}
	// The resync burnt steps +2 and +3; a step later, the phone's next
	// code (3 ahead) verifies in the window moved by the drift of 2.
	if res, err := f.svc.Verify(ctx, ref, at(3)); err != nil || res.Valid {
		t.Errorf("the resync's second code verified again: %+v, %v", res, err)
	}
	if res, err := f.svc.Verify(ctx, ref, at(2)); err != nil || res.Valid {
		t.Errorf("the resync's first code verified: %+v, %v", res, err)
	}
	f.clock.Add(30 * time.Second)
	if res, err := f.svc.Verify(ctx, ref, at(3)); err != nil || !res.Valid {
		t.Errorf("code 3 steps ahead after resync: %+v, %v", res, err)
	}

	// Malformed codes and a missing one are refused, and counted as
	// neither a failure nor a resync... (a new hour: the resyncs above
	// used this one's eight).
	f.clock.Add(time.Hour)
	if err := f.svc.Unlock(ctx, ref); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{at(0), ""}, {"", at(0)}, {"12345", at(1)}, {at(0), "١٢٣٤٥٦"}} {
		if _, err := f.svc.Resync(ctx, ref, dev, c[0], c[1]); !errors.Is(err, twofa.ErrMalformedCode) {
			t.Errorf("Resync(%q, %q): %v; want ErrMalformedCode", c[0], c[1], err)
		}
	}
	// ...and an unknown or pending device is not found.
	if _, err := f.svc.Resync(ctx, ref, "dev_nope", at(0), at(1)); !errors.Is(err, twofa.ErrNotFound) {
		t.Errorf("Resync(unknown device): %v; want ErrNotFound", err)
	}
	if _, err := f.svc.Resync(ctx, twofa.UserRef{Tenant: "acme", User: "nobody"}, dev, at(0), at(1)); !errors.Is(err, twofa.ErrNotFound) {
		t.Errorf("Resync(unknown user): %v; want ErrNotFound", err)
	}
	// Rate limited: 8 an hour, valid or not.
	if res, err := f.svc.Resync(ctx, ref, dev, at(2), at(3)); err != nil || !res.Valid {
		t.Fatalf("resync 1 of the hour: %+v, %v", res, err)
	}
	for i := 0; i < 7; i++ {
		if i == 4 {
			f.svc.Unlock(ctx, ref)
		}
		if _, err := f.svc.Resync(ctx, ref, dev, "000000", "000001"); err != nil {
			t.Fatalf("resync %d of the hour: %v", i+2, err)
		}
	}
	if _, err := f.svc.Resync(ctx, ref, dev, at(4), at(5)); !errors.Is(err, twofa.ErrRateLimited) {
		t.Errorf("9th resync in an hour: %v; want ErrRateLimited", err)
	}
}

func TestService_BeginEnrollment(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "frank"}
	tests := []struct {
		name     string
		req      twofa.EnrollRequest
		wantCode string
		wantWarn int
	}{
		{"Defaults", twofa.EnrollRequest{}, "", 0},
		{"SHA256EightDigits", twofa.EnrollRequest{Algorithm: "sha256", Digits: 8}, "", 2},
		{"BadAlgorithm", twofa.EnrollRequest{Algorithm: "MD5"}, twofa.EINVALID, 0},
		{"BadDigits", twofa.EnrollRequest{Digits: 9}, twofa.EINVALID, 0},
		{"PeriodTooLong", twofa.EnrollRequest{Period: 300}, twofa.EINVALID, 0},
		{"ColonInIssuer", twofa.EnrollRequest{Issuer: "a:b"}, twofa.EINVALID, 0},
		{"LongName", twofa.EnrollRequest{Name: strings.Repeat("n", 65)}, twofa.EINVALID, 0},
		{"ControlInName", twofa.EnrollRequest{Name: "a\nb"}, twofa.EINVALID, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			en, err := f.svc.BeginEnrollment(ctx, ref, tt.req)
			if got := twofa.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("error %v (code %q), want code %q", err, got, tt.wantCode)
			}
			if err == nil && len(en.Warnings) != tt.wantWarn {
				t.Errorf("warnings %q, want %d", en.Warnings, tt.wantWarn)
			}
		})
	}
	// Two pending devices now; the cap is 5.
	for i := 0; i < 3; i++ {
		if _, err := f.svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{}); err != nil {
			t.Fatalf("enrollment %d: %v", i+3, err)
		}
	}
	if _, err := f.svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{}); !errors.Is(err, twofa.ErrDeviceLimit) {
		t.Fatalf("6th device: %v; want ErrDeviceLimit", err)
	}
	// Pending enrollments expire after 10 minutes and free their places.
	f.clock.Add(10*time.Minute + time.Second)
	en, err := f.svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{})
	if err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	u, _ := f.svc.UserStatus(ctx, ref)
	if len(u.Devices) != 1 {
		t.Errorf("%d devices after expiry, want 1", len(u.Devices))
	}
	// An expired enrollment cannot be confirmed.
	k, _ := otp.NewKey(en.Secret, en.Device.Params)
	f.clock.Add(11 * time.Minute)
	if _, err := f.svc.ConfirmEnrollment(ctx, ref, en.Device.ID, k.TOTP(f.clock.Now())); !errors.Is(err, twofa.ErrExpired) {
		t.Errorf("confirm after expiry: %v; want ErrExpired", err)
	}
}

func TestService_ConfirmEnrollment(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "gina"}
	en, err := f.svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := otp.NewKey(en.Secret, en.Device.Params)
	// A phone 5 minutes behind gets a clock hint.
	res, err := f.svc.ConfirmEnrollment(ctx, ref, en.Device.ID, k.TOTP(f.clock.Now().Add(-5*time.Minute)))
	if err != nil || res.Valid || res.ClockSkew != -5*time.Minute {
		t.Fatalf("code from a clock 5 minutes behind: %+v, %v; want a -5m hint", res, err)
	}
	if _, err := f.svc.ConfirmEnrollment(ctx, ref, en.Device.ID, "12345"); !errors.Is(err, twofa.ErrMalformedCode) {
		t.Errorf("malformed: %v", err)
	}
	if _, err := f.svc.ConfirmEnrollment(ctx, ref, "dev_nope", k.TOTP(f.clock.Now())); !errors.Is(err, twofa.ErrNotFound) {
		t.Errorf("unknown device: %v", err)
	}
	// At most 10 codes per enrollment.
	for i := 0; i < 9; i++ {
		f.svc.ConfirmEnrollment(ctx, ref, en.Device.ID, wrongCode(k, f.clock.Now()))
	}
	if _, err := f.svc.ConfirmEnrollment(ctx, ref, en.Device.ID, k.TOTP(f.clock.Now())); !errors.Is(err, twofa.ErrRateLimited) {
		t.Errorf("11th code: %v; want ErrRateLimited", err)
	}
	if u, _ := f.svc.UserStatus(ctx, ref); u.Failures != 0 {
		t.Errorf("confirmation failures counted towards lockout: %d", u.Failures)
	}
}

// The database file holds neither a secret's bytes nor its base32.
func TestService_SecretsSealedAtRest(t *testing.T) {
	store, path := openSQLite(t)
	f := newFixture(t, store, nil)
	ref := twofa.UserRef{Tenant: "acme", User: "hana"}
	en, _, backup := f.enroll(t, ref, "Phone")
	if c, ok := store.(interface{ Close() error }); ok {
		c.Close() // checkpoint the WAL into the file
	}
	var raw []byte
	for _, p := range []string{path, path + "-wal"} {
		b, _ := os.ReadFile(p)
		raw = append(raw, b...)
	}
	if len(raw) == 0 {
		t.Fatal("database file is empty")
	}
	for name, needle := range map[string][]byte{
		"secret":         en.Secret,
		"base32":         []byte(otp.EncodeSecret(en.Secret)),
		"lower base32":   []byte(strings.ToLower(otp.EncodeSecret(en.Secret))),
		"a backup code":  []byte(backup[0]),
		"normalized one": []byte(strings.ReplaceAll(backup[0], "-", "")),
	} {
		if bytes.Contains(raw, needle) {
			t.Errorf("the database file holds the %s", name)
		}
	}
}

func TestService_VerifyLimits(t *testing.T) {
	store, _ := openSQLite(t)
	p := twofa.DefaultPolicy()
	p.VerifyPerIPPerMinute, p.TenantVerifyPerMinute = 3, 6 // refused requests count too
	p.LockAfter, p.HardLockAfter = 100, 100
	f := newFixture(t, store, &p)
	ref := twofa.UserRef{Tenant: "acme", User: "ivan"}
	_, k, _ := f.enroll(t, ref, "Phone")
	at := func(ip string) context.Context { return twofa.WithMeta(context.Background(), twofa.Meta{IP: ip}) }
	tests := []struct {
		name    string
		ctx     context.Context
		wantErr bool
	}{
		{"IP1/1", at("198.51.100.1"), false},
		{"IP1/2", at("198.51.100.1"), false},
		{"IP1/3", at("198.51.100.1"), false},
		{"IP1/4/ErrRateLimited", at("198.51.100.1"), true},
		{"IP2/1", at("198.51.100.2"), false},
		{"NoIP", context.Background(), false},
		{"IP3/Tenant/ErrRateLimited", at("198.51.100.3"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.Verify(tt.ctx, ref, wrongCode(k, f.clock.Now()))
			if got := errors.Is(err, twofa.ErrRateLimited); got != tt.wantErr {
				t.Fatalf("err = %v, want rate limited %v", err, tt.wantErr)
			}
		})
	}
	// A new minute, a new window.
	f.clock.Add(time.Minute)
	if _, err := f.svc.Verify(at("198.51.100.1"), ref, wrongCode(k, f.clock.Now())); err != nil {
		t.Errorf("next minute: %v", err)
	}
}
