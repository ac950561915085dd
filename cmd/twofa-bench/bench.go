package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twofa/twofa/otp"
)

// user is an enrolled user. busy is a try-lock: a user has at most
// one request in flight, so last and fails are what the server holds.
type user struct {
	id     string
	path   string // of the verify endpoint
	ipHdr  []byte // "X-End-User-IP: ...\r\n", with --end-user-ips
	key    *otp.Key
	secret string // base32, kept only for --users-file
	busy   atomic.Bool
	last   uint64 // last accepted step
	fails  int    // failures counted since the last success
}

func (u *user) tryLock() bool { return u.busy.CompareAndSwap(false, true) }
func (u *user) unlock()       { u.busy.Store(false) }

// bencher holds what both phases share.
type bencher struct {
	cfg    *config
	client *http.Client
	users  []*user
}

func bench(ctx context.Context, e *env, c *config) error {
	b := &bencher{cfg: c, client: newHTTPClient(c.concurrency)}
	defer b.client.CloseIdleConnections()
	rep := &report{URL: c.url, Users: c.users, Concurrency: c.concurrency, Period: c.period, Mix: c.mix.String(), EndUserIPs: c.ips, UserPrefix: c.prefix}

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
		rep.Baseline = &baselineReport{Requests: base.hist.n, Seconds: belapsed.Seconds(), Errors: base.answers[ansError]}
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
		return exitError{code: 1, msg: fmt.Sprintf("%d unexpected outcomes", n)}
	}
	return nil
}

// newHTTPClient is an HTTP client with a keep-alive connection per worker.
func newHTTPClient(conns int) *http.Client {
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
