// Package twofatest builds what tests of the edges (web, client) need: a
// real Service on a new SQLite database with an injected clock.
package twofatest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa"
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
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	key, err := seal.GenerateKey()
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	kr, err := seal.NewKeyring(1, map[uint32][]byte{1: key})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	svc, err := twofa.NewService(ctx, st, kr, twofa.Options{Now: c.Now})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return svc, st, nil
}

// NewService is Open in tb's temporary directory with a NewClock; the
// store closes when the test ends. It returns the database's path too.
func NewService(tb testing.TB) (*twofa.Service, *sqlite.Store, *Clock, string) {
	tb.Helper()
	c := NewClock()
	path := filepath.Join(tb.TempDir(), "twofa.db")
	svc, st, err := Open(context.Background(), path, c)
	if err != nil {
		tb.Fatalf("twofatest: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return svc, st, c, path
}
