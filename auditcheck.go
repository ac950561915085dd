package twofa

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// CheckpointKind names what an audit checkpoint vouches for.
type CheckpointKind string

// CheckpointVerified stands at the last entry of a chain that a walk
// verified: a later walk resumes from it instead of from the beginning.
const CheckpointVerified CheckpointKind = "verified"

// AuditCheckpoint is a place in one chain of the audit log that twofa
// vouches for with a MAC under the audit chain key: entry Seq of Chain has
// hash Hash and is the chain's Events-th entry. Whoever can write the
// database but lacks the master key can delete a checkpoint, or put back
// an older one of the same kind and chain (both make the next walk longer,
// never shorter), but cannot forge or move one: a checkpoint whose MAC
// does not verify is reported as tampering.
//
// The MAC binds the kind, so a checkpoint of one kind never stands for
// another. Pruning can keep one of its own kind as a chain's new start:
// the chain's first remaining entry then links to its Hash.
type AuditCheckpoint struct {
	Kind   CheckpointKind
	Chain  int
	Seq    int64
	Hash   []byte
	Events int64     // the chain's entries up to and including entry Seq
	Time   time.Time // when it was made, at microsecond precision
	MAC    []byte
}

// Head returns the checkpoint's entry as a ChainHead.
func (cp AuditCheckpoint) Head() ChainHead {
	return ChainHead{Chain: cp.Chain, Seq: cp.Seq, Hash: cp.Hash, Events: cp.Events}
}

// Checkpoint returns a checkpoint of the given kind at the head h (whose
// Events it keeps), made at time at, with its MAC.
func (c *AuditChain) Checkpoint(kind CheckpointKind, h ChainHead, at time.Time) AuditCheckpoint {
	cp := AuditCheckpoint{Kind: kind, Chain: h.Chain, Seq: h.Seq, Hash: append([]byte(nil), h.Hash...), Events: h.Events,
		Time: at.UTC().Truncate(time.Microsecond)}
	cp.MAC = c.checkpointMAC(cp)
	return cp
}

// CheckCheckpoint reports whether cp's MAC is the one this chain's key
// gives it.
func (c *AuditChain) CheckCheckpoint(cp AuditCheckpoint) bool {
	return len(cp.MAC) > 0 && hmac.Equal(cp.MAC, c.checkpointMAC(cp))
}

// checkpointMAC is HMAC-SHA-256(key, "twofa/audit-checkpoint/v1", then the
// kind, chain, seq, events, time in microseconds and hash). Its prefix
// differs from an entry's ("twofa/audit/v1") at its 12th byte, so no
// checkpoint's input is an entry's.
func (c *AuditChain) checkpointMAC(cp AuditCheckpoint) []byte {
	sc := c.scratch.Get().(*chainScratch)
	defer c.scratch.Put(sc)
	b := append(sc.buf[:0], "twofa/audit-checkpoint/v1"...)
	b = binary.AppendUvarint(b, uint64(len(cp.Kind)))
	b = append(b, cp.Kind...)
	b = binary.AppendVarint(b, int64(cp.Chain))
	b = binary.AppendVarint(b, cp.Seq)
	b = binary.AppendVarint(b, cp.Events)
	b = binary.AppendVarint(b, cp.Time.UnixMicro())
	b = binary.AppendUvarint(b, uint64(len(cp.Hash)))
	b = append(b, cp.Hash...)
	sc.buf = b
	sc.mac.Reset()
	sc.mac.Write(b)
	return sc.mac.Sum(nil)
}

// AuditWalk says how VerifyAuditWith walks the log.
type AuditWalk struct {
	// Full walks every chain from its beginning, ignoring where earlier
	// walks stopped, and requires the stored checkpoints' entries to be
	// found with their hashes. Without it, the walk resumes each chain
	// from its checkpoint and reads only what was appended since.
	Full bool
	// Heads recorded elsewhere (ChainState.Heads of an earlier walk)
	// must still be in the log, with their hashes.
	Heads []ChainHead
}

// checkpointEvery is how many entries of a chain a walk checks between
// saving its progress, so a long first walk that stops is not lost.
const checkpointEvery = 50_000

// auditPage is how many entries a walk reads at a time.
const auditPage = 1000

// VerifyAudit walks the whole audit log from its beginning and checks its
// chains; see VerifyAuditWith.
func (s *Service) VerifyAudit(ctx context.Context) (ChainState, error) {
	return s.VerifyAuditWith(ctx, AuditWalk{Full: true})
}

// VerifyAuditWith walks every chain of the audit log, every tenant's
// entries, for the operator, and moves the stored checkpoints on to where
// it stopped. A walk that is not Full checks what was appended since the
// checkpoints and the checkpoints' own entries: an entry before a
// checkpoint that was altered or removed since is found by a Full walk
// only (docs/security.md, "Audit log"). A walk from the checkpoints with
// no Heads shares the one under way in the process, if any.
func (s *Service) VerifyAuditWith(ctx context.Context, w AuditWalk) (ChainState, error) {
	if w.Full || len(w.Heads) > 0 {
		r, err := s.walkAudit(ctx, w)
		return r.state, err
	}
	r, err := s.incrementalWalk(ctx)
	return r.state, err
}

// incrementalWalk walks from the checkpoints, one walk at a time.
func (s *Service) incrementalWalk(ctx context.Context) (auditWalk, error) {
	return s.walks.log.do(ctx, "", func(ctx context.Context) (auditWalk, error) {
		return s.walkAudit(ctx, AuditWalk{})
	})
}

// VerifyAuditFor checks the audit log for one tenant's administrator: it
// resumes from the stored checkpoints, so it reads only what was appended
// since the last walk by any caller, and reports only what concerns the
// tenant: whether the log holds, how many of the tenant's entries it
// holds, and the details of a break only if the broken entry is the
// tenant's. Chains, heads and other tenants' volume stay with the operator
// (VerifyAuditWith). One walk runs at a time in a process: calls that come
// while one runs share its result, and calls of one tenant share the
// count of its entries too.
func (s *Service) VerifyAuditFor(ctx context.Context, tenant string) (ChainState, error) {
	if err := validateID("tenant", tenant); err != nil {
		return ChainState{}, err
	}
	return s.walks.tenants.do(ctx, tenant, func(ctx context.Context) (ChainState, error) {
		r, err := s.incrementalWalk(ctx)
		if err != nil {
			return ChainState{}, err
		}
		own, err := s.store.CountAudit(ctx, AuditFilter{Tenant: tenant})
		if err != nil {
			return ChainState{}, err
		}
		out := ChainState{OK: r.state.OK, Events: own}
		if !r.state.OK {
			out.Problem = "an entry of another tenant, or the log's bookkeeping, does not verify: tell the operator"
			if r.badTenant == tenant && r.state.BadSeq != 0 {
				out.BadSeq, out.Problem = r.state.BadSeq, r.state.Problem
			}
		}
		return out, nil
	})
}

// auditWalks keeps verification walks to one at a time in a process.
type auditWalks struct {
	log     flight[auditWalk]  // the walk itself, which every tenant shares
	tenants flight[ChainState] // a tenant's report, by tenant
}

// auditWalk is a walk's outcome and the tenant of the entry it broke at.
type auditWalk struct {
	state     ChainState
	badTenant string
}

// walkAudit walks the log as w says and saves checkpoints of what it
// verified.
func (s *Service) walkAudit(ctx context.Context, w AuditWalk) (auditWalk, error) {
	stored, err := s.store.AuditCheckpoints(ctx, CheckpointVerified)
	if err != nil {
		return auditWalk{}, err
	}
	chains := s.store.AuditChains()
	var (
		cps    = map[int]AuditCheckpoint{} // the stored checkpoints that verify
		forged *AuditCheckpoint            // the first that does not
	)
	for _, cp := range stored {
		switch {
		case !s.chain.CheckCheckpoint(cp):
			if forged == nil {
				forged = &cp
			}
		case cp.Chain < chains:
			cps[cp.Chain] = cp
		}
	}
	if forged != nil && !w.Full {
		// Resuming from it could skip entries; walking from the start on
		// every call would let whoever wrote it slow every caller. The
		// operator's full walk checks the log and replaces it.
		return auditWalk{state: ChainState{BadSeq: 0, Problem: fmt.Sprintf(
			"the checkpoint of chain %d does not verify: it was altered in the database; run twofa audit verify --full", forged.Chain)}}, nil
	}

	v := s.chain.Verifier()
	expect := w.Heads
	if w.Full {
		for _, cp := range cps {
			expect = append(expect, cp.Head())
		}
	} else {
		// Resume each chain, once its checkpoint's own entry and the
		// recorded heads behind the checkpoint are found as they were.
		expect = nil
		for _, h := range w.Heads {
			if cp, ok := cps[h.Chain]; ok && h.Seq <= cp.Seq {
				if r, err := s.auditEntryAt(ctx, h, "recorded as a head"); err != nil || !r.state.OK {
					return r, err
				}
				continue
			}
			expect = append(expect, h)
		}
		for c := range chains {
			cp, ok := cps[c]
			if !ok {
				continue
			}
			if r, err := s.auditEntryAt(ctx, cp.Head(), "where the last verification stopped"); err != nil || !r.state.OK {
				return r, err
			}
			v.Resume(cp)
		}
	}
	v.Expect(expect)

	saved := map[int]int64{} // chain: Seq of the checkpoint stored now
	for c, cp := range cps {
		saved[c] = cp.Seq
	}
	save := func(ctx context.Context, c int) error {
		for _, h := range v.State().Heads {
			if h.Chain != c || h.Seq == saved[c] {
				continue
			}
			var old []byte
			if cp, ok := cps[c]; ok {
				old = cp.MAC
			} else if forged != nil && forged.Chain == c {
				old = forged.MAC
			}
			if _, err := s.store.PutAuditCheckpoint(ctx, s.chain.Checkpoint(CheckpointVerified, h, s.now()), old); err != nil {
				return err
			}
			saved[c] = h.Seq
		}
		return nil
	}
	// Chain by chain: an entry that commits while the walk goes on is
	// either seen or after everything the walk checked in its chain.
	for c := range chains {
		var after int64
		if cp, ok := cps[c]; ok && !w.Full {
			after = cp.Seq
		}
		sinceSave := 0
		for {
			events, err := s.store.AuditEvents(ctx, AuditFilter{After: after, Limit: auditPage, ByChain: true, Chain: c})
			if err != nil {
				return auditWalk{state: v.State()}, err
			}
			for _, e := range events {
				if !v.Next(e) {
					// What was verified before the break stays verified:
					// the next walk comes to the break at once.
					if !w.Full {
						for walked := range c + 1 {
							if err := save(ctx, walked); err != nil {
								return auditWalk{}, err
							}
						}
					}
					return auditWalk{state: v.State(), badTenant: e.Tenant}, nil
				}
				after = e.Seq
			}
			if sinceSave += len(events); sinceSave >= checkpointEvery && !w.Full {
				if err := save(ctx, c); err != nil {
					return auditWalk{}, err
				}
				sinceSave = 0
			}
			if len(events) < auditPage {
				break
			}
		}
	}
	st := v.State()
	if !st.OK {
		return auditWalk{state: st}, nil
	}
	for c := range chains {
		if err := save(ctx, c); err != nil {
			return auditWalk{}, err
		}
	}
	if forged != nil {
		st.OK = false
		st.Problem = fmt.Sprintf("every entry verifies, but the stored checkpoint of chain %d did not: it was altered in the database (this walk replaced it)", forged.Chain)
	}
	return auditWalk{state: st}, nil
}

// auditEntryAt checks that the log still holds h's entry, with h's hash
// and a hash that verifies.
func (s *Service) auditEntryAt(ctx context.Context, h ChainHead, what string) (auditWalk, error) {
	es, err := s.store.AuditEvents(ctx, AuditFilter{ByChain: true, Chain: h.Chain, After: h.Seq - 1, Limit: 1})
	if err != nil {
		return auditWalk{}, err
	}
	if len(es) == 0 || es[0].Seq != h.Seq {
		return auditWalk{state: ChainState{BadSeq: h.Seq,
			Problem: fmt.Sprintf("entry %d of chain %d, %s, is missing", h.Seq, h.Chain, what)}}, nil
	}
	e := es[0]
	if !hmac.Equal(e.Hash, h.Hash) || !hmac.Equal(e.Hash, s.chain.sum(e)) {
		return auditWalk{state: ChainState{BadSeq: h.Seq,
			Problem: fmt.Sprintf("entry %d of chain %d, %s, was altered", h.Seq, h.Chain, what)}, badTenant: e.Tenant}, nil
	}
	return auditWalk{state: ChainState{OK: true}}, nil
}

// flight runs one call of a function per key at a time: a call that comes
// while one with its key runs waits for that one's result instead of
// running again. The function runs on its own goroutine, with the first
// caller's context values but not its cancellation, so that a caller who
// gives up leaves the others their result; every caller still returns
// when its own context ends.
type flight[V any] struct {
	mu    sync.Mutex
	calls map[string]*flightCall[V]
}

type flightCall[V any] struct {
	done chan struct{}
	v    V
	err  error
}

func (f *flight[V]) do(ctx context.Context, key string, fn func(context.Context) (V, error)) (V, error) {
	f.mu.Lock()
	c, ok := f.calls[key]
	if !ok {
		if f.calls == nil {
			f.calls = map[string]*flightCall[V]{}
		}
		c = &flightCall[V]{done: make(chan struct{})}
		f.calls[key] = c
		go func() {
			defer func() {
				if p := recover(); p != nil {
					c.err = fmt.Errorf("twofa: %v", p)
				}
				f.mu.Lock()
				delete(f.calls, key)
				f.mu.Unlock()
				close(c.done)
			}()
			c.v, c.err = fn(context.WithoutCancel(ctx))
		}()
	}
	f.mu.Unlock()
	select {
	case <-c.done:
		return c.v, c.err
	case <-ctx.Done():
		var zero V
		return zero, context.Cause(ctx)
	}
}
