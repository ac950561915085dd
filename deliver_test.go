package twofa_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/postgres"
	"github.com/twofa/twofa/sqlite"
)

// sendRecorder is a Sender that records what it is given and answers as told.
type sendRecorder struct {
	mu     sync.Mutex
	sent   []twofa.Outgoing
	calls  int
	cur    int // sends under way
	peak   int // the most sends under way at once
	answer func(call int, m *twofa.Outgoing) error
	hold   chan struct{} // when set, each send waits for it to close, or for its context
}

func (r *sendRecorder) Send(ctx context.Context, m *twofa.Outgoing) error {
	r.mu.Lock()
	r.calls++
	call := r.calls
	r.cur++
	r.peak = max(r.peak, r.cur)
	msg := *m.Message
	r.sent = append(r.sent, twofa.Outgoing{Message: &msg, Body: m.Body, Issuer: m.Issuer})
	answer, hold := r.answer, r.hold
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.cur--
		r.mu.Unlock()
	}()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if answer != nil {
		return answer(call, m)
	}
	return nil
}

// count returns how many sends it was given so far.
func (r *sendRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// outgoing returns what it was given, in order.
func (r *sendRecorder) outgoing() []twofa.Outgoing {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

// most returns the most sends it had under way at once.
func (r *sendRecorder) most() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak
}

// ids returns the IDs of the messages it was given, in order.
func (r *sendRecorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, o := range r.sent {
		ids = append(ids, o.ID)
	}
	return ids
}

// outcomes records DeliverOptions.OnSend's calls.
type outcomes struct {
	mu  sync.Mutex
	got []string
}

func (o *outcomes) add(c twofa.Channel, out twofa.SendOutcome) {
	o.mu.Lock()
	o.got = append(o.got, string(c)+" "+string(out))
	o.mu.Unlock()
}

func (o *outcomes) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.got)
}

// runWorker runs DeliverOutbox on svc until stop is called or the test
// ends; stop waits for it to return. Poll defaults to 5 ms here.
func runWorker(t *testing.T, svc *twofa.Service, senders map[twofa.Channel]twofa.Sender, opts twofa.DeliverOptions) (stop func()) {
	t.Helper()
	if opts.Poll == 0 {
		opts.Poll = 5 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.DeliverOutbox(ctx, senders, opts) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("DeliverOutbox = %v, want nil once stopped", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually waits until cond holds, failing the test after 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stored returns the stored message with id.
func stored(t *testing.T, st twofa.Store, id string) *twofa.Message {
	t.Helper()
	ms, err := st.Messages(context.Background(), twofa.MessageFilter{ID: id})
	if err != nil || len(ms) != 1 {
		t.Fatalf("Messages(ID: %s) = %d messages, %v; want it", id, len(ms), err)
	}
	return ms[0]
}

// settled reports whether the message, with the given number of tries
// behind it, is final or waits for a later try (a claimed message is
// due now).
func settled(t *testing.T, f *fixture, id string, attempts int) func() bool {
	return func() bool {
		m := stored(t, f.store, id)
		return m.Attempts == attempts && (m.Status != twofa.MessageQueued || m.NextAt.After(f.clock.Now()))
	}
}

const (
	testAddress = "alice@example.com"
	testCode    = "48151623"
)

// codeBody is a sign-in code for alice, valid 10 minutes from now.
func codeBody(now time.Time) twofa.MessageBody {
	return twofa.MessageBody{To: testAddress, Code: testCode, CodeExpires: now.Add(10 * time.Minute), Purpose: "sign_in"}
}

// queue adds a message for alice to the outbox.
func (f *fixture) queue(t *testing.T, ch twofa.Channel, kind twofa.MessageKind, body twofa.MessageBody) *twofa.Message {
	t.Helper()
	m := twofa.NewMessage(twofa.UserRef{Tenant: "acme", User: "alice"}, ch, kind, f.clock.Now())
	if err := f.svc.QueueMessage(context.Background(), m, body); err != nil {
		t.Fatalf("QueueMessage: %v", err)
	}
	return m
}

// messageEvents returns the audit events of the outbox's types.
func messageEvents(t *testing.T, f *fixture) []*twofa.AuditEvent {
	t.Helper()
	all, err := f.svc.AuditEvents(context.Background(), twofa.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []*twofa.AuditEvent
	for _, e := range all {
		if strings.HasPrefix(string(e.Type), "message_") {
			out = append(out, e)
		}
	}
	return out
}

// wantNoSecrets fails if the audit log, the outbox's rows or the logs
// hold the code or the address. Stop the workers first: the logs are
// read here.
func wantNoSecrets(t *testing.T, f *fixture) {
	t.Helper()
	all, err := f.svc.AuditEvents(context.Background(), twofa.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := f.store.Messages(context.Background(), twofa.MessageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{testCode, testAddress} {
		for _, e := range all {
			if strings.Contains(fmt.Sprintf("%+v", *e), secret) {
				t.Errorf("audit event %s holds %q", e.Type, secret)
			}
		}
		for _, m := range ms {
			if strings.Contains(fmt.Sprintf("%v %s", m.Payload, m.LastError), secret) {
				t.Errorf("message %s holds %q in the clear", m.ID, secret)
			}
		}
		if strings.Contains(f.logs.String(), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

func TestDeliverOutbox_Sends(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		rec, outs := &sendRecorder{}, &outcomes{}
		stop := runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{OnSend: outs.add})

		code := f.queue(t, twofa.ChannelEmail, twofa.KindCode, codeBody(f.clock.Now()))
		notice := twofa.MessageBody{To: testAddress, Event: &twofa.NoticeEvent{Type: twofa.EventDeviceRevoked, Time: f.clock.Now(), Tenant: "acme", User: "alice"}}
		note := f.queue(t, twofa.ChannelEmail, twofa.KindNotice, notice)
		hook := f.queue(t, twofa.ChannelWebhook, twofa.KindEvent, twofa.MessageBody{To: "https://app.example.com/hook"})
		eventually(t, "both emails sent", func() bool {
			return stored(t, f.store, code.ID).Status == twofa.MessageSent && stored(t, f.store, note.ID).Status == twofa.MessageSent
		})
		stop()

		got := map[string]twofa.Outgoing{}
		for _, o := range rec.outgoing() {
			got[o.ID] = o
		}
		if len(got) != 2 || rec.count() != 2 {
			t.Errorf("sender got %q, want the two emails once each", rec.ids())
		}
		if o := got[code.ID]; o.Body.Code != testCode || o.Body.To != testAddress || !o.Body.CodeExpires.Equal(f.clock.Now().Add(10*time.Minute)) ||
			o.Body.Purpose != "sign_in" || o.Kind != twofa.KindCode || o.Issuer != "twofa" || o.Attempts != 1 {
			t.Errorf("sender got the code as %+v, body %+v; want its body, kind code, issuer twofa, first try", o.Message, o.Body)
		}
		if o := got[note.ID]; o.Body.Event == nil || o.Body.Event.Type != twofa.EventDeviceRevoked || o.Kind != twofa.KindNotice {
			t.Errorf("sender got the notice as %+v, body %+v", o.Message, o.Body)
		}
		for _, id := range []string{code.ID, note.ID} {
			m := stored(t, f.store, id)
			if m.Payload != nil || m.KeyID != 0 || !m.SentAt.Equal(f.clock.Now()) || m.LastError != "" || m.Attempts != 1 {
				t.Errorf("sent message %s: Payload %x, KeyID %d, SentAt %v, LastError %q, Attempts %d; want the payload wiped, sent now, first try",
					id, m.Payload, m.KeyID, m.SentAt, m.LastError, m.Attempts)
			}
		}
		// A channel with no sender waits.
		if m := stored(t, f.store, hook.ID); m.Status != twofa.MessageQueued || m.Attempts != 0 {
			t.Errorf("webhook message with no sender: %s after %d tries, want queued, untried", m.Status, m.Attempts)
		}
		evs := messageEvents(t, f)
		if len(evs) != 2 {
			t.Fatalf("outbox audit events = %d, want 2 message_sent", len(evs))
		}
		for _, e := range evs {
			if e.Type != twofa.EventMessageSent || e.Tenant != "acme" || e.User != "alice" || e.Actor != "twofa" ||
				!(strings.Contains(e.Detail, code.ID) || strings.Contains(e.Detail, note.ID)) {
				t.Errorf("audit event %+v; want message_sent of acme/alice by twofa naming the message", *e)
			}
		}
		if got, want := outs.list(), []string{"email sent", "email sent"}; !slices.Equal(got, want) {
			t.Errorf("OnSend calls = %q, want %q", got, want)
		}
		wantNoSecrets(t, f)
	})
}

func TestDeliverOutbox_Retries(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		// The server quotes the recipient, as SMTP servers do.
		transient := errors.New("421 4.7.0 <" + testAddress + "> try again later\r\n")
		rec := &sendRecorder{answer: func(call int, _ *twofa.Outgoing) error {
			if call <= 3 {
				return transient
			}
			return nil
		}}
		outs := &outcomes{}
		stop := runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{OnSend: outs.add})
		m := f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress})

		for try, delay := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute} {
			eventually(t, fmt.Sprintf("try %d to fail", try+1), settled(t, f, m.ID, try+1))
			got := stored(t, f.store, m.ID)
			if want := f.clock.Now().Add(delay); got.Status != twofa.MessageQueued || !got.NextAt.Equal(want) {
				t.Errorf("after failed try %d: %s, due %v; want queued, due %v later", try+1, got.Status, got.NextAt, delay)
			}
			if want := "421 4.7.0 <[recipient]> try again later"; got.LastError != want {
				t.Errorf("LastError = %q, want %q (one line, the address cut out)", got.LastError, want)
			}
			if try == 0 {
				// Not before it is due.
				f.clock.Add(delay - time.Second)
				f.svc.Notify()
				time.Sleep(50 * time.Millisecond)
				if n := rec.count(); n != 1 {
					t.Fatalf("sends before the retry was due = %d, want 1", n)
				}
				delay = time.Second
			}
			f.clock.Add(delay)
			f.svc.Notify()
		}
		eventually(t, "the fourth try to succeed", func() bool { return stored(t, f.store, m.ID).Status == twofa.MessageSent })
		stop()
		if got := stored(t, f.store, m.ID); got.Attempts != 4 || got.Payload != nil {
			t.Errorf("sent after retries: Attempts %d, payload %x; want 4, wiped", got.Attempts, got.Payload)
		}
		for _, o := range rec.outgoing() {
			if o.ID != m.ID {
				t.Errorf("retry sent as %s, want the same ID %s each time", o.ID, m.ID)
			}
		}
		if evs := messageEvents(t, f); len(evs) != 1 || evs[0].Type != twofa.EventMessageSent {
			t.Errorf("outbox audit events = %v, want one message_sent", evs)
		}
		if got, want := outs.list(), []string{"email retry", "email retry", "email retry", "email sent"}; !slices.Equal(got, want) {
			t.Errorf("OnSend calls = %q, want %q", got, want)
		}
		wantNoSecrets(t, f)
	})
}

func TestDeliverOutbox_Fails(t *testing.T) {
	for _, tt := range []struct {
		name    string
		answer  error
		prepare func(t *testing.T, f *fixture, m *twofa.Message) // before the worker starts
		kind    twofa.MessageKind
		calls   int // sends tried
		tries   int
		reason  string
		text    string
		outcome string
	}{
		{
			name:   "Permanent",
			answer: twofa.Permanent(errors.New("550 5.1.1 <" + testAddress + ">: recipient address rejected")),
			kind:   twofa.KindNotice, calls: 1, tries: 1,
			reason: "permanent", text: "550 5.1.1 <[recipient]>: recipient address rejected", outcome: "email failed",
		},
		{
			name:   "GaveUpAfterADay",
			answer: errors.New("dial tcp 192.0.2.25:587: connection refused"),
			prepare: func(t *testing.T, f *fixture, m *twofa.Message) {
				f.clock.Add(24 * time.Hour)
			},
			kind: twofa.KindNotice, calls: 1, tries: 1,
			reason: "gave_up", text: "dial tcp 192.0.2.25:587: connection refused", outcome: "email failed",
		},
		{
			name: "CodeExpired",
			prepare: func(t *testing.T, f *fixture, m *twofa.Message) {
				f.clock.Add(10 * time.Minute)
			},
			kind: twofa.KindCode, calls: 0, tries: 1,
			reason: "expired", text: "the code expired before it could be sent", outcome: "email expired",
		},
		{
			name: "Unreadable",
			prepare: func(t *testing.T, f *fixture, m *twofa.Message) {
				ss := twofa.SealedSecret{Ref: "message:" + m.ID, Message: m, Blob: m.Payload, KeyID: m.KeyID}
				if ok, err := f.store.ReplaceSealed(context.Background(), ss, append([]byte(nil), m.Payload[:len(m.Payload)-1]...), m.KeyID); !ok || err != nil {
					t.Fatalf("ReplaceSealed = %t, %v", ok, err)
				}
			},
			kind: twofa.KindCode, calls: 0, tries: 1,
			reason: "unreadable", text: "the payload does not open", outcome: "email failed",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store, _ := openSQLite(t)
			f := newFixture(t, store, nil)
			m := f.queue(t, twofa.ChannelEmail, tt.kind, codeBody(f.clock.Now()))
			if tt.prepare != nil {
				tt.prepare(t, f, m)
			}
			rec := &sendRecorder{answer: func(int, *twofa.Outgoing) error { return tt.answer }}
			outs := &outcomes{}
			stop := runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{OnSend: outs.add})
			eventually(t, "the message to fail", func() bool { return stored(t, f.store, m.ID).Status == twofa.MessageFailed })
			// Final: not tried again, however long one waits.
			f.clock.Add(48 * time.Hour)
			f.svc.Notify()
			time.Sleep(30 * time.Millisecond)
			stop()

			got := stored(t, f.store, m.ID)
			if got.Attempts != tt.tries || got.LastError != tt.text || got.Payload == nil {
				t.Errorf("failed message: Attempts %d, LastError %q, payload kept %t; want %d, %q, kept (for a retry)",
					got.Attempts, got.LastError, got.Payload != nil, tt.tries, tt.text)
			}
			if n := rec.count(); n != tt.calls {
				t.Errorf("sends = %d, want %d", n, tt.calls)
			}
			evs := messageEvents(t, f)
			if len(evs) != 1 || evs[0].Type != twofa.EventMessageFailed || evs[0].Reason != tt.reason ||
				!strings.Contains(evs[0].Detail, m.ID) || !strings.Contains(evs[0].Detail, tt.text) {
				t.Errorf("outbox audit events = %+v; want one message_failed, reason %s, naming the message and saying %q", evs, tt.reason, tt.text)
			}
			if got, want := outs.list(), []string{tt.outcome}; !slices.Equal(got, want) {
				t.Errorf("OnSend calls = %q, want %q", got, want)
			}
			wantNoSecrets(t, f)
		})
	}
}

func TestDeliverOutbox_LongErrorCut(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	m := f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress})
	long := strings.Repeat("é", 400) // 800 bytes
	rec := &sendRecorder{answer: func(int, *twofa.Outgoing) error { return twofa.Permanent(errors.New(long)) }}
	runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{})
	eventually(t, "the message to fail", func() bool { return stored(t, f.store, m.ID).Status == twofa.MessageFailed })
	got := stored(t, f.store, m.ID).LastError
	if len(got) > 310 || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) || !strings.HasSuffix(got, "…") {
		t.Errorf("LastError of a long error = %d bytes %q; want its start, cut at a character to about 300 bytes, with …", len(got), got)
	}
}

func TestDeliverOutbox_DeadWorker(t *testing.T) {
	// A worker claimed a message and died: the message is due again
	// once the lease runs out, not before.
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		m := f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress})
		claimed, err := f.store.ClaimMessages(context.Background(), []twofa.Channel{twofa.ChannelEmail}, f.clock.Now(), 2*time.Minute, "lease_dead", 10)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("the dead worker's claim = %d messages, %v", len(claimed), err)
		}
		rec := &sendRecorder{}
		runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{})
		f.clock.Add(2*time.Minute - time.Microsecond)
		f.svc.Notify()
		time.Sleep(50 * time.Millisecond)
		if n := rec.count(); n != 0 {
			t.Fatalf("sends while the dead worker's lease ran = %d, want 0", n)
		}
		f.clock.Add(time.Microsecond)
		f.svc.Notify()
		eventually(t, "the message to be sent", func() bool { return stored(t, f.store, m.ID).Status == twofa.MessageSent })
		if got := stored(t, f.store, m.ID); got.Attempts != 2 {
			t.Errorf("Attempts = %d, want 2 (the dead worker's and this one)", got.Attempts)
		}
	})
}

// anotherService returns a Service on a second handle on f's database,
// as another process would have, with f's keys and clock.
func anotherService(t *testing.T, f *fixture, where string) (*twofa.Service, twofa.Store) {
	t.Helper()
	var st interface {
		twofa.Store
		Close() error
	}
	var err error
	switch f.store.(type) {
	case *sqlite.Store:
		st, err = sqlite.Open(context.Background(), where)
	default:
		st, err = postgres.Open(context.Background(), where)
	}
	if err != nil {
		t.Fatalf("opening a second handle: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := twofa.NewService(context.Background(), st, f.keys, twofa.Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return svc, st
}

func TestDeliverOutbox_Replicas(t *testing.T) {
	// Three processes send a burst of 1,000 notices: each once, by one of
	// them.
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, where := open(t)
		f := newFixture(t, store, nil)
		const n = 1000
		var ids []string
		for range n {
			ids = append(ids, f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress}).ID)
		}
		svcs := []*twofa.Service{f.svc}
		for range 2 {
			svc, _ := anotherService(t, f, where)
			svcs = append(svcs, svc)
		}
		var recs []*sendRecorder
		for _, svc := range svcs {
			rec := &sendRecorder{}
			recs = append(recs, rec)
			runWorker(t, svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{Concurrency: 4})
		}
		eventually(t, "every message sent", func() bool {
			st, err := f.store.OutboxStats(context.Background())
			return err == nil && st.Sent == n
		})
		var sent []string
		var each []int
		for _, rec := range recs {
			sent = append(sent, rec.ids()...)
			each = append(each, len(rec.ids()))
		}
		slices.Sort(sent)
		slices.Sort(ids)
		if !slices.Equal(sent, ids) {
			t.Errorf("%d sends (%v by each replica), want each of the %d messages once", len(sent), each, n)
		}
		t.Logf("sends by replica: %v", each)
	})
}

func TestDeliverOutbox_LeaseTakenOver(t *testing.T) {
	// A worker stuck in a send past its lease: another sends the message
	// (the one duplicate the outbox allows, under the same ID), and the
	// stuck worker's late outcome changes nothing.
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, where := open(t)
		f := newFixture(t, store, nil)
		svc2, _ := anotherService(t, f, where)
		m := f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress})
		stuck := &sendRecorder{hold: make(chan struct{})}
		// One send at a time: stuck, it claims nothing more.
		stopStuck := runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: stuck}, twofa.DeliverOptions{Concurrency: 1})
		eventually(t, "the first worker to try", func() bool { return stuck.count() == 1 })

		other := &sendRecorder{}
		runWorker(t, svc2, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: other}, twofa.DeliverOptions{})
		time.Sleep(50 * time.Millisecond)
		if n := other.count(); n != 0 {
			t.Fatalf("the second worker sent %d while the first held the lease, want 0", n)
		}
		f.clock.Add(2 * time.Minute)
		svc2.Notify()
		eventually(t, "the second worker to send", func() bool { return stored(t, f.store, m.ID).Status == twofa.MessageSent })
		close(stuck.hold) // the stuck send succeeds, late
		stopStuck()
		if got := stored(t, f.store, m.ID); got.Attempts != 2 || got.Status != twofa.MessageSent {
			t.Errorf("message: %s after %d tries, want sent after 2", got.Status, got.Attempts)
		}
		if evs := messageEvents(t, f); len(evs) != 1 {
			t.Errorf("outbox audit events = %d, want one message_sent", len(evs))
		}
		if !strings.Contains(f.logs.String(), "lease lost") {
			t.Errorf("the stuck worker's log does not say it lost its lease")
		}
		if a, b := stuck.ids(), other.ids(); len(a) != 1 || len(b) != 1 || a[0] != b[0] {
			t.Errorf("sends = %q and %q, want the one message by each, under one ID", a, b)
		}
	})
}

func TestDeliverOutbox_Notify(t *testing.T) {
	// A message queued with Notify goes out at once, not at the next poll.
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	rec := &sendRecorder{}
	runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{Poll: time.Hour})
	first := f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress})
	eventually(t, "the first message", func() bool { return stored(t, f.store, first.ID).Status == twofa.MessageSent })
	second := f.queue(t, twofa.ChannelEmail, twofa.KindCode, codeBody(f.clock.Now()))
	eventually(t, "the second message, well before the hourly poll", func() bool {
		return stored(t, f.store, second.ID).Status == twofa.MessageSent
	})
}

func TestDeliverOutbox_Concurrency(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	for range 10 {
		f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress})
	}
	rec := &sendRecorder{hold: make(chan struct{})}
	runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{Concurrency: 3})
	eventually(t, "three sends under way", func() bool { return rec.count() == 3 })
	time.Sleep(50 * time.Millisecond)
	if n := rec.count(); n != 3 {
		t.Errorf("sends under way = %d, want Concurrency, 3", n)
	}
	// The others are not claimed while they would wait: no lease runs
	// out unsent.
	if st, err := f.store.OutboxStats(context.Background()); err != nil || st.Queued != 10 {
		t.Fatalf("OutboxStats = %+v, %v", st, err)
	}
	if ms, err := f.store.ClaimMessages(context.Background(), []twofa.Channel{twofa.ChannelEmail}, f.clock.Now(), time.Minute, "lease_probe", 100); err != nil || len(ms) != 7 {
		t.Errorf("messages not claimed by the busy worker = %d, %v; want 7", len(ms), err)
	}
	close(rec.hold)
	f.clock.Add(time.Minute)
	f.svc.Notify()
	eventually(t, "every message sent", func() bool {
		st, err := f.store.OutboxStats(context.Background())
		return err == nil && st.Sent == 10
	})
	if n := rec.most(); n != 3 {
		t.Errorf("most sends at once = %d, want 3", n)
	}
}

func TestDeliverOutbox_Stop(t *testing.T) {
	// Stopped mid-send: the send is interrupted, and the message is due
	// again at once, for the next worker.
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	m := f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress})
	rec := &sendRecorder{hold: make(chan struct{})}
	stop := runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{})
	eventually(t, "the send to start", func() bool { return rec.count() == 1 })
	f.clock.Add(time.Second)
	stop()
	got := stored(t, f.store, m.ID)
	if got.Status != twofa.MessageQueued || got.Attempts != 1 || !got.NextAt.Equal(f.clock.Now()) || !strings.HasPrefix(got.LastError, "interrupted") {
		t.Errorf("after a stop mid-send: %s, %d tries, due %v, LastError %q; want queued, 1, due now (%v), interrupted",
			got.Status, got.Attempts, got.NextAt, got.LastError, f.clock.Now())
	}
	ms, err := f.store.ClaimMessages(context.Background(), []twofa.Channel{twofa.ChannelEmail}, f.clock.Now(), time.Minute, "lease_next", 1)
	if err != nil || len(ms) != 1 {
		t.Errorf("claim by the next worker = %d messages, %v; want the message", len(ms), err)
	}
}

func TestDeliverOutbox_Options(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	senders := map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: &sendRecorder{}}
	for _, opts := range []twofa.DeliverOptions{
		{SendTimeout: 3 * time.Minute},
		{Lease: time.Second, SendTimeout: time.Second},
		{Concurrency: -1},
		{Poll: -time.Second},
	} {
		if err := f.svc.DeliverOutbox(context.Background(), senders, opts); err == nil {
			t.Errorf("DeliverOutbox(%+v) = nil, want an error", opts)
		}
	}
	// No sender: nothing to do until stopped.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := f.svc.DeliverOutbox(ctx, nil, twofa.DeliverOptions{}); err != nil {
		t.Errorf("DeliverOutbox(no senders) = %v, want nil once stopped", err)
	}
}

func TestRotateKeys_Messages(t *testing.T) {
	// Payloads waiting to be sent are re-sealed with everything else,
	// and open under the new key alone.
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		waiting := f.queue(t, twofa.ChannelEmail, twofa.KindCode, codeBody(f.clock.Now()))
		_, total, _, err := f.svc.KeyStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		f.keys = rotatedKeyring(t, f.keys)
		f.svc = f.service(t, f.keys, nil)
		p, err := f.svc.RotateKeys(context.Background(), nil)
		if err != nil || p.Done != total {
			t.Fatalf("RotateKeys = %+v, %v; want all %d values, the message's among them", p, err, total)
		}
		if m := stored(t, f.store, waiting.ID); m.KeyID != 2 {
			t.Errorf("message's KeyID after rotation = %d, want 2", m.KeyID)
		}
		f.svc = f.service(t, newOnlyKeyring(t, f.keys, 2), nil)
		rec := &sendRecorder{}
		runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{})
		eventually(t, "the message to be sent", func() bool { return stored(t, f.store, waiting.ID).Status == twofa.MessageSent })
		if out := rec.outgoing(); len(out) != 1 || out[0].Body.Code != testCode {
			t.Errorf("re-sealed message's code did not survive rotation")
		}
	})
}

func TestDeliverOutbox_UnknownKey(t *testing.T) {
	// A message sealed under a key this process lacks waits for one that
	// has it: keys roll out one replica at a time.
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	old := f.svc
	f.keys = rotatedKeyring(t, f.keys)
	f.svc = f.service(t, f.keys, nil)
	if _, err := f.svc.RotateKeys(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	m := twofa.NewMessage(twofa.UserRef{Tenant: "acme", User: "alice"}, twofa.ChannelEmail, twofa.KindNotice, f.clock.Now())
	if err := old.QueueMessage(context.Background(), m, twofa.MessageBody{To: testAddress}); err != nil { // under key 1
		t.Fatal(err)
	}
	f.svc = f.service(t, newOnlyKeyring(t, f.keys, 2), nil)
	rec := &sendRecorder{}
	stop := runWorker(t, f.svc, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec}, twofa.DeliverOptions{})
	eventually(t, "the first try", settled(t, f, m.ID, 1))
	stop()
	got := stored(t, f.store, m.ID)
	if got.Status != twofa.MessageQueued || !got.NextAt.Equal(f.clock.Now().Add(30*time.Second)) || got.Payload == nil ||
		got.LastError != "sealed under master key 1, which this process's keyring lacks" {
		t.Errorf("message under an unknown key: %s, due %v, LastError %q; want queued for a retry in 30 s, naming the key", got.Status, got.NextAt, got.LastError)
	}
	if n := rec.count(); n != 0 {
		t.Errorf("sends = %d, want 0", n)
	}
	rec2 := &sendRecorder{}
	f.clock.Add(30 * time.Second)
	runWorker(t, old, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: rec2}, twofa.DeliverOptions{})
	eventually(t, "a process with key 1 to send it", func() bool { return stored(t, f.store, m.ID).Status == twofa.MessageSent })
}
