package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBench runs twofa bench against the real server: no unexpected
// outcome under load, and every kind of op answered as it should be.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of load")
	}
	dir := t.TempDir()
	srv := startServer(t, dir)
	key := createKey(t, dir, "acme", false)

	// 50 users with 1 s devices can take about 50 valid codes a second, so
	// the mix leans on failures more than the default to see plenty of
	// each op in 2 s.
	args := []string{"twofa", "bench", "--url", srv.url, "--key", key, "--users", "50", "--duration", "2s",
		"--concurrency", "8", "--baseline", "--mix", "valid=70,invalid=15,replayed=15"}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, args, testGetenv(nil), strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	report := out.String()
	for _, want := range []string{"throughput", "p99", "baseline", "ratio", "server RSS"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	t.Logf("\n%s", report)
	answers := map[string]int{}
	for _, line := range strings.Split(report, "\n") {
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
	if answers["rate_limited"] != 0 || answers["error"] != 0 || answers["late"] != 0 {
		t.Errorf("answers %v: want no 429s, late answers or errors", answers)
	}

	// --json, bounded by requests rather than time.
	out.Reset()
	args = []string{"twofa", "bench", "--url", srv.url, "--key", key, "--users", "40", "--requests", "60", "--concurrency", "4", "--json"}
	if err := run(ctx, args, testGetenv(nil), strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("bench --json: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out.String())
	}
	if rep.Enroll.Users != 40 || rep.Requests != 60 || rep.Unexpected != 0 || rep.Answers["valid"] == 0 || rep.RSSBytes <= 0 {
		t.Errorf("bench --json: enrolled %d, requests %d, unexpected %d, answers %v, RSS %d; want 40, 60, 0, some valid, some RSS",
			rep.Enroll.Users, rep.Requests, rep.Unexpected, rep.Answers, rep.RSSBytes)
	}
	// --end-user-ips: the addresses reach the per-IP limit of a server
	// that allows 5 failed checks a minute per address (invalid codes
	// only: right codes spend nothing of it).
	dir2 := t.TempDir()
	limited := startServer(t, dir2, "--verify-per-ip", "5")
	key2 := createKey(t, dir2, "acme", false)
	for _, tt := range []struct {
		ips         string
		wantLimited bool
	}{{"0", false}, {"2", true}} {
		out.Reset()
		args = []string{"twofa", "bench", "--url", limited.url, "--key", key2, "--users", "20", "--requests", "40",
			"--concurrency", "4", "--json", "--end-user-ips", tt.ips, "--user-prefix", "ips" + tt.ips, "--mix", "valid=0,invalid=100,replayed=0"}
		if err := run(ctx, args, testGetenv(nil), strings.NewReader(""), &out, &errOut); err != nil {
			t.Fatalf("bench --end-user-ips %s: %v\n%s\n%s", tt.ips, err, out.String(), errOut.String())
		}
		rep = benchReport{}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("bench --json: %v\n%s", err, out.String())
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

func TestBench_Flags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"NoKey", nil, "API key"},
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
			err := run(context.Background(), append([]string{"twofa", "bench"}, tt.args...), testGetenv(nil), strings.NewReader(""), &out, &errOut)
			if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v (exit %d), want a usage error about %s", err, exitCode(err), tt.want)
			}
		})
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{.5, 5 * time.Millisecond}, {.9, 9 * time.Millisecond}, {.99, 9900 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.quantile(tt.q)
		if got < tt.want || float64(got) > float64(tt.want)*1.016 {
			t.Errorf("quantile(%v) = %v, want %v to +1.6%%", tt.q, got, tt.want)
		}
	}
	for v := int64(0); v < 1<<20; v += 1 + v/50 {
		if i := bucketOf(v); bucketTop(i) < v || i > 0 && bucketTop(i-1) >= v {
			t.Fatalf("value %d in bucket %d, whose top is %d (previous %d)", v, i, bucketTop(i), bucketTop(i-1))
		}
	}
}
