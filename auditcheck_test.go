package twofa_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twofa/twofa"
)

// rawDB runs SQL on a store's database behind its back, as someone with
// write access to the database would.
type rawDB func(t *testing.T, query string)

func openRaw(t *testing.T, kind, where string) rawDB {
	return func(t *testing.T, query string) {
		t.Helper()
		ctx := context.Background()
		if kind == "SQLite" {
			db, err := sql.Open("sqlite", where)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.ExecContext(ctx, query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			return
		}
		conn, err := pgx.Connect(ctx, where)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
}

// fillAuditLog fills the log: for each of acme and globex, users u0 to u9
// begin an enrollment (one entry each). more appends n entries, unlocks
// of those users, alternating between the tenants.
func fillAuditLog(t *testing.T, f *fixture) (more func(n int)) {
	t.Helper()
	ctx := context.Background()
	refs := []twofa.UserRef{}
	for i := range 10 {
		for _, tenant := range []string{"acme", "globex"} {
			ref := twofa.UserRef{Tenant: tenant, User: fmt.Sprint("u", i)}
			if _, err := f.svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{}); err != nil {
				t.Fatal(err)
			}
			refs = append(refs, ref)
		}
	}
	next := 0
	return func(n int) {
		t.Helper()
		for range n {
			if err := f.svc.Unlock(ctx, refs[next%len(refs)]); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
}

// entry returns the log's entry seq.
func entry(t *testing.T, s twofa.Store, seq int64) *twofa.AuditEvent {
	t.Helper()
	es, err := s.AuditEvents(context.Background(), twofa.AuditFilter{After: seq - 1, Limit: 1})
	if err != nil || len(es) != 1 || es[0].Seq != seq {
		t.Fatalf("entry %d: %v, %v", seq, es, err)
	}
	return es[0]
}

func wantState(t *testing.T, what string, st twofa.ChainState, err error, ok bool, badSeq int64, problem string) {
	t.Helper()
	if err != nil || st.OK != ok || st.BadSeq != badSeq || !strings.Contains(st.Problem, problem) {
		t.Errorf("%s = OK %v, BadSeq %d, %q, %v; want OK %v, BadSeq %d, a problem with %q",
			what, st.OK, st.BadSeq, st.Problem, err, ok, badSeq, problem)
	}
}

// TestService_VerifyAuditIncremental walks the log from stored checkpoints
// and tampers with the database as an attacker with write access would:
// what the walk from the checkpoints finds, what only the full walk finds.
func TestService_VerifyAuditIncremental(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			store, where := sk.open(t)
			raw := openRaw(t, sk.name, where)
			f := newFixture(t, store, nil)
			ctx := context.Background()
			more := fillAuditLog(t, f)
			incremental := func() (twofa.ChainState, error) { return f.svc.VerifyAuditWith(ctx, twofa.AuditWalk{}) }
			checkpoints := func() []twofa.AuditCheckpoint {
				t.Helper()
				cps, err := store.AuditCheckpoints(ctx, twofa.CheckpointVerified)
				if err != nil {
					t.Fatal(err)
				}
				return cps
			}

			// The first walk reads the whole log and leaves checkpoints
			// that stand for all of it.
			st, err := f.svc.VerifyAuditFor(ctx, "acme")
			if err != nil || !st.OK || st.Events != 10 || st.BadSeq != 0 || st.Head != nil || st.Heads != nil {
				t.Fatalf("VerifyAuditFor(acme) = %+v, %v; want OK, acme's 10 entries and nothing of the chains", st, err)
			}
			var sum int64
			for _, cp := range checkpoints() {
				sum += cp.Events
			}
			if sum != 20 {
				t.Errorf("the checkpoints stand for %d entries, want 20", sum)
			}

			// Later walks read only what was appended since.
			for _, tt := range []struct {
				append           int
				checked, entries int64
			}{{0, 0, 20}, {6, 6, 26}, {1, 1, 27}} {
				more(tt.append)
				st, err := incremental()
				if err != nil || !st.OK || st.Checked != tt.checked || st.Events != tt.entries {
					t.Errorf("after %d more: %+v, %v; want OK, %d checked of %d", tt.append, st, err, tt.checked, tt.entries)
				}
			}
			full, err := f.svc.VerifyAudit(ctx)
			if err != nil || !full.OK || full.Checked != 27 || full.Events != 27 {
				t.Fatalf("VerifyAudit = %+v, %v; want OK, 27 checked", full, err)
			}

			t.Run("AlteredBeforeTheCheckpoint", func(t *testing.T) {
				// An entry the walks already passed, and not a
				// checkpoint's own: only the full walk sees it.
				raw(t, `UPDATE audit SET reason = 'edited' WHERE seq = 2`)
				defer raw(t, `UPDATE audit SET reason = '' WHERE seq = 2`)
				st, err := incremental()
				wantState(t, "walk from the checkpoints", st, err, true, 0, "")
				st, err = f.svc.VerifyAudit(ctx)
				wantState(t, "full walk", st, err, false, 2, "altered")
			})
			t.Run("AlteredAfterTheCheckpoint", func(t *testing.T) {
				more(2)
				last := full.Events + 2
				es, _ := store.AuditEvents(ctx, twofa.AuditFilter{After: 0, Limit: 1000})
				e := es[len(es)-1]
				if int64(len(es)) != last {
					t.Fatalf("%d entries, want %d", len(es), last)
				}
				raw(t, fmt.Sprintf(`UPDATE audit SET reason = 'edited' WHERE seq = %d`, e.Seq))
				st, err := f.svc.VerifyAuditFor(ctx, e.Tenant)
				wantState(t, "the tenant's walk", st, err, false, e.Seq, "altered")
				other := map[string]string{"acme": "globex", "globex": "acme"}[e.Tenant]
				st, err = f.svc.VerifyAuditFor(ctx, other)
				wantState(t, "another tenant's walk", st, err, false, 0, "tell the operator")
				raw(t, fmt.Sprintf(`UPDATE audit SET reason = '' WHERE seq = %d`, e.Seq))
				st, err = incremental()
				wantState(t, "walk after the repair", st, err, true, 0, "")
			})
			t.Run("CheckpointEntryAltered", func(t *testing.T) {
				cp := checkpoints()[0]
				e := entry(t, store, cp.Seq)
				raw(t, fmt.Sprintf(`UPDATE audit SET reason = 'edited' WHERE seq = %d`, cp.Seq))
				defer raw(t, fmt.Sprintf(`UPDATE audit SET reason = '' WHERE seq = %d`, cp.Seq))
				st, err := f.svc.VerifyAuditFor(ctx, e.Tenant)
				wantState(t, "walk from the checkpoints", st, err, false, cp.Seq, "where the last verification stopped, was altered")
			})
			t.Run("CheckpointForged", func(t *testing.T) {
				// Moved on, to skip what follows: the MAC gives it away.
				cp := checkpoints()[0]
				raw(t, fmt.Sprintf(`UPDATE audit_checkpoints SET seq = seq + 1000, events = events + 1000 WHERE chain = %d`, cp.Chain))
				st, err := incremental()
				wantState(t, "walk from a forged checkpoint", st, err, false, 0, "does not verify")
				st, err = f.svc.VerifyAuditFor(ctx, "acme")
				wantState(t, "a tenant's walk from a forged checkpoint", st, err, false, 0, "tell the operator")
				// The operator's full walk checks every entry and replaces it.
				st, err = f.svc.VerifyAudit(ctx)
				wantState(t, "full walk", st, err, false, 0, "this walk replaced it")
				st, err = incremental()
				wantState(t, "walk after the full walk", st, err, true, 0, "")
			})
			t.Run("CheckpointsDeleted", func(t *testing.T) {
				// The next walk starts from the beginning again.
				raw(t, `DELETE FROM audit_checkpoints`)
				st, err := incremental()
				if err != nil || !st.OK || st.Checked != st.Events || st.Events < 27 {
					t.Errorf("walk without checkpoints = %+v, %v; want OK and every entry checked", st, err)
				}
			})
			t.Run("CheckpointRolledBack", func(t *testing.T) {
				// An older checkpoint of the same chain, put back: the walk
				// is longer, and still right.
				before := checkpoints()
				more(4)
				if st, err := incremental(); err != nil || !st.OK || st.Checked != 4 {
					t.Fatalf("walk = %+v, %v; want 4 checked", st, err)
				}
				for _, cp := range before {
					raw(t, fmt.Sprintf(`UPDATE audit_checkpoints SET seq = %d, hash = %s, events = %d, time = %s, mac = %s WHERE chain = %d`,
						cp.Seq, hexLiteral(sk.name, cp.Hash), cp.Events, timeLiteral(sk.name, cp.Time), hexLiteral(sk.name, cp.MAC), cp.Chain))
				}
				if st, err := incremental(); err != nil || !st.OK || st.Checked != 4 {
					t.Errorf("walk from rolled back checkpoints = %+v, %v; want OK, the same 4 checked again", st, err)
				}
			})
			t.Run("Truncated", func(t *testing.T) {
				// The newest entries deleted, a checkpoint's own among them.
				if _, err := incremental(); err != nil {
					t.Fatal(err)
				}
				cp := checkpoints()[0]
				raw(t, fmt.Sprintf(`DELETE FROM audit WHERE seq >= %d`, cp.Seq))
				st, err := incremental()
				wantState(t, "walk from the checkpoints", st, err, false, cp.Seq, "is missing")
				st, err = f.svc.VerifyAudit(ctx)
				wantState(t, "full walk", st, err, false, cp.Seq, "missing")
			})
		})
	}
}

func hexLiteral(kind string, b []byte) string {
	if kind == "SQLite" {
		return fmt.Sprintf("x'%x'", b)
	}
	return fmt.Sprintf(`'\x%x'::bytea`, b)
}

func timeLiteral(kind string, t time.Time) string {
	if kind == "SQLite" {
		return fmt.Sprint(t.UnixMicro())
	}
	return "'" + t.UTC().Format("2006-01-02 15:04:05.999999Z07:00") + "'::timestamptz"
}

// gatedStore holds every walk at its start until released, and counts
// walks and counts of a tenant's entries.
type gatedStore struct {
	twofa.Store
	release chan struct{}
	walks   atomic.Int64
	counts  atomic.Int64
}

func (s *gatedStore) AuditCheckpoints(ctx context.Context, kind twofa.CheckpointKind) ([]twofa.AuditCheckpoint, error) {
	s.walks.Add(1)
	<-s.release
	return s.Store.AuditCheckpoints(ctx, kind)
}

func (s *gatedStore) CountAudit(ctx context.Context, f twofa.AuditFilter) (int64, error) {
	s.counts.Add(1)
	return s.Store.CountAudit(ctx, f)
}

// TestService_VerifyAuditForShared: calls that come while a walk runs
// share it instead of walking the log again, and calls of one tenant share
// its count; a caller who gives up does not take the result from others.
func TestService_VerifyAuditForShared(t *testing.T) {
	base, _ := openSQLite(t)
	gs := &gatedStore{Store: base, release: make(chan struct{})}
	f := newFixture(t, gs, nil)
	fillAuditLog(t, f)

	type result struct {
		st  twofa.ChainState
		err error
	}
	tenants := []string{"acme", "globex", "acme", "globex", "acme", "globex", "acme", "globex"}
	results := make([]result, len(tenants))
	var wg sync.WaitGroup
	for i, tenant := range tenants {
		wg.Go(func() {
			st, err := f.svc.VerifyAuditFor(context.Background(), tenant)
			results[i] = result{st, err}
		})
	}
	gaveUp, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.svc.VerifyAuditFor(gaveUp, "acme"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a caller whose context ends while the walk runs: %v, want context.DeadlineExceeded", err)
	}
	time.Sleep(250 * time.Millisecond) // the callers have all come by now
	close(gs.release)
	wg.Wait()
	for i, r := range results {
		if r.err != nil || !r.st.OK || r.st.Events != 10 {
			t.Errorf("call %d (%s) = %+v, %v; want OK, 10 entries", i, tenants[i], r.st, r.err)
		}
	}
	if n := gs.walks.Load(); n != 1 {
		t.Errorf("%d calls at once walked the log %d times, want 1", len(tenants)+1, n)
	}
	if n := gs.counts.Load(); n != 2 {
		t.Errorf("2 tenants' calls counted entries %d times, want 2", n)
	}
}
