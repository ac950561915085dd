package prove

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReplicas runs three `twofa serve` processes on one PostgreSQL schema
// and drives them together.
func TestReplicas(t *testing.T) {
	where := postgresDB(t)

	// Three replicas started at once on an empty schema: they race to
	// migrate it.
	replicas := make([]*replica, 3)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { replicas[i] = startReplica(t, where) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	app := newAPI(apiKey(t, where, "acme", false))
	admin := newAPI(apiKey(t, where, "acme", true))
	urlOf := func(i int) string { return replicas[i%len(replicas)].url }

	// race sends code 32 times at once, spread round-robin over the
	// replicas, and returns how many were valid and the statuses seen.
	race := func(user, code string) (valid int, answers map[string]int) {
		answers = map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 32; i++ {
			wg.Go(func() {
				<-start
				r, err := verify(context.Background(), app, urlOf(i), user, code)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					answers["error: "+err.Error()]++
				case r.valid():
					valid++
					answers["valid"]++
				case r.status == 200:
					answers["200 "+r.reason()]++
				default:
					answers[fmt.Sprint(r.status)]++
				}
			})
		}
		close(start)
		wg.Wait()
		return valid, answers
	}
	// The losers are refused: a used TOTP step as replayed, a used backup
	// code as an invalid code, or the user locked by the attempts counted.
	badAnswers := func(answers map[string]int, refused string) bool {
		for k := range answers {
			if k != "valid" && k != "200 "+refused && k != "429" {
				return true
			}
		}
		return false
	}

	rounds := pick(100, 10)
	t.Run("RaceTOTP", func(t *testing.T) {
		totals := map[string]int{}
		for round := 0; round < rounds; round++ {
			// A fresh user each round: the 31 attempts that lose are
			// replays, counted as failures, and lock the user.
			user := fmt.Sprintf("race-totp-%d", round)
			d := enrollConfirmed(t, app, urlOf(round), user)
			s := d.confirm + 1
			if d.collides(s) {
				round--
				continue
			}
			valid, answers := race(user, d.code(s))
			for k, n := range answers {
				totals[k] += n
			}
			if valid != 1 || badAnswers(answers, "replayed") {
				t.Errorf("round %d: one TOTP code sent 32 times over 3 replicas: %d valid, want exactly 1 (answers %v)", round, valid, answers)
			}
		}
		figure(t, "TOTP race: %d rounds x 32 concurrent requests over 3 replicas; answers %v", rounds, totals)
	})

	t.Run("RaceBackupCode", func(t *testing.T) {
		totals := map[string]int{}
		for round := 0; round < rounds; round++ {
			user := fmt.Sprintf("race-backup-%d", round)
			d := enrollConfirmed(t, app, urlOf(round+1), user)
			valid, answers := race(user, d.backup[round%len(d.backup)])
			for k, n := range answers {
				totals[k] += n
			}
			if valid != 1 || badAnswers(answers, "invalid_code") {
				t.Errorf("round %d: one backup code sent 32 times over 3 replicas: %d valid, want exactly 1 (answers %v)", round, valid, answers)
			}
			// The user is now likely locked: an administrator unlocks on
			// one replica, and a second backup code then works on another.
			if r := admin.must(t, "POST", userPath(urlOf(round+2), user)+"/unlock", nil); r.status != 204 {
				t.Fatalf("unlock: %v", r)
			}
			if r := must(t)(verify(context.Background(), app, urlOf(round), user, d.backup[(round+1)%len(d.backup)])); !r.valid() {
				t.Errorf("round %d: after unlock, an unused backup code: %v", round, r)
			}
		}
		figure(t, "backup-code race: %d rounds x 32 concurrent requests over 3 replicas; answers %v", rounds, totals)
	})

	t.Run("Lockout", func(t *testing.T) {
		for round := 0; round < pick(10, 3); round++ {
			user := fmt.Sprintf("lock-%d", round)
			d := enrollConfirmed(t, app, urlOf(round), user)
			for i := 0; i < 5; i++ {
				r := must(t)(verify(context.Background(), app, urlOf(round+i), user, d.wrongCode(i)))
				if r.status != 200 || r.valid() {
					t.Fatalf("round %d: wrong code %d on replica %d: %v", round, i+1, (round+i)%3, r)
				}
			}
			// The sixth request, with the right code, on every replica.
			for i := range replicas {
				r := must(t)(verify(context.Background(), app, urlOf(i), user, d.code(d.confirm+1)))
				if r.status != 429 {
					t.Errorf("round %d: after 5 failures spread over 3 replicas, replica %d answered %v, want 429", round, i, r)
				}
			}
		}
	})

	t.Run("AuditChain", func(t *testing.T) {
		for i := range replicas {
			r := admin.must(t, "GET", urlOf(i)+"/v1/audit/verify", nil)
			if r.status != 200 || r.body["ok"] != true {
				t.Errorf("replica %d: GET /v1/audit/verify: %v", i, r)
			}
		}
		auditVerify(t, where)
	})

	t.Run("Throughput", func(t *testing.T) {
		dur := pick(10*time.Second, 2*time.Second)
		// With --period 1 a user verifies at most once a second, so the
		// users bound the throughput: 1,500 (as before) capped every run
		// at ~1,650/s, whatever the replicas did.
		users := pick(9000, 150)
		const conc = 48
		var single float64
		for n := 1; n <= len(replicas); n++ {
			tp, reqs := benchReplicas(t, app.key, replicas[:n], users/n+1, conc/n, dur)
			if n == 1 {
				single = tp
			}
			figure(t, "throughput with %d replica(s): %.0f verifications/s (%d requests in %v, %d client workers, %.2fx one replica)", n, tp, reqs, dur, conc, tp/single)
		}
	})

	// After all that, the chain still verifies, seen from every replica.
	for i := range replicas {
		r := admin.must(t, "GET", urlOf(i)+"/v1/audit/verify", nil)
		if r.status != 200 || r.body["ok"] != true {
			t.Errorf("replica %d after the load: GET /v1/audit/verify: %v", i, r)
		}
	}
	auditVerify(t, where)
	for _, r := range replicas {
		r.stop()
		if r.err != nil {
			t.Errorf("replica exited with %v\n%s", r.err, r.stderr)
		}
	}
}

func must(t testing.TB) func(reply, error) reply {
	return func(r reply, err error) reply {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// benchReplicas runs one twofa-bench process against each replica at
// once and returns their summed throughput.
func benchReplicas(t *testing.T, key string, rs []*replica, users, conc int, dur time.Duration) (float64, int64) {
	type result struct {
		Requests   int64            `json:"requests"`
		Throughput float64          `json:"throughput_per_second"`
		Unexpected int64            `json:"unexpected"`
		Samples    []string         `json:"unexpected_samples"`
		Answers    map[string]int64 `json:"answers"`
	}
	results := make([]result, len(rs))
	var wg sync.WaitGroup
	// The benches start together and enroll the same number of users, so
	// their load phases overlap (to within the spread of enrollment times).
	for i, r := range rs {
		wg.Go(func() {
			cmd := exec.Command(benchBinary, "--json", "--url", r.url, "--key", key,
				"--users", fmt.Sprint(users), "--concurrency", fmt.Sprint(conc), "--duration", dur.String())
			cmd.Env = procEnv()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("twofa-bench against %s: %v\n%s", r.url, err, lastLines(stderr.String(), 15))
			}
			if jerr := json.Unmarshal(out, &results[i]); jerr != nil {
				t.Errorf("twofa-bench output: %v: %.300s", jerr, out)
				return
			}
			if results[i].Unexpected > 0 {
				t.Errorf("twofa-bench against %s: %d unexpected outcomes: %v", r.url, results[i].Unexpected, results[i].Samples)
			}
			t.Logf("bench %s: %.0f req/s, answers %v", r.url, results[i].Throughput, results[i].Answers)
		})
	}
	wg.Wait()
	var tp float64
	var n int64
	for _, r := range results {
		tp += r.Throughput
		n += r.Requests
	}
	return tp, n
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
