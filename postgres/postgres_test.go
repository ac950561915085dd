package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/postgres"
	"github.com/twofa/twofa/storetest"
)

// testDSN creates a schema of the test's own and returns a DSN that uses it.
var testDSN = twofatest.PostgresDSN

// mustOpen opens a store on dsn, closed when the test ends.
func mustOpen(tb testing.TB, dsn string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("Open = %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (twofa.Store, func() twofa.Store) {
		dsn := testDSN(t)
		return mustOpen(t, dsn), func() twofa.Store { return mustOpen(t, dsn) }
	})
}

func TestOpen_Concurrent(t *testing.T) {
	// Processes starting at once on an empty schema: one migrates, the
	// others wait for it and find nothing to do.
	dsn := testDSN(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), dsn)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d = %v", i, err)
		}
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var versions int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if want := len(migrationFiles(t)); versions != want {
		t.Errorf("schema_migrations has %d rows, want %d", versions, want)
	}
}

// migrationFiles returns the names of the migrations, in order.
func migrationFiles(tb testing.TB) []string {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("migrations", "*.postgres.up.sql"))
	if err != nil || len(names) == 0 {
		tb.Fatalf("no migrations: %v", err)
	}
	slices.Sort(names)
	return names
}

func TestOpen_FromVersion1(t *testing.T) {
	// A schema made by the first release, with data in it, is brought up
	// to date and keeps its data; opening it again finds nothing to do.
	dsn := testDSN(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	first := migrationFiles(t)[0]
	migration1, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`,
		string(migration1),
		`INSERT INTO schema_migrations (version, name) VALUES (1, '` + filepath.Base(first) + `')`,
		`INSERT INTO users (tenant, user_id, failures) VALUES ('acme', 'alice', 2)`,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("making a version 1 schema: %v", err)
		}
	}

	ref := twofa.UserRef{Tenant: "acme", User: "alice"}
	for range 2 {
		s := mustOpen(t, dsn)
		if u, err := s.User(t.Context(), ref); err != nil || u.Failures != 2 {
			t.Fatalf("User after migrating = %+v, %v; want the version 1 user", u, err)
		}
		rows, _ := conn.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		if n := len(migrationFiles(t)); len(versions) != n || versions[n-1] != n {
			t.Errorf("schema_migrations = %v, want 1 to %d", versions, n)
		}
	}
	s := mustOpen(t, dsn)
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	chain := twofa.NewAuditChain([]byte("postgres migration test key 32b!"))
	k := &twofa.APIKey{ID: "key_1", Tenant: "acme", Name: "app", Scope: twofa.ScopeApp, Hash: []byte{0, 1, 2}, CreatedAt: now}
	e := chain.Prepare(&twofa.AuditEvent{Time: now, Type: twofa.EventAPIKeyCreated, Tenant: "acme"})
	if err := s.CreateAPIKey(t.Context(), k, e); err != nil {
		t.Fatalf("CreateAPIKey after migrating = %v", err)
	}
	if got, err := s.APIKeyByHash(t.Context(), k.Hash); err != nil || got.ID != k.ID {
		t.Fatalf("APIKeyByHash after migrating = %+v, %v", got, err)
	}
}

// acceptStep accepts a step of the device as a valid code would.
func acceptStep(ctx context.Context, s twofa.Store, ref twofa.UserRef, dev string, step uint64, now time.Time, e *twofa.AuditEvent) error {
	return s.Attempt(ctx, twofa.AttemptRequest{Ref: ref, Now: now}, func(*twofa.AttemptState) (*twofa.Outcome, error) {
		return &twofa.Outcome{Effects: []twofa.Effect{twofa.AcceptStep{DeviceID: dev, Step: step}}, Events: []*twofa.AuditEvent{e}}, nil
	})
}

func TestAcceptStep_OutOfRange(t *testing.T) {
	// Steps are BIGINT: one above MaxInt64 is refused as invalid input
	// (as storetest's StepRange checks of the other methods), neither
	// accepted nor reported as a replay.
	s := mustOpen(t, testDSN(t))
	ref := twofa.UserRef{Tenant: "acme", User: "alice"}
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	enroll(t, s, ref, "dev_a", now)
	err := acceptStep(t.Context(), s, ref, "dev_a", math.MaxInt64+1, now, nil)
	if twofa.ErrorCode(err) != twofa.EINVALID {
		t.Errorf("accepting step MaxInt64+1 = %v, want code %q", err, twofa.EINVALID)
	}
	if err := acceptStep(t.Context(), s, ref, "dev_a", math.MaxInt64, now, nil); err != nil {
		t.Errorf("accepting step MaxInt64 = %v", err)
	}
}

func TestStore_NoDeadlock(t *testing.T) {
	// Every method that locks a user's rows, at once on one user from two
	// pools: none may fail with a deadlock (or anything but the outcomes
	// the Store documents), and the audit chain must hold.
	dsn := testDSN(t)
	stores := []*postgres.Store{mustOpen(t, dsn), mustOpen(t, dsn)}
	ref := twofa.UserRef{Tenant: "acme", User: "alice"}
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	chain := twofa.NewAuditChain([]byte("postgres deadlock test key 32 b!"))
	ev := func(typ twofa.EventType) *twofa.AuditEvent {
		return chain.Prepare(&twofa.AuditEvent{Time: now, Type: typ, Tenant: ref.Tenant, User: ref.User})
	}
	enroll(t, stores[0], ref, "dev_a", now)
	ops := []func(ctx context.Context, s *postgres.Store, i int) error{ // i is unique across workers
		func(ctx context.Context, s *postgres.Store, i int) error {
			d := device(ref, fmt.Sprintf("dev_%d", i), now.Add(-time.Hour)) // born expired
			_, err := s.CreateDevice(ctx, d, 1000, now, ev(twofa.EventEnrollStarted))
			return err
		},
		func(ctx context.Context, s *postgres.Store, i int) error {
			_, err := s.DeleteExpired(ctx, now)
			return err
		},
		func(ctx context.Context, s *postgres.Store, i int) error {
			return s.DeleteFactors(ctx, ref, ev(twofa.EventDisabled))
		},
		func(ctx context.Context, s *postgres.Store, i int) error {
			return s.Attempt(ctx, twofa.AttemptRequest{Ref: ref, Now: now, Hits: []twofa.LimitHit{{Key: "k", Window: time.Minute}},
				Peeks: []twofa.LimitHit{{Key: "p", Window: time.Minute}}}, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
				return &twofa.Outcome{Failures: st.User.Failures + 1, Hits: []twofa.LimitHit{{Key: "p", Window: time.Minute}},
					Events: []*twofa.AuditEvent{ev(twofa.EventVerifyFailed)}}, nil
			})
		},
		func(ctx context.Context, s *postgres.Store, i int) error {
			return acceptStep(ctx, s, ref, "dev_a", uint64(1000+i), now, ev(twofa.EventVerifySucceeded))
		},
		func(ctx context.Context, s *postgres.Store, i int) error {
			return s.ReplaceBackupCodes(ctx, ref, [][]byte{{byte(i)}, {byte(i), 1}}, now, ev(twofa.EventBackupCodesIssued))
		},
		func(ctx context.Context, s *postgres.Store, i int) error {
			hash := []byte{byte(i - 1)}
			return s.Attempt(ctx, twofa.AttemptRequest{Ref: ref, Now: now, Reads: twofa.AttemptReads{BackupCode: hash}},
				func(st *twofa.AttemptState) (*twofa.Outcome, error) {
					if !st.BackupCodeFound {
						return nil, twofa.ErrNotFound
					}
					return &twofa.Outcome{Effects: []twofa.Effect{twofa.SpendBackupCode{Hash: hash}}, Events: []*twofa.AuditEvent{ev(twofa.EventBackupCodeUsed)}}, nil
				})
		},
		func(ctx context.Context, s *postgres.Store, i int) error {
			id := fmt.Sprintf("dev_live_%d", i)
			if _, err := s.CreateDevice(ctx, device(ref, id, now), 1000, now, nil); err != nil {
				return err
			}
			_, err := s.ActivateDevice(ctx, twofa.Activation{Ref: ref, DeviceID: id, Step: 1, Now: now,
				BackupCodes: [][]byte{{byte(i), 2}}, Event: ev(twofa.EventEnrollConfirmed), IssueEvent: ev(twofa.EventBackupCodesIssued)})
			return err
		},
	}
	var wg sync.WaitGroup
	for w := range 2 * len(ops) {
		wg.Go(func() {
			s, op := stores[w%2], ops[w/2]
			for i := range 30 {
				err := op(t.Context(), s, 100*w+i)
				if err != nil && !errors.Is(err, twofa.ErrNotFound) && !errors.Is(err, twofa.ErrReplayed) {
					t.Errorf("op %d, iteration %d: %v", w/2, i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	v := chain.Verifier()
	var after int64
	for {
		page, err := stores[1].AuditEvents(t.Context(), twofa.AuditFilter{After: after, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			v.Next(e)
			after = e.Seq
		}
		if len(page) < 500 {
			break
		}
	}
	if st := v.State(); !st.OK || st.Events == 0 {
		t.Errorf("audit chain: %+v", st)
	}
}

func device(ref twofa.UserRef, id string, created time.Time) *twofa.Device {
	return &twofa.Device{
		ID: id, Tenant: ref.Tenant, User: ref.User, Kind: twofa.KindTOTP, Name: "Phone", Status: twofa.StatusPending,
		Secret: []byte("sealed"), KeyID: 1, Params: otp.Params{Digits: 6, Period: 30},
		CreatedAt: created, ExpiresAt: created.Add(10 * time.Minute),
	}
}

// enroll gives the user an active device.
func enroll(tb testing.TB, s *postgres.Store, ref twofa.UserRef, id string, now time.Time) {
	tb.Helper()
	if _, err := s.CreateDevice(context.Background(), device(ref, id, now), 100, now, nil); err != nil {
		tb.Fatalf("CreateDevice = %v", err)
	}
	if _, err := s.ActivateDevice(context.Background(), twofa.Activation{Ref: ref, DeviceID: id, Step: 1, Now: now}); err != nil {
		tb.Fatalf("ActivateDevice = %v", err)
	}
}

func TestOpen_AuditFromOneChain(t *testing.T) {
	// A log written with one chain (migrations 1 to 3) becomes chain 0:
	// it still verifies, new entries go to every chain, numbered after
	// the old ones, and the whole log verifies chain by chain.
	dsn := testDSN(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `CREATE TABLE schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for i, f := range migrationFiles(t)[:3] {
		sql, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(t.Context(), string(sql)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, i+1, filepath.Base(f)); err != nil {
			t.Fatal(err)
		}
	}
	chain := twofa.NewAuditChain([]byte("postgres migration test key 32b!"))
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	var prev []byte
	for seq := int64(1); seq <= 3; seq++ {
		e := chain.Prepare(&twofa.AuditEvent{Time: now, Type: twofa.EventVerifyFailed, Tenant: "acme", User: "old"})
		if err := e.Link(seq, prev); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(t.Context(), `INSERT INTO audit (seq, time, type, tenant, user_id, device, factor, reason, actor, ip, user_agent, detail, prev_hash, hash)
			VALUES ($1, $2, $3, 'acme', 'old', '', '', '', '', '', '', '', $4, $5)`, seq, now, string(e.Type), prev, e.Hash); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
	}
	if _, err := conn.Exec(t.Context(), `UPDATE audit_head SET seq = 3, hash = $1 WHERE id = 1`, prev); err != nil {
		t.Fatal(err)
	}

	s := mustOpen(t, dsn)
	for i := range 40 {
		ref := twofa.UserRef{Tenant: "acme", User: fmt.Sprint("new", i)}
		if err := s.AppendAudit(t.Context(), chain.Prepare(&twofa.AuditEvent{Time: now, Type: twofa.EventVerifyFailed, Tenant: ref.Tenant, User: ref.User})); err != nil {
			t.Fatal(err)
		}
	}
	v := chain.Verifier()
	for c := range s.AuditChains() {
		es, err := s.AuditEvents(t.Context(), twofa.AuditFilter{ByChain: true, Chain: c, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.User != "old" && e.Seq <= 3 {
				t.Errorf("new entry numbered %d, among the old ones", e.Seq)
			}
			if !v.Next(e) {
				t.Fatalf("chain %d: %+v", c, v.State())
			}
		}
	}
	if st := v.State(); st.Events != 43 || st.Chains < 2 {
		t.Errorf("walk: %+v; want 43 entries over several chains", st)
	}
}
