package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

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
