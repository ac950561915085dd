package sqlite

import (
	"context"
	"database/sql"
	"os"
	"time"
)

// Checkpoints.
//
// A checkpoint copies the pages the WAL holds back into the database file
// and syncs both; once the WAL is wholly copied, the next write starts it
// over from its beginning. Left to SQLite, the writer runs a checkpoint
// inline after the commit that takes the WAL past 1000 pages, and every
// write queued behind it waits for the copy and two fsyncs: at 15 000
// verifications a second that was 24 stalls of ~10 ms a second, a quarter
// of the writer's time and most of the tail latency.
//
// So the writer never checkpoints on its own (wal_autocheckpoint=0). A
// goroutine with a connection of its own runs a PASSIVE checkpoint every
// checkpointEvery, which never blocks the writer or the readers, on
// another processor: it copies what the WAL holds while the writer goes
// on appending. The WAL starts over only when a write begins with the WAL
// wholly copied, which a copy made alongside a writer that never pauses
// never achieves, and the WAL would grow without end; so now and then the
// checkpointer hands a last pass to the writer, which runs it between two
// batches, with nothing else written meanwhile, on
// the checkpointer's connection: a short copy and two fsyncs. The WAL is
// then wholly copied and the next batch starts it over. That is done once
// the WAL reaches restartPages, so the WAL stays near 16 MiB.
//
// The fsync of the database file in that last pass would write every page
// the background passes copied since the last one (25 ms here, for 16 MiB
// of pages strewn over the file); so after each background pass the
// checkpointer fsyncs the database file itself, through a descriptor of
// its own, and the last pass syncs only the few pages it copied (~5 ms).
//
// Both connections run with synchronous=NORMAL, the checkpoints syncing
// the WAL before copying and the database file after, so nothing of
// SQLite's durability changes; only who waits for it.
// Variables for tests.
var (
	checkpointEvery = 50 * time.Millisecond
	restartPages    = 4096
)

// checkpointer runs background checkpoints until Close.
type checkpointer struct {
	file    *os.File // the database file, for fsyncs of its own
	every   time.Duration
	restart int // pages
	db      *sql.DB
	final   chan<- func() // the writer's: run between batches
	quit    chan struct{}
	stopped chan struct{}
}

func startCheckpointer(ctx context.Context, path string, db *sql.DB, final chan<- func()) (*checkpointer, error) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	// A connection sees the WAL only once it has read the database; until
	// then a checkpoint finds nothing to do.
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		return nil, err
	}
	// The descriptor is closed only by Store.Close, after every
	// connection (see checkpointer.close); if this fails, Open closes the
	// connections and nothing holds it.
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	c := &checkpointer{file: f, every: checkpointEvery, restart: restartPages, db: db, final: final, quit: make(chan struct{}), stopped: make(chan struct{})}
	go c.run()
	return c, nil
}

// pass runs one PASSIVE checkpoint and returns the WAL's pages and how
// many of them are copied. A failure (SQLITE_BUSY while another process
// checkpoints, say) only means a later pass does the work.
func (c *checkpointer) pass() (wal, copied int, err error) {
	var busy int
	err = c.db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &wal, &copied)
	return wal, copied, err
}

func (c *checkpointer) run() {
	defer close(c.stopped)
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
		}
		// A pass copies the WAL as it was when the pass began: while it
		// ran, the writer went on appending, so copied == wal does not
		// mean the WAL is copied now.
		wal, _, err := c.pass()
		if err != nil || wal == 0 {
			continue
		}
		// Only speed is at stake: SQLite syncs for itself where it must.
		c.file.Sync()
		if wal < c.restart {
			continue
		}
		done := make(chan struct{})
		select {
		case c.final <- func() { c.pass(); close(done) }:
			<-done
		case <-c.quit:
			return
		}
	}
}

// close stops the goroutine and closes its connection. The file stays
// open: closing a descriptor of the database drops every POSIX lock the
// process holds on it, SQLite's too, so the Store closes it after its
// connections (Store.Close).
func (c *checkpointer) close() error {
	close(c.quit)
	<-c.stopped
	return c.db.Close()
}
