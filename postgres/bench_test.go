package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/postgres"
)

// The verify path, measured with b.RunParallel: each goroutine works on a
// user of its own, as concurrent requests mostly do, so the benchmarks
// measure round trips and commits rather than one row's lock. AppendAudit
// shares the log's head by design.

var benchNow = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// benchStore opens a store on a fresh schema.
func benchStore(b *testing.B) *postgres.Store {
	b.Helper()
	return mustOpen(b, testDSN(b))
}

// benchUsers enrolls a user for each goroutine of b.RunParallel and
// returns a function that hands them out, one per goroutine.
func benchUsers(b *testing.B, s *postgres.Store) func() twofa.UserRef {
	refs := make([]twofa.UserRef, runtime.GOMAXPROCS(0))
	for i := range refs {
		refs[i] = twofa.UserRef{Tenant: "bench", User: fmt.Sprintf("user%d", i)}
		enroll(b, s, refs[i], "dev_"+refs[i].User, benchNow)
	}
	var next atomic.Int64
	return func() twofa.UserRef { return refs[next.Add(1)-1] }
}

func BenchmarkAttemptFailure(b *testing.B) {
	s := benchStore(b)
	user := benchUsers(b, s)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ref := user()
		for pb.Next() {
			err := s.Attempt(context.Background(), twofa.AttemptRequest{Ref: ref, Now: benchNow}, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
				return &twofa.Outcome{Failures: st.User.Failures + 1}, nil
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkAttemptAccept(b *testing.B) {
	s := benchStore(b)
	user := benchUsers(b, s)
	chain := twofa.NewAuditChain(make([]byte, 32))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ref := user()
		step := uint64(1) // enroll confirmed step 1
		for pb.Next() {
			step++
			e := chain.Prepare(&twofa.AuditEvent{Time: benchNow, Type: twofa.EventVerifySucceeded, Tenant: ref.Tenant, User: ref.User})
			if err := acceptStep(context.Background(), s, ref, "dev_"+ref.User, step, benchNow, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkUser(b *testing.B) {
	s := benchStore(b)
	user := benchUsers(b, s)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ref := user()
		for pb.Next() {
			if _, err := s.User(context.Background(), ref); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkAppendAudit(b *testing.B) {
	s := benchStore(b)
	chain := twofa.NewAuditChain(make([]byte, 32))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := chain.Prepare(&twofa.AuditEvent{Time: benchNow, Type: twofa.EventVerifyFailed, Tenant: "bench", User: "u", Reason: "wrong_code"})
			if err := s.AppendAudit(context.Background(), e); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
