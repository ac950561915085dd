package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/twofa/twofa/otp"
)

const benchAbout = `Bench drives a running twofa server with verifications and checks every answer.

Phase 1 enrolls --users users (POST /v1/users/{id}/totp, then confirm) and
keeps their secrets in memory only. Phase 2 runs --concurrency workers, each
on its own keep-alive connection, sending a --mix of valid codes, wrong
codes and replays of codes just accepted, for --duration or --requests.

Why --period 1: every TOTP step is accepted once, so a user can verify only
when the clock has moved to a step newer than their last accepted one, and
the window is one step either side. With the usual 30 s period a user can
verify about once per 30 s; thousands of verifications a second would need
a hundred thousand users. With 1 s devices each user can verify once a
second, so N users sustain up to N valid verifications/s; valid codes go to
users round-robin, and a worker that finds no user ready waits for the next
step. Bench and server must share a clock (loopback) to within a step.

Wrong codes and replays count as failures and 5 consecutive failures lock a
user (--lock-after), with no decay but a success; so failures go only to
users with fewer than 3 outstanding, and every user also gets valid codes,
which clear the count. An op with no eligible user is counted as skipped.

A valid code refused, a wrong or replayed code accepted, a 5xx or any other
error is an unexpected outcome: it is reported loudly and bench exits 1.
A valid code (or replay) refused as invalid after the request spanned two
step boundaries is counted as "late", not unexpected.`

// benchFailLimit is the outstanding failures a user may have before a
// wrong code or replay is sent to them: a valid attempt is counted as a
// failure too until it succeeds, so at most 4 are ever counted, one short
// of the default lock-after of 5.
const benchFailLimit = 3

// benchConfig is the command line of twofa bench.
type benchConfig struct {
	url         string
	key         string
	users       int
	concurrency int
	duration    time.Duration
	requests    int64
	mix         benchMix
	period      int
	baseline    bool
	serverPID   int
	prefix      string
	json        bool
	usersFile   string
	ips         int
}

func runBench(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench", "twofa bench [flags]")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "%s\n\nUsage: twofa bench [flags]\n\nFlags:\n", benchAbout)
		fs.PrintDefaults()
	}
	var c benchConfig
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
	fs.IntVar(&c.ips, "end-user-ips", 0, "send X-End-User-IP with every verification, from this many addresses (user i has address i mod N), so the per-IP limit is checked (an extra write a verification); 0: none")
	fs.StringVar(&c.usersFile, "users-file", "", "`file` of enrolled users' IDs, secrets and state: loaded instead of enrolling if it exists, else written (mode 0600) after enrolling, and updated after the run; it holds TOTP secrets, keep it private")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	if c.requests > 0 && !durationSet {
		c.duration = 0
	}
	if fs.NArg() > 0 {
		return usageError("bench takes no arguments")
	}
	if c.key == "" {
		c.key = e.getenv("TWOFA_API_KEY")
	}
	var err error
	if c.mix, err = parseMix(mix); err != nil {
		return usageError("--mix: " + err.Error())
	}
	switch {
	case c.key == "":
		return usageError("an app API key is needed: --key or $TWOFA_API_KEY")
	case c.users < 1:
		return usageError("--users must be at least 1")
	case c.concurrency < 1:
		return usageError("--concurrency must be at least 1")
	case c.duration < 0 || c.requests < 0 || c.duration == 0 && c.requests == 0:
		return usageError("give a positive --duration or --requests")
	case c.ips < 0 || c.ips > 1<<24:
		return usageError("--end-user-ips must be 0 to 16777216")
	case c.period < 1 || c.period > 120:
		return usageError("--period must be 1 to 120 seconds")
	}
	c.url = strings.TrimRight(c.url, "/")
	if u, err := url.Parse(c.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError("--url must be an http:// or https:// URL")
	}
	if c.prefix == "" {
		id := make([]byte, 4)
		rand.Read(id)
		c.prefix = "bench-" + hex.EncodeToString(id)
	}
	return bench(ctx, e, &c)
}

// benchMix is the share of each op, in percent.
type benchMix [numOps]int

func parseMix(s string) (benchMix, error) {
	var m benchMix
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 0 {
			return m, fmt.Errorf("want name=percent, got %q", part)
		}
		op := -1
		for i, o := range opNames {
			if o == name {
				op = i
			}
		}
		if op < 0 || seen[name] {
			return m, fmt.Errorf("%q: want each of valid, invalid, replayed at most once", name)
		}
		seen[name] = true
		m[op] = n
	}
	if m[opValid]+m[opInvalid]+m[opReplayed] != 100 {
		return m, errors.New("percentages must add up to 100")
	}
	return m, nil
}

func (m benchMix) pick(r *mrand.Rand) int {
	n := r.IntN(100)
	for op, p := range m {
		if n < p {
			return op
		}
		n -= p
	}
	return opValid
}

func (m benchMix) String() string {
	return fmt.Sprintf("valid=%d,invalid=%d,replayed=%d", m[opValid], m[opInvalid], m[opReplayed])
}

// Ops bench sends, and the answers it sorts replies into.
const (
	opValid = iota
	opInvalid
	opReplayed
	numOps
)

var opNames = [numOps]string{"valid", "invalid", "replayed"}

const (
	ansValid = iota
	ansInvalidCode
	ansReplayed
	ansRateLimited
	ansLate
	ansError
	numAnswers
)

var answerNames = [numAnswers]string{"valid", "invalid_code", "replayed", "rate_limited", "late", "error"}

// benchUser is an enrolled user. busy is a try-lock: a user has at most
// one request in flight, so last and fails are what the server holds.
type benchUser struct {
	id     string
	path   string // of the verify endpoint
	ipHdr  []byte // "X-End-User-IP: ...\r\n", with --end-user-ips
	key    *otp.Key
	secret string // base32, kept only for --users-file
	busy   atomic.Bool
	last   uint64 // last accepted step
	fails  int    // failures counted since the last success
}

func (u *benchUser) tryLock() bool { return u.busy.CompareAndSwap(false, true) }
func (u *benchUser) unlock()       { u.busy.Store(false) }

// bencher holds what both phases share.
type bencher struct {
	cfg    *benchConfig
	client *http.Client
	users  []*benchUser
}

func bench(ctx context.Context, e *env, c *benchConfig) error {
	b := &bencher{cfg: c, client: benchClient(c.concurrency)}
	defer b.client.CloseIdleConnections()
	rep := &benchReport{URL: c.url, Users: c.users, Concurrency: c.concurrency, Period: c.period, Mix: c.mix.String(), EndUserIPs: c.ips, UserPrefix: c.prefix}

	loaded, err := b.loadUsers()
	if err != nil {
		return err
	}
	if loaded {
		rep.Enroll.Users = len(b.users)
		fmt.Fprintf(e.stderr, "enroll: %d users loaded from %s\n", len(b.users), c.usersFile)
	} else {
		if err := b.enroll(ctx, e.stderr, &rep.Enroll); err != nil {
			return err
		}
		if err := b.saveUsers(); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	if c.ips > 0 {
		for i, u := range b.users {
			n := 1 + i%c.ips // 10.0.0.1 on: private addresses, as an application behind a proxy would see
			u.ipHdr = fmt.Appendf(nil, "X-End-User-IP: 10.%d.%d.%d\r\n", n>>16&255, n>>8&255, n&255)
		}
	}
	ld := &loader{bencher: b, step: b.step}
	ld.invalidNext.Store(uint64(len(b.users) / 2)) // away from the valid cursor
	total, elapsed := b.drive(ctx, e.stderr, "load", ld.work)
	rep.fill(total, elapsed)
	if err := b.saveUsers(); err != nil {
		return err
	}

	rep.RSSBytes, rep.RSSSource = b.serverRSS(ctx)

	if c.baseline && ctx.Err() == nil {
		limit := c.requests
		if limit > 0 {
			limit = rep.Requests
		}
		base, belapsed, err := b.baseline(ctx, e.stderr, elapsed, limit)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		rep.Baseline = &benchBaseline{Requests: base.hist.n, Seconds: belapsed.Seconds(), Errors: base.answers[ansError]}
		rep.Baseline.Throughput = float64(base.hist.n) / belapsed.Seconds()
		rep.Baseline.Latency = base.hist.summary()
		if rep.Baseline.Throughput > 0 {
			rep.Ratio = rep.Throughput / rep.Baseline.Throughput
		}
	}

	if c.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.print(e.stdout)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if n := rep.Unexpected + int64(rep.Enroll.Errors); n > 0 {
		fmt.Fprintf(e.stderr, "\n!!! %d UNEXPECTED OUTCOMES !!!\n", n)
		for _, s := range append(rep.Enroll.Samples, rep.UnexpectedSamples...) {
			fmt.Fprintln(e.stderr, "  ", s)
		}
		return exitError{code: 1, msg: fmt.Sprintf("bench: %d unexpected outcomes", n)}
	}
	return nil
}

// benchClient is an HTTP client with a keep-alive connection per worker.
func benchClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // loopback: never through $HTTP_PROXY
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2 * conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// step is the TOTP step of the enrolled devices at t (T0 = 0).
func (b *bencher) step(t time.Time) uint64 { return uint64(t.Unix()) / uint64(b.cfg.period) }

// apiReply is the part of a verify, confirm or error response bench reads.
type apiReply struct {
	Valid  bool   `json:"valid"`
	Reason string `json:"reason"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// post sends a JSON body and decodes the reply into out, reading the body
// to the end so the connection is reused.
func (b *bencher) post(ctx context.Context, path string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.cfg.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("reply is not JSON: %.100q", raw)
		}
	}
	return resp.StatusCode, nil
}

func codeBody(code string) []byte { return []byte(`{"code":"` + code + `"}`) }

// freshCode returns the code of step s, unless it is also the code of a
// step near s: the server takes the latest matching step in its window, so
// such a code could burn a later step than bench believes.
func freshCode(k *otp.Key, s uint64) (string, bool) {
	c := k.HOTP(s)
	for d := -3; d <= 3; d++ {
		if d != 0 && int64(s)+int64(d) >= 0 && k.HOTP(uint64(int64(s)+int64(d))) == c {
			return "", false
		}
	}
	return c, true
}

// wrongCode returns a code that matches no step near now.
func wrongCode(k *otp.Key, r *mrand.Rand, now time.Time) string {
	for {
		c := fmt.Sprintf("%06d", r.IntN(1000000))
		if m, err := k.Verify(c, now, otp.Window{Behind: 8, Ahead: 8}); err == nil && !m.Valid {
			return c
		}
	}
}

// enrollStats is phase 1 of the report.
type enrollStats struct {
	Users     int      `json:"users"`
	Errors    int      `json:"errors"`
	Seconds   float64  `json:"seconds"`
	PerSecond float64  `json:"per_second"`
	Samples   []string `json:"error_samples,omitempty"`
}

// enroll enrolls and confirms cfg.users users with cfg.concurrency workers.
func (b *bencher) enroll(ctx context.Context, stderr io.Writer, st *enrollStats) error {
	n := b.cfg.users
	users := make([]*benchUser, n)
	var next, done atomic.Int64
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		st.Errors++
		if len(st.Samples) < 5 {
			st.Samples = append(st.Samples, "enroll: "+fmt.Sprintf(format, args...))
		}
	}
	start := time.Now()
	stopProgress := progress(stderr, func(d time.Duration) string {
		k := done.Load()
		return fmt.Sprintf("enroll: %d/%d users (%.0f/s)", k, n, float64(k)/d.Seconds())
	})
	var wg sync.WaitGroup
	for range min(b.cfg.concurrency, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				u, err := b.enrollOne(ctx, fmt.Sprintf("%s-%d", b.cfg.prefix, i))
				if err != nil {
					if ctx.Err() == nil {
						fail("%v", err)
					}
					continue
				}
				users[i] = u
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	for _, u := range users {
		if u != nil {
			b.users = append(b.users, u)
		}
	}
	st.Users, st.Seconds = len(b.users), elapsed.Seconds()
	st.PerSecond = float64(len(b.users)) / elapsed.Seconds()
	fmt.Fprintf(stderr, "enroll: %d users in %.1fs (%.0f/s), %d errors\n", st.Users, st.Seconds, st.PerSecond, st.Errors)
	if len(b.users) == 0 && ctx.Err() == nil {
		for _, s := range st.Samples {
			fmt.Fprintln(stderr, "  ", s)
		}
		return errors.New("bench: no user could be enrolled")
	}
	return nil
}

// enrollOne begins a TOTP enrollment and confirms it with the code of the
// current step, which the server then holds as the last accepted step.
func (b *bencher) enrollOne(ctx context.Context, id string) (*benchUser, error) {
	base := "/v1/users/" + url.PathEscape(id)
	var en struct {
		DeviceID string `json:"device_id"`
		Secret   string `json:"secret"`
		apiReply
	}
	status, err := b.post(ctx, base+"/totp", fmt.Appendf(nil, `{"name":"bench","period":%d}`, b.cfg.period), &en)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	if status != http.StatusCreated {
		return nil, fmt.Errorf("%s: begin: %d %s", id, status, replyError(en.apiReply))
	}
	secret, err := otp.DecodeSecret(en.Secret)
	if err != nil {
		return nil, fmt.Errorf("%s: secret: %w", id, err)
	}
	k, err := otp.NewKey(secret, otp.Params{Period: b.cfg.period})
	clear(secret)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	// A code that is also a neighbouring step's, or one that went stale
	// in flight, is retried with the next step (an enrollment takes 10).
	for try := 0; try < 5; try++ {
		s := b.step(time.Now())
		code, ok := freshCode(k, s)
		if !ok {
			sleepCtx(ctx, time.Until(time.Unix(int64(s+1)*int64(b.cfg.period), 0)))
			continue
		}
		var r apiReply
		status, err := b.post(ctx, base+"/totp/"+url.PathEscape(en.DeviceID)+"/confirm", codeBody(code), &r)
		if err != nil {
			return nil, fmt.Errorf("%s: confirm: %w", id, err)
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("%s: confirm: %d %s", id, status, replyError(r))
		}
		if r.Valid {
			u := &benchUser{id: id, path: base + "/verify", key: k, last: s}
			if b.cfg.usersFile != "" {
				u.secret = en.Secret
			}
			return u, nil
		}
		if b.step(time.Now()) < s+2 {
			return nil, fmt.Errorf("%s: confirm: a valid code refused: %s", id, r.Reason)
		}
	}
	return nil, fmt.Errorf("%s: confirm: no code accepted in 5 tries", id)
}

// savedUser is a line of --users-file.
type savedUser struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
	Period int    `json:"period"`
	Last   uint64 `json:"last"`
	Fails  int    `json:"fails"`
}

// loadUsers reads --users-file, if given and present, into b.users.
func (b *bencher) loadUsers() (bool, error) {
	if b.cfg.usersFile == "" {
		return false, nil
	}
	f, err := os.Open(b.cfg.usersFile)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	now := b.step(time.Now())
	dec := json.NewDecoder(f)
	for {
		var su savedUser
		if err := dec.Decode(&su); err == io.EOF {
			break
		} else if err != nil {
			return false, fmt.Errorf("%s: %w", b.cfg.usersFile, err)
		}
		if su.Period != b.cfg.period {
			return false, fmt.Errorf("%s: user %s has period %d, not --period %d", b.cfg.usersFile, su.ID, su.Period, b.cfg.period)
		}
		secret, err := otp.DecodeSecret(su.Secret)
		if err != nil {
			return false, fmt.Errorf("%s: user %s: %w", b.cfg.usersFile, su.ID, err)
		}
		k, err := otp.NewKey(secret, otp.Params{Period: b.cfg.period})
		clear(secret)
		if err != nil {
			return false, fmt.Errorf("%s: user %s: %w", b.cfg.usersFile, su.ID, err)
		}
		b.users = append(b.users, &benchUser{id: su.ID, path: "/v1/users/" + url.PathEscape(su.ID) + "/verify",
			key: k, secret: su.Secret, last: max(su.Last, now), fails: su.Fails})
	}
	if len(b.users) == 0 {
		return false, fmt.Errorf("%s: no users", b.cfg.usersFile)
	}
	return true, nil
}

// saveUsers writes b.users to --users-file, if given, with mode 0600.
func (b *bencher) saveUsers() error {
	if b.cfg.usersFile == "" {
		return nil
	}
	tmp := b.cfg.usersFile + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, u := range b.users {
		if err := enc.Encode(savedUser{ID: u.id, Secret: u.secret, Period: b.cfg.period, Last: u.last, Fails: u.fails}); err != nil {
			f.Close()
			return err
		}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, b.cfg.usersFile)
}

func replyError(r apiReply) string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Code + ": " + r.Error.Message
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// progress prints line(elapsed) to w every second until stopped.
func progress(w io.Writer, line func(time.Duration) string) (stop func()) {
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(w, line(time.Since(start)))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// lane is what one worker records; lanes are merged at the end, so the
// hot path takes no lock.
type lane struct {
	wire       *wire // the worker's connection
	rng        *mrand.Rand
	hist       histogram
	sent       [numOps]int64
	skipped    [numOps]int64
	answers    [numAnswers]int64
	status     map[int]int64
	unexpected int64
	samples    []string
}

func newLane() *lane {
	var seed [16]byte
	rand.Read(seed[:])
	return &lane{
		rng:    mrand.New(mrand.NewPCG(leUint64(seed[:8]), leUint64(seed[8:]))),
		status: map[int]int64{},
	}
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := range 8 {
		v |= uint64(b[i]) << (8 * i)
	}
	return v
}

// post sends a JSON body on the lane's connection and decodes the reply
// into out.
func (l *lane) post(ctx context.Context, path string, body []byte, out any, header ...byte) (int, error) {
	status, raw, err := l.wire.post(ctx, path, body, header...)
	if err != nil {
		return status, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return status, fmt.Errorf("reply is not JSON: %.100q", raw)
		}
	}
	return status, nil
}

func (l *lane) unexpectedf(format string, args ...any) {
	l.unexpected++
	if len(l.samples) < 10 {
		l.samples = append(l.samples, fmt.Sprintf(format, args...))
	}
}

func (l *lane) merge(o *lane) {
	l.hist.merge(&o.hist)
	for i := range l.sent {
		l.sent[i] += o.sent[i]
		l.skipped[i] += o.skipped[i]
	}
	for i := range l.answers {
		l.answers[i] += o.answers[i]
	}
	for k, v := range o.status {
		l.status[k] += v
	}
	l.unexpected += o.unexpected
	l.samples = append(l.samples, o.samples...)
}

// budget bounds a run by time and by requests.
type budget struct {
	deadline time.Time // zero: none
	limit    int64     // 0: none
	issued   atomic.Int64
}

func (bg *budget) over() bool { return !bg.deadline.IsZero() && !time.Now().Before(bg.deadline) }

// take admits one more request.
func (bg *budget) take() bool {
	if bg.over() {
		return false
	}
	n := bg.issued.Add(1)
	return bg.limit == 0 || n <= bg.limit
}

// drive runs cfg.concurrency copies of work until the budget runs out or
// ctx is done, and returns the merged lanes and the time taken.
func (b *bencher) drive(ctx context.Context, stderr io.Writer, name string, work func(context.Context, *budget, *lane)) (*lane, time.Duration) {
	return b.driveFor(ctx, stderr, name, b.cfg.duration, b.cfg.requests, work)
}

func (b *bencher) driveFor(ctx context.Context, stderr io.Writer, name string, d time.Duration, limit int64, work func(context.Context, *budget, *lane)) (*lane, time.Duration) {
	bg := &budget{limit: limit}
	start := time.Now()
	if d > 0 {
		bg.deadline = start.Add(d)
	}
	stopProgress := progress(stderr, func(d time.Duration) string {
		n := bg.issued.Load()
		return fmt.Sprintf("%s: %.0fs, %d requests (%.0f/s)", name, d.Seconds(), n, float64(n)/d.Seconds())
	})
	lanes := make([]*lane, b.cfg.concurrency)
	for i := range lanes {
		lanes[i] = newLane()
		w, err := newWire(b.cfg.url, b.cfg.key)
		if err != nil {
			panic(err) // runBench checked the URL
		}
		lanes[i].wire = w
	}
	// An interrupt ends the requests in flight at once.
	stop := context.AfterFunc(ctx, func() {
		for _, l := range lanes {
			l.wire.interrupt()
		}
	})
	var wg sync.WaitGroup
	for _, l := range lanes {
		wg.Go(func() { work(ctx, bg, l) })
	}
	wg.Wait()
	stop()
	for _, l := range lanes {
		l.wire.Close()
	}
	elapsed := time.Since(start)
	stopProgress()
	total := newLane()
	for _, l := range lanes {
		total.merge(l)
	}
	return total, elapsed
}

// loader is phase 2: verifications against the enrolled users.
type loader struct {
	*bencher
	step        func(time.Time) uint64
	validNext   atomic.Uint64 // round-robin cursors over users
	invalidNext atomic.Uint64

	mu      sync.Mutex
	recent  [256]acceptedCode // ring of codes just accepted, for replays
	nrecent uint64
}

type acceptedCode struct {
	u    *benchUser
	step uint64
	code string
}

// opResult is what became of one op.
type opResult int

const (
	opDone opResult = iota
	opSkipped
	opStop
)

func (ld *loader) work(ctx context.Context, bg *budget, l *lane) {
	for ctx.Err() == nil && !bg.over() {
		op := ld.cfg.mix.pick(l.rng)
		var r opResult
		switch op {
		case opValid:
			r = ld.valid(ctx, bg, l)
		case opInvalid:
			r = ld.invalid(ctx, bg, l)
		case opReplayed:
			r = ld.replay(ctx, bg, l)
		}
		switch r {
		case opStop:
			return
		case opSkipped:
			l.skipped[op]++
			if op == opValid {
				// Every user has used this step: wait for the next.
				s := ld.step(time.Now())
				wait := time.Until(time.Unix(int64(s+1)*int64(ld.cfg.period), 0))
				if !bg.deadline.IsZero() {
					wait = min(wait, time.Until(bg.deadline))
				}
				sleepCtx(ctx, wait)
			}
		}
	}
}

// valid sends the current code of the next user who has not used this
// step yet.
func (ld *loader) valid(ctx context.Context, bg *budget, l *lane) opResult {
	s := ld.step(time.Now())
	n := uint64(len(ld.users))
	for range n {
		u := ld.users[ld.validNext.Add(1)%n]
		if !u.tryLock() {
			continue
		}
		if u.last >= s {
			u.unlock()
			continue
		}
		code, ok := freshCode(u.key, s)
		if !ok {
			u.unlock()
			continue
		}
		if !bg.take() {
			u.unlock()
			return opStop
		}
		ld.send(ctx, l, opValid, u, code, s)
		u.unlock()
		return opDone
	}
	return opSkipped
}

// invalid sends a wrong code to the next user with room for a failure.
func (ld *loader) invalid(ctx context.Context, bg *budget, l *lane) opResult {
	n := uint64(len(ld.users))
	for range n {
		u := ld.users[ld.invalidNext.Add(1)%n]
		if !u.tryLock() {
			continue
		}
		if u.fails >= benchFailLimit {
			u.unlock()
			continue
		}
		now := time.Now()
		code := wrongCode(u.key, l.rng, now)
		if !bg.take() {
			u.unlock()
			return opStop
		}
		ld.send(ctx, l, opInvalid, u, code, ld.step(now))
		u.unlock()
		return opDone
	}
	return opSkipped
}

// replay resends a code accepted in the current step, which the server
// still has in its window.
func (ld *loader) replay(ctx context.Context, bg *budget, l *lane) opResult {
	s := ld.step(time.Now())
	var a acceptedCode
	ld.mu.Lock()
	for i := uint64(0); i < min(ld.nrecent, uint64(len(ld.recent))); i++ {
		r := &ld.recent[(ld.nrecent-1-i)%uint64(len(ld.recent))]
		if r.u == nil {
			continue
		}
		if r.step < s {
			break // older ones are older still
		}
		if !r.u.tryLock() {
			continue
		}
		if r.u.fails >= benchFailLimit || r.u.last != r.step {
			r.u.unlock()
			continue
		}
		a, r.u = *r, nil
		break
	}
	ld.mu.Unlock()
	if a.u == nil {
		return opSkipped
	}
	if !bg.take() {
		a.u.unlock()
		return opStop
	}
	ld.send(ctx, l, opReplayed, a.u, a.code, a.step)
	a.u.unlock()
	return opDone
}

// send verifies code for u (locked by the caller), records the latency and
// the answer, checks the answer against the op, and keeps u's state.
func (ld *loader) send(ctx context.Context, l *lane, op int, u *benchUser, code string, step uint64) {
	var r apiReply
	start := time.Now()
	status, err := l.post(ctx, u.path, codeBody(code), &r, u.ipHdr...)
	end := time.Now()
	if err != nil && ctx.Err() != nil {
		return // interrupted: neither a sample nor an error
	}
	l.hist.record(end.Sub(start))
	l.sent[op]++
	l.status[status]++
	late := ld.step(end) >= step+2

	var ans int
	switch {
	case err != nil:
		ans = ansError
		l.unexpectedf("%s op for %s: %v", opNames[op], u.id, err)
	case status == http.StatusTooManyRequests:
		ans = ansRateLimited
	case status != http.StatusOK:
		ans = ansError
		l.unexpectedf("%s op for %s: HTTP %d %s", opNames[op], u.id, status, replyError(r))
	case r.Valid:
		ans = ansValid
	case r.Reason == "replayed":
		ans = ansReplayed
	case r.Reason == "invalid_code" && late && op != opInvalid:
		ans = ansLate
	case r.Reason == "invalid_code":
		ans = ansInvalidCode
	default:
		ans = ansError
		l.unexpectedf("%s op for %s: refused with reason %q", opNames[op], u.id, r.Reason)
	}
	l.answers[ans]++

	want := [numOps]int{opValid: ansValid, opInvalid: ansInvalidCode, opReplayed: ansReplayed}[op]
	if ans != want && ans != ansError && ans != ansRateLimited && ans != ansLate {
		switch {
		case op == opValid:
			l.unexpectedf("VALID CODE REFUSED: %s step %d answered %s", u.id, step, answerNames[ans])
		case ans == ansValid:
			l.unexpectedf("%s CODE ACCEPTED: %s step %d", strings.ToUpper(opNames[op]), u.id, step)
		default:
			l.unexpectedf("%s code for %s answered %s", opNames[op], u.id, answerNames[ans])
		}
	}

	switch {
	case ans == ansValid:
		u.last, u.fails = max(u.last, step), 0
		if op == opValid {
			ld.mu.Lock()
			ld.recent[ld.nrecent%uint64(len(ld.recent))] = acceptedCode{u: u, step: step, code: code}
			ld.nrecent++
			ld.mu.Unlock()
		}
	case status == http.StatusOK:
		u.fails++
	case ans == ansError:
		// Whatever the server did, assume the worst: the step may be
		// burnt and failures counted.
		u.last, u.fails = max(u.last, step), benchFailLimit
	}
}

// baseline measures a trivial handler on loopback with the same client
// and concurrency, for as long (or as many requests) as the real run.
func (b *bencher) baseline(ctx context.Context, stderr io.Writer, d time.Duration, limit int64) (*lane, time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	reply := []byte(`{"valid":true}` + "\n")
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(reply)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(ln)
	defer srv.Close()

	cfg := *b.cfg
	cfg.url = "http://" + ln.Addr().String()
	base := &bencher{cfg: &cfg, client: b.client}
	if limit > 0 {
		d = 0
	}
	body := codeBody("123456")
	total, elapsed := base.driveFor(ctx, stderr, "baseline", d, limit, func(ctx context.Context, bg *budget, l *lane) {
		for ctx.Err() == nil && bg.take() {
			var r apiReply
			start := time.Now()
			status, err := l.post(ctx, "/v1/users/bench/verify", body, &r)
			if err != nil && ctx.Err() != nil {
				return
			}
			l.hist.record(time.Since(start))
			l.status[status]++
			if err != nil || status != http.StatusOK {
				l.answers[ansError]++
			}
		}
	})
	return total, elapsed, nil
}

// serverRSS reads the server's resident memory from /proc with
// --server-pid, or else from its /metrics.
func (b *bencher) serverRSS(ctx context.Context) (int64, string) {
	if pid := b.cfg.serverPID; pid > 0 {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, err.Error()
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err == nil {
					return kb << 10, fmt.Sprintf("/proc/%d/status VmRSS", pid)
				}
			}
		}
		return 0, "no VmRSS in /proc/PID/status"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.cfg.url+"/metrics", nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return int64(f), "/metrics process_resident_memory_bytes"
			}
		}
	}
	return 0, "no process_resident_memory_bytes in /metrics"
}

// histogram counts latencies in buckets 1/64 of a power of two wide
// (under 1.6% error), exact below 64 ns; it takes 32 KiB and no locks.
type histogram struct {
	counts [64 * 64]int64
	n      int64
	sum    time.Duration
	max    time.Duration
}

func bucketOf(v int64) int {
	if v < 64 {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - 7
	return e*64 + int(v>>e)
}

// bucketTop is the largest value in bucket i.
func bucketTop(i int) int64 {
	if i < 128 {
		return int64(i)
	}
	e := i/64 - 1
	sub := int64(i%64 + 64)
	return (sub+1)<<e - 1
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(int64(d))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the latency below which a fraction q of the samples
// fall, rounded up to its bucket's top.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketTop(i)), h.max)
		}
	}
	return h.max
}

// latency is a latency summary, in milliseconds in JSON.
type latency struct {
	P50, P90, P99, Max, Mean time.Duration
}

func (h *histogram) summary() latency {
	l := latency{P50: h.quantile(.5), P90: h.quantile(.9), P99: h.quantile(.99), Max: h.max}
	if h.n > 0 {
		l.Mean = h.sum / time.Duration(h.n)
	}
	return l
}

func (l latency) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return json.Marshal(map[string]float64{
		"p50_ms": ms(l.P50), "p90_ms": ms(l.P90), "p99_ms": ms(l.P99), "max_ms": ms(l.Max), "mean_ms": ms(l.Mean),
	})
}

// benchReport is the outcome of a run: a table on stdout, or JSON.
type benchReport struct {
	URL               string           `json:"url"`
	Users             int              `json:"users"`
	Concurrency       int              `json:"concurrency"`
	Period            int              `json:"period_seconds"`
	Mix               string           `json:"mix"`
	EndUserIPs        int              `json:"end_user_ips"`
	UserPrefix        string           `json:"user_prefix"`
	Enroll            enrollStats      `json:"enroll"`
	Requests          int64            `json:"requests"`
	Seconds           float64          `json:"seconds"`
	Throughput        float64          `json:"throughput_per_second"`
	Latency           latency          `json:"latency"`
	Sent              map[string]int64 `json:"sent"`
	Skipped           map[string]int64 `json:"skipped"`
	Answers           map[string]int64 `json:"answers"`
	Status            map[string]int64 `json:"status"`
	Unexpected        int64            `json:"unexpected"`
	UnexpectedSamples []string         `json:"unexpected_samples,omitempty"`
	RSSBytes          int64            `json:"server_rss_bytes"`
	RSSSource         string           `json:"server_rss_source"`
	Baseline          *benchBaseline   `json:"baseline,omitempty"`
	Ratio             float64          `json:"ratio_to_baseline,omitempty"`
}

type benchBaseline struct {
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"throughput_per_second"`
	Latency    latency `json:"latency"`
}

func (r *benchReport) fill(t *lane, elapsed time.Duration) {
	r.Requests, r.Seconds = t.hist.n, elapsed.Seconds()
	r.Throughput = float64(t.hist.n) / elapsed.Seconds()
	r.Latency = t.hist.summary()
	r.Sent, r.Skipped, r.Answers, r.Status = map[string]int64{}, map[string]int64{}, map[string]int64{}, map[string]int64{}
	for op, name := range opNames {
		r.Sent[name], r.Skipped[name] = t.sent[op], t.skipped[op]
	}
	for a, name := range answerNames {
		r.Answers[name] = t.answers[a]
	}
	for code, n := range t.status {
		k := strconv.Itoa(code)
		if code == 0 {
			k = "transport_error"
		}
		r.Status[k] = n
	}
	r.Unexpected, r.UnexpectedSamples = t.unexpected, t.samples
}

func (r *benchReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	rd := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	ips := "no X-End-User-IP"
	if r.EndUserIPs > 0 {
		ips = fmt.Sprintf("%d end-user IPs", r.EndUserIPs)
	}
	row("server", "%s  (%d users, period %ds, concurrency %d, mix %s, %s)", r.URL, r.Users, r.Period, r.Concurrency, r.Mix, ips)
	row("enrollments", "%d in %.1fs: %.0f/s (%d errors)", r.Enroll.Users, r.Enroll.Seconds, r.Enroll.PerSecond, r.Enroll.Errors)
	row("requests", "%d", r.Requests)
	row("duration", "%.2fs", r.Seconds)
	row("throughput", "%.0f req/s", r.Throughput)
	row("latency", "p50 %v  p90 %v  p99 %v  max %v  (mean %v)", rd(r.Latency.P50), rd(r.Latency.P90), rd(r.Latency.P99), rd(r.Latency.Max), rd(r.Latency.Mean))
	row("sent", "valid %d  invalid %d  replayed %d", r.Sent["valid"], r.Sent["invalid"], r.Sent["replayed"])
	row("skipped", "valid %d  invalid %d  replayed %d  (no user ready)", r.Skipped["valid"], r.Skipped["invalid"], r.Skipped["replayed"])
	var ans []string
	for _, name := range answerNames {
		ans = append(ans, fmt.Sprintf("%s %d", name, r.Answers[name]))
	}
	row("answers", "%s", strings.Join(ans, "  "))
	codes := make([]string, 0, len(r.Status))
	for k, n := range r.Status {
		codes = append(codes, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(codes)
	row("status", "%s", strings.Join(codes, "  "))
	if r.Unexpected > 0 {
		row("unexpected", "%d  <<< CORRECTNESS FAILURES UNDER LOAD", r.Unexpected)
	} else {
		row("unexpected", "0")
	}
	if r.Answers["rate_limited"] > 0 || r.Answers["late"] > 0 {
		row("warning", "%d rate limited (429), %d late: the server was too slow or is limiting", r.Answers["rate_limited"], r.Answers["late"])
	}
	if r.RSSBytes > 0 {
		row("server RSS", "%.1f MiB  (%s)", float64(r.RSSBytes)/(1<<20), r.RSSSource)
	} else {
		row("server RSS", "unknown (%s)", r.RSSSource)
	}
	if bl := r.Baseline; bl != nil {
		row("baseline", "%.0f req/s  (%d requests, p50 %v, p99 %v; trivial net/http handler)", bl.Throughput, bl.Requests, rd(bl.Latency.P50), rd(bl.Latency.P99))
		row("ratio", "%.3f  (twofa / baseline)", r.Ratio)
	}
	tw.Flush()
}
