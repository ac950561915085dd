package prove

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrash kills `twofa serve` with SIGKILL under load, again and again,
// and checks after each restart that nothing it had answered is undone.
func TestCrash(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { crashLoop(t, db{"--data", t.TempDir()}) })
	t.Run("PostgreSQL", func(t *testing.T) { crashLoop(t, postgresDB(t)) })
}

// crashFacts are what the server answered before the kill: each is a
// promise that must hold after the restart.
type crashFacts struct {
	mu        sync.Mutex
	confirmed []*device            // enrollments confirmed (answered valid)
	steps     map[*device][]uint64 // TOTP steps answered valid (confirm included)
	backups   map[*device][]string // backup codes answered valid
	answered  int64
	late      int64 // a valid code refused because the step moved on
	problems  []string
}

func (f *crashFacts) problem(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.problems) < 20 {
		f.problems = append(f.problems, fmt.Sprintf(format, args...))
	}
}

type crashTotals struct {
	answered, inflight, maxInflight          int64
	enrollments, steps, stepsStrong, backups int64
	late                                     int64
}

func crashLoop(t *testing.T, where db) {
	app := newAPI(apiKey(t, where, "acme", false))
	admin := newAPI(apiKey(t, where, "acme", true))
	srv := startReplica(t, where)
	iterations := pick(20, 3)
	workers := 8
	var tot crashTotals
	var everyone []*device

	for it := 0; it < iterations; it++ {
		facts := &crashFacts{steps: map[*device][]uint64{}, backups: map[*device][]string{}}
		var killed atomic.Bool
		var inflight atomic.Int64
		base := srv.url
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Go(func() {
				if !crashWorker(app, base, fmt.Sprintf("k%d-w%d", it, w), facts, &killed) {
					inflight.Add(1)
				}
			})
		}
		load := 200*time.Millisecond + rand.N(pick(2800*time.Millisecond, 1300*time.Millisecond))
		time.Sleep(load)
		killed.Store(true)
		srv.kill()
		wg.Wait()
		for _, p := range facts.problems {
			t.Errorf("iteration %d, before the kill: %s", it, p)
		}

		// Restart on the same data: it must open cleanly and be ready.
		srv = startReplica(t, where)
		n := checkFacts(t, app, admin, srv.url, facts)
		tot.answered += facts.answered
		tot.late += facts.late
		in := inflight.Load()
		tot.inflight += in
		tot.maxInflight = max(tot.maxInflight, in)
		tot.enrollments += int64(len(facts.confirmed))
		tot.steps += n.steps
		tot.stepsStrong += n.strong
		tot.backups += n.backups
		everyone = append(everyone, facts.confirmed...)
		t.Logf("iteration %d: killed after %v; %d answered, %d in flight at the kill; checked %d enrollments, %d TOTP steps (%d still in the window), %d backup codes",
			it, load.Round(time.Millisecond), facts.answered, in, len(facts.confirmed), n.steps, n.strong, n.backups)

		if r := admin.must(t, "GET", srv.url+"/v1/audit/verify", nil); r.status != 200 || r.body["ok"] != true {
			t.Errorf("iteration %d: GET /v1/audit/verify after the restart: %v", it, r)
		}
		auditVerify(t, where)
		if t.Failed() {
			t.Logf("server log tail:\n%s", lastLines(srv.stderr.String(), 20))
			break
		}
	}

	// At the end, every enrollment ever confirmed is still there.
	lost := 0
	for _, d := range everyone {
		if !deviceActive(t, app, srv.url, d) {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d confirmed enrollments are not active at the end", lost, len(everyone))
	}
	srv.stop()
	auditVerify(t, where)
	figure(t, "%d kill -9 under load: %d requests answered before the kills; facts checked after the restarts: %d confirmed enrollments, %d accepted TOTP steps (%d re-sent within the window), %d used backup codes; %d requests in flight at the kills (at most %d at once), allowed to be lost; %d valid codes refused as late; violations: %v",
		iterations, tot.answered, tot.enrollments, tot.steps, tot.stepsStrong, tot.backups, tot.inflight, tot.maxInflight, tot.late, t.Failed())
}

// crashWorker enrolls users and uses their codes until the kill. It
// returns false if its last request went unanswered (in flight at the
// kill), true if it stopped between requests.
func crashWorker(a *api, base, prefix string, f *crashFacts, killed *atomic.Bool) bool {
	ctx := context.Background()
	// send reports whether the request was answered; an unanswered one
	// before the kill is a problem.
	answered := func(what string, r reply, err error) bool {
		if err != nil {
			if !killed.Load() {
				f.problem("%s: no answer before the kill: %v", what, err)
			}
			return false
		}
		atomic.AddInt64(&f.answered, 1)
		if r.status >= 500 {
			f.problem("%s: %v", what, r)
		}
		return true
	}
	for n := 0; !killed.Load(); n++ {
		user := fmt.Sprintf("%s-%d", prefix, n)
		d, r, err := beginEnroll(ctx, a, base, user, 30)
		if !answered("enroll "+user, r, err) {
			return false
		}
		if d == nil {
			f.problem("enroll %s: %v", user, r)
			continue
		}
		s := d.step(time.Now())
		if d.collides(s-1) || d.collides(s) || d.collides(s+1) {
			continue
		}
		// Confirm with the previous step: the current and next are left.
		r, err = confirmAt(ctx, a, base, d, s-1)
		if !answered("confirm "+user, r, err) {
			return false
		}
		if !r.valid() {
			f.refused(d, s-1, "confirm", r)
			continue
		}
		f.mu.Lock()
		f.confirmed = append(f.confirmed, d)
		f.steps[d] = append(f.steps[d], s-1)
		f.mu.Unlock()

		type op struct {
			what   string
			code   string
			step   uint64 // 0: a backup code
			expect bool
		}
		ops := []op{
			{"verify step s", d.code(s), s, true},
			{"verify a wrong code", d.wrongCode(n), 0, false},
			{"verify backup code 0", d.backup[0], 0, true},
			{"verify step s+1", d.code(s + 1), s + 1, true},
			{"verify backup code 1", d.backup[1], 0, true},
		}
		for _, o := range ops {
			if killed.Load() {
				return true
			}
			r, err := verify(ctx, a, base, user, o.code)
			if !answered(o.what+" "+user, r, err) {
				return false
			}
			switch {
			case r.valid() && !o.expect:
				f.problem("%s %s: accepted: %v", o.what, user, r)
			case r.valid():
				f.mu.Lock()
				if o.step != 0 {
					f.steps[d] = append(f.steps[d], o.step)
				} else {
					f.backups[d] = append(f.backups[d], o.code)
				}
				f.mu.Unlock()
			case o.expect:
				f.refused(d, o.step, o.what, r)
			}
		}
	}
	return true
}

// refused notes a valid code refused: late if the clock moved past its
// step's window, a problem otherwise.
func (f *crashFacts) refused(d *device, step uint64, what string, r reply) {
	if step != 0 && d.step(time.Now()) > step+1 && r.status == 200 && r.reason() == "invalid_code" {
		atomic.AddInt64(&f.late, 1)
		return
	}
	f.problem("%s %s: a valid code refused: %v", what, d.user, r)
}

type checked struct{ steps, strong, backups int64 }

// checkFacts re-sends every code the server accepted before the kill and
// checks every confirmed enrollment, from several goroutines.
func checkFacts(t *testing.T, app, admin *api, base string, f *crashFacts) checked {
	var c checked
	ch := make(chan *device)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for d := range ch {
				if !deviceActive(t, app, base, d) {
					t.Errorf("LOST: %s's enrollment %s was confirmed (answered valid) before the kill and is not active after the restart", d.user, d.id)
				}
				send := func(code string) reply {
					for try := 0; ; try++ {
						r, err := verify(context.Background(), app, base, d.user, code)
						if err != nil {
							t.Errorf("after the restart, verify %s: %v", d.user, err)
							return r
						}
						if r.status != 429 || try > 0 {
							return r
						}
						// Our own re-sends count as failures and may lock.
						if u := admin.must(t, "POST", userPath(base, d.user)+"/unlock", nil); u.status != 204 {
							t.Errorf("unlock %s: %v", d.user, u)
						}
					}
				}
				for _, s := range f.steps[d] {
					r := send(d.code(s))
					// Still the current step after the answer: in the window
					// whatever drift the device learned, since the load's
					// codes match at offsets -1 to +1 and drift moves the
					// ±1 window by as much.
					inWindow := d.step(time.Now()) == s
					if r.valid() {
						t.Errorf("REPLAY: %s's TOTP step %d (code %s) was answered valid before the kill and is accepted again after the restart: %v", d.user, s, d.code(s), r)
					} else if r.status != 200 {
						t.Errorf("after the restart, re-sending %s's step %d: %v", d.user, s, r)
					}
					atomic.AddInt64(&c.steps, 1)
					if inWindow {
						atomic.AddInt64(&c.strong, 1)
						if r.status == 200 && r.reason() != "replayed" {
							t.Errorf("after the restart, %s's step %d, still in the window: %v, want replayed", d.user, s, r)
						}
					}
				}
				for _, code := range f.backups[d] {
					r := send(code)
					if r.valid() {
						t.Errorf("REPLAY: %s's backup code %s was answered valid before the kill and is accepted again after the restart: %v", d.user, code, r)
					} else if r.status != 200 {
						t.Errorf("after the restart, re-sending %s's used backup code: %v", d.user, r)
					}
					atomic.AddInt64(&c.backups, 1)
				}
			}
		})
	}
	for _, d := range f.confirmed {
		ch <- d
	}
	close(ch)
	wg.Wait()
	return c
}

// deviceActive reports whether GET /v1/users/{u} shows d as active.
func deviceActive(t *testing.T, a *api, base string, d *device) bool {
	r, err := a.do(context.Background(), "GET", userPath(base, d.user), nil)
	if err != nil || r.status != 200 {
		t.Errorf("GET user %s: %v %v", d.user, err, r)
		return false
	}
	devs, _ := r.body["devices"].([]any)
	for _, x := range devs {
		m, _ := x.(map[string]any)
		if m["id"] == d.id {
			return m["status"] == "active" && r.body["enrolled"] == true
		}
	}
	return false
}
