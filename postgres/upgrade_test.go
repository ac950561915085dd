package postgres_test

import (
	"testing"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/postgres"
	"github.com/twofa/twofa/storetest"
)

// TestUpgrade runs the conformance suite's upgrade cases in one schema,
// opened at the versions they ask for.
func TestUpgrade(t *testing.T) {
	dsn := testDSN(t)
	storetest.RunUpgrade(t, func(t *testing.T, version int) twofa.Store {
		s, err := postgres.OpenVersion(t.Context(), dsn, version)
		if err != nil {
			t.Fatalf("OpenVersion(%d) = %v", version, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
