package twofa_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
)

// TestService_ImportTOTP_Duplicate: importing a secret the user already
// has is refused with ErrDuplicate and adds nothing, so an import run
// twice changes nothing and each code still passes once.
func TestService_ImportTOTP_Duplicate(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		alice := twofa.UserRef{Tenant: "acme", User: "alice"}
		bob := twofa.UserRef{Tenant: "acme", User: "bob"}
		secret := []byte("12345678901234567890")
		other := []byte("abcdefghijabcdefghij")

		first, err := f.svc.ImportTOTP(ctx, alice, twofa.ImportRequest{Name: "Old", Secret: secret})
		if err != nil {
			t.Fatalf("ImportTOTP = %v", err)
		}
		enrolled, _, _ := f.enroll(t, alice, "Phone")
		events := len(auditLog(t, f))

		tests := []struct {
			name    string
			ref     twofa.UserRef
			req     twofa.ImportRequest
			wantDup bool
		}{
			{"Again", alice, twofa.ImportRequest{Name: "Old", Secret: secret}, true},
			{"OtherName", alice, twofa.ImportRequest{Name: "Renamed", Secret: secret}, true},
			{"OtherParams", alice, twofa.ImportRequest{Secret: secret, Params: otp.Params{Algorithm: otp.SHA256, Digits: 8, Period: 60}}, true},
			{"EnrolledSecret", alice, twofa.ImportRequest{Secret: enrolled.Secret}, true},
			{"OtherUser", bob, twofa.ImportRequest{Secret: secret}, false},
			{"OtherSecret", alice, twofa.ImportRequest{Secret: other}, false},
			{"OtherSecretAgain", alice, twofa.ImportRequest{Secret: other}, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := mustStatus(t, f, tt.ref)
				d, err := f.svc.ImportTOTP(ctx, tt.ref, tt.req)
				if !tt.wantDup {
					if err != nil {
						t.Fatalf("ImportTOTP = %v, want a new device", err)
					}
					events = len(auditLog(t, f))
					return
				}
				var te *twofa.Error
				if !errors.Is(err, twofa.ErrDuplicate) || !errors.As(err, &te) || te.Code != twofa.ECONFLICT {
					t.Fatalf("ImportTOTP = %+v, %v; want ErrDuplicate (conflict)", d, err)
				}
				if strings.Contains(err.Error(), string(tt.req.Secret)) || strings.Contains(err.Error(), otp.EncodeSecret(tt.req.Secret)) {
					t.Errorf("the error %q holds the secret", err)
				}
				if after := mustStatus(t, f, tt.ref); len(after.Devices) != len(before.Devices) {
					t.Errorf("devices: %d before, %d after; want none added", len(before.Devices), len(after.Devices))
				}
				if n := len(auditLog(t, f)); n != events {
					t.Errorf("the refused import appended %d audit entries, want none", n-events)
				}
			})
		}
		if !strings.Contains(twofa.ErrorMessage(mustImportErr(t, f, alice, secret)), first.ID) {
			t.Errorf("the duplicate's message does not name device %s", first.ID)
		}

		// One code of the imported secret passes once, not once a device.
		k, err := otp.NewKey(secret, otp.Params{})
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Add(time.Minute)
		code := k.TOTP(f.clock.Now())
		if res, err := f.svc.Verify(ctx, alice, code); err != nil || !res.Valid {
			t.Fatalf("Verify(imported code) = %+v, %v; want valid", res, err)
		}
		if res, err := f.svc.Verify(ctx, alice, code); err != nil || res.Valid {
			t.Errorf("Verify(the same code again) = %+v, %v; want refused", res, err)
		}
	})
}

func mustStatus(t *testing.T, f *fixture, ref twofa.UserRef) *twofa.User {
	t.Helper()
	u, err := f.svc.UserStatus(context.Background(), ref)
	if err != nil {
		t.Fatalf("UserStatus(%s) = %v", ref, err)
	}
	return u
}

func mustImportErr(t *testing.T, f *fixture, ref twofa.UserRef, secret []byte) error {
	t.Helper()
	_, err := f.svc.ImportTOTP(context.Background(), ref, twofa.ImportRequest{Secret: secret})
	if err == nil {
		t.Fatal("ImportTOTP of a secret the user has succeeded")
	}
	return err
}

func auditLog(t *testing.T, f *fixture) []*twofa.AuditEvent {
	t.Helper()
	es, err := f.svc.AuditEvents(context.Background(), twofa.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("AuditEvents = %v", err)
	}
	return es
}
