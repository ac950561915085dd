package twofa_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtpd "github.com/emersion/go-smtp"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/mailpit"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/smtp"
)

// The benchmarks of delivered codes: a sign-in code made, sent and typed
// back (BenchmarkChallenge_CreateSendVerify), and the outbox's send rate
// (BenchmarkOutbox_SendRate), each to three receivers: none (the sender
// hands the message over: the Service and the store alone), an SMTP
// server in this process (emersion/go-smtp, which drops what it gets: the
// SMTP client's cost added), and Mailpit (a real SMTP server that stores
// every message). Run them with -benchmem; Mailpit is skipped without its
// binary (scripts/install-test-deps.sh builds it).

// benchReceiver makes an outbox sender for one benchmark.
type benchReceiver struct {
	name   string
	sender func(b *testing.B) twofa.Sender
}

var benchReceivers = []benchReceiver{
	{"Handoff", func(*testing.B) twofa.Sender {
		return sendFunc(func(context.Context, *twofa.Outgoing) error { return nil })
	}},
	{"GoSMTP", func(b *testing.B) twofa.Sender { return benchSMTPSender(b, startDiscardSMTP(b)) }},
	{"Mailpit", func(b *testing.B) twofa.Sender {
		return benchSMTPSender(b, mailpit.Start(b, mailpit.Options{}).SMTPAddr())
	}},
}

func benchSMTPSender(b *testing.B, addr string) twofa.Sender {
	s, err := smtp.New(smtp.Config{URL: "smtp://" + addr + "?tls=none", From: "ACME Security <security@acme.example>", Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// startDiscardSMTP starts an SMTP server in this process that accepts any
// message and drops it, and returns its address.
func startDiscardSMTP(b *testing.B) string {
	s := gosmtpd.NewServer(gosmtpd.BackendFunc(func(*gosmtpd.Conn) (gosmtpd.Session, error) {
		return discardSession{}, nil
	}))
	s.Domain = "bench.example"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.MaxRecipients = 10
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln)
	b.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

type discardSession struct{}

func (discardSession) Mail(string, *gosmtpd.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *gosmtpd.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error                  { _, err := io.Copy(io.Discard, r); return err }
func (discardSession) Reset()                                  {}
func (discardSession) Logout() error                           { return nil }

// codeTap passes each code a sender delivered to whoever waits for its
// address: a code counts as sent once the receiver has accepted it.
type codeTap struct {
	next twofa.Sender
	mu   sync.Mutex
	wait map[string]chan string
}

func (c *codeTap) Send(ctx context.Context, m *twofa.Outgoing) error {
	if err := c.next.Send(ctx, m); err != nil {
		return err
	}
	if m.Body.Code != "" {
		c.mu.Lock()
		ch := c.wait[m.Body.To]
		c.mu.Unlock()
		if ch != nil {
			ch <- m.Body.Code
		}
	}
	return nil
}

func (c *codeTap) listen(addr string) chan string {
	ch := make(chan string, 4)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wait[addr] = ch
	return ch
}

func awaitCode(b *testing.B, ch <-chan string) string {
	select {
	case code := <-ch:
		return code
	case <-time.After(30 * time.Second):
		b.Fatal("no code sent within 30s")
		return ""
	}
}

// benchEmailUser is a user with a TOTP device and a confirmed address,
// whose codes arrive on codes.
type benchEmailUser struct {
	ref   twofa.UserRef
	codes chan string
}

// challengeBench is a Service on SQLite whose outbox worker runs with a
// sender, and users to challenge.
type challengeBench struct {
	svc   *twofa.Service
	clock *clock
	tap   *codeTap
}

func newChallengeBench(b *testing.B, sender twofa.Sender) *challengeBench {
	store, _ := openSQLite(b)
	cb := &challengeBench{clock: &clock{t: testStart}, tap: &codeTap{next: sender, wait: map[string]chan string{}}}
	svc, err := twofa.NewService(context.Background(), store, benchKeyring(b), twofa.Options{
		Policy: benchPolicy(), Now: cb.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	cb.svc = svc
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The clock is the benchmark's, which runs far ahead of real
		// time: a lease of years never runs out within a run.
		svc.DeliverOutbox(ctx, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: cb.tap},
			twofa.DeliverOptions{Lease: 100000 * time.Hour})
	}()
	b.Cleanup(func() { cancel(); <-done })
	return cb
}

var benchEmailUsers atomic.Int64

// user enrolls a user with a TOTP device and a confirmed address.
func (cb *challengeBench) user(b *testing.B) *benchEmailUser {
	ctx := context.Background()
	n := benchEmailUsers.Add(1)
	u := &benchEmailUser{ref: twofa.UserRef{Tenant: "bench", User: fmt.Sprintf("mail-%d", n)}}
	addr := fmt.Sprintf("user%d@bench.example", n)
	u.codes = cb.tap.listen(addr)
	en, err := cb.svc.BeginEnrollment(ctx, u.ref, twofa.EnrollRequest{})
	if err != nil {
		b.Fatal(err)
	}
	k, _ := otp.NewKey(en.Secret, en.Device.Params)
	if res, err := cb.svc.ConfirmEnrollment(ctx, u.ref, en.Device.ID, k.TOTP(cb.clock.Now())); err != nil || !res.Valid {
		b.Fatalf("confirm: %+v %v", res, err)
	}
	ee, err := cb.svc.BeginEmailEnrollment(ctx, u.ref, addr, "")
	if err != nil {
		b.Fatal(err)
	}
	if res, err := cb.svc.ConfirmEmail(ctx, u.ref, ee.Device.ID, ee.Challenge.ID, awaitCode(b, u.codes)); err != nil || !res.Valid {
		b.Fatalf("confirm email: %+v %v", res, err)
	}
	return u
}

// challenge starts a sign-in challenge, waits for its code to be sent,
// and verifies it.
func (cb *challengeBench) challenge(b *testing.B, u *benchEmailUser) bool {
	ctx := context.Background()
	c, err := cb.svc.StartChallenge(ctx, u.ref, twofa.FactorEmail, "")
	if err != nil {
		b.Errorf("StartChallenge: %v", err)
		return false
	}
	res, err := cb.svc.VerifyChallenge(ctx, u.ref, c.ID, awaitCode(b, u.codes))
	if err != nil || !res.Valid {
		b.Errorf("VerifyChallenge: %+v, %v", res, err)
		return false
	}
	return true
}

// sendGap is the least time between two codes to one user and address:
// at most 5 are sent in 15 minutes.
const sendGap = 3*time.Minute + time.Second

// BenchmarkChallenge_CreateSendVerify measures one sign-in code, whole,
// on SQLite: StartChallenge (a code, its keyed hash, the challenge and
// its sealed message in one transaction), the outbox worker sending it
// (claim, open, render, SMTP, record sent with its audit entry), and
// VerifyChallenge with the code the receiver accepted (the attempt path:
// consume the challenge, audit). Serial: one user at a time, so ns/op is
// the latency; Parallel: 4 goroutines (on 2 CPUs) with 64 users each. The clock moves
// on between codes, as the per-user send limit wants.
func BenchmarkChallenge_CreateSendVerify(b *testing.B) {
	for _, rc := range benchReceivers {
		b.Run(rc.name, func(b *testing.B) {
			cb := newChallengeBench(b, rc.sender(b))
			serial := cb.user(b)
			b.Run("Serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					cb.clock.Add(sendGap)
					if !cb.challenge(b, serial) {
						return
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "challenges/s")
			})

			// Blocks of users, each used by one goroutine at a time, in
			// turn: a user's codes are sendGap apart when each use moves
			// the clock on by sendGap/perBlock. A code expires after
			// 10 min, ~200 uses of the other goroutines: a goroutine the
			// scheduler leaves waiting longer than that fails.
			const goroutines, perBlock = 4, 64
			type block struct {
				users []*benchEmailUser
				next  int
			}
			blocks := make(chan *block, goroutines)
			for range goroutines {
				bl := &block{}
				for range perBlock {
					bl.users = append(bl.users, cb.user(b))
				}
				blocks <- bl
			}
			b.Run("Parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0))) // GOMAXPROCS × this goroutines
				b.RunParallel(func(pb *testing.PB) {
					bl := <-blocks
					defer func() { blocks <- bl }()
					for pb.Next() {
						cb.clock.Add(sendGap / perBlock)
						u := bl.users[bl.next%perBlock]
						bl.next++
						if !cb.challenge(b, u) {
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "challenges/s")
			})
		})
	}
}

// BenchmarkOutbox_SendRate measures how fast the outbox's worker empties
// a queue of notices on SQLite, at 1, 4 and 16 sends at once: claim,
// open, render, send, and record each (with its audit entry). b.N
// notices are queued before the timer starts.
func BenchmarkOutbox_SendRate(b *testing.B) {
	for _, rc := range benchReceivers {
		b.Run(rc.name, func(b *testing.B) {
			sender := rc.sender(b)
			for _, conc := range []int{1, 4, 16} {
				b.Run(fmt.Sprintf("Concurrency%d", conc), func(b *testing.B) {
					ctx := context.Background()
					now := time.Now()
					svc, err := twofa.NewService(ctx, sqliteStore(b), benchKeyring(b), twofa.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
					if err != nil {
						b.Fatal(err)
					}
					for i := range b.N {
						m := twofa.NewMessage(twofa.UserRef{Tenant: "acme", User: "alice"}, twofa.ChannelEmail, twofa.KindNotice, now)
						if err := svc.QueueMessage(ctx, m, twofa.MessageBody{To: fmt.Sprintf("user%d@bench.example", i), Event: benchNotice(m.ID, now)}); err != nil {
							b.Fatal(err)
						}
					}
					var sent atomic.Int64
					all := make(chan struct{})
					opts := twofa.DeliverOptions{Concurrency: conc, OnSend: func(_ twofa.Channel, o twofa.SendOutcome) {
						if o != twofa.SendSent {
							b.Errorf("a send: %s", o)
						}
						if sent.Add(1) == int64(b.N) {
							close(all)
						}
					}}
					wctx, cancel := context.WithCancel(ctx)
					done := make(chan struct{})
					b.ReportAllocs()
					b.ResetTimer()
					go func() {
						defer close(done)
						svc.DeliverOutbox(wctx, map[twofa.Channel]twofa.Sender{twofa.ChannelEmail: sender}, opts)
					}()
					select {
					case <-all:
					case <-time.After(10 * time.Minute):
						b.Errorf("%d of %d sent after 10 minutes", sent.Load(), b.N)
					}
					b.StopTimer()
					cancel()
					<-done
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				})
			}
		})
	}
}

// sqliteStore opens a SQLite store for a benchmark.
func sqliteStore(b *testing.B) twofa.Store {
	s, _ := openSQLite(b)
	return s
}

// benchNotice is a notice of new backup codes.
func benchNotice(id string, now time.Time) *twofa.NoticeEvent {
	return &twofa.NoticeEvent{ID: id, Type: twofa.EventBackupCodesIssued, Time: now, Tenant: "acme", User: "alice",
		Factor: twofa.FactorBackupCode, IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (bench)"}
}
