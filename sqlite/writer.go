package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	msqlite "modernc.org/sqlite"
)

// Group commit.
//
// One goroutine, the writer, owns the write connection. A write method
// hands it a function of a transaction and waits. The writer takes every
// request that is pending (up to maxBatch), runs BEGIN IMMEDIATE, runs
// each function in turn, and then COMMITs once; only then does it answer
// the callers. A function that fails is undone, so only its caller sees
// its error and the functions after it see the database as if it had
// never run: one that failed before writing anything has nothing to undo;
// if one fails after writing, the whole batch is rolled back and run
// again with each function inside a SAVEPOINT of its own, rolled back to
// on failure (runPlain). Every
// function runs after the previous one in the same transaction, so each
// sees the effects of those before it, as if they had run one after
// another, which is what the compare-and-sets, the attempt counts and the
// audit chain rely on. If BEGIN or COMMIT fails, every caller of the batch
// gets the error and nothing of the batch is written.
//
// There is no timer: a request arriving at an idle writer is committed at
// once, alone; requests arriving while a batch commits form the next one.
//
// The functions run under the writer's context, never a caller's: the
// driver interrupts a statement whose context ends, and SQLite may then
// roll back the whole transaction, so one caller giving up could undo
// the work of the others. A caller whose context ends before its function
// has begun is dropped from the batch; one that gives up later gets its
// context's error, while its function may still commit.

// maxBatch bounds the functions committed together, so that a commit, and
// the write lock other processes wait for, is never held for long.
const maxBatch = 256

// replays counts the batches run again with savepoints, for tests.
var replays atomic.Int64

// errClosed is returned by writes to a closed store.
var errClosed = errors.New("sqlite: store is closed")

// request is one write waiting for the writer.
type request struct {
	ctx  context.Context
	fn   func(t *wtx) error
	err  error
	pan  any           // a panic of fn, re-raised in the caller
	done chan struct{} // closed once err (and fn's results) are final
}

// writer is the state the writer goroutine owns.
type writer struct {
	reqs    chan *request
	final   chan func()   // checkpoints to run between batches
	quit    chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer has answered its last batch
	tx      wtx
}

// startWriter takes the write pool's one connection for good and starts
// the writer.
func (s *Store) startWriter(ctx context.Context) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	w := &writer{
		reqs:    make(chan *request, 4*maxBatch),
		final:   make(chan func()),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	w.tx = wtx{ctx: context.Background(), conn: conn, stmts: map[string]driver.Stmt{},
		begin: `BEGIN IMMEDIATE`, commit: `COMMIT`, rollback: `ROLLBACK`,
		savepoint: `SAVEPOINT op`, release: `RELEASE op`, rollbackTo: `ROLLBACK TO op`}
	if err := conn.Raw(func(dc any) error {
		if _, ok := dc.(driverConn); !ok {
			return fmt.Errorf("driver connection %T cannot prepare or execute with a context", dc)
		}
		return nil
	}); err != nil {
		conn.Close()
		return err
	}
	s.wr = w
	go s.run()
	return nil
}

// write runs fn in a write transaction, with other writes of the moment,
// and returns once the transaction has committed, or fn's error. fn must
// use only t for the database, and may run after the caller has given up.
func (s *Store) write(ctx context.Context, fn func(t *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := s.wr
	r := &request{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case w.reqs <- r:
	case <-w.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		select {
		case <-r.done: // finished meanwhile: the true outcome
		default:
			return ctx.Err()
		}
	case <-w.stopped:
		select {
		case <-r.done:
		default:
			return errClosed // queued after the last batch
		}
	}
	if r.pan != nil {
		panic(r.pan)
	}
	return r.err
}

// run is the writer goroutine.
func (s *Store) run() {
	w := s.wr
	defer close(w.stopped)
	batch := make([]*request, 0, maxBatch)
	for {
		select {
		case r := <-w.reqs:
			batch = append(batch[:0], r)
		case f := <-w.final:
			f()
			continue
		case <-w.quit:
			return
		}
		// Let the goroutines that are ready to run, such as the callers
		// the last batch answered, queue their writes first: with few
		// processors the writer would otherwise run as soon as one
		// request arrives, and commit batches of one. With nothing else
		// to run, this returns at once.
		runtime.Gosched()
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		w.tx.runBatch(batch)
		clear(batch)
	}
}

// runBatch runs and commits one batch and answers its callers.
func (t *wtx) runBatch(batch []*request) {
	err := t.conn.Raw(func(dc any) error {
		t.dc = dc.(driverConn)
		defer func() { t.dc = nil }()
		t.runBatchRaw(batch)
		return nil
	})
	if err != nil { // the connection is gone: nothing ran
		for _, r := range batch {
			if r != nil && r.err == nil {
				r.err, r.pan = fmt.Errorf("sqlite: write connection: %w", err), nil
			}
		}
	}
	for _, r := range batch {
		if r != nil {
			close(r.done)
		}
	}
}

// runBatchRaw runs and commits one batch on t.dc.
func (t *wtx) runBatchRaw(batch []*request) {
	// Callers who gave up before their turn are dropped.
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	t.head.ok = false
	if _, err := t.exec(t.begin); err != nil {
		t.fail(live, fmt.Errorf("sqlite: begin: %w", err))
		return
	}
	if len(live) == 1 {
		// Alone: the transaction is the function's, with no savepoint.
		r := live[0]
		err := r.call(t)
		var cw commitWith
		if errors.As(err, &cw) {
			r.err = cw.err
		} else if err != nil {
			r.err = err
			t.abort()
			return
		}
		if _, err := t.exec(t.commit); err != nil {
			t.abort()
			r.err, r.pan = fmt.Errorf("sqlite: commit: %w", err), nil
		}
		return
	}
	if t.runPlain(live) {
		return
	}
	// A function failed after writing: the plain run is rolled back and
	// the batch runs again, each function in a savepoint of its own.
	replays.Add(1)
	t.head.ok = false
	if _, err := t.exec(t.begin); err != nil {
		t.fail(live, fmt.Errorf("sqlite: begin: %w", err))
		return
	}
	ok := make([]*request, 0, len(live)) // the functions whose changes stand
	for i, r := range live {
		if err := r.ctx.Err(); err != nil { // gave up while earlier ones ran
			r.err = err
			continue
		}
		if _, err := t.exec(t.savepoint); err != nil {
			t.abort()
			t.fail(append(ok, live[i:]...), fmt.Errorf("sqlite: savepoint: %w", err))
			return
		}
		err := r.call(t)
		keep := true
		var cw commitWith
		if errors.As(err, &cw) {
			r.err = cw.err // its changes stand all the same
		} else if err != nil {
			r.err, keep = err, false
			t.head.ok = false
			if _, rerr := t.exec(t.rollbackTo); rerr != nil {
				// SQLite rolled back the whole transaction (as it may on
				// an I/O error, for one): the batch is lost.
				t.abort()
				t.fail(append(ok, live[i+1:]...), fmt.Errorf("sqlite: batch rolled back: %w", rerr))
				return
			}
		}
		if _, err := t.exec(t.release); err != nil {
			t.abort()
			if keep {
				ok = append(ok, r)
			}
			t.fail(append(ok, live[i+1:]...), fmt.Errorf("sqlite: release savepoint: %w", err))
			return
		}
		if keep {
			ok = append(ok, r)
		}
	}
	if _, err := t.exec(t.commit); err != nil {
		t.abort()
		t.fail(ok, fmt.Errorf("sqlite: commit: %w", err))
	}
}

// runPlain runs the batch's functions one after another with no
// savepoints and commits, and reports whether it did. A savepoint per
// function costs two statements and a copy of every page it changes, and
// is needed only to undo a function that fails after writing, which a
// function rarely does: it checks, then writes, and a write fails only on
// a broken constraint or I/O. A function that fails before writing leaves
// nothing to undo, unless SQLite itself failed under it (an I/O error may
// roll back the whole transaction, even in a read). If one fails after
// writing, or with an error of SQLite's, runPlain rolls the whole
// transaction back and returns false, having answered nobody, and the
// caller runs the batch again with savepoints, each function afresh.
func (t *wtx) runPlain(live []*request) bool {
	ok := make([]*request, 0, len(live))
	for _, r := range live {
		if err := r.ctx.Err(); err != nil { // gave up while earlier ones ran
			r.err = err
			continue
		}
		t.wrote = false
		err := r.call(t)
		var cw commitWith
		switch {
		case err == nil:
		case errors.As(err, &cw):
			r.err = cw.err // its changes stand all the same
		case t.wrote || errors.As(err, new(*msqlite.Error)):
			// Wrote, or SQLite failed under it: on an I/O error, say,
			// SQLite may roll back the whole transaction even in a read,
			// and the functions after it would run outside one.
			t.abort()
			for _, r := range live {
				r.err, r.pan = nil, nil
			}
			return false
		default:
			r.err = err
			continue
		}
		ok = append(ok, r)
	}
	if _, err := t.exec(t.commit); err != nil {
		t.abort()
		t.fail(ok, fmt.Errorf("sqlite: commit: %w", err))
	}
	return true
}

// call runs r's function, catching a panic to re-raise in the caller.
func (r *request) call(t *wtx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.pan = p
			err = fmt.Errorf("sqlite: panic in a write: %v", p)
		}
	}()
	return r.fn(t)
}

// fail gives err to every request of rs, their changes being lost.
func (t *wtx) fail(rs []*request, err error) {
	for _, r := range rs {
		r.err, r.pan = err, nil
	}
}

// abort rolls the transaction back, if SQLite has not already.
func (t *wtx) abort() {
	t.head.ok = false
	t.exec(t.rollback) // "no transaction is active" if SQLite has already rolled back
}
