package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/web"
)

// queueTestMessages adds three messages to the database in dir, through
// the store: acme's msg_failed (failed) and msg_waiting (queued), and
// globex's msg_sent (sent). Their payloads hold an address and a code
// that no output may show.
func queueTestMessages(t *testing.T, dir string) {
	t.Helper()
	svc, st := openTestService(t, dir)
	defer st.Close()
	queueMessages(t, svc, st)
}

// openTestService opens the Service on the data directory dir, as the
// commands do.
func openTestService(t *testing.T, dir string) (*twofa.Service, store) {
	t.Helper()
	c := &config{data: dir, logLevel: "error"}
	e := &env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}
	svc, st, err := c.open(context.Background(), e, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return svc, st
}

// queueMessages adds queueTestMessages's messages through st.
func queueMessages(t *testing.T, svc *twofa.Service, st store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	// No Service method queues a bare message; the events are linked
	// with a chain of the test's own, which no test here verifies.
	chain := twofa.NewAuditChain(make([]byte, 32))
	for _, m := range []struct {
		id     string
		ref    twofa.UserRef
		status twofa.MessageStatus
	}{
		{"msg_failed", twofa.UserRef{Tenant: "acme", User: "alice"}, twofa.MessageFailed},
		{"msg_waiting", twofa.UserRef{Tenant: "acme", User: "bob"}, twofa.MessageQueued},
		{"msg_sent", twofa.UserRef{Tenant: "globex"}, twofa.MessageSent},
	} {
		msg := twofa.NewMessage(m.ref, twofa.ChannelEmail, twofa.KindCode, now)
		msg.ID = m.id
		if m.status == twofa.MessageQueued {
			msg.NextAt = now.Add(time.Hour) // waiting for a retry, unclaimed below
		}
		if err := svc.SealMessage(msg, twofa.MessageBody{To: "secret-address@example.com", Code: "73918264"}); err != nil {
			t.Fatal(err)
		}
		e := chain.Prepare(&twofa.AuditEvent{Time: now, Type: "test", Tenant: m.ref.Tenant, User: m.ref.User, Messages: []*twofa.Message{msg}})
		if err := st.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		if m.status == twofa.MessageQueued {
			continue
		}
		if _, err := st.ClaimMessages(ctx, []twofa.Channel{twofa.ChannelEmail}, now, time.Minute, "lease_"+m.id, 1); err != nil {
			t.Fatal(err)
		}
		if ok, err := st.FinishMessage(ctx, m.id, "lease_"+m.id, m.status, time.Time{}, "550 mailbox unavailable", now, nil); !ok || err != nil {
			t.Fatalf("FinishMessage(%s) = %t, %v", m.id, ok, err)
		}
	}
}

// TestRun_Outbox drives twofa outbox as an operator would: find what is
// stuck, retry it.
func TestRun_Outbox(t *testing.T) {
	dir := t.TempDir()
	queueTestMessages(t, dir)
	data := func(args ...string) []string { return append(args, "--data", dir) }
	for _, tt := range []struct {
		name       string
		args       []string
		want       []string // in stdout and stderr, spaces collapsed
		dont       []string // nowhere
		wantStatus int
	}{
		{"List", data("outbox", "list"), []string{"msg_failed", "msg_waiting", "msg_sent", "550 mailbox unavailable", "STATUS"}, nil, 0},
		{"Failed", data("outbox", "list", "--failed"), []string{"msg_failed acme alice email code failed"}, []string{"msg_waiting", "msg_sent"}, 0},
		{"Tenant", data("outbox", "list", "--tenant", "globex"), []string{"msg_sent"}, []string{"msg_failed", "msg_waiting"}, 0},
		{"Limit", data("outbox", "list", "--limit", "1"), []string{"msg_sent", "--before msg_sent"}, []string{"msg_waiting"}, 0},
		{"Before", data("outbox", "list", "--before", "msg_waiting"), []string{"msg_failed"}, []string{"msg_sent"}, 0},
		{"BadLimit", data("outbox", "list", "--limit", "0"), []string{"--limit must be 1 to 1000"}, nil, 2},
		{"ExtraArgument", data("outbox", "list", "failed"), nil, nil, 2},
		{"RetrySent", data("outbox", "retry", "msg_sent"), []string{"was sent"}, nil, 1},
		{"RetryUnknown", data("outbox", "retry", "msg_unknown"), []string{"no such message"}, nil, 1},
		{"RetryNoID", data("outbox", "retry"), nil, nil, 2},
		{"Retry", data("outbox", "retry", "msg_failed"), []string{"queued msg_failed"}, nil, 0},
		{"NoneFailedAfterRetry", data("outbox", "list", "--failed"), []string{"STATUS"}, []string{"msg_failed"}, 0},
		{"RetriedIsQueued", data("outbox", "list", "--tenant", "acme"), []string{"msg_failed acme alice email code queued"}, nil, 0},
		{"Help", []string{"outbox"}, []string{"list", "retry"}, nil, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, status := runCLI(t, "", tt.args...)
			all := strings.Join(strings.Fields(out+errOut), " ") // columns as single spaces
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d; stdout %q, stderr %q", status, tt.wantStatus, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q: stdout %q, stderr %q", w, out, errOut)
				}
			}
			for _, d := range append(tt.dont, "secret-address", "73918264") {
				if strings.Contains(all, d) {
					t.Errorf("output holds %q: stdout %q, stderr %q", d, out, errOut)
				}
			}
		})
	}
}

// sendFunc is a Sender of a function.
type sendFunc func(context.Context, *twofa.Outgoing) error

func (f sendFunc) Send(ctx context.Context, m *twofa.Outgoing) error { return f(ctx, m) }

// TestStartOutbox: the worker twofa serve runs sends with the senders it
// is given, counts its tries for /metrics, and stops with its context.
func TestStartOutbox(t *testing.T) {
	svc, st := openTestService(t, t.TempDir())
	defer st.Close()
	queueMessages(t, svc, st) // msg_waiting is queued, due in an hour
	if err := st.RetryMessage(context.Background(), "msg_waiting", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	got := make(chan *twofa.Outgoing, 10)
	senders := map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: sendFunc(func(_ context.Context, m *twofa.Outgoing) error {
		got <- m
		return nil
	})}
	logs := &syncBuffer{}
	sends := web.NewSendCounter()
	ctx, cancel := context.WithCancel(context.Background())
	wait := startOutbox(ctx, svc, slog.New(slog.NewJSONHandler(logs, nil)), senders, sends, 0)
	select {
	case m := <-got:
		if m.ID != "msg_waiting" || m.Body.Code != "73918264" {
			t.Errorf("sent %s with code %q, want msg_waiting and its code", m.ID, m.Body.Code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the worker sent nothing")
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		ms, err := st.Messages(context.Background(), twofa.MessageFilter{ID: "msg_waiting"})
		if err == nil && len(ms) == 1 && ms[0].Status == twofa.MessageSent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("msg_waiting was not recorded as sent: %v, %v", ms, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wait()
	if !strings.Contains(logs.String(), `"channels":["email"]`) {
		t.Errorf("log does not name the channels sent: %s", logs)
	}
	w := httptest.NewRecorder()
	web.NewHandler(svc, web.Options{Sends: sends}).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if want := `twofa_outbox_sends_total{channel="email",outcome="sent"} 1`; !strings.Contains(w.Body.String(), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	// No sender: the worker waits, says so, and stops with its context.
	logs = &syncBuffer{}
	ctx, cancel = context.WithCancel(context.Background())
	wait = startOutbox(ctx, svc, slog.New(slog.NewJSONHandler(logs, nil)), nil, nil, 0)
	cancel()
	wait()
	if !strings.Contains(logs.String(), "no senders configured") {
		t.Errorf("log does not say no senders are configured: %s", logs)
	}
}
