package twofa_test

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

// TestSecurityDoc_Odds recomputes the brute-force figures of
// docs/security.md from the default policy and window, so that the page
// cannot drift from the code.
func TestSecurityDoc_Odds(t *testing.T) {
	doc, err := os.ReadFile("docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	p := twofa.DefaultPolicy()
	// Guesses within 24 hours from a fresh count, as the backoff allows,
	// stopping short of the hard lock.
	start := time.Unix(0, 0)
	now, perDay := start, 0
	for f := 1; f < p.HardLockAfter && now.Sub(start) < 24*time.Hour; f++ {
		perDay++
		if until := p.LockUntil(f, now); !until.IsZero() {
			now = until
		}
	}
	odds := func(devices int, guesses float64) string {
		q := float64(p.Window.Size()*devices) / 1e6
		return fmt.Sprintf("%.3g %%", 100*(1-math.Pow(1-q, guesses)))
	}
	budget := 10.0 * 365 * 24 / 23 // 10 per 23 hours, a year long
	for _, want := range []string{
		fmt.Sprintf("up to **%d guesses a day**", perDay),
		fmt.Sprintf("| per day, %d guesses | %s | %s |", perDay, odds(1, float64(perDay)), odds(5, float64(perDay))),
		fmt.Sprintf("| per year of daily sign-ins | %s | %s |", odds(1, float64(perDay*365)), odds(5, float64(perDay*365))),
		fmt.Sprintf("| per year with `--max-failures-per-day 10` | %s | %s |", odds(1, budget), odds(5, budget)),
		fmt.Sprintf("p = %d·D/10⁶", p.Window.Size()),
		fmt.Sprintf("%d consecutive failures lock the user for %d s", p.LockAfter, int(p.LockBase.Seconds())),
		fmt.Sprintf("after about %.1f hours of backoff", hardLockHours(p)),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("docs/security.md lacks %q", want)
		}
	}
}

// hardLockHours is how long the backoff takes from the first failure to
// the hard lock.
func hardLockHours(p twofa.Policy) float64 {
	start := time.Unix(0, 0)
	now := start
	for f := 1; f < p.HardLockAfter; f++ {
		if until := p.LockUntil(f, now); !until.IsZero() {
			now = until
		}
	}
	return now.Sub(start).Hours()
}
