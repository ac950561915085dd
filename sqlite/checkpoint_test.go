package sqlite_test

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa/sqlite"
)

// TestCheckpointsKeepWALSmall writes without a pause, from many
// goroutines, as a loaded server does. The writer never checkpoints on its
// own, so only the checkpointer, with the last pass it hands the writer,
// keeps the WAL from growing with every commit: the WAL must start over
// and stay small, and every write must still be there.
func TestCheckpointsKeepWALSmall(t *testing.T) {
	defer sqlite.SetCheckpointing(5*time.Millisecond, 64)()
	path := tempPath(t)
	s := MustOpen(t, path)
	const workers, each = 16, 1000
	var wg sync.WaitGroup
	var maxWAL int64
	var mu sync.Mutex
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Hit(t.Context(), fmt.Sprintf("key-%d-%d", w, i), time.Hour, now0); err != nil {
					t.Errorf("Hit = %v", err)
					return
				}
				if fi, err := os.Stat(path + "-wal"); err == nil {
					mu.Lock()
					maxWAL = max(maxWAL, fi.Size())
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	// 16 000 commits of a row each, in batches: unchecked, the WAL grows to
	// ~140 MB. With a restart at 64 pages, it holds only what is written
	// between two passes and the writer's turn to run the last one.
	const bound = 16 << 20
	if maxWAL > bound {
		t.Errorf("WAL reached %d bytes, want at most %d: it never started over", maxWAL, bound)
	}
	for w := range workers {
		for i := range each {
			n, err := s.Hit(t.Context(), fmt.Sprintf("key-%d-%d", w, i), time.Hour, now0)
			if err != nil || n != 2 {
				t.Fatalf("Hit(key-%d-%d) = %d, %v; want 2: a write was lost", w, i, n, err)
			}
		}
	}
}
