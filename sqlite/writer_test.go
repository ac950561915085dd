package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestBatchUndoesFailures runs writes together, in batches, some of which
// fail before writing and some after: every failed write leaves nothing,
// every other write stands, and each caller gets its own outcome. Writes
// that fail after writing make the writer run their batch again with
// savepoints, which the test checks happened.
func TestBatchUndoesFailures(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "twofa.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := replays.Load()
	errLate, errEarly := errors.New("failed after writing"), errors.New("failed before writing")
	const n = 600
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.write(context.Background(), func(t *wtx) error {
				if i%5 == 1 {
					return errEarly
				}
				if _, err := t.exec(`INSERT INTO limits (key, window_start, window_end, count) VALUES (?, 0, 1, 1)`, fmt.Sprint("k", i)); err != nil {
					return err
				}
				if i%5 == 2 {
					return errLate
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		want := error(nil)
		switch i % 5 {
		case 1:
			want = errEarly
		case 2:
			want = errLate
		}
		if err != want {
			t.Errorf("write %d = %v, want %v", i, err, want)
		}
		var count int
		err = s.r.QueryRow(`SELECT count(*) FROM limits WHERE key = ?`, fmt.Sprint("k", i)).Scan(&count)
		if wantRow := want == nil; err != nil || (count == 1) != wantRow {
			t.Errorf("write %d: %d rows (%v), want the row: %v", i, count, err, wantRow)
		}
	}
	if replays.Load() == before {
		t.Error("no batch was run again with savepoints: the test did not batch")
	}
}

// TestBatchSQLiteErrorReruns checks that a function failing with an error
// of SQLite's, even in a read, makes the batch run again with savepoints:
// SQLite may have rolled the whole transaction back under it.
func TestBatchSQLiteErrorReruns(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "twofa.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := replays.Load()
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.write(context.Background(), func(t *wtx) error {
				if i%10 == 3 {
					rows, err := t.query(`SELECT * FROM no_such_table`)
					if err == nil {
						rows.Close()
					}
					return err
				}
				_, err := t.exec(`INSERT INTO limits (key, window_start, window_end, count) VALUES (?, 0, 1, 1)`, fmt.Sprint("k", i))
				return err
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i%10 == 3) {
			t.Errorf("write %d = %v", i, err)
		}
	}
	var count int
	if err := s.r.QueryRow(`SELECT count(*) FROM limits`).Scan(&count); err != nil || count != n-n/10 {
		t.Errorf("%d rows (%v), want %d", count, err, n-n/10)
	}
	if replays.Load() == before {
		t.Error("no batch was run again after SQLite's error")
	}
}
