package twofa_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/postgres"
	"github.com/twofa/twofa/seal"
	"github.com/twofa/twofa/sqlite"
)

// The environment of TestDeliverOutbox_Worker, the worker process that
// TestDeliverOutbox_KillNine starts and kills.
const (
	envWorker     = "TWOFA_TEST_OUTBOX_WORKER" // "sqlite" or "postgres"
	envWorkerDB   = "TWOFA_TEST_OUTBOX_DB"     // the database's path or DSN
	envWorkerKeys = "TWOFA_TEST_OUTBOX_KEYS"   // the keyring
	envWorkerOut  = "TWOFA_TEST_OUTBOX_OUT"    // the file the sender appends each message's ID to
)

// crashLease is the worker process's lease: short, so the test need not
// wait long for the messages a killed worker held.
const crashLease = 2 * time.Second

// TestDeliverOutbox_Worker is not a test: it is the worker process of
// TestDeliverOutbox_KillNine, and runs only in it.
func TestDeliverOutbox_Worker(t *testing.T) {
	kind := os.Getenv(envWorker)
	if kind == "" {
		t.Skip("the worker process of TestDeliverOutbox_KillNine")
	}
	ctx := context.Background()
	var st twofa.Store
	var err error
	if kind == "sqlite" {
		st, err = sqlite.Open(ctx, os.Getenv(envWorkerDB))
	} else {
		st, err = postgres.Open(ctx, os.Getenv(envWorkerDB))
	}
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.ParseKeyring(os.Getenv(envWorkerKeys))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := twofa.NewService(ctx, st, keys, twofa.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(os.Getenv(envWorkerOut), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// A send: a moment on the wire, then the line. A kill after the
	// write and before the row is marked sent sends the message again.
	var mu sync.Mutex
	send := sendFunc(func(_ context.Context, m *twofa.Outgoing) error {
		time.Sleep(time.Duration(1+rand.IntN(4)) * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		_, err := out.WriteString(m.ID + "\n") // O_APPEND: one write, whole
		return err
	})
	err = svc.DeliverOutbox(ctx, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: send},
		twofa.DeliverOptions{Lease: crashLease, SendTimeout: time.Second, Poll: 10 * time.Millisecond})
	t.Fatalf("DeliverOutbox returned %v; it runs until killed", err)
}

// sendFunc is a Sender of a function.
type sendFunc func(context.Context, *twofa.Outgoing) error

func (f sendFunc) Send(ctx context.Context, m *twofa.Outgoing) error { return f(ctx, m) }

func TestDeliverOutbox_KillNine(t *testing.T) {
	// A worker process killed 20 times while it sends: afterwards every
	// message was sent, none lost, and a message sent more than once was
	// one a killed worker had sent and not yet marked.
	if testing.Short() {
		t.Skip("starts and kills 21 processes")
	}
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, where := open(t)
		f := newFixture(t, store, nil)
		f.clock.Add(time.Since(f.clock.Now())) // the workers use the real clock
		const n, kills, concurrency = 400, 20, 8
		want := map[string]bool{}
		for range n {
			want[f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress}).ID] = true
		}
		kind := "postgres"
		if _, ok := f.store.(*sqlite.Store); ok {
			kind = "sqlite"
		}
		testKeysMu.Lock()
		spec := "1:" + base64.StdEncoding.EncodeToString(testKeys[f.keys][1])
		testKeysMu.Unlock()
		out := filepath.Join(t.TempDir(), "sent")
		start := func() *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^TestDeliverOutbox_Worker$", "-test.count=1")
			cmd.Env = append(os.Environ(), envWorker+"="+kind, envWorkerDB+"="+where, envWorkerKeys+"="+spec, envWorkerOut+"="+out)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			return cmd
		}
		kill := func(cmd *exec.Cmd) {
			cmd.Process.Kill() // SIGKILL: no deferred call, no cleanup
			cmd.Wait()
		}
		for range kills {
			cmd := start()
			time.Sleep(time.Duration(150+rand.IntN(250)) * time.Millisecond)
			kill(cmd)
		}
		// One last worker, left to finish once the dead ones' leases run out.
		cmd := start()
		deadline := time.Now().Add(60 * time.Second)
		for {
			st, err := f.store.OutboxStats(context.Background())
			if err == nil && st.Sent == n {
				break
			}
			if time.Now().After(deadline) {
				kill(cmd)
				t.Fatalf("not every message was sent: %+v, %v", st, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		kill(cmd)

		file, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		count := map[string]int{}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			id := strings.TrimSpace(sc.Text())
			if !want[id] {
				t.Errorf("sent %q, which no one queued", id)
			}
			count[id]++
		}
		dups := 0
		for id := range want {
			switch c := count[id]; {
			case c == 0:
				t.Errorf("message %s was never sent", id)
			case c > 1:
				dups += c - 1
			}
		}
		// Each kill can catch at most a worker's sends under way between
		// their line and their row.
		if dups > kills*concurrency {
			t.Errorf("%d repeated sends, want at most %d (%d kills, %d sends at once)", dups, kills*concurrency, kills, concurrency)
		}
		t.Logf("%d messages, %d kills: every message sent, %d sent again after a kill", n, kills, dups)
	})
}
