package main

import (
	"encoding/json"
	"math"
	"math/bits"
	"time"
)

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
