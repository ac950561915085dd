package twofa_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
)

// TestPolicy_LockUntil pins the lockout schedule to literal durations: the
// lock doubles from LockBase and stops at LockMax, even where a doubling
// would pass it, and however many failures come before the hard lock.
func TestPolicy_LockUntil(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	def := twofa.DefaultPolicy() // 5 failures, 30 s doubling to 15 min, hard at 100
	odd := twofa.DefaultPolicy()
	odd.LockAfter, odd.LockBase, odd.LockMax, odd.HardLockAfter = 3, 7*time.Second, 100*time.Second, 100
	long := twofa.DefaultPolicy()
	long.LockBase, long.LockMax = time.Hour, 24*time.Hour
	tests := []struct {
		name     string
		p        twofa.Policy
		failures int
		want     time.Duration // 0: no lock; -1: Forever
	}{
		{"Default/0", def, 0, 0},
		{"Default/4", def, 4, 0},
		{"Default/5", def, 5, 30 * time.Second},
		{"Default/6", def, 6, time.Minute},
		{"Default/7", def, 7, 2 * time.Minute},
		{"Default/8", def, 8, 4 * time.Minute},
		{"Default/9", def, 9, 8 * time.Minute},
		{"Default/10", def, 10, 15 * time.Minute}, // not 16
		{"Default/11", def, 11, 15 * time.Minute},
		{"Default/40", def, 40, 15 * time.Minute},
		{"Default/70", def, 70, 15 * time.Minute}, // 30 s × 2^65 would overflow
		{"Default/99", def, 99, 15 * time.Minute},
		{"Default/100", def, 100, -1},
		{"Default/1000", def, 1000, -1},
		{"Odd/2", odd, 2, 0},
		{"Odd/3", odd, 3, 7 * time.Second},
		{"Odd/6", odd, 6, 56 * time.Second},
		{"Odd/7", odd, 7, 100 * time.Second}, // not 112
		{"Odd/99", odd, 99, 100 * time.Second},
		{"Long/9", long, 9, 16 * time.Hour},
		{"Long/10", long, 10, 24 * time.Hour}, // not 32
		{"Long/99", long, 99, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := now.Add(tt.want)
			switch tt.want {
			case 0:
				want = time.Time{}
			case -1:
				want = twofa.Forever
			}
			if got := tt.p.LockUntil(tt.failures, now); !got.Equal(want) {
				t.Errorf("LockUntil(%d) = %v, want %v", tt.failures, got, want)
			}
		})
	}
}

// TestMaxDevicePeriod: the Service holds devices to two-minute periods,
// though the otp library computes codes for longer ones.
func TestMaxDevicePeriod(t *testing.T) {
	if twofa.MaxDevicePeriod != 120 {
		t.Errorf("MaxDevicePeriod = %d, want 120 (NIST SP 800-63B)", twofa.MaxDevicePeriod)
	}
	if _, err := (otp.Params{Period: twofa.MaxDevicePeriod + 1}).Normalize(); err != nil {
		t.Errorf("otp refuses a period of %d: %v; want the library's wider bound", twofa.MaxDevicePeriod+1, err)
	}
	for _, tt := range []struct {
		period int
		ok     bool
	}{{twofa.MaxDevicePeriod, true}, {twofa.MaxDevicePeriod + 1, false}, {otp.MaxPeriod, false}} {
		p := twofa.DefaultPolicy()
		p.TOTP.Period = tt.period
		if err := p.Validate(); (err == nil) != tt.ok {
			t.Errorf("Policy with period %d: Validate = %v, want ok %t", tt.period, err, tt.ok)
		}
	}

	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	ref := twofa.UserRef{Tenant: "acme", User: "pat"}
	if _, err := f.svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{Period: twofa.MaxDevicePeriod}); err != nil {
		t.Errorf("BeginEnrollment(period %d) = %v", twofa.MaxDevicePeriod, err)
	}
	secret := make([]byte, 20)
	for _, req := range []struct {
		name string
		do   func() error
	}{
		{"BeginEnrollment", func() error {
			_, err := f.svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{Period: twofa.MaxDevicePeriod + 1})
			return err
		}},
		{"ImportTOTP", func() error {
			_, err := f.svc.ImportTOTP(ctx, ref, twofa.ImportRequest{Secret: secret, Params: otp.Params{Period: twofa.MaxDevicePeriod + 1}})
			return err
		}},
	} {
		var te *twofa.Error
		if err := req.do(); !errors.As(err, &te) || te.Code != twofa.EINVALID {
			t.Errorf("%s(period %d) = %v, want invalid", req.name, twofa.MaxDevicePeriod+1, err)
		}
	}
}
