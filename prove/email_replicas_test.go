package prove

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofa/twofa/internal/mailpit"
)

// TestEmailReplicas: three `twofa serve` processes on one PostgreSQL send
// a burst of notices to Mailpit, each exactly once. The users (a TOTP
// device and a confirmed address each) are made through the API, their
// confirmation codes read from Mailpit; the burst is an administrator's
// unlock of each of them, one notice each, spread over the replicas.
func TestEmailReplicas(t *testing.T) {
	where := postgresDB(t)
	mp := mailpit.Start(t, mailpit.Options{})
	box := newInbox(t, mp)
	replicas := make([]*replica, 3)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { replicas[i] = startReplica(t, where, mailFlags(mp)...) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	app := newAPI(apiKey(t, where, "acme", false))
	admin := newAPI(apiKey(t, where, "acme", true))
	urlOf := func(i int) string { return replicas[i%len(replicas)].url }
	n := pick(1000, 100)

	// The users, 16 at a time over the replicas.
	setupStart := time.Now()
	users := make([]string, n)
	next := atomic.Int64{}
	for w := 0; w < 16; w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || t.Failed() {
					return
				}
				users[i] = fmt.Sprintf("burst-%d", i)
				if err := emailSetup(app, urlOf(i), box, users[i]); err != nil {
					t.Errorf("setting up %s: %v", users[i], err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	setupRows := len(outboxRows(t, admin, urlOf(0), ""))
	waitDrained(t, admin, urlOf(0), mp, setupRows, 60*time.Second)
	setupTime := time.Since(setupStart)

	// A sign-in code sent 32 times at once over the replicas: one success.
	rounds := pick(20, 5)
	answers := map[string]int{}
	for round := range rounds {
		user := users[round]
		r := app.must(t, "POST", userPath(urlOf(round), user)+"/challenges", map[string]string{"factor": "email"})
		if r.status != 201 {
			t.Fatalf("challenge %s: %v", user, r)
		}
		code, err := box.code(addressOf(user), subjectSignIn, 0, 30*time.Second, func() bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		valid := 0
		var mu sync.Mutex
		start := make(chan struct{})
		for i := range 32 {
			wg.Go(func() {
				<-start
				r, err := app.do(context.Background(), "POST", userPath(urlOf(i), user)+"/challenges/"+r.str("challenge_id")+"/verify", map[string]string{"code": code})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					answers["error: "+err.Error()]++
				case r.valid():
					valid++
					answers["valid"]++
				default:
					answers[fmt.Sprintf("%d %s", r.status, answerReason(r))]++
				}
			})
		}
		close(start)
		wg.Wait()
		if valid != 1 {
			t.Errorf("round %d: one challenge code sent 32 times over 3 replicas: %d valid, want exactly 1", round, valid)
		}
	}
	for k := range answers {
		if k != "valid" && k != "404 challenge_ended" && k != "200 invalid_code" && !strings.HasPrefix(k, "429 ") {
			t.Errorf("a challenge race's loser answered %q", k)
		}
	}
	figure(t, "email challenge race: %d rounds x 32 concurrent verifications of one mailed code over 3 replicas; answers %v", rounds, answers)

	setupRows = len(outboxRows(t, admin, urlOf(0), ""))
	waitDrained(t, admin, urlOf(0), mp, setupRows, 60*time.Second)
	before := mailpitCount(t, mp)
	sentBefore := make([]int, len(replicas))
	for i, r := range replicas {
		sentBefore[i] = emailSent(t, r.url)
	}

	// The burst: every user unlocked at once, 32 requests at a time.
	start := time.Now()
	var answered atomic.Int64
	var queuedBy time.Time // when the last unlock was answered
	var burst sync.WaitGroup
	next.Store(0)
	for w := 0; w < 32; w++ {
		burst.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				r, err := admin.do(context.Background(), "POST", userPath(urlOf(i), users[i])+"/unlock", nil)
				if err != nil || r.status != 204 {
					t.Errorf("unlock %s: %v %v", users[i], err, r)
				}
				answered.Add(1)
			}
		})
	}
	peak := 0
	var drained time.Time
	deadline := start.Add(pick(5*time.Minute, 60*time.Second))
	for {
		q, err := queuedCount(context.Background(), admin, urlOf(0))
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, q)
		if answered.Load() == int64(n) {
			if queuedBy.IsZero() {
				queuedBy = time.Now()
			}
			if q == 0 && mailpitCount(t, mp) >= before+n {
				drained = time.Now()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the burst did not drain: %d of %d unlocks answered, %d queued, Mailpit holds %d new messages of %d", answered.Load(), n, q, mailpitCount(t, mp)-before, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	burst.Wait()
	took := drained.Sub(start)

	bySender := make([]int, len(replicas))
	for i, r := range replicas {
		bySender[i] = emailSent(t, r.url) - sentBefore[i]
	}
	rows := outboxRows(t, admin, urlOf(0), "")
	mails := mailpitAll(t, mp)
	d := reconcile(t, rows, mails, 0) // no kill: no repeat either
	notices := 0
	for _, r := range rows {
		if r.Kind == "notice" && !r.CreatedAt.Before(start.Truncate(time.Millisecond)) {
			notices++
		}
	}
	if notices != n {
		t.Errorf("the burst queued %d notices, want %d (one per user)", notices, n)
	}
	if got := mailpitCount(t, mp) - before; got != n {
		t.Errorf("Mailpit received %d messages in the burst, want %d", got, n)
	}
	if sum := bySender[0] + bySender[1] + bySender[2]; sum != n {
		t.Errorf("the replicas count %d sends in the burst (%v), want %d", sum, bySender, n)
	}
	stopAll := func() {
		for i, r := range replicas {
			r.stop()
			if r.err != nil {
				t.Errorf("replica %d exited with %v\n%s", i, r.err, lastLines(r.stderr.String(), 20))
			}
		}
	}
	stopAll()
	figure(t, "email burst over 3 replicas on PostgreSQL, sent as it is made: %d notices (an admin unlock of each of %d users, through the API, round-robin over the replicas, 32 at a time) queued in %v, all sent %v after the first request (%.0f notices/s), at most %d queued at once; sent by replica: %d/%d/%d; Mailpit holds each exactly once by Message-ID (%d repeats, %d lost, %d strays), as it does the %d earlier messages (set-up and race); set-up of the users (TOTP and an address confirmed with the mailed code, through the API) %v",
		n, n, queuedBy.Sub(start).Round(time.Millisecond), took.Round(time.Millisecond), float64(n)/took.Seconds(), peak,
		bySender[0], bySender[1], bySender[2], d.extra, d.lost, d.strays, setupRows, setupTime.Round(time.Millisecond))
	if t.Failed() {
		return
	}

	// A backlog: the same burst made while no replica can send (no SMTP
	// server set: the messages stay queued), then three replicas started
	// at once, with SMTP, to drain it together.
	for i := range replicas {
		wg.Go(func() { replicas[i] = startReplica(t, where) })
	}
	wg.Wait()
	next.Store(0)
	for w := 0; w < 32; w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if r, err := admin.do(context.Background(), "POST", userPath(urlOf(i), users[i])+"/unlock", nil); err != nil || r.status != 204 {
					t.Errorf("unlock %s: %v %v", users[i], err, r)
				}
			}
		})
	}
	wg.Wait()
	if q, err := queuedCount(context.Background(), admin, urlOf(0)); err != nil || q != n {
		t.Fatalf("%d messages queued with no sender (%v), want %d", q, err, n)
	}
	stopAll()
	before = mailpitCount(t, mp)
	start = time.Now()
	for i := range replicas {
		wg.Go(func() { replicas[i] = startReplica(t, where, mailFlags(mp)...) })
	}
	wg.Wait()
	ready := time.Since(start)
	drained = waitDrained(t, admin, urlOf(0), mp, before+n, pick(5*time.Minute, 60*time.Second))
	took = drained.Sub(start)
	for i, r := range replicas {
		bySender[i] = emailSent(t, r.url)
	}
	rows = outboxRows(t, admin, urlOf(0), "")
	mails = mailpitAll(t, mp)
	d = reconcile(t, rows, mails, 0)
	if got := mailpitCount(t, mp) - before; got != n {
		t.Errorf("Mailpit received %d messages of the backlog, want %d", got, n)
	}
	if sum := bySender[0] + bySender[1] + bySender[2]; sum != n {
		t.Errorf("the replicas count %d sends of the backlog (%v), want %d", sum, bySender, n)
	}
	stopAll()
	sent, kept := payloads(t, where)
	if kept != 0 {
		t.Errorf("%d of %d sent rows still hold their payload or its key", kept, sent)
	}
	auditVerify(t, where)
	figure(t, "email backlog over 3 replicas on PostgreSQL: %d queued notices drained %v after the three were launched together (all ready after %v; %.0f notices/s from then); sent by replica: %d/%d/%d; Mailpit holds each exactly once by Message-ID (%d repeats, %d lost, %d strays of %d rows in all); payloads wiped from %d of %d sent rows",
		n, took.Round(time.Millisecond), ready.Round(time.Millisecond), float64(n)/(took-ready).Seconds(),
		bySender[0], bySender[1], bySender[2], d.extra, d.lost, d.strays, d.rows, sent-kept, sent)
}

// answerReason is the reason of an answer: of a verification's result,
// or of an error.
func answerReason(r reply) string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["reason"].(string)
		return s
	}
	return r.reason()
}

// emailSetup gives the user a TOTP device and a confirmed address.
func emailSetup(a *api, base string, box *inbox, user string) error {
	ctx := context.Background()
	for try := 0; ; try++ {
		d, r, err := beginEnroll(ctx, a, base, user, 0)
		if err != nil || d == nil {
			return fmt.Errorf("enroll: %v %v", err, r)
		}
		s := d.step(time.Now())
		r, err = confirmAt(ctx, a, base, d, s-1)
		if err != nil {
			return err
		}
		if r.valid() {
			break
		}
		if try == 2 {
			return fmt.Errorf("confirm: %v", r)
		}
	}
	_, _, err := enrollEmail(ctx, a, base, box, user, addressOf(user), func() bool { return false })
	return err
}

// emailSent reads the replica's count of emails sent from /metrics.
func emailSent(t testing.TB, base string) int {
	t.Helper()
	a := newAPI("")
	r := a.must(t, "GET", base+"/metrics", nil)
	const series = `twofa_outbox_sends_total{channel="email",outcome="sent"} `
	sc := bufio.NewScanner(strings.NewReader(r.raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %q", sc.Text())
			}
			return int(n)
		}
	}
	return 0
}
