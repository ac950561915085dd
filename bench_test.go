package twofa_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/seal"
)

// benchPolicy never locks within a benchmark's failures.
func benchPolicy() *twofa.Policy {
	p := twofa.DefaultPolicy()
	p.LockAfter, p.HardLockAfter = 100, 100
	return &p
}

// benchWorker is one goroutine's Service, clock and enrolled user: the
// Service is stateless, so each goroutine may have its own clock and
// advance it one step per valid verification.
type benchWorker struct {
	svc   *twofa.Service
	clock *clock
	ref   twofa.UserRef
	key   *otp.Key
}

var benchUsers atomic.Int64

func newBenchWorker(b *testing.B, store twofa.Store, keys *seal.Keyring) *benchWorker {
	ctx := context.Background()
	w := &benchWorker{clock: &clock{t: testStart}}
	svc, err := twofa.NewService(ctx, store, keys, twofa.Options{Policy: benchPolicy(), Now: w.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	w.svc = svc
	w.ref = twofa.UserRef{Tenant: "bench", User: fmt.Sprintf("user-%d", benchUsers.Add(1))}
	en, err := svc.BeginEnrollment(ctx, w.ref, twofa.EnrollRequest{})
	if err != nil {
		b.Fatal(err)
	}
	w.key, _ = otp.NewKey(en.Secret, en.Device.Params)
	if res, err := svc.ConfirmEnrollment(ctx, w.ref, en.Device.ID, w.key.TOTP(w.clock.Now())); err != nil || !res.Valid {
		b.Fatalf("confirm: %+v %v", res, err)
	}
	return w
}

// BenchmarkService_Verify measures the whole verification: load the user,
// count the attempt, open the sealed secret, check the window, and commit
// the step and the audit entry (valid) or the failure's audit entry
// (invalid). Run with -cpu 1,2.
func BenchmarkService_Verify(b *testing.B) {
	for _, sk := range benchStores {
		b.Run(sk.name, func(b *testing.B) {
			store := sk.open(b)
			keys := benchKeyring(b)
			for _, valid := range []bool{true, false} {
				name := "Invalid"
				if valid {
					name = "Valid"
				}
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						w := newBenchWorker(b, store, keys)
						ctx := context.Background()
						wrong := wrongCode(w.key, w.clock.Now().Add(time.Hour))
						n := 0
						for pb.Next() {
							code := wrong
							if valid {
								w.clock.Add(30 * time.Second)
								code = w.key.TOTP(w.clock.Now())
							} else if n++; n%90 == 0 {
								w.svc.Unlock(ctx, w.ref) // stay below the hard lock
							}
							res, err := w.svc.Verify(ctx, w.ref, code)
							if err != nil || res.Valid != valid {
								b.Errorf("Verify: %+v, %v; want valid=%v", res, err, valid)
								return
							}
						}
					})
				})
			}
		})
	}
}

// BenchmarkService_Enroll measures BeginEnrollment (a secret, its seal, a
// QR code and a write) and ConfirmEnrollment (a code and an activation
// that issues ten backup codes).
func BenchmarkService_Enroll(b *testing.B) {
	for _, sk := range benchStores {
		b.Run(sk.name, func(b *testing.B) {
			store := sk.open(b)
			keys := benchKeyring(b)
			c := &clock{t: testStart}
			svc, err := twofa.NewService(context.Background(), store, keys, twofa.Options{Now: c.Now})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				ref := twofa.UserRef{Tenant: "bench", User: fmt.Sprintf("enroll-%d", benchUsers.Add(1))}
				en, err := svc.BeginEnrollment(ctx, ref, twofa.EnrollRequest{})
				if err != nil {
					b.Fatal(err)
				}
				k, _ := otp.NewKey(en.Secret, en.Device.Params)
				if res, err := svc.ConfirmEnrollment(ctx, ref, en.Device.ID, k.TOTP(c.Now())); err != nil || !res.Valid {
					b.Fatalf("confirm: %+v %v", res, err)
				}
			}
		})
	}
}

var benchStores = []struct {
	name string
	open func(tb testing.TB) twofa.Store
}{
	{"SQLite", func(tb testing.TB) twofa.Store { s, _ := openSQLite(tb); return s }},
	{"PostgreSQL", func(tb testing.TB) twofa.Store { s, _ := openPostgres(tb); return s }},
}

func benchKeyring(b *testing.B) *seal.Keyring {
	key, _ := seal.GenerateKey()
	kr, err := seal.NewKeyring(1, map[uint32][]byte{1: key})
	if err != nil {
		b.Fatal(err)
	}
	return kr
}
