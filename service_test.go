package twofa_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/seal"
	"github.com/twofa/twofa/sqlite"
)

// clock is the injected clock of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// storeKinds are the stores every Service test runs on.
var storeKinds = []struct {
	name string
	open func(t testing.TB) (twofa.Store, string)
}{
	{"SQLite", openSQLite},
	{"PostgreSQL", openPostgres},
}

// openSQLite opens a store on a new database file and returns its path.
func openSQLite(t testing.TB) (twofa.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "twofa.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// openPostgres opens a store in a new schema of the test database.
func openPostgres(t testing.TB) (twofa.Store, string) {
	s, dsn := twofatest.OpenPostgres(t)
	return s, dsn
}

// fixture is a Service on a real store with an injected clock, whose log
// lines are captured.
type fixture struct {
	svc   *twofa.Service
	store twofa.Store
	clock *clock
	keys  *seal.Keyring
	logs  *bytes.Buffer
}

var testStart = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func newKeyring(t *testing.T, ids ...uint32) *seal.Keyring {
	t.Helper()
	keys := map[uint32][]byte{}
	for _, id := range ids {
		k := make([]byte, 32)
		rand.Read(k)
		keys[id] = k
	}
	kr, err := seal.NewKeyring(ids[0], keys)
	if err != nil {
		t.Fatal(err)
	}
	testKeysMu.Lock()
	testKeys[kr] = keys
	testKeysMu.Unlock()
	return kr
}

func newFixture(t *testing.T, store twofa.Store, p *twofa.Policy) *fixture {
	t.Helper()
	f := &fixture{store: store, clock: &clock{t: testStart}, keys: newKeyring(t, 1), logs: new(bytes.Buffer)}
	f.svc = f.service(t, f.keys, p)
	return f
}

func (f *fixture) service(t *testing.T, keys *seal.Keyring, p *twofa.Policy) *twofa.Service {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := twofa.NewService(context.Background(), f.store, keys, twofa.Options{Policy: p, Now: f.clock.Now, Logger: log})
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	return svc
}

// enroll begins and confirms a device and returns its key and backup codes.
func (f *fixture) enroll(t *testing.T, ref twofa.UserRef, name string) (*twofa.Enrollment, *otp.Key, []string) {
	t.Helper()
	return f.enrollCtx(context.Background(), t, ref, name)
}

func (f *fixture) enrollCtx(ctx context.Context, t *testing.T, ref twofa.UserRef, name string) (*twofa.Enrollment, *otp.Key, []string) {
	t.Helper()
	en, err := f.svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{Name: name})
	if err != nil {
		t.Fatalf("BeginEnrollment: %v", err)
	}
	k, err := otp.NewKey(en.Secret, en.Device.Params)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.ConfirmEnrollment(ctx, ref, en.Device.ID, k.TOTP(f.clock.Now()))
	if err != nil || !res.Valid {
		t.Fatalf("ConfirmEnrollment: %+v, %v", res, err)
	}
	return en, k, res.BackupCodes
}

func forEachStore(t *testing.T, fn func(t *testing.T, open func(t testing.TB) (twofa.Store, string))) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) { fn(t, sk.open) })
	}
}

// TestService_Lifecycle walks one user through everything twofa does, on
// each store, driven by the injected clock, and then checks that no log
// line holds a secret, a code or a backup code.
func TestService_Lifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := twofa.WithMeta(context.Background(), twofa.Meta{Actor: "test", IP: "203.0.113.7", UserAgent: "Firefox"})
		ref := twofa.UserRef{Tenant: "acme", User: "alice"}
		var toxic []string // everything that must never be logged

		// Enroll: a pending device, a secret, a URI and a QR code.
		en, err := f.svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{Name: "Phone", AccountName: "alice@example.com", Issuer: "ACME Co"})
		if err != nil {
			t.Fatalf("BeginEnrollment: %v", err)
		}
		toxic = append(toxic, otp.EncodeSecret(en.Secret), en.URI)
		if !strings.HasPrefix(en.URI, "otpauth://totp/ACME%20Co:alice@example.com?secret=") || en.Device.Status != twofa.StatusPending {
			t.Fatalf("enrollment: URI %s, status %s", "(redacted)", en.Device.Status)
		}
		if !en.ExpiresAt.Equal(testStart.Add(10 * time.Minute)) {
			t.Errorf("ExpiresAt = %v, want 10 minutes on", en.ExpiresAt)
		}
		k, _ := otp.NewKey(en.Secret, en.Device.Params)

		// A wrong confirmation code is refused; the right one activates
		// the device and issues the first backup codes.
		wrong := wrongCode(k, f.clock.Now())
		res, err := f.svc.ConfirmEnrollment(ctx, ref, en.Device.ID, wrong)
		if err != nil || res.Valid || res.Reason != twofa.ReasonInvalidCode {
			t.Fatalf("confirm with a wrong code: %+v, %v", res, err)
		}
		code := k.TOTP(f.clock.Now())
		toxic = append(toxic, code)
		res, err = f.svc.ConfirmEnrollment(ctx, ref, en.Device.ID, code)
		if err != nil || !res.Valid || len(res.BackupCodes) != 10 {
			t.Fatalf("confirm: %+v, %v", res, err)
		}
		backup := res.BackupCodes
		toxic = append(toxic, backup...)

		// The confirmation code's step is burnt.
		vr, err := f.svc.Verify(ctx, ref, code)
		if err != nil || vr.Valid || vr.Reason != twofa.ReasonReplayed {
			t.Fatalf("verify with the confirmation code: %+v, %v; want replayed", vr, err)
		}

		// Next step: valid, once.
		f.clock.Add(30 * time.Second)
		code = k.TOTP(f.clock.Now())
		toxic = append(toxic, code)
		vr, err = f.svc.Verify(ctx, ref, code)
		if err != nil || !vr.Valid || vr.Factor != twofa.FactorTOTP || vr.Device != en.Device.ID || vr.BackupCodesRemaining != 10 {
			t.Fatalf("verify: %+v, %v", vr, err)
		}
		if vr, _ = f.svc.Verify(ctx, ref, code); vr.Valid || vr.Reason != twofa.ReasonReplayed {
			t.Fatalf("replay: %+v; want replayed", vr)
		}

		// Drift: a phone two steps ahead is followed, one step at a time
		// as the window allows; the drift stays within the bound.
		f.clock.Add(5 * time.Minute)
		ahead := k.TOTP(f.clock.Now().Add(30 * time.Second))
		if vr, _ = f.svc.Verify(ctx, ref, ahead); !vr.Valid {
			t.Fatalf("code one step ahead: %+v", vr)
		}
		f.clock.Add(time.Minute)
		ahead = k.TOTP(f.clock.Now().Add(60 * time.Second)) // two ahead: inside the shifted window
		if vr, _ = f.svc.Verify(ctx, ref, ahead); !vr.Valid {
			t.Fatalf("code two steps ahead after drift: %+v", vr)
		}
		if u, _ := f.svc.UserStatus(ctx, ref); u.Devices[0].Drift != 2 {
			t.Errorf("drift = %d, want 2", u.Devices[0].Drift)
		}

		// Lockout: 5 failures lock for 30 s, the 6th for 60 s.
		f.clock.Add(time.Minute)
		for i := 1; i <= 5; i++ {
			vr, err = f.svc.Verify(ctx, ref, wrongCode(k, f.clock.Now()))
			if err != nil || vr.Valid {
				t.Fatalf("failure %d: %+v, %v", i, vr, err)
			}
		}
		if !vr.LockedUntil.Equal(f.clock.Now().Add(30 * time.Second)) {
			t.Errorf("5th failure: LockedUntil %v, want +30s", vr.LockedUntil)
		}
		_, err = f.svc.Verify(ctx, ref, k.TOTP(f.clock.Now()))
		var te *twofa.Error
		if !errors.Is(err, twofa.ErrLocked) || !errors.As(err, &te) || !te.Until.Equal(f.clock.Now().Add(30*time.Second)) {
			t.Fatalf("verify while locked: %v; want ErrLocked until +30s", err)
		}
		f.clock.Add(31 * time.Second)
		vr, _ = f.svc.Verify(ctx, ref, wrongCode(k, f.clock.Now()))
		if !vr.LockedUntil.Equal(f.clock.Now().Add(60 * time.Second)) {
			t.Errorf("6th failure: LockedUntil %v, want +60s", vr.LockedUntil)
		}
		f.clock.Add(61 * time.Second)

		// A backup code works once, resets the failures, and counts down.
		vr, err = f.svc.Verify(ctx, ref, strings.ToUpper(backup[0]))
		if err != nil || !vr.Valid || vr.Factor != twofa.FactorBackupCode || vr.BackupCodesRemaining != 9 {
			t.Fatalf("backup code: %+v, %v", vr, err)
		}
		if vr, _ = f.svc.Verify(ctx, ref, backup[0]); vr.Valid {
			t.Fatal("a used backup code worked again")
		}
		if u, _ := f.svc.UserStatus(ctx, ref); u.Failures != 1 || u.BackupCodes != 9 {
			t.Errorf("after a backup code and one failure: failures %d, codes %d; want 1, 9", u.Failures, u.BackupCodes)
		}

		// Regenerating kills the old set.
		fresh, err := f.svc.RegenerateBackupCodes(ctx, ref)
		if err != nil || len(fresh) != 10 {
			t.Fatalf("RegenerateBackupCodes: %d codes, %v", len(fresh), err)
		}
		toxic = append(toxic, fresh...)
		if vr, _ = f.svc.Verify(ctx, ref, backup[1]); vr.Valid {
			t.Fatal("an old backup code worked after regeneration")
		}
		if vr, _ = f.svc.Verify(ctx, ref, fresh[3]); !vr.Valid || vr.BackupCodesRemaining != 9 {
			t.Fatalf("a new backup code: %+v", vr)
		}

		// A second device; then rotate keys; both still verify.
		en2, k2, codes2 := f.enrollCtx(ctx, t, ref, "Tablet")
		toxic = append(toxic, otp.EncodeSecret(en2.Secret))
		if codes2 != nil {
			t.Errorf("second device issued backup codes again")
		}
		f.keys = rotatedKeyring(t, f.keys)
		f.svc = f.service(t, f.keys, nil)
		var last twofa.RotationProgress
		p, err := f.svc.RotateKeys(ctx, func(p twofa.RotationProgress) { last = p })
		// Two device secrets and six settings were under key 1.
		if err != nil || p.Done != 8 || p.Total != 8 || last != p {
			t.Fatalf("RotateKeys: %+v (last progress %+v), %v; want 8 of 8", p, last, err)
		}
		if _, total, stale, _ := f.svc.KeyStatus(ctx); total != 8 || stale != 0 {
			t.Errorf("after rotation: %d values, %d stale", total, stale)
		}
		retired := newOnlyKeyring(t, f.keys, 2)
		f.svc = f.service(t, retired, nil)
		f.clock.Add(30 * time.Second)
		// The first phone runs two steps ahead, and its window with it.
		for _, c := range []string{k.TOTP(f.clock.Now().Add(60 * time.Second)), k2.TOTP(f.clock.Now())} {
			if vr, err := f.svc.Verify(ctx, ref, c); err != nil || !vr.Valid {
				t.Fatalf("verify after rotation with the old key retired: %+v, %v", vr, err)
			}
		}

		// Revoke one device; disable 2FA.
		if err := f.svc.RevokeDevice(ctx, ref, en.Device.ID); err != nil {
			t.Fatalf("RevokeDevice: %v", err)
		}
		f.clock.Add(30 * time.Second)
		if vr, _ := f.svc.Verify(ctx, ref, k.TOTP(f.clock.Now())); vr.Valid {
			t.Fatal("a revoked device's code worked")
		}
		if err := f.svc.Disable(ctx, ref); err != nil {
			t.Fatalf("Disable: %v", err)
		}
		if _, err := f.svc.Verify(ctx, ref, k2.TOTP(f.clock.Now())); !errors.Is(err, twofa.ErrNotEnrolled) {
			t.Fatalf("verify after Disable: %v; want ErrNotEnrolled", err)
		}

		// The audit log: every event, chained, with the request's metadata,
		// and no secret in it.
		state, err := f.svc.VerifyAudit(ctx)
		if err != nil || !state.OK || state.Events < 30 {
			t.Fatalf("VerifyAudit: %+v, %v", state, err)
		}
		events, _ := f.svc.AuditEvents(ctx, twofa.AuditFilter{Tenant: "acme", User: "alice", Limit: 1000})
		seen := map[twofa.EventType]bool{}
		for _, e := range events {
			seen[e.Type] = true
			if e.IP != "203.0.113.7" && e.Actor != "twofa" && e.Type != twofa.EventKeysRotated {
				t.Errorf("event %s has IP %q", e.Type, e.IP)
			}
			toxicCheck(t, "audit event "+string(e.Type), fmt.Sprintf("%+v", *e), toxic)
		}
		for _, want := range []twofa.EventType{twofa.EventEnrollStarted, twofa.EventEnrollFailed, twofa.EventEnrollConfirmed,
			twofa.EventBackupCodesIssued, twofa.EventVerifySucceeded, twofa.EventReplayRejected, twofa.EventVerifyFailed,
			twofa.EventLocked, twofa.EventBackupCodeUsed, twofa.EventDeviceRevoked, twofa.EventDisabled} {
			if !seen[want] {
				t.Errorf("no %s event in the audit log", want)
			}
		}
		toxicCheck(t, "logs", f.logs.String(), toxic)
	})
}

func toxicCheck(t *testing.T, where, text string, toxic []string) {
	t.Helper()
	for _, s := range toxic {
		if s != "" && strings.Contains(strings.ToLower(text), strings.ToLower(s)) {
			t.Errorf("%s contain a secret or code", where)
			return
		}
	}
}

// wrongCode returns a well-formed code that is not valid anywhere near now.
func wrongCode(k *otp.Key, now time.Time) string {
	for n := 0; ; n++ {
		c := fmt.Sprintf("%06d", n*7919%1000000)
		m, _ := k.Verify(c, now, otp.Window{Behind: 30, Ahead: 30})
		if !m.Valid {
			return c
		}
	}
}

// rotatedKeyring returns a keyring with a new active key 2 and old key 1.
func rotatedKeyring(t *testing.T, old *seal.Keyring) *seal.Keyring {
	t.Helper()
	return keyringFor(t, old, 2, true)
}

// newOnlyKeyring returns the keyring with only key id left.
func newOnlyKeyring(t *testing.T, kr *seal.Keyring, id uint32) *seal.Keyring {
	t.Helper()
	return keyringFor(t, kr, id, false)
}

// Keys of the test keyrings by ID, so rings can be rebuilt.
var (
	testKeysMu sync.Mutex
	testKeys   = map[*seal.Keyring]map[uint32][]byte{}
)

func keyringFor(t *testing.T, old *seal.Keyring, id uint32, keepOld bool) *seal.Keyring {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	keys := map[uint32][]byte{}
	if keepOld {
		for k, v := range testKeys[old] {
			keys[k] = v
		}
	}
	if v, ok := testKeys[old][id]; ok {
		keys[id] = v
	} else {
		keys[id] = make([]byte, 32)
		rand.Read(keys[id])
	}
	kr, err := seal.NewKeyring(id, keys)
	if err != nil {
		t.Fatal(err)
	}
	testKeys[kr] = keys
	return kr
}

var _ = os.ReadFile
