package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/sqlite"
	"github.com/twofa/twofa/storetest"
)

// MustOpen opens a store on path and closes it when the test ends.
func MustOpen(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open(%s) = %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close() = %v", err)
		}
	})
	return s
}

// TestStore runs the conformance suite; another opens a second handle,
// with its own pools, on the same file, as a second process would.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (twofa.Store, func() twofa.Store) {
		path := tempPath(t)
		return MustOpen(t, path), func() twofa.Store { return MustOpen(t, path) }
	})
}

func tempPath(tb testing.TB) string { return filepath.Join(tb.TempDir(), "twofa.db") }

var (
	now0  = time.Date(2025, time.March, 14, 15, 9, 26, 535897000, time.UTC)
	alice = twofa.UserRef{Tenant: "acme", User: "alice"}
	chain = twofa.NewAuditChain([]byte("sqlite test audit chain key 32b!"))
)

func event(ref twofa.UserRef, typ twofa.EventType) *twofa.AuditEvent {
	return chain.Prepare(&twofa.AuditEvent{Time: now0, Type: typ, Tenant: ref.Tenant, User: ref.User})
}

// sealedBlob looks like a seal blob under key 7 with a recognisable body.
var sealedBlob = append([]byte{1, 0, 0, 0, 7}, bytes.Repeat([]byte("SEALEDSECRETBYTES!"), 4)...)

// enroll adds an active device for ref at step 1 and returns its ID.
func enroll(tb testing.TB, s twofa.Store, ref twofa.UserRef, id string) string {
	tb.Helper()
	ctx := context.Background()
	d := &twofa.Device{
		ID: id, Tenant: ref.Tenant, User: ref.User, Kind: twofa.KindTOTP, Name: "phone",
		Status: twofa.StatusPending, Secret: sealedBlob, KeyID: 7,
		Params:    otp.Params{Digits: 6, Period: 30},
		CreatedAt: now0, ExpiresAt: now0.Add(10 * time.Minute),
	}
	if _, err := s.CreateDevice(ctx, d, 100, now0, nil); err != nil {
		tb.Fatalf("CreateDevice = %v", err)
	}
	if _, err := s.ActivateDevice(ctx, twofa.Activation{Ref: ref, DeviceID: id, Step: 1, Now: now0}); err != nil {
		tb.Fatalf("ActivateDevice = %v", err)
	}
	return id
}

// failAttempt counts one failed attempt of the user, locking them until
// lock (none if zero).
func failAttempt(ctx context.Context, s twofa.Store, ref twofa.UserRef, now, lock time.Time) error {
	return s.Attempt(ctx, twofa.AttemptRequest{Ref: ref, Now: now}, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
		if st.User.Locked(now) {
			return nil, twofa.LockedError(st.User.LockedUntil)
		}
		return &twofa.Outcome{Failures: st.User.Failures + 1, LockedUntil: lock}, nil
	})
}

// acceptStep accepts a step of the device as a valid code would.
func acceptStep(ctx context.Context, s twofa.Store, ref twofa.UserRef, dev string, step uint64, now time.Time, e *twofa.AuditEvent) error {
	return s.Attempt(ctx, twofa.AttemptRequest{Ref: ref, Now: now}, func(*twofa.AttemptState) (*twofa.Outcome, error) {
		return &twofa.Outcome{Effects: []twofa.Effect{twofa.AcceptStep{DeviceID: dev, Step: step}}, Events: []*twofa.AuditEvent{e}}, nil
	})
}

func TestOpen(t *testing.T) {
	t.Run("Idempotent", func(t *testing.T) {
		path := tempPath(t)
		s := MustOpen(t, path)
		enroll(t, s, alice, "dev_1")
		s2 := MustOpen(t, path) // migrations already applied: a no-op
		u, err := s2.User(t.Context(), alice)
		if err != nil || len(u.Devices) != 1 {
			t.Fatalf("User after reopening = %+v, %v; want the device", u, err)
		}
		if err := s2.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate again = %v", err)
		}
	})
	t.Run("Concurrently", func(t *testing.T) {
		// Processes starting at once on a new file: one migrates, the
		// others wait for it and find the schema in place.
		path := tempPath(t)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				s, err := sqlite.Open(t.Context(), path)
				if err != nil {
					t.Errorf("Open = %v", err)
					return
				}
				defer s.Close()
				if _, err := s.Hit(t.Context(), "k", time.Minute, now0); err != nil {
					t.Errorf("Hit = %v", err)
				}
			})
		}
		wg.Wait()
	})
	t.Run("FromVersion1", func(t *testing.T) {
		// A database made by the first release, with data in it, is
		// brought up to date and keeps its data.
		path := tempPath(t)
		migration1, err := os.ReadFile(filepath.Join("migrations", "0001_initial.sqlite.up.sql"))
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`CREATE TABLE schema_migrations (
				version    INTEGER NOT NULL PRIMARY KEY,
				name       TEXT    NOT NULL,
				applied_at INTEGER NOT NULL DEFAULT (unixepoch())
			) STRICT`,
			string(migration1),
			`INSERT INTO schema_migrations (version, name) VALUES (1, '0001_initial')`,
			`INSERT INTO users (tenant, user_id, failures) VALUES ('acme', 'alice', 2)`,
		} {
			if _, err := db.ExecContext(t.Context(), q); err != nil {
				db.Close()
				t.Fatalf("making a version 1 database: %v", err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		for range 2 { // the second Open finds nothing to do
			s := MustOpen(t, path)
			if u, err := s.User(t.Context(), alice); err != nil || u.Failures != 2 {
				t.Fatalf("User after migrating = %+v, %v; want the version 1 user", u, err)
			}
			versions := migrationVersions(t, path)
			if len(versions) != sqlite.MigrationVersion || versions[len(versions)-1] != sqlite.MigrationVersion {
				t.Errorf("schema_migrations = %v, want 1 to %d", versions, sqlite.MigrationVersion)
			}
		}
		s := MustOpen(t, path)
		k := &twofa.APIKey{ID: "key_1", Tenant: "acme", Name: "app", Scope: twofa.ScopeApp, Hash: []byte{0, 1, 2}, CreatedAt: now0}
		if err := s.CreateAPIKey(t.Context(), k, event(twofa.UserRef{Tenant: "acme"}, twofa.EventAPIKeyCreated)); err != nil {
			t.Fatalf("CreateAPIKey after migrating = %v", err)
		}
		if got, err := s.APIKeyByHash(t.Context(), k.Hash); err != nil || got.ID != k.ID {
			t.Fatalf("APIKeyByHash after migrating = %+v, %v", got, err)
		}
	})
	t.Run("MissingDirectory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "no", "such", "dir", "twofa.db")
		_, err := sqlite.Open(t.Context(), path)
		if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "no/such/dir") {
			t.Fatalf("Open(%s) = %v; want an error naming the missing directory", path, err)
		}
	})
	t.Run("OddPath", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a ?b#c%20.db")
		s := MustOpen(t, path)
		enroll(t, s, alice, "dev_1")
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("database not at %q: %v", path, err)
		}
	})
}

// migrationVersions returns the versions schema_migrations records.
func migrationVersions(t *testing.T, path string) []int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var versions []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return versions
}

// TestSecretAtRest checks that what reaches the disk is the sealed blob
// the store was given, byte for byte.
func TestSecretAtRest(t *testing.T) {
	path := tempPath(t)
	s := MustOpen(t, path)
	enroll(t, s, alice, "dev_1")
	if err := s.Close(); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, sealedBlob) {
		t.Errorf("database file does not contain the sealed blob")
	}
}

// TestWriteStorm: 32 goroutines on two handles (two processes, to
// SQLite) write without pause for a while. storetest checks the outcomes
// of short races; this checks that sustained contention between handles
// never surfaces SQLITE_BUSY and never forks the audit chain.
func TestWriteStorm(t *testing.T) {
	path := tempPath(t)
	handles := []*sqlite.Store{MustOpen(t, path), MustOpen(t, path)}
	refs := make([]twofa.UserRef, 4)
	for i := range refs {
		refs[i] = twofa.UserRef{Tenant: "acme", User: fmt.Sprint("user", i)}
		enroll(t, handles[0], refs[i], fmt.Sprint("dev_", i))
	}
	const goroutines, each = 32, 30
	var (
		wg       sync.WaitGroup
		accepted atomic.Int64
		steps    [4]atomic.Uint64
	)
	for g := range goroutines {
		s, i := handles[g%2], g%len(refs)
		ref, dev := refs[i], fmt.Sprint("dev_", i)
		wg.Go(func() {
			for n := range each {
				var err error
				switch n % 3 {
				case 0:
					err = failAttempt(t.Context(), s, ref, now0, time.Time{})
				case 1:
					err = acceptStep(t.Context(), s, ref, dev, steps[i].Add(1)+1, now0, event(ref, twofa.EventVerifySucceeded))
					if err == nil {
						accepted.Add(1)
					} else if errors.Is(err, twofa.ErrReplayed) {
						err = nil // a later step overtook this one
					}
				case 2:
					err = s.AppendAudit(t.Context(), event(ref, twofa.EventVerifyFailed), nil, event(ref, twofa.EventLocked))
				}
				if err != nil {
					t.Errorf("goroutine %d op %d: %v", g, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	verifyChain(t, handles[1], int(accepted.Load())+2*goroutines*each/3)
}

func verifyChain(t *testing.T, s twofa.Store, want int) {
	t.Helper()
	v := chain.Verifier()
	var after int64
	for {
		es, err := s.AuditEvents(t.Context(), twofa.AuditFilter{After: after, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if !v.Next(e) {
				t.Fatalf("chain broken: %+v", v.State())
			}
		}
		after = es[len(es)-1].Seq
	}
	if st := v.State(); st.Events != int64(want) {
		t.Errorf("chain has %d events, want %d", st.Events, want)
	}
}

// TestTimes: the zero time is NULL and Forever round-trips.
func TestTimes(t *testing.T) {
	s := MustOpen(t, tempPath(t))
	enroll(t, s, alice, "dev_1")
	if err := failAttempt(t.Context(), s, alice, now0, twofa.Forever); err != nil {
		t.Fatal(err)
	}
	u, err := s.User(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	if !u.LockedUntil.Equal(twofa.Forever) || !u.Devices[0].ExpiresAt.IsZero() || !u.Devices[0].CreatedAt.Equal(now0) {
		t.Errorf("User = %+v, device %+v", u, u.Devices[0])
	}
	err = failAttempt(t.Context(), s, alice, now0.AddDate(100, 0, 0), time.Time{})
	if te := (*twofa.Error)(nil); !errors.As(err, &te) || !te.Until.Equal(twofa.Forever) {
		t.Errorf("attempt when locked forever = %v", err)
	}
}

// TestWriteCanceled: callers giving up while their writes wait in, or run
// in, a group commit get their context's error and leave the others' writes
// and the audit chain whole.
func TestWriteCanceled(t *testing.T) {
	s := MustOpen(t, tempPath(t))
	enroll(t, s, alice, "dev_1")
	var (
		wg sync.WaitGroup
		ok atomic.Int64
	)
	for g := range 32 {
		wg.Go(func() {
			for n := range 20 {
				ctx, cancel := context.WithTimeout(t.Context(), time.Duration((g*20+n)%7)*50*time.Microsecond)
				err := s.AppendAudit(ctx, event(alice, twofa.EventVerifyFailed))
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, context.DeadlineExceeded):
					t.Errorf("AppendAudit = %v; want nil or the context's error", err)
				}
			}
		})
	}
	wg.Wait()
	v := chain.Verifier()
	es, err := s.AuditEvents(t.Context(), twofa.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if !v.Next(e) {
			t.Fatalf("chain broken: %+v", v.State())
		}
	}
	if n := int64(len(es)); n < ok.Load() || n > 32*20 {
		t.Errorf("%d events for %d successful appends", n, ok.Load())
	}
	if err := failAttempt(t.Context(), s, alice, now0, time.Time{}); err != nil {
		t.Errorf("attempt after the cancellations = %v", err)
	}
}
