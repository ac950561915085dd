// Package sqlite is a twofa.Store on SQLite, through the pure Go driver
// modernc.org/sqlite. One database file may be shared by any number of
// goroutines and processes.
//
// Concurrency: every write is one BEGIN IMMEDIATE transaction on a pool of
// a single connection, so writers in one process queue in Go, never in
// SQLite, and take SQLite's write lock before reading anything they decide
// on; writers in other processes wait for that lock under busy_timeout.
// Reads that need no transaction run on a separate pool of connections,
// which in WAL mode never block and are never blocked by the writer.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/twofa/twofa"
)

var _ twofa.Store = (*Store)(nil)

// Store is a twofa.Store on one SQLite database file.
type Store struct {
	w *sql.DB // one connection; every transaction BEGIN IMMEDIATE
	r *sql.DB // read-only connections for single-statement reads

	q         writeStmts // prepared on w
	userStmt  *sql.Stmt  // prepared on r
	lastSweep atomic.Int64
}

// busyTimeout is how long a writer waits for another process's write
// transaction before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Open opens the database file at path, creating it if needed, and brings
// its schema up to date.
//
// The database runs in WAL mode with synchronous=NORMAL: a commit is
// written to the WAL but the WAL is synced only at checkpoints. That is
// durable against the crash of any process, since the WAL is in the
// operating system's hands once written; only an operating system crash or
// power loss may lose the last transactions committed before it (never
// corrupting the database). For a second factor this is the right
// trade-off: a lost accepted step could at worst let one code be replayed
// after a power loss, while FULL would cost an fsync per verification.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: want the path of a database file", path)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: directory %s: %w", path, dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("sqlite: open %s: %s is not a directory", path, dir)
	}

	name := "file:" + escapePath(path)
	common := "_pragma=busy_timeout(" + strconv.FormatInt(busyTimeout.Milliseconds(), 10) + ")"
	w, err := sql.Open("sqlite", name+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := s.Migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	// Readers open after the writer has switched the file to WAL.
	r, err := sql.Open("sqlite", name+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// escapePath makes path safe inside a file: URI, where SQLite decodes %HH.
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// Close closes the database.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.q.beginAttempt, s.q.userLock, s.q.setLock, s.q.resetFailures, s.q.acceptStep,
		s.q.activeDevice, s.q.consumeCode, s.q.countCodes, s.q.auditHead, s.q.auditInsert, s.q.hit, s.q.sweep, s.userStmt} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	return errors.Join(append(errs, s.w.Close())...)
}

//go:embed migrations/*.sqlite.up.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

var migrations = mustLoadMigrations()

// MigrationVersion is the schema version this package brings a database to.
var MigrationVersion = migrations[len(migrations)-1].version

func mustLoadMigrations() []migration {
	names, err := fs.Glob(migrationFS, "migrations/*.sqlite.up.sql")
	if err != nil {
		panic(err)
	}
	var ms []migration
	for _, n := range names {
		base := filepath.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			panic("sqlite: migration file name must start with a version: " + base)
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			panic(err)
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(base, ".sqlite.up.sql"), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			panic(fmt.Sprintf("sqlite: migration %s: want version %d", m.name, i+1))
		}
	}
	return ms
}

// Migrate applies the migrations the database lacks, all in one
// transaction, so processes starting at once apply each exactly once.
func (s *Store) Migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL DEFAULT (unixepoch())
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > MigrationVersion {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", have, MigrationVersion)
	}
	for _, m := range migrations[have:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.version, m.name); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// commitWith is returned by a transaction's function to commit it and
// still return err, for the methods that change something on failure.
type commitWith struct{ err error }

func (c commitWith) Error() string { return c.err.Error() }

// write runs fn in a write transaction.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback() // after Commit, a no-op; before it, even on panic, frees the one connection
	err = fn(tx)
	var cw commitWith
	if errors.As(err, &cw) {
		err = cw.err
	} else if err != nil {
		return err
	}
	if cerr := tx.Commit(); cerr != nil {
		return fmt.Errorf("sqlite: commit: %w", cerr)
	}
	return err
}

// read runs fn in a read transaction, for reads of several statements
// that must see one state.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// stmt returns the write statement st bound to tx.
func stmt(ctx context.Context, tx *sql.Tx, st *sql.Stmt) *sql.Stmt { return tx.StmtContext(ctx, st) }

// Times are Unix microseconds, NULL for the zero time.

func micros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// step converts a TOTP step for storage. Steps are seconds since T0 over
// the period, far below 2^63 for any real clock.
func step(s uint64) (int64, error) {
	if s > math.MaxInt64 {
		return 0, twofa.Errorf(twofa.EINVALID, "time step %d out of range", s)
	}
	return int64(s), nil
}

func unstep(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

// rowsAffected reports the rows a statement changed.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
