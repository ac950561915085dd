package sqlite_test

import (
	"testing"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/sqlite"
	"github.com/twofa/twofa/storetest"
)

// TestUpgrade runs the conformance suite's upgrade cases on one database
// file, opened at the versions they ask for.
func TestUpgrade(t *testing.T) {
	path := tempPath(t)
	storetest.RunUpgrade(t, func(t *testing.T, version int) twofa.Store {
		s, err := sqlite.OpenVersion(t.Context(), path, version)
		if err != nil {
			t.Fatalf("OpenVersion(%d) = %v", version, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
