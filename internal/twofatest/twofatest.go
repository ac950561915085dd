// Package twofatest builds what tests need: a real Service on a new
// SQLite database with an injected clock, for the edges (web, client), and
// a PostgreSQL schema of a test's own, for every test that runs on
// PostgreSQL.
package twofatest

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/testenv"
	"github.com/twofa/twofa/postgres"
	"github.com/twofa/twofa/seal"
	"github.com/twofa/twofa/sqlite"
)

// Clock is an injected clock that tests move by hand.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at 2026-03-01 12:00 UTC, a whole TOTP step
// boundary, so codes of "now" and "now+30s" are distinct steps.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock on.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// Open returns a Service on a new SQLite database at path, with a new
// one-key keyring and the clock c. The caller closes the store.
func Open(ctx context.Context, path string, c *Clock) (*twofa.Service, *sqlite.Store, error) {
	svc, st, _, err := openKeys(ctx, path, c)
	return svc, st, err
}

func openKeys(ctx context.Context, path string, c *Clock) (*twofa.Service, *sqlite.Store, *seal.Keyring, error) {
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := seal.GenerateKey()
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	kr, err := seal.NewKeyring(1, map[uint32][]byte{1: key})
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	svc, err := twofa.NewService(ctx, st, kr, twofa.Options{Now: c.Now})
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return svc, st, kr, nil
}

// NewService is Open in tb's temporary directory with a NewClock; the
// store closes when the test ends. It returns the database's path too.
func NewService(tb testing.TB) (*twofa.Service, *sqlite.Store, *Clock, string) {
	tb.Helper()
	svc, st, c, _, path := newService(tb)
	return svc, st, c, path
}

// NewServiceKeys is NewService, returning the keyring the Service seals
// with instead of the path, for tests that open what it queued in its
// outbox (Outbox, LastCode).
func NewServiceKeys(tb testing.TB) (*twofa.Service, *sqlite.Store, *Clock, *seal.Keyring) {
	tb.Helper()
	svc, st, c, kr, _ := newService(tb)
	return svc, st, c, kr
}

func newService(tb testing.TB) (*twofa.Service, *sqlite.Store, *Clock, *seal.Keyring, string) {
	tb.Helper()
	c := NewClock()
	path := filepath.Join(tb.TempDir(), "twofa.db")
	svc, st, kr, err := openKeys(context.Background(), path, c)
	if err != nil {
		tb.Fatalf("twofatest: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return svc, st, c, kr, path
}

// PostgresDSN creates a schema of the test's own in the test database, and
// returns a DSN whose connections use it, so that parallel tests and
// reruns never share tables. The database is TWOFA_TEST_POSTGRES_DSN's
// (without it the test skips, or fails under TWOFA_TEST_REQUIRE_ALL=1).
// The schema is dropped when the test ends, unless
// TWOFA_TEST_KEEP_SCHEMA=1 asks to keep it for a look afterwards.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn := testenv.Getenv(tb, "TWOFA_TEST_POSTGRES_DSN")
	schema := "twofa_test_" + strings.ToLower(rand.Text()[:12])
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	ident := pgx.Identifier{schema}.Sanitize()
	if err := exec("CREATE SCHEMA " + ident); err != nil {
		tb.Fatalf("twofatest: creating a schema in TWOFA_TEST_POSTGRES_DSN's database: %v", err)
	}
	tb.Cleanup(func() {
		if os.Getenv("TWOFA_TEST_KEEP_SCHEMA") == "1" {
			tb.Logf("kept schema %s", schema)
			return
		}
		if err := exec("DROP SCHEMA " + ident + " CASCADE"); err != nil {
			tb.Errorf("twofatest: dropping schema %s: %v", schema, err)
		}
	})
	return withSearchPath(tb, dsn, schema)
}

// withSearchPath adds search_path to a URL or key=value DSN.
func withSearchPath(tb testing.TB, dsn, schema string) string {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("TWOFA_TEST_POSTGRES_DSN: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// OpenPostgres opens a store on a new schema (see PostgresDSN), closed
// when the test ends, and returns it with the schema's DSN.
func OpenPostgres(tb testing.TB) (*postgres.Store, string) {
	tb.Helper()
	dsn := PostgresDSN(tb)
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("postgres.Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, dsn
}
