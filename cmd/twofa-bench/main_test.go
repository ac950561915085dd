package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRun runs twofa-bench against a real `twofa serve`: no unexpected
// outcome under load, and every kind of op answered as it should be.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds twofa and loads it for a few seconds")
	}
	dir := t.TempDir()
	url := startServer(t, dir)
	key := createKey(t, dir)

	// 50 users with 2 s devices can take about 25 valid codes a second, so
	// the mix leans on failures more than the default to see plenty of
	// each op in 3 s. A 2 s step leaves a replay its step's time to be
	// sent on a slow machine.
	args := []string{"twofa-bench", "--url", url, "--key", key, "--users", "50", "--period", "2", "--duration", "3s",
		"--concurrency", "8", "--baseline", "--mix", "valid=70,invalid=15,replayed=15"}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, args, getenv(nil), strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("twofa-bench: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	table := out.String()
	for _, want := range []string{"throughput", "p99", "baseline", "ratio", "server RSS"} {
		if !strings.Contains(table, want) {
			t.Errorf("report lacks %q:\n%s", want, table)
		}
	}
	t.Logf("\n%s", table)
	answers := map[string]int{}
	for _, line := range strings.Split(table, "\n") {
		if rest, ok := strings.CutPrefix(line, "answers"); ok {
			f := strings.Fields(rest)
			for i := 0; i+1 < len(f); i += 2 {
				answers[f[i]], _ = strconv.Atoi(f[i+1])
			}
		}
	}
	for _, a := range []string{"valid", "invalid_code", "replayed"} {
		if answers[a] == 0 {
			t.Errorf("no %s answers: %v", a, answers)
		}
	}
	// A late answer (a request that outlived its step) says the machine
	// was slow, not that the server erred: it is allowed.
	if answers["rate_limited"] != 0 || answers["error"] != 0 {
		t.Errorf("answers %v: want no 429s or errors", answers)
	}

	// --json, bounded by requests rather than time.
	out.Reset()
	args = []string{"twofa-bench", "--url", url, "--key", key, "--users", "40", "--requests", "60", "--concurrency", "4", "--json"}
	if err := run(ctx, args, getenv(nil), strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("twofa-bench --json: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("twofa-bench --json: %v\n%s", err, out.String())
	}
	if rep.Enroll.Users != 40 || rep.Requests != 60 || rep.Unexpected != 0 || rep.Answers["valid"] == 0 || rep.RSSBytes <= 0 {
		t.Errorf("twofa-bench --json: enrolled %d, requests %d, unexpected %d, answers %v, RSS %d; want 40, 60, 0, some valid, some RSS",
			rep.Enroll.Users, rep.Requests, rep.Unexpected, rep.Answers, rep.RSSBytes)
	}

	// --users-file: written after enrolling, then loaded instead.
	usersFile := filepath.Join(t.TempDir(), "users.jsonl")
	for i, wantLoaded := range []bool{false, true} {
		out.Reset()
		errOut.Reset()
		args = []string{"twofa-bench", "--url", url, "--key", key, "--users", "5", "--requests", "10", "--concurrency", "2", "--json",
			"--users-file", usersFile}
		if err := run(ctx, args, getenv(nil), strings.NewReader(""), &out, &errOut); err != nil {
			t.Fatalf("run %d with --users-file: %v\n%s\n%s", i, err, out.String(), errOut.String())
		}
		if got := strings.Contains(errOut.String(), "loaded from"); got != wantLoaded {
			t.Errorf("run %d with --users-file: loaded %v, want %v\n%s", i, got, wantLoaded, errOut.String())
		}
		if fi, err := os.Stat(usersFile); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("users file: %v, %v; want mode 0600", fi, err)
		}
	}

	// --end-user-ips: the addresses reach the per-IP limit of a server
	// that allows 5 failed checks a minute per address (invalid codes
	// only: right codes spend nothing of it).
	dir2 := t.TempDir()
	limited := startServer(t, dir2, "--verify-per-ip", "5")
	key2 := createKey(t, dir2)
	for _, tt := range []struct {
		ips         string
		wantLimited bool
	}{{"0", false}, {"2", true}} {
		out.Reset()
		args = []string{"twofa-bench", "--url", limited, "--key", key2, "--users", "20", "--requests", "40",
			"--concurrency", "4", "--json", "--end-user-ips", tt.ips, "--user-prefix", "ips" + tt.ips, "--mix", "valid=0,invalid=100,replayed=0"}
		if err := run(ctx, args, getenv(nil), strings.NewReader(""), &out, &errOut); err != nil {
			t.Fatalf("twofa-bench --end-user-ips %s: %v\n%s\n%s", tt.ips, err, out.String(), errOut.String())
		}
		rep = report{}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("twofa-bench --json: %v\n%s", err, out.String())
		}
		// 2 addresses x 5 a minute: at most 10 of the 40 get through.
		if got := rep.Answers["rate_limited"] > 0; got != tt.wantLimited || rep.Unexpected != 0 {
			t.Errorf("--end-user-ips %s: answers %v, unexpected %d; want 429s: %v", tt.ips, rep.Answers, rep.Unexpected, tt.wantLimited)
		}
		if tt.wantLimited && rep.Answers["rate_limited"] < 30 {
			t.Errorf("--end-user-ips %s: %d answers of 429, want at least 30 of 40", tt.ips, rep.Answers["rate_limited"])
		}
	}
}

func TestRun_Flags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"NoKey", nil, "API key"},
		{"Argument", []string{"--key", "k", "extra"}, "no arguments"},
		{"MixNot100", []string{"--key", "k", "--mix", "valid=90,invalid=5"}, "add up to 100"},
		{"MixUnknownOp", []string{"--key", "k", "--mix", "valid=90,bogus=10"}, "bogus"},
		{"Period", []string{"--key", "k", "--period", "0"}, "--period"},
		{"URL", []string{"--key", "k", "--url", "localhost:8080"}, "--url"},
		{"Users", []string{"--key", "k", "--users", "0"}, "--users"},
		{"NoBudget", []string{"--key", "k", "--duration", "0"}, "--duration"},
		{"EndUserIPs", []string{"--key", "k", "--end-user-ips", "-1"}, "--end-user-ips"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"twofa-bench"}, tt.args...), getenv(nil), strings.NewReader(""), &out, &errOut)
			if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v (exit %d), want a usage error about %s", err, exitCode(err), tt.want)
			}
		})
	}
	// An unknown flag: flag prints the problem, the exit status is 2.
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"twofa-bench", "--bogus"}, getenv(nil), strings.NewReader(""), &out, &errOut)
	if exitCode(err) != 2 || !strings.Contains(errOut.String(), "bogus") {
		t.Errorf("--bogus: got %v (exit %d), stderr %q; want exit 2 naming the flag", err, exitCode(err), errOut.String())
	}
}

func TestRun_Help(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"twofa-bench", "-h"}, getenv(nil), strings.NewReader(""), &out, &errOut)
	if err != nil || !strings.Contains(errOut.String(), "Usage: twofa-bench") || !strings.Contains(errOut.String(), "--users-file") {
		t.Errorf("-h: got %v, stderr:\n%s\nwant no error and the usage", err, errOut.String())
	}
}

// TestRun_KeyFromEnv checks that $TWOFA_API_KEY stands for --key: the run
// gets as far as the server, which is not there.
func TestRun_KeyFromEnv(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"twofa-bench", "--url", "http://127.0.0.1:1", "--users", "1", "--requests", "1"}
	err := run(context.Background(), args, getenv(map[string]string{"TWOFA_API_KEY": "k"}), strings.NewReader(""), &out, &errOut)
	if err == nil || exitCode(err) == 2 || !strings.Contains(err.Error(), "no user could be enrolled") {
		t.Errorf("got %v (exit %d), want the enrollment to fail against no server", err, exitCode(err))
	}
}

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var (
	buildOnce sync.Once
	twofaBin  string
	buildErr  error
)

// twofa builds the twofa binary once per test run.
func twofa(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "twofa-bench-test-")
		if err != nil {
			buildErr = err
			return
		}
		twofaBin = filepath.Join(dir, "twofa")
		out, err := exec.Command("go", "build", "-o", twofaBin, "github.com/twofa/twofa/cmd/twofa").CombinedOutput()
		if err != nil {
			buildErr = err
			twofaBin = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build ./cmd/twofa: %v\n%s", buildErr, twofaBin)
	}
	return twofaBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if twofaBin != "" && buildErr == nil {
		os.RemoveAll(filepath.Dir(twofaBin))
	}
	os.Exit(code)
}

// childEnv is our environment without TWOFA_* settings, which would
// change what the server does: it makes and uses a development master
// key in its data directory.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TWOFA_") {
			env = append(env, kv)
		}
	}
	return env
}

// startServer runs `twofa serve` on a free port with its database in dir
// and returns its URL once /healthz answers; the server is stopped when
// the test ends.
func startServer(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(twofa(t), append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--log-level", "warn"}, args...)...)
	cmd.Env = childEnv()
	var logs bytes.Buffer
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	br := bufio.NewReader(stdout)
	line, err := br.ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "twofa listening on ")
	if err != nil || !ok {
		cmd.Process.Kill()
		<-done
		t.Fatalf("twofa serve did not start: %q, %v\n%s", line, err, logs.String())
	}
	go io.Copy(io.Discard, br)
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz 200 from %s after a minute: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createKey creates an app API key for tenant acme with `twofa apikey create`.
func createKey(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(twofa(t), "apikey", "create", "--data", dir, "--name", "bench", "--tenant", "acme")
	cmd.Env = childEnv()
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("twofa apikey create: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
