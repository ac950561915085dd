package main

import (
	"testing"
	"time"
)

// TestHistogram checks the quantiles against the samples, to within a
// bucket's width.
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
