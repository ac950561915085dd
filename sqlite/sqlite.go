// Package sqlite is a twofa.Store on SQLite, through the pure Go driver
// modernc.org/sqlite. One database file may be shared by any number of
// goroutines and processes.
//
// Concurrency: one goroutine owns the single write connection and commits
// the writes of concurrent callers together (group commit, see writer.go):
// each batch is one BEGIN IMMEDIATE transaction, and the writes in it run
// one after another; if one fails after writing, the batch is rolled back
// and run again with each write in a savepoint of its own, so one write's
// failure never undoes another's. Writers in one process
// thus queue in Go, never in SQLite, and take SQLite's write lock before
// reading anything they decide on; writers in other processes wait for
// that lock under busy_timeout. Reads that need no transaction run on a
// separate pool of connections, which in WAL mode never block and are
// never blocked by the writer.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/migrate"
)

var _ twofa.Store = (*Store)(nil)

// Store is a twofa.Store on one SQLite database file.
type Store struct {
	w  *sql.DB // one connection, which the writer holds
	wr *writer
	r  *sql.DB // read-only connections for single-statement reads

	ckpt      *checkpointer
	userStmt  *sql.Stmt // prepared on r
	lastSweep atomic.Int64
	legacy    legacyTokens // what this handle's migration found to rehash
	closeOnce sync.Once
	closeErr  error
}

// busyTimeout is how long a writer waits for another process's write
// transaction before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Open opens the database file at path, creating it if needed (mode
// 0600, as SQLite then makes its -wal and -shm files), and brings its
// schema up to date. Exposed tells whether others may read it.
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
	return open(ctx, path, MigrationVersion)
}

// open is Open bringing the schema to version upTo only, which tests of
// upgrades need.
func open(ctx context.Context, path string, upTo int) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: want the path of a database file", path)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: directory %s: %w", path, dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("sqlite: open %s: %s is not a directory", path, dir)
	}
	if err := createFile(path); err != nil { // mode 0600: perm.go
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	name := "file:" + escapePath(path)
	common := "_pragma=busy_timeout(" + strconv.FormatInt(busyTimeout.Milliseconds(), 10) + ")"
	w, err := sql.Open("sqlite", name+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"+
		"&_pragma=wal_autocheckpoint(0)") // see checkpoint.go
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := s.startWriter(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := s.migrate(ctx, upTo); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	// Readers open after the writer has switched the file to WAL.
	r, err := sql.Open("sqlite", name+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r
	c, err := sql.Open("sqlite", name+"?"+common+"&_pragma=synchronous(NORMAL)")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if s.ckpt, err = startCheckpointer(ctx, path, c, s.wr.final); err != nil {
		c.Close()
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// The read pool's statements are the newest schema's: a store opened
	// at an older version, for a test of an upgrade, reads without them.
	if upTo < MigrationVersion {
		return s, nil
	}
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

// Close closes the database. Writes queued and not yet begun fail.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if w := s.wr; w != nil {
			close(w.quit)
			<-w.stopped
			errs = append(errs, w.tx.close())
		}
		if s.ckpt != nil {
			errs = append(errs, s.ckpt.close())
		}
		if s.userStmt != nil {
			errs = append(errs, s.userStmt.Close())
		}
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		// Last: closing any descriptor of the file drops every POSIX lock
		// this process holds on it, SQLite's included.
		if s.ckpt != nil {
			errs = append(errs, s.ckpt.file.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

//go:embed migrations/*.sqlite.up.sql
var migrationFS embed.FS

var migrations = migrate.MustLoad(migrationFS, "migrations", "sqlite")

// MigrationVersion is the schema version this package brings a database to.
var MigrationVersion = migrations[len(migrations)-1].Version

// Migrate applies the migrations the database lacks, all in one
// transaction, so processes starting at once apply each exactly once.
func (s *Store) Migrate(ctx context.Context) error { return s.migrate(ctx, MigrationVersion) }

// migrate applies the migrations the database lacks up to version upTo.
// The one that keys token hashes also notes, in this handle's memory, the
// rows it leaves for the Service to rehash.
func (s *Store) migrate(ctx context.Context, upTo int) error {
	var legacy *legacyTokens
	err := s.write(ctx, func(t *wtx) error {
		legacy = nil // a batch may run this again
		if _, err := t.script(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at INTEGER NOT NULL DEFAULT (unixepoch())
		) STRICT`); err != nil {
			return err
		}
		var have int
		if err := t.queryRow(`SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return err
		}
		pending, err := migrate.Pending(migrations, have)
		if err != nil {
			return err
		}
		for _, m := range pending {
			if m.Version > upTo {
				break
			}
			if _, err := t.script(m.SQL); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if _, err := t.script(`INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if m.Version == keyedHashesVersion {
				var err error
				if legacy, err = findLegacyTokens(t); err != nil {
					return fmt.Errorf("%s: %w", m.Name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if legacy != nil {
		s.legacy.set(legacy)
	}
	return nil
}

// commitWith is returned by a transaction's function to commit it and
// still return err, for the methods that change something on failure.
type commitWith struct{ err error }

func (c commitWith) Error() string { return c.err.Error() }

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

// step converts a TOTP step for its INTEGER column. Steps are seconds since
// T0 over the period, far below 2^63 for any real clock, so a larger one is
// invalid input (EINVALID, as in every store), not a replay.
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
