package sqlite_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofa/twofa/sqlite"
)

// TestCheckpointsKeepWALSmall writes without a pause, from many
// goroutines, as a loaded server does. The writer never checkpoints on its
// own, so only the checkpointer, with the last pass it hands the writer,
// keeps the WAL from growing with every commit: the WAL must start over
// again and again, its file must stay far smaller than what was written
// to it, and every write must still be there.
//
// How large the WAL gets between two restarts depends on the machine (how
// much is written while a pass and its fsyncs run), so the test counts
// restarts rather than time, and bounds the WAL against the bytes written
// in the same run rather than against a size.
func TestCheckpointsKeepWALSmall(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the bytes written from /proc/self/io")
	}
	defer sqlite.SetCheckpointing(5*time.Millisecond, 64)()
	path := tempPath(t)
	s := MustOpen(t, path)
	wal, err := os.Open(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer wal.Close()

	const (
		workers  = 16
		restarts = 100     // how many times the WAL must start over
		maxBytes = 1 << 30 // written before giving up: unchecked, the WAL would be as large
	)
	seq0, written0 := walSequence(t, wal), bytesWritten(t)
	var stop atomic.Bool
	var counts [workers]int
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for ; !stop.Load(); counts[w]++ {
				if _, err := s.Hit(t.Context(), fmt.Sprintf("key-%d-%d", w, counts[w]), time.Hour, now0); err != nil {
					t.Errorf("Hit = %v", err)
					stop.Store(true)
					return
				}
			}
		})
	}
	deadline := time.Now().Add(2 * time.Minute)
	var seq uint32
	var written int64
	for !stop.Load() {
		time.Sleep(5 * time.Millisecond)
		seq, written = walSequence(t, wal)-seq0, bytesWritten(t)-written0
		if seq >= restarts || written >= maxBytes || time.Now().After(deadline) {
			stop.Store(true)
		}
	}
	wg.Wait()
	seq, written = walSequence(t, wal)-seq0, bytesWritten(t)-written0
	fi, err := wal.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// The file never shrinks: its size is the most the WAL ever held.
	size := fi.Size()
	t.Logf("%d writes, %d WAL restarts, %d MB written, WAL file %d MB", sum(counts[:]), seq, written>>20, size>>20)
	if seq < restarts {
		t.Errorf("the WAL started over %d times while %d MB were written, want %d: the checkpoints do not keep up", seq, written>>20, restarts)
	}
	// Without restarts the WAL holds every byte written (the rest written
	// is the checkpoints' copies, fewer). With them it holds what is
	// written while one pass runs: a small share of the whole, unless a
	// pass is held up for a good part of the run.
	if size > written/3 {
		t.Errorf("WAL file of %d bytes after %d bytes written, want at most a third: it does not stay small", size, written)
	}
	for w := range workers {
		for i := range counts[w] {
			n, err := s.Hit(t.Context(), fmt.Sprintf("key-%d-%d", w, i), time.Hour, now0)
			if err != nil || n != 2 {
				t.Fatalf("Hit(key-%d-%d) = %d, %v; want 2: a write was lost", w, i, n, err)
			}
		}
	}
}

// walSequence reads the checkpoint sequence number from a WAL's header,
// which SQLite increments every time the WAL starts over
// (https://sqlite.org/fileformat2.html#walformat).
func walSequence(t *testing.T, wal *os.File) uint32 {
	t.Helper()
	var h [16]byte
	if _, err := wal.ReadAt(h[:], 0); err != nil {
		t.Fatalf("reading the WAL header: %v", err)
	}
	return binary.BigEndian.Uint32(h[12:16])
}

// bytesWritten is what this process has written to files so far.
func bytesWritten(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("/proc/self/io: %q", sc.Text())
			}
			return n
		}
	}
	t.Fatal("/proc/self/io: no wchar line")
	return 0
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
