// Package storetest is the conformance suite that every twofa.Store passes,
// in the manner of testing/fstest. A store's own tests call Run:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) (twofa.Store, func() twofa.Store) {
//			path := filepath.Join(t.TempDir(), "twofa.db")
//			return mustOpen(t, path), func() twofa.Store { return mustOpen(t, path) }
//		})
//	}
//
// The suite checks the documented semantics of every Store method, the audit
// events they append, and, above all, the atomic steps that security rests on
// under concurrency, within one handle and across two handles on the same
// database (as two processes would be). Run it with -race.
//
// Beyond twofa.Store, the suite requires what the twofa binary needs of a
// store: a readiness check, Ping(context.Context) error.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/seal"
)

// Opener opens a fresh, empty store for one test and registers its cleanup
// with t.Cleanup. The second result opens another, independent handle (its
// own connection pool) on the SAME database, for the cases that two
// processes sharing one database must get right. Run calls the Opener from
// parallel tests, so the databases of different tests must be independent.
type Opener func(t *testing.T) (s twofa.Store, another func() twofa.Store)

// Run runs the whole suite, one subtest per method, in parallel, and one
// below it per outcome, such as "AcceptStep/ErrReplayed". Subtests named
// Race... are the concurrency cases.
func Run(t *testing.T, open Opener) {
	for _, m := range []struct {
		name string
		run  func(*testing.T, Opener)
	}{
		{"User", testUser},
		{"CreateDevice", testCreateDevice},
		{"ActivateDevice", testActivateDevice},
		{"DeleteDevice", testDeleteDevice},
		{"DeleteFactors", testDeleteFactors},
		{"DeleteExpired", testDeleteExpired},
		{"TenantIsolation", testTenantIsolation},
		{"Attempt", testAttempt},
		{"StepRange", testStepRange},
		{"Unlock", testUnlock},
		{"SpendBackupCode", testSpendBackupCode},
		{"Challenges", testChallenges},
		{"ReplaceBackupCodes", testReplaceBackupCodes},
		{"Hit", testHit},
		{"AppendAudit", testAppendAudit},
		{"AuditEvents", testAuditEvents},
		{"AuditChains", testAuditChains},
		{"AuditSince", testAuditSince},
		{"CountAudit", testCountAudit},
		{"AuditCheckpoints", testAuditCheckpoints},
		{"Unprepared", testUnprepared},
		{"InitSetting", testInitSetting},
		{"SealedSecrets", testSealedSecrets},
		{"ReplaceSealed", testReplaceSealed},
		{"CountSealed", testCountSealed},
		{"CreateAPIKey", testCreateAPIKey},
		{"APIKeyByHash", testAPIKeyByHash},
		{"APIKeys", testAPIKeys},
		{"RevokeAPIKey", testRevokeAPIKey},
		{"UpgradeKeyHashes", testUpgradeKeyHashes},
		{"TokenHashes", testTokenHashes},
		{"CreateLink", testCreateLink},
		{"UseLink", testUseLink},
		{"DeleteStaleLinks", testDeleteStaleLinks},
		{"UpgradeLinkHashes", testUpgradeLinkHashes},
		{"Tenant", testTenant},
		{"SetPromptKey", testSetPromptKey},
		{"SetReturnURLs", testSetReturnURLs},
		{"RenameDevice", testRenameDevice},
		{"Users", testUsers},
		{"TenantSecrets", testTenantSecrets},
		{"SetWebhook", testSetWebhook},
		{"WebhookSecrets", testWebhookSecrets},
		{"WebhookMessages", testWebhookMessages},
		{"Ping", testPing},
		{"OutboxAppend", testOutboxAppend},
		{"ClaimMessages", testClaimMessages},
		{"FinishMessage", testFinishMessage},
		{"RetryMessage", testRetryMessage},
		{"Messages", testMessages},
		{"OutboxStats", testOutboxStats},
		{"DeleteMessages", testDeleteMessages},
		{"OutboxSealed", testOutboxSealed},
	} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel() // each test has a store of its own
			m.run(t, open)
		})
	}
}

// opened is a store under test and the way to a second handle on it.
type opened struct {
	twofa.Store
	another func() twofa.Store
}

func openStore(t *testing.T, open Opener) opened {
	t.Helper()
	s, another := open(t)
	if s == nil {
		t.Fatal("Opener returned a nil store")
	}
	return opened{s, another}
}

// second returns another handle on the same database.
func (o opened) second(t *testing.T) twofa.Store {
	t.Helper()
	if o.another == nil {
		t.Fatal("Opener returned no way to open another handle")
	}
	s := o.another()
	if s == nil {
		t.Fatal("another() returned a nil store")
	}
	return s
}

// The fixed clock of the suite: a time with microseconds and nothing finer,
// the precision stores keep. Nothing in the suite reads the real clock.
var now0 = time.Date(2025, time.March, 14, 15, 9, 26, 535897000, time.UTC)

// Users. alice and bob share a tenant; otherAlice has alice's user ID in
// another tenant and is a different user.
var (
	alice      = twofa.UserRef{Tenant: "acme", User: "alice"}
	bob        = twofa.UserRef{Tenant: "acme", User: "bob"}
	otherAlice = twofa.UserRef{Tenant: "globex", User: "alice"}
	nobody     = twofa.UserRef{Tenant: "acme", User: "nobody"}
)

// chain is the suite's audit chain; the key is fixed so failures reproduce.
var chain = twofa.NewAuditChain([]byte("storetest audit chain key, 32 b!"))

// newEvent returns an audit event of type typ about the user, prepared by
// chain, as the Service would pass it to a store.
func newEvent(typ twofa.EventType, ref twofa.UserRef, device string) *twofa.AuditEvent {
	return chain.Prepare(&twofa.AuditEvent{
		Time:      now0,
		Type:      typ,
		Tenant:    ref.Tenant,
		User:      ref.User,
		Device:    device,
		Actor:     "key_storetest",
		IP:        "192.0.2.7",
		UserAgent: "storetest/1.0",
	})
}

// sealed returns plaintext sealed under the master key keyID, as the Service
// would store it: a real seal blob, whose header names keyID.
func sealed(keyID uint32, plaintext string) []byte {
	key := sha256.Sum256(fmt.Appendf(nil, "storetest master key %d", keyID))
	k, err := seal.NewKeyring(keyID, map[uint32][]byte{keyID: key[:]})
	if err != nil {
		panic(err)
	}
	b, err := k.Seal([]byte(plaintext), []byte("storetest"))
	if err != nil {
		panic(err)
	}
	return b
}

// enrollTTL is how long the suite's pending devices wait.
const enrollTTL = 10 * time.Minute

// newDevice returns a pending TOTP device of the user created at created and
// expiring enrollTTL later, with its secret sealed under key 1.
func newDevice(ref twofa.UserRef, id string, created time.Time) *twofa.Device {
	return &twofa.Device{
		ID:        id,
		Tenant:    ref.Tenant,
		User:      ref.User,
		Kind:      twofa.KindTOTP,
		Name:      "Phone " + id,
		Status:    twofa.StatusPending,
		Secret:    sealed(1, "secret of "+id),
		KeyID:     1,
		Params:    otp.Params{Algorithm: otp.SHA1, Digits: 6, Period: 30},
		CreatedAt: created,
		ExpiresAt: created.Add(enrollTTL),
	}
}

// firstStep is the step the suite confirms enrollments with.
const firstStep = 55_000_000

// create adds a pending device, creating its user, and returns it.
func create(t *testing.T, s twofa.Store, ref twofa.UserRef, id string, at time.Time) *twofa.Device {
	t.Helper()
	d := newDevice(ref, id, at)
	if _, err := s.CreateDevice(t.Context(), d, 100, at, nil); err != nil {
		t.Fatalf("CreateDevice(%s, %s) = %v", ref, id, err)
	}
	return d
}

// enroll adds an active device confirmed at step firstStep a minute after at,
// and returns it as the store has it.
func enroll(t *testing.T, s twofa.Store, ref twofa.UserRef, id string, at time.Time) *twofa.Device {
	t.Helper()
	create(t, s, ref, id, at)
	_, err := s.ActivateDevice(t.Context(), twofa.Activation{Ref: ref, DeviceID: id, Step: firstStep, Now: at.Add(time.Minute)})
	if err != nil {
		t.Fatalf("ActivateDevice(%s, %s) = %v", ref, id, err)
	}
	d := mustUser(t, s, ref).Device(id)
	if d == nil || d.Status != twofa.StatusActive {
		t.Fatalf("after ActivateDevice, device %s = %+v, want active", id, d)
	}
	return d
}

// codeHashes returns n backup code hashes; equal arguments give equal hashes.
func codeHashes(set string, n int) [][]byte {
	hs := make([][]byte, n)
	for i := range hs {
		h := sha256.Sum256(fmt.Appendf(nil, "%s-%d", set, i))
		h[0] = 0 // a NUL byte, which text columns mangle
		hs[i] = h[:]
	}
	return hs
}

// withCodes gives the user a fresh set of n backup codes and returns them.
func withCodes(t *testing.T, s twofa.Store, ref twofa.UserRef, set string, n int) [][]byte {
	t.Helper()
	hs := codeHashes(set, n)
	if err := s.ReplaceBackupCodes(t.Context(), ref, hs, now0, nil); err != nil {
		t.Fatalf("ReplaceBackupCodes(%s) = %v", ref, err)
	}
	return hs
}

// lockedAt makes the user fail n attempts at now under the default policy.
func failN(t *testing.T, s twofa.Store, ref twofa.UserRef, n int, now time.Time) {
	t.Helper()
	for i := range n {
		if err := fail(t.Context(), s, ref, now); err != nil {
			t.Fatalf("failed attempt #%d = %v", i+1, err)
		}
	}
}

func mustUser(t *testing.T, s twofa.Store, ref twofa.UserRef) *twofa.User {
	t.Helper()
	u, err := s.User(t.Context(), ref)
	if err != nil {
		t.Fatalf("User(%s) = %v", ref, err)
	}
	if u == nil {
		t.Fatalf("User(%s) = nil, nil", ref)
	}
	return u
}

func mustDevice(t *testing.T, s twofa.Store, ref twofa.UserRef, id string) *twofa.Device {
	t.Helper()
	d := mustUser(t, s, ref).Device(id)
	if d == nil {
		t.Fatalf("User(%s) has no device %s", ref, id)
	}
	return d
}

// noDevice fails unless the user exists without device id.
func noDevice(t *testing.T, s twofa.Store, ref twofa.UserRef, id string) {
	t.Helper()
	if d := mustUser(t, s, ref).Device(id); d != nil {
		t.Errorf("User(%s) still has device %s (%s)", ref, id, d.Status)
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, call string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s = %v, want %v", call, err, target)
	}
}

// wantNoErr fails the test now if err is not nil.
func wantNoErr(t *testing.T, call string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v, want nil", call, err)
	}
}

// wantFailures checks the user's failure count and lock.
func wantFailures(t *testing.T, s twofa.Store, ref twofa.UserRef, failures int, lockedUntil time.Time) {
	t.Helper()
	u := mustUser(t, s, ref)
	if u.Failures != failures || !u.LockedUntil.Equal(lockedUntil) {
		t.Errorf("User(%s): Failures, LockedUntil = %d, %v; want %d, %v", ref, u.Failures, u.LockedUntil, failures, lockedUntil)
	}
}

// wantCodes checks the user's count of unused backup codes.
func wantCodes(t *testing.T, s twofa.Store, ref twofa.UserRef, n int) {
	t.Helper()
	if got := mustUser(t, s, ref).BackupCodes; got != n {
		t.Errorf("User(%s).BackupCodes = %d, want %d", ref, got, n)
	}
}

// allEvents reads the whole audit log, page by page, and checks that it
// verifies with chain.
func allEvents(t *testing.T, s twofa.Store) []*twofa.AuditEvent {
	t.Helper()
	var all []*twofa.AuditEvent
	for {
		page, err := s.AuditEvents(t.Context(), twofa.AuditFilter{After: int64(len(all)), Limit: 100})
		if err != nil {
			t.Fatalf("AuditEvents = %v", err)
		}
		all = append(all, page...)
		if len(page) < 100 {
			break
		}
	}
	v := chain.Verifier()
	for _, e := range all {
		if !v.Next(e) {
			break
		}
	}
	if st := v.State(); !st.OK {
		t.Errorf("audit log does not verify at entry %d: %s", st.BadSeq, st.Problem)
	}
	return all
}

// wantLog checks that the audit log verifies and holds events of exactly
// these types, in this order.
func wantLog(t *testing.T, s twofa.Store, want ...twofa.EventType) []*twofa.AuditEvent {
	t.Helper()
	all := allEvents(t, s)
	got := make([]twofa.EventType, len(all))
	for i, e := range all {
		got[i] = e.Type
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit log = %v, want %v", got, want)
	}
	return all
}

// deviceDiff lists the fields in which got differs from want; times compare
// as instants.
func deviceDiff(got, want *twofa.Device) []string {
	if got == nil || want == nil {
		if got != want {
			return []string{fmt.Sprintf("device = %v, want %v", got, want)}
		}
		return nil
	}
	var diffs []string
	field := func(name string, same bool, g, w any) {
		if !same {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	field("ID", got.ID == want.ID, got.ID, want.ID)
	field("Tenant", got.Tenant == want.Tenant, got.Tenant, want.Tenant)
	field("User", got.User == want.User, got.User, want.User)
	field("Kind", got.Kind == want.Kind, got.Kind, want.Kind)
	field("Name", got.Name == want.Name, got.Name, want.Name)
	field("Status", got.Status == want.Status, got.Status, want.Status)
	field("Secret", bytes.Equal(got.Secret, want.Secret), got.Secret, want.Secret)
	field("KeyID", got.KeyID == want.KeyID, got.KeyID, want.KeyID)
	field("Params", got.Params == want.Params, got.Params, want.Params)
	field("LastStep", got.LastStep == want.LastStep, got.LastStep, want.LastStep)
	field("Drift", got.Drift == want.Drift, got.Drift, want.Drift)
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"CreatedAt", got.CreatedAt, want.CreatedAt},
		{"ExpiresAt", got.ExpiresAt, want.ExpiresAt},
		{"ConfirmedAt", got.ConfirmedAt, want.ConfirmedAt},
		{"LastUsedAt", got.LastUsedAt, want.LastUsedAt},
	} {
		field(f.name, f.got.Equal(f.want), f.got, f.want)
	}
	return diffs
}

// wantDevice checks every field of a device.
func wantDevice(t *testing.T, what string, got, want *twofa.Device) {
	t.Helper()
	if diffs := deviceDiff(got, want); len(diffs) > 0 {
		t.Errorf("%s:\n\t%s", what, strings.Join(diffs, "\n\t"))
	}
}

// activated returns d as ActivateDevice leaves it. Whether ExpiresAt, which
// only pending devices use, survives activation is not part of the
// contract, so it is taken from got.
func activated(d *twofa.Device, step uint64, at time.Time, got *twofa.Device) *twofa.Device {
	w := *d
	w.Status = twofa.StatusActive
	w.LastStep = step
	w.ConfirmedAt = at
	w.LastUsedAt = at
	if got != nil {
		w.ExpiresAt = got.ExpiresAt
	}
	return &w
}

// sortDevices orders devices by ID, for results in no documented order.
func sortDevices(ds []*twofa.Device) []*twofa.Device {
	slices.SortFunc(ds, func(a, b *twofa.Device) int { return strings.Compare(a.ID, b.ID) })
	return ds
}

// race runs f(i, s) for i in [0, n) at once, half of them on s and half on
// a second handle when across is set, and returns their results in order
// of i. The goroutines start together to make the race as tight as it gets.
func race[R any](t *testing.T, o opened, n int, across bool, f func(ctx context.Context, i int, s twofa.Store) R) []R {
	t.Helper()
	stores := []twofa.Store{o.Store}
	if across {
		stores = append(stores, o.second(t))
	}
	ctx := t.Context()
	results := make([]R, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			results[i] = f(ctx, i, stores[i%len(stores)])
		}()
	}
	start.Done()
	done.Wait()
	return results
}
