// Command twofa-bench drives a running twofa server with verifications,
// checks every answer, and reports throughput and latency. It is a tool of
// its own, not a command of the twofa binary, so the server ships without
// the load generator.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ex exitError
		if !errors.As(err, &ex) || ex.msg != "" {
			fmt.Fprintln(os.Stderr, "twofa-bench:", err)
		}
		os.Exit(exitCode(err))
	}
}

// env is what the program reads from its surroundings; tests pass their own.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run is the whole program: main only wires it to the process, so tests
// can start the real thing.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	c, err := parseConfig(e, args[1:])
	if err != nil || c == nil {
		return err
	}
	return bench(ctx, e, c)
}

// exitError carries an exit status; an empty message prints nothing.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// usageError is a mistake in the command line: exit status 2.
func usageError(msg string) error { return exitError{code: 2, msg: msg} }

func exitCode(err error) int {
	var ex exitError
	if errors.As(err, &ex) {
		return ex.code
	}
	return 1
}

const about = `twofa-bench drives a running twofa server with verifications and checks
every answer.

Phase 1 enrolls --users users (POST /v1/users/{id}/totp, then confirm) and
keeps their secrets in memory only (or in --users-file). Phase 2 runs
--concurrency workers, each on its own keep-alive connection, sending a
--mix of valid codes, wrong codes and replays of codes just accepted, for
--duration or --requests.

Why --period 1: every TOTP step is accepted once, so a user can verify only
when the clock has moved to a step newer than their last accepted one, and
the window is one step either side. With the usual 30 s period a user can
verify about once per 30 s; thousands of verifications a second would need
a hundred thousand users. With 1 s devices each user can verify once a
second, so N users sustain up to N valid verifications/s; valid codes go to
users round-robin, and a worker that finds no user ready waits for the next
step. Bench and server must share a clock (loopback) to within a step.

The server checks and counts a code in one step: a valid code is never
counted as a failure; a wrong code or a replay is, and the server's
--lock-after (5 by default) consecutive failures lock the user until a
lock expires, with no decay but a success. So wrong codes and replays go
only to users with fewer than 3 failures counted, and every user also gets
valid codes, which clear the count. An op with no eligible user is counted
as skipped.

A valid code refused, a wrong or replayed code accepted, a 5xx or any other
error is an unexpected outcome: it is reported loudly and twofa-bench exits
1. A valid code (or replay) refused as invalid after the request spanned two
step boundaries is counted as "late", not unexpected.`

// config is the command line.
type config struct {
	url         string
	key         string
	users       int
	concurrency int
	duration    time.Duration
	requests    int64
	mix         opMix
	period      int
	baseline    bool
	serverPID   int
	prefix      string
	json        bool
	usersFile   string
	ips         int
}

// parseConfig reads the command line. A nil config and nil error mean
// -h: the usage is printed.
func parseConfig(e *env, args []string) (*config, error) {
	fs := flag.NewFlagSet("twofa-bench", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "%s\n\nUsage: twofa-bench [flags]\n\nFlags:\n", about)
		fs.PrintDefaults()
	}
	var c config
	mix := "valid=90,invalid=5,replayed=5"
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080", "base `URL` of the running server")
	fs.StringVar(&c.key, "key", "", "app API `key` ($TWOFA_API_KEY)")
	fs.IntVar(&c.users, "users", 1000, "users to enroll; with --period 1 each can verify once a second")
	fs.IntVar(&c.concurrency, "concurrency", 32, "workers, each with its own connection")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to send verifications (with --requests alone: no limit)")
	fs.Int64Var(&c.requests, "requests", 0, "stop after this many verifications (0: no limit)")
	fs.StringVar(&mix, "mix", mix, "percentages of valid, invalid and replayed codes")
	fs.IntVar(&c.period, "period", 1, "TOTP period of the enrolled devices, in `seconds` (see above)")
	fs.BoolVar(&c.baseline, "baseline", false, "also measure a trivial net/http handler in this process with the same client, and give the ratio")
	fs.IntVar(&c.serverPID, "server-pid", 0, "read the server's RSS from /proc/`PID`/status (default: its /metrics)")
	fs.StringVar(&c.prefix, "user-prefix", "", "prefix of the enrolled user IDs (default: bench-RUNID, random, so runs do not collide)")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON")
	fs.IntVar(&c.ips, "end-user-ips", 0, "send X-End-User-IP with every verification, from this many addresses (user i has address i mod N), so that the server counts its per-IP limit (failed checks a minute per address); 0: none")
	fs.StringVar(&c.usersFile, "users-file", "", "`file` of enrolled users' IDs, secrets and state: loaded instead of enrolling if it exists, else written (mode 0600) after enrolling, and updated after the run; it holds TOTP secrets, keep it private")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil, nil
	} else if err != nil {
		return nil, exitError{code: 2} // flag printed the problem
	}
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	if c.requests > 0 && !durationSet {
		c.duration = 0
	}
	if fs.NArg() > 0 {
		return nil, usageError("twofa-bench takes no arguments")
	}
	if c.key == "" {
		c.key = e.getenv("TWOFA_API_KEY")
	}
	var err error
	if c.mix, err = parseMix(mix); err != nil {
		return nil, usageError("--mix: " + err.Error())
	}
	switch {
	case c.key == "":
		return nil, usageError("an app API key is needed: --key or $TWOFA_API_KEY")
	case c.users < 1:
		return nil, usageError("--users must be at least 1")
	case c.concurrency < 1:
		return nil, usageError("--concurrency must be at least 1")
	case c.duration < 0 || c.requests < 0 || c.duration == 0 && c.requests == 0:
		return nil, usageError("give a positive --duration or --requests")
	case c.ips < 0 || c.ips > 1<<24:
		return nil, usageError("--end-user-ips must be 0 to 16777216")
	case c.period < 1 || c.period > 120:
		return nil, usageError("--period must be 1 to 120 seconds")
	}
	c.url = strings.TrimRight(c.url, "/")
	if u, err := url.Parse(c.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError("--url must be an http:// or https:// URL")
	}
	if c.prefix == "" {
		id := make([]byte, 4)
		rand.Read(id)
		c.prefix = "bench-" + hex.EncodeToString(id)
	}
	return &c, nil
}
