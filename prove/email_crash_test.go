package prove

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofa/twofa/internal/mailpit"
)

// emailLease is the outbox lease of the killed servers (--outbox-lease):
// the messages a killed server was sending go out again once it has run
// out, so the test waits this long at most for them.
const emailLease = 6 * time.Second

// TestEmailCrash kills `twofa serve` with SIGKILL while it sends email to
// a real Mailpit under load, again and again, restarting it each time.
// After each restart, nothing it had answered is undone: a confirmed
// address is active, an accepted code is refused when sent again. Once
// the outbox has drained at the end, Mailpit holds one message per outbox
// row (repeats only with the row's Message-ID), none lost, and every
// payload is wiped.
func TestEmailCrash(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { emailCrashLoop(t, db{"--data", t.TempDir()}) })
	t.Run("PostgreSQL", func(t *testing.T) { emailCrashLoop(t, postgresDB(t)) })
}

// emailFacts are what the server answered before a kill.
type emailFacts struct {
	mu        sync.Mutex
	confirmed []*emailUser   // addresses confirmed (answered valid)
	accepted  []acceptedCode // codes answered valid
	answered  atomic.Int64
	actions   map[string]int // answered requests, by what they were
	problems  []string
}

func (f *emailFacts) problem(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.problems) < 20 {
		f.problems = append(f.problems, fmt.Sprintf(format, args...))
	}
}

func (f *emailFacts) did(what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions[what]++
}

func emailCrashLoop(t *testing.T, where db) {
	mp := mailpit.Start(t, mailpit.Options{})
	box := newInbox(t, mp)
	app := newAPI(apiKey(t, where, "acme", false))
	admin := newAPI(apiKey(t, where, "acme", true))
	flags := mailFlags(mp, "--outbox-lease", emailLease.String())
	srv := startReplica(t, where, flags...)
	iterations := pick(20, 3)
	const workers = 6
	var (
		accepted  []acceptedCode
		confirmed []*emailUser
		actions   = map[string]int{}
		answered  int64
		queuedAt  []int // queued messages seen just before each kill
	)
	started := time.Now()
	for it := 0; it < iterations; it++ {
		facts := &emailFacts{actions: map[string]int{}}
		var killed atomic.Bool
		var wg sync.WaitGroup
		base := srv.url
		for w := 0; w < workers; w++ {
			wg.Go(func() {
				emailWorker(app, admin, base, box, fmt.Sprintf("m%d-w%d", it, w), facts, &killed)
			})
		}
		load := 500*time.Millisecond + rand.N(pick(3*time.Second, 1000*time.Millisecond))
		time.Sleep(load)
		// Kill while messages are queued or under way: wait (a little)
		// for a moment when some are.
		var q int
		for waited := time.Now(); ; {
			n, err := queuedCount(context.Background(), admin, base)
			if err != nil {
				t.Errorf("iteration %d: counting queued messages: %v", it, err)
			}
			if q = n; q > 0 || err != nil || time.Since(waited) > 2*time.Second {
				break
			}
			time.Sleep(time.Duration(rand.N(10)) * time.Millisecond)
		}
		killed.Store(true)
		srv.kill()
		wg.Wait()
		queuedAt = append(queuedAt, q)
		for _, p := range facts.problems {
			t.Errorf("iteration %d, before the kill: %s", it, p)
		}

		srv = startReplica(t, where, flags...)
		checkEmailFacts(t, app, srv.url, facts.confirmed, facts.accepted)
		answered += facts.answered.Load()
		accepted = append(accepted, facts.accepted...)
		confirmed = append(confirmed, facts.confirmed...)
		for k, n := range facts.actions {
			actions[k] += n
		}
		t.Logf("iteration %d: killed after %v with %d messages queued; %d answered; %d addresses confirmed, %d codes accepted, checked after the restart",
			it, load.Round(time.Millisecond), q, facts.answered.Load(), len(facts.confirmed), len(facts.accepted))
		if t.Failed() {
			t.Logf("server log tail:\n%s", lastLines(srv.stderr.String(), 20))
			break
		}
	}
	loadTime := time.Since(started)

	// The load has stopped; the last server sends what is left, the
	// messages the last killed one held once their lease runs out.
	restarted := time.Now()
	rows := outboxRows(t, admin, srv.url, "")
	drained := waitDrained(t, admin, srv.url, mp, len(rows), emailLease+60*time.Second)
	rows = outboxRows(t, admin, srv.url, "")
	// Every code accepted in any iteration is still refused, and every
	// address confirmed is still active.
	checkEmailFacts(t, app, srv.url, confirmed, accepted)
	srv.stop()
	auditVerify(t, where)

	mails := mailpitAll(t, mp)
	// A kill repeats at most the sends under way between Mailpit's
	// answer and the row's update: at most the worker's 8 at once.
	d := reconcile(t, rows, mails, iterations*8)
	sent, kept := payloads(t, where)
	if kept != 0 {
		t.Errorf("%d of %d sent rows still hold their payload or its key", kept, sent)
	}
	if sent != d.rows {
		t.Errorf("the database holds %d sent rows, the API listed %d rows", sent, d.rows)
	}
	slices.Sort(queuedAt)
	none := 0
	for _, q := range queuedAt {
		if q == 0 {
			none++
		}
	}
	figure(t, "email kill -9 while sending: %d kills under load (%v) with %d..%d messages queued or under way at the kills (median %d; %d kills with none); %d outbox rows (%d codes, %d notices), every one sent: Mailpit holds %d messages, one per row, plus %d repeats (same Message-ID) of %d rows, 0 lost, 0 strays; payloads wiped from %d of %d sent rows; drained %v after the load stopped; requests answered %d (%s); %d addresses confirmed and %d challenge codes accepted, none accepted again after the restarts; violations: %v",
		len(queuedAt), loadTime.Round(time.Second), queuedAt[0], queuedAt[len(queuedAt)-1], queuedAt[len(queuedAt)/2], none,
		d.rows, d.codes, d.notices, d.mails, d.extra, d.repeated, sent-kept, sent, drained.Sub(restarted).Round(time.Millisecond),
		answered, actionList(actions), len(confirmed), len(accepted), t.Failed())
}

func actionList(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, m[k])
	}
	return s
}

// emailWorker makes users with a TOTP device and an email address, then
// has each do what sends mail: codes (the address's confirmation, sign-in
// challenges) and notices (the address added, new backup codes, a device
// renamed, an unlock). It stops at the kill.
func emailWorker(app, admin *api, base string, box *inbox, prefix string, f *emailFacts, killed *atomic.Bool) {
	ctx := context.Background()
	stop := killed.Load
	// ok counts an answered request; an unanswered one before the kill,
	// or a 5xx, is a problem. It returns whether to go on.
	ok := func(what, user string, r reply, err error) bool {
		if err != nil {
			if !killed.Load() {
				f.problem("%s %s: no answer before the kill: %v", what, user, err)
			}
			return false
		}
		f.answered.Add(1)
		f.did(what)
		if r.status >= 500 {
			f.problem("%s %s: %v", what, user, r)
			return false
		}
		return true
	}
	for n := 0; !killed.Load(); n++ {
		user := fmt.Sprintf("%s-%d", prefix, n)
		// A TOTP device first: email may not be a user's only factor.
		d, r, err := beginEnroll(ctx, app, base, user, 0)
		if !ok("enroll-totp", user, r, err) {
			return
		}
		if d == nil {
			f.problem("enroll %s: %v", user, r)
			continue
		}
		s := d.step(time.Now())
		r, err = confirmAt(ctx, app, base, d, s-1)
		if !ok("confirm-totp", user, r, err) {
			return
		}
		if !r.valid() {
			continue // the step moved on, or a code that collides: next user
		}

		u := &emailUser{device: d, addr: addressOf(user)}
		dev, acc, err := enrollEmail(ctx, app, base, box, user, u.addr, stop)
		if err != nil || acc == nil {
			if err != nil && !killed.Load() {
				f.problem("email %s: %v", user, err)
			}
			return
		}
		f.answered.Add(2)
		f.did("enroll-email")
		f.did("confirm-email")
		u.emailID = dev
		f.mu.Lock()
		f.confirmed = append(f.confirmed, u)
		f.accepted = append(f.accepted, *acc)
		f.mu.Unlock()

		// New backup codes: a notice.
		r, err = app.do(ctx, "POST", userPath(base, user)+"/backup-codes", nil)
		if !ok("backup-codes", user, r, err) {
			return
		}
		if r.status != 201 {
			f.problem("backup codes %s: %v", user, r)
		}

		// Two sign-in challenges, each with a wrong code then the right one.
		for range 2 {
			if killed.Load() {
				return
			}
			r, err = app.do(ctx, "POST", userPath(base, user)+"/challenges", map[string]string{"factor": "email"})
			if !ok("challenge", user, r, err) {
				return
			}
			if r.status != 201 {
				f.problem("challenge %s: %v", user, r)
				break
			}
			chl := r.str("challenge_id")
			code, err := box.code(u.addr, subjectSignIn, u.signIns, 30*time.Second, stop)
			u.signIns++
			if err != nil {
				f.problem("challenge %s: %v", user, err)
				return
			}
			if code == "" {
				return // killed
			}
			path := userPath(base, user) + "/challenges/" + url.PathEscape(chl) + "/verify"
			wrong := fmt.Sprintf("%08d", (rand.N(99999999)+1+mustAtoi(code))%100000000)
			r, err = app.do(ctx, "POST", path, map[string]string{"code": wrong})
			if !ok("verify-challenge", user, r, err) {
				return
			}
			if r.valid() {
				f.problem("challenge %s: a wrong code accepted: %v", user, r)
			}
			r, err = app.do(ctx, "POST", path, map[string]string{"code": code})
			if !ok("verify-challenge", user, r, err) {
				return
			}
			if !r.valid() {
				f.problem("challenge %s: the mailed code refused: %v", user, r)
				continue
			}
			f.mu.Lock()
			f.accepted = append(f.accepted, acceptedCode{user: user, device: dev, challenge: chl, code: code, purpose: "sign_in"})
			f.mu.Unlock()
		}

		// Rename the address on the manage page (every other user: it
		// takes four requests), and an unlock by an administrator.
		if n%2 == 0 && !killed.Load() {
			if err := renameDevice(ctx, app, base, user, dev, "Work mail"); err != nil {
				if !killed.Load() {
					f.problem("rename %s: %v", user, err)
				}
				return
			}
			f.answered.Add(4)
			f.did("rename")
		}
		r, err = admin.do(ctx, "POST", userPath(base, user)+"/unlock", nil)
		if !ok("unlock", user, r, err) {
			return
		}
		if r.status != 204 {
			f.problem("unlock %s: %v", user, r)
		}
	}
}

func mustAtoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// checkEmailFacts checks, after a restart, that every address confirmed
// is active and every code accepted is refused when sent again.
func checkEmailFacts(t *testing.T, app *api, base string, confirmed []*emailUser, accepted []acceptedCode) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	ch := make(chan func())
	for range 8 {
		wg.Go(func() {
			for f := range ch {
				f()
			}
		})
	}
	for _, u := range confirmed {
		ch <- func() {
			r, err := app.do(ctx, "GET", userPath(base, u.user), nil)
			if err != nil || r.status != 200 {
				t.Errorf("GET user %s: %v %v", u.user, err, r)
				return
			}
			devs, _ := r.body["devices"].([]any)
			for _, x := range devs {
				m, _ := x.(map[string]any)
				if m["id"] == u.emailID {
					if m["status"] != "active" {
						t.Errorf("LOST: %s's address %s was confirmed (answered valid) before the kill and is %v after the restart", u.user, u.emailID, m["status"])
					}
					return
				}
			}
			t.Errorf("LOST: %s's address %s was confirmed (answered valid) before the kill and is gone after the restart", u.user, u.emailID)
		}
	}
	for _, c := range accepted {
		ch <- func() {
			r, err := resendAccepted(ctx, app, base, c)
			switch {
			case err != nil:
				t.Errorf("after the restart, re-sending %s's %s code: %v", c.user, c.purpose, err)
			case r.valid():
				t.Errorf("REPLAY: %s's %s code of challenge %s was answered valid before the kill and is accepted again after the restart: %v", c.user, c.purpose, c.challenge, r)
			case r.status >= 500:
				t.Errorf("after the restart, re-sending %s's %s code: %v", c.user, c.purpose, r)
			}
		}
	}
	close(ch)
	wg.Wait()
}
