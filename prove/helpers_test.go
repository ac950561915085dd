// Package prove runs the real twofa binary as separate processes, several
// replicas on one PostgreSQL and kill -9 under load, and checks what the
// service promises: one success per code, lockouts across replicas, no
// acknowledged write lost, an audit chain that verifies. See issue #6.
// The email tests (email_*_test.go, issue #12) add a real SMTP server,
// Mailpit: every outbox row mailed once (repeats only with its
// Message-ID), none lost, under kill -9 and over three replicas.
//
// Short mode (the default) keeps go test ./... fast; TWOFA_PROVE_FULL=1
// (make prove) runs the full rounds and prints the figures.
package prove

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twofa/twofa/internal/twofatest"
)

var (
	binary      string // the twofa binary, built once by TestMain
	benchBinary string // the twofa-bench binary (the load generator), likewise
	masterKey   string // TWOFA_MASTER_KEY for every process: "1:BASE64"
)

// full reports whether to run the full rounds of make prove.
func full() bool { return os.Getenv("TWOFA_PROVE_FULL") == "1" }

// pick returns the full-mode or the short-mode value.
func pick[T any](fullV, shortV T) T {
	if full() {
		return fullV
	}
	return shortV
}

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "twofa-prove-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "prove: finding the module root:", err)
		return 1
	}
	binary, benchBinary = filepath.Join(dir, "twofa"), filepath.Join(dir, "twofa-bench")
	build := exec.Command("go", "build", "-o", dir, "./cmd/twofa", "./cmd/twofa-bench")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "prove: go build ./cmd/twofa ./cmd/twofa-bench: %v\n%s", err, out)
		return 1
	}
	out, err := exec.Command(binary, "keys", "generate").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "prove: twofa keys generate:", err)
		return 1
	}
	masterKey = "1:" + strings.TrimSpace(string(out))
	return m.Run()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return filepath.Abs("..")
	}
	return filepath.Dir(gomod), nil
}

// procEnv is the environment of every twofa process: ours, minus any
// TWOFA_* setting that would change what a test means, plus the key.
func procEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TWOFA_") && !strings.HasPrefix(kv, "TWOFA_TEST_") && !strings.HasPrefix(kv, "TWOFA_PROVE_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "TWOFA_MASTER_KEY="+masterKey)
}

// syncBuffer collects a process's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 { // keep the tail bounded
		s.b.Reset()
	}
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// replica is a running `twofa serve` process.
type replica struct {
	t      testing.TB
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan struct{}
	err    error // of Wait, once done is closed
}

// db is where a process keeps its data: ["--db", DSN] or ["--data", dir].
type db []string

// startReplica starts `twofa serve` on a free port and waits for /readyz.
func startReplica(t testing.TB, where db, extra ...string) *replica {
	t.Helper()
	r, _ := launch(t, procEnv(), 60*time.Second, append(append([]string(nil), where...), extra...)...)
	return r
}

// launch starts `twofa serve` on a free port with the environment env and
// waits, up to limit for each, for its listening line and a /readyz 200.
// It returns the replica and the time from exec to that first 200.
func launch(t testing.TB, env []string, limit time.Duration, args ...string) (*replica, time.Duration) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	cmd.Env = env
	r := &replica{t: t, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = r.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(r.kill)
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		lines <- line
		io.Copy(io.Discard, br)
	}()
	select {
	case line := <-lines:
		u, ok := strings.CutPrefix(strings.TrimSpace(line), "twofa listening on ")
		if !ok {
			r.kill()
			t.Fatalf("twofa serve did not start: %q\n%s", line, r.stderr)
		}
		r.url = u
	case <-time.After(limit):
		r.kill()
		t.Fatalf("twofa serve: no listening line after %s\n%s", limit, r.stderr)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(limit)
	for {
		resp, err := client.Get(r.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r, time.Since(start)
			}
		}
		if time.Now().After(deadline) {
			r.kill()
			t.Fatalf("no /readyz 200 after %s: %v\n%s", limit, err, r.stderr)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// kill sends SIGKILL (a real kill -9) and waits for the process to go.
func (r *replica) kill() {
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// stop asks the process to shut down (SIGTERM) and waits.
func (r *replica) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		r.t.Errorf("twofa serve did not stop on SIGTERM in 20s")
		r.kill()
	}
}

// cli runs a twofa command and returns its stdout, stderr and exit code.
func cli(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = procEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("twofa %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// apiKey creates an API key with `twofa apikey create`.
func apiKey(t testing.TB, where db, tenant string, admin bool) string {
	t.Helper()
	args := append([]string{"apikey", "create", "--name", "prove", "--tenant", tenant}, where...)
	if admin {
		args = append(args, "--admin")
	}
	out, errOut, code := cli(t, args...)
	if code != 0 {
		t.Fatalf("twofa apikey create: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// auditVerify runs `twofa audit verify` (the operator's check).
func auditVerify(t testing.TB, where db) {
	t.Helper()
	out, errOut, code := cli(t, append([]string{"audit", "verify"}, where...)...)
	if code != 0 {
		t.Errorf("twofa audit verify: exit %d\n%s%s", code, out, errOut)
	}
}

// postgresDB creates a schema of its own in the test database and
// returns the DSN that uses it.
func postgresDB(t testing.TB) db {
	t.Helper()
	return db{"--db", twofatest.PostgresDSN(t)}
}

// api is a client of one API key.
type api struct {
	key    string
	client *http.Client
}

func newAPI(key string) *api {
	return &api{key: key, client: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}}
}

// reply is an answered request.
type reply struct {
	status int
	body   map[string]any
	raw    string
}

func (r reply) valid() bool { return r.status == 200 && r.body["valid"] == true }
func (r reply) reason() string {
	s, _ := r.body["reason"].(string)
	return s
}
func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }
func (r reply) String() string      { return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(r.raw)) }

// do sends a request; an error means no answer was read (the request
// may or may not have taken effect).
func (a *api) do(ctx context.Context, method, u string, body any) (reply, error) {
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return reply{}, err
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r, nil
}

// must sends a request that has to be answered.
func (a *api) must(t testing.TB, method, u string, body any) reply {
	t.Helper()
	r, err := a.do(context.Background(), method, u, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

// figures collects the numbers a run reports: logged, and appended to
// $TWOFA_PROVE_OUT/results.txt when that is set.
var figuresMu sync.Mutex

func figure(t testing.TB, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Logf("FIGURE %s", line)
	dir := os.Getenv("TWOFA_PROVE_OUT")
	if dir == "" {
		return
	}
	figuresMu.Lock()
	defer figuresMu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("TWOFA_PROVE_OUT: %v", err)
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, "results.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("TWOFA_PROVE_OUT: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), t.Name(), line)
}
