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
