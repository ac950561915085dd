package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the outcome of a run: a table on stdout, or JSON.
type report struct {
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
	Baseline          *baselineReport  `json:"baseline,omitempty"`
	Ratio             float64          `json:"ratio_to_baseline,omitempty"`
}

type baselineReport struct {
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"throughput_per_second"`
	Latency    latency `json:"latency"`
}

func (r *report) fill(t *lane, elapsed time.Duration) {
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

func (r *report) print(w io.Writer) {
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
