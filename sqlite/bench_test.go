package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

// benchUsers enrolls n users, so parallel goroutines mostly touch
// different rows, as real traffic does; the write lock is shared anyway.
func benchUsers(b *testing.B, s twofa.Store, n int) []twofa.UserRef {
	refs := make([]twofa.UserRef, n)
	for i := range refs {
		refs[i] = twofa.UserRef{Tenant: "acme", User: fmt.Sprintf("user%d", i)}
		enroll(b, s, refs[i], fmt.Sprintf("dev_%d", i))
	}
	return refs
}

func BenchmarkAttemptFailure(b *testing.B) {
	s := MustOpen(b, tempPath(b))
	refs := benchUsers(b, s, 64)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ref := refs[next.Add(1)%int64(len(refs))]
		for pb.Next() {
			if err := failAttempt(context.Background(), s, ref, now0, time.Time{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkAttemptAccept(b *testing.B) {
	s := MustOpen(b, tempPath(b))
	refs := benchUsers(b, s, 64)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1) % int64(len(refs))
		ref, dev := refs[i], fmt.Sprintf("dev_%d", i)
		step := uint64(1)
		for pb.Next() {
			step++
			err := acceptStep(context.Background(), s, ref, dev, step, now0, nil)
			if err != nil && !errors.Is(err, twofa.ErrReplayed) { // two goroutines may share a user
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkUser(b *testing.B) {
	s := MustOpen(b, tempPath(b))
	refs := benchUsers(b, s, 64)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ref := refs[next.Add(1)%int64(len(refs))]
		for pb.Next() {
			if _, err := s.User(context.Background(), ref); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkAppendAudit(b *testing.B) {
	s := MustOpen(b, tempPath(b))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.AppendAudit(context.Background(), event(alice, twofa.EventVerifySucceeded)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyPath runs the store's part of one verification per
// iteration, from many goroutines at once (16 per CPU), as concurrent
// HTTP requests do: one Attempt that counts a rate limit, reads the user,
// and accepts a step with its audit event (a valid code) or counts a
// failure with its own (an invalid one), alternately.
func BenchmarkVerifyPath(b *testing.B) {
	s := MustOpen(b, tempPath(b))
	refs := benchUsers(b, s, 256)
	var next atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1) % int64(len(refs))
		ref, dev := refs[i], fmt.Sprintf("dev_%d", i)
		ctx := context.Background()
		step := uint64(1)
		n := 0
		req := twofa.AttemptRequest{Ref: ref, Now: now0, Hits: []twofa.LimitHit{{Key: "verify:" + ref.User, Window: time.Minute}}}
		for pb.Next() {
			n++
			valid := n%2 == 0
			if valid {
				step++
			}
			err := s.Attempt(ctx, req, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
				if valid {
					return &twofa.Outcome{Effects: []twofa.Effect{twofa.AcceptStep{DeviceID: dev, Step: step}},
						Events: []*twofa.AuditEvent{event(ref, twofa.EventVerifySucceeded)}}, nil
				}
				return &twofa.Outcome{Failures: st.User.Failures + 1, Events: []*twofa.AuditEvent{event(ref, twofa.EventVerifyFailed)}}, nil
			})
			if errors.Is(err, twofa.ErrReplayed) { // two goroutines may share a user
				err = nil
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
