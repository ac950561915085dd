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

func BenchmarkBeginAttempt(b *testing.B) {
	s := MustOpen(b, tempPath(b))
	refs := benchUsers(b, s, 64)
	never := func(int, time.Time) time.Time { return time.Time{} }
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ref := refs[next.Add(1)%int64(len(refs))]
		for pb.Next() {
			if _, err := s.BeginAttempt(context.Background(), ref, now0, never); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkAcceptStep(b *testing.B) {
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
			err := s.AcceptStep(context.Background(), twofa.StepAcceptance{Ref: ref, DeviceID: dev, Step: step, Now: now0, ResetFailures: true})
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

// BenchmarkVerifyPath runs the writes of one verification per iteration,
// from many goroutines at once (16 per CPU), as concurrent HTTP requests
// do: a rate-limit Hit, BeginAttempt, then AcceptStep with its audit
// event (a valid code) or AppendAudit (an invalid one), alternately.
func BenchmarkVerifyPath(b *testing.B) {
	s := MustOpen(b, tempPath(b))
	refs := benchUsers(b, s, 256)
	never := func(int, time.Time) time.Time { return time.Time{} }
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
		for pb.Next() {
			n++
			if _, err := s.Hit(ctx, "verify:"+ref.User, time.Minute, now0); err != nil {
				b.Error(err)
				return
			}
			if _, err := s.BeginAttempt(ctx, ref, now0, never); err != nil {
				b.Error(err)
				return
			}
			var err error
			if n%2 == 0 {
				step++
				err = s.AcceptStep(ctx, twofa.StepAcceptance{Ref: ref, DeviceID: dev, Step: step, Now: now0,
					ResetFailures: true, Event: event(ref, twofa.EventVerifySucceeded)})
				if errors.Is(err, twofa.ErrReplayed) { // two goroutines may share a user
					err = nil
				}
			} else {
				err = s.AppendAudit(ctx, event(ref, twofa.EventVerifyFailed))
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
