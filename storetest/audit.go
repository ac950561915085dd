package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

func testHit(t *testing.T, open Opener) {
	// base is a multiple of an hour since the Unix epoch.
	base := time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)
	const key = "verify:acme/alice"

	t.Run("Windows", func(t *testing.T) {
		s := openStore(t, open)
		for _, tt := range []struct {
			key  string
			at   time.Duration
			want int
		}{
			{key, 0, 1},
			{key, 30 * time.Second, 2},
			{"ip:192.0.2.7", 31 * time.Second, 1}, // keys are independent
			{key, time.Minute - time.Microsecond, 3},
			{key, time.Minute, 1}, // a new window
			{key, time.Minute + time.Second, 2},
			{"ip:192.0.2.7", time.Minute + 2*time.Second, 1},
			{key, 5 * time.Minute, 1},
		} {
			n, err := s.Hit(t.Context(), tt.key, time.Minute, base.Add(tt.at))
			if n != tt.want || err != nil {
				t.Errorf("Hit(%q, base+%v) = %d, %v; want %d, nil", tt.key, tt.at, n, err, tt.want)
			}
		}
	})

	t.Run("AlignedToEpoch", func(t *testing.T) {
		// Windows start at multiples of their length, not at the first hit.
		s := openStore(t, open)
		for _, tt := range []struct {
			at   time.Duration
			want int
		}{
			{45 * time.Second, 1},
			{59 * time.Second, 2},
			{75 * time.Second, 1},
		} {
			n, err := s.Hit(t.Context(), key, time.Minute, base.Add(tt.at))
			if n != tt.want || err != nil {
				t.Errorf("Hit(base+%v) = %d, %v; want %d, nil", tt.at, n, err, tt.want)
			}
		}
	})

	t.Run("RaceAcrossHandles", func(t *testing.T) {
		// Every process counts in the same window: 20 hits at once from two
		// handles get the counts 1 to 20.
		o := openStore(t, open)
		type result struct {
			n   int
			err error
		}
		results := race(t, o, 20, true, func(ctx context.Context, i int, s twofa.Store) result {
			n, err := s.Hit(ctx, key, time.Hour, base.Add(time.Duration(i)*time.Second))
			return result{n, err}
		})
		var counts []int
		for i, r := range results {
			if r.err != nil {
				t.Errorf("Hit #%d = %v", i, r.err)
			}
			counts = append(counts, r.n)
		}
		slices.Sort(counts)
		for i, n := range counts {
			if n != i+1 {
				t.Fatalf("counts = %v, want 1 to 20", counts)
			}
		}
	})
}

// richEvent is an event with every field set, much of it beyond ASCII.
func richEvent(i int) *twofa.AuditEvent {
	return chain.Prepare(&twofa.AuditEvent{
		Time:      now0.Add(time.Duration(i) * time.Second).In(time.FixedZone("UTC-3", -3*3600)),
		Type:      twofa.EventVerifyFailed,
		Tenant:    "tenant-ü",
		User:      fmt.Sprintf("user-%d-Zoë", i),
		Device:    "dev_a",
		Factor:    "totp",
		Reason:    "wrong_code",
		Actor:     "admin:Jürgen",
		IP:        "2001:db8::1",
		UserAgent: "Mozilla/5.0 (東京; ✓)",
		Detail:    fmt.Sprintf("attempt %d — «quoted» 'single' \"double\" \\ 🔐", i),
	})
}

func testAppendAudit(t *testing.T, open Opener) {
	t.Run("RoundTrip", func(t *testing.T) {
		s := openStore(t, open)
		want := []*twofa.AuditEvent{richEvent(1), richEvent(2)}
		wantNoErr(t, "AppendAudit", s.AppendAudit(t.Context(), want...))
		sparse := newEvent(twofa.EventKeysRotated, twofa.UserRef{}, "") // empty strings stay empty
		sparse.Actor, sparse.IP, sparse.UserAgent = "", "", ""
		want = append(want, sparse)
		wantNoErr(t, "AppendAudit", s.AppendAudit(t.Context(), sparse))

		got := allEvents(t, s)
		if len(got) != len(want) {
			t.Fatalf("AuditEvents returned %d events, want %d", len(got), len(want))
		}
		for i, g := range got {
			w := want[i]
			if g.Seq != int64(i+1) {
				t.Errorf("event %d: Seq = %d, want %d", i, g.Seq, i+1)
			}
			if !g.Time.Equal(w.Time) {
				t.Errorf("event %d: Time = %v, want %v", i, g.Time, w.Time)
			}
			gs := []string{string(g.Type), g.Tenant, g.User, g.Device, g.Factor, g.Reason, g.Actor, g.IP, g.UserAgent, g.Detail}
			ws := []string{string(w.Type), w.Tenant, w.User, w.Device, w.Factor, w.Reason, w.Actor, w.IP, w.UserAgent, w.Detail}
			if !slices.Equal(gs, ws) {
				t.Errorf("event %d fields =\n\t%q\nwant\n\t%q", i, gs, ws)
			}
			if !bytes.Equal(g.Hash, w.Hash) || !bytes.Equal(g.PrevHash, w.PrevHash) {
				t.Errorf("event %d: Hash, PrevHash = %x, %x; want %x, %x", i, g.Hash, g.PrevHash, w.Hash, w.PrevHash)
			}
		}
	})

	t.Run("Empty", func(t *testing.T) {
		s := openStore(t, open)
		wantNoErr(t, "AppendAudit()", s.AppendAudit(t.Context()))
		got, err := s.AuditEvents(t.Context(), twofa.AuditFilter{})
		if err != nil || len(got) != 0 {
			t.Errorf("AuditEvents of an empty log = %v, %v; want none", got, err)
		}
	})

	t.Run("Seq", func(t *testing.T) {
		// Seq continues across calls and across handles, and events of one
		// call are appended in order.
		o := openStore(t, open)
		other := o.second(t)
		var want []string
		for i, s := range []twofa.Store{o, other, o} {
			var es []*twofa.AuditEvent
			for j := range i + 1 {
				e := newEvent(twofa.EventVerifyFailed, alice, "")
				e.Detail = fmt.Sprintf("call %d event %d", i, j)
				want = append(want, e.Detail)
				es = append(es, e)
			}
			wantNoErr(t, "AppendAudit", s.AppendAudit(t.Context(), es...))
		}
		var got []string
		for _, e := range allEvents(t, other) {
			got = append(got, e.Detail)
		}
		if !slices.Equal(got, want) {
			t.Errorf("log = %q, want %q", got, want)
		}
	})

	t.Run("RaceAcrossHandles", func(t *testing.T) {
		// Four writers, two per handle, append 25 events each in batches
		// of 1 to 5: the log holds all 100, numbered 1 to 100, each batch
		// contiguous, and the chain does not fork.
		o := openStore(t, open)
		errs := race(t, o, 4, true, func(ctx context.Context, w int, s twofa.Store) error {
			n := 0
			for size := 1; n < 25; size = size%5 + 1 {
				size = min(size, 25-n)
				es := make([]*twofa.AuditEvent, size)
				for j := range es {
					es[j] = newEvent(twofa.EventVerifyFailed, alice, "")
					es[j].Detail = fmt.Sprintf("writer %d event %02d batch %d", w, n+j, n)
				}
				if err := s.AppendAudit(ctx, es...); err != nil {
					return err
				}
				n += size
			}
			return nil
		})
		for w, err := range errs {
			if err != nil {
				t.Errorf("writer %d: AppendAudit = %v", w, err)
			}
		}
		log := allEvents(t, o)
		if len(log) != 100 {
			t.Fatalf("audit log has %d events, want 100", len(log))
		}
		next := map[int]int{} // writer: index of its next event
		for i, e := range log {
			var w, n, batch int
			if _, err := fmt.Sscanf(e.Detail, "writer %d event %d batch %d", &w, &n, &batch); err != nil {
				t.Fatalf("event %d: Detail %q: %v", e.Seq, e.Detail, err)
			}
			if e.Seq != int64(i+1) {
				t.Errorf("event %d has Seq %d", i+1, e.Seq)
			}
			if n != next[w] {
				t.Errorf("event %d (%q) is out of order: want writer %d's event %d", e.Seq, e.Detail, w, next[w])
			}
			next[w] = n + 1
			if n != batch && (i == 0 || log[i-1].Detail != fmt.Sprintf("writer %d event %02d batch %d", w, n-1, batch)) {
				t.Errorf("event %d (%q) is not right after the event before it in its batch", e.Seq, e.Detail)
			}
		}
	})
}

func testAuditEvents(t *testing.T, open Opener) {
	s := openStore(t, open)
	// 105 events: seq%3 == 0 in globex, the rest in acme, where odd
	// sequence numbers are alice's and even ones bob's.
	var es []*twofa.AuditEvent
	for seq := 1; seq <= 105; seq++ {
		ref := bob
		switch {
		case seq%3 == 0:
			ref = otherAlice
		case seq%2 == 1:
			ref = alice
		}
		es = append(es, newEvent(twofa.EventVerifyFailed, ref, ""))
	}
	wantNoErr(t, "AppendAudit", s.AppendAudit(t.Context(), es...))
	seqs := func(keep func(int64) bool) []int64 {
		var ss []int64
		for seq := int64(1); seq <= 105; seq++ {
			if keep(seq) {
				ss = append(ss, seq)
			}
		}
		return ss
	}
	acme := func(seq int64) bool { return seq%3 != 0 }
	for _, tt := range []struct {
		name string
		f    twofa.AuditFilter
		want []int64
	}{
		{"DefaultLimit", twofa.AuditFilter{}, seqs(func(seq int64) bool { return seq <= 100 })},
		{"After", twofa.AuditFilter{After: 100}, []int64{101, 102, 103, 104, 105}},
		{"Limit", twofa.AuditFilter{After: 10, Limit: 3}, []int64{11, 12, 13}},
		{"LimitAboveDefault", twofa.AuditFilter{Limit: 200}, seqs(func(int64) bool { return true })},
		{"Tenant", twofa.AuditFilter{Tenant: "globex"}, seqs(func(seq int64) bool { return seq%3 == 0 })},
		{"TenantUser", twofa.AuditFilter{Tenant: "acme", User: "alice"}, seqs(func(seq int64) bool { return acme(seq) && seq%2 == 1 })},
		{"TenantUserAfterLimit", twofa.AuditFilter{Tenant: "acme", User: "bob", After: 50, Limit: 4}, []int64{52, 56, 58, 62}},
		{"OtherTenantsUser", twofa.AuditFilter{Tenant: "globex", User: "bob"}, nil},
		{"AfterEnd", twofa.AuditFilter{After: 105}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.AuditEvents(t.Context(), tt.f)
			if err != nil {
				t.Fatalf("AuditEvents(%+v) = %v", tt.f, err)
			}
			var gotSeqs []int64
			for _, e := range got {
				gotSeqs = append(gotSeqs, e.Seq)
			}
			if !slices.Equal(gotSeqs, tt.want) {
				t.Errorf("AuditEvents(%+v) = %v, want %v", tt.f, gotSeqs, tt.want)
			}
		})
	}
}

// testUnprepared checks that every method that appends an event fails with
// ErrUnprepared when the event was not prepared by a chain, and writes
// nothing: neither its change nor any event.
func testUnprepared(t *testing.T, open Opener) {
	raw := func(typ twofa.EventType) *twofa.AuditEvent {
		return &twofa.AuditEvent{Time: now0, Type: typ, Tenant: alice.Tenant, User: alice.User}
	}
	for _, tt := range []struct {
		name string
		// noCodes leaves alice without backup codes, so that ActivateDevice
		// issues its set and so appends IssueEvent.
		noCodes bool
		// call makes the change with an unprepared event; check verifies
		// that nothing changed.
		call, check func(t *testing.T, s twofa.Store) error
	}{
		{"AppendAudit", false,
			func(t *testing.T, s twofa.Store) error {
				return s.AppendAudit(t.Context(), newEvent(twofa.EventKeysRotated, alice, ""), raw(twofa.EventKeysRotated))
			},
			func(t *testing.T, s twofa.Store) error { return nil }},
		{"CreateDevice", false,
			func(t *testing.T, s twofa.Store) error {
				_, err := s.CreateDevice(t.Context(), newDevice(bob, "dev_x", now0), 5, now0, raw(twofa.EventEnrollStarted))
				return err
			},
			func(t *testing.T, s twofa.Store) error {
				_, err := s.User(t.Context(), bob)
				if !errors.Is(err, twofa.ErrNotFound) {
					return fmt.Errorf("User(bob) = %v, want ErrNotFound", err)
				}
				return nil
			}},
		{"ActivateDevice/Event", true,
			func(t *testing.T, s twofa.Store) error {
				_, err := s.ActivateDevice(t.Context(), twofa.Activation{Ref: alice, DeviceID: "dev_p", Step: firstStep, Now: now0,
					BackupCodes: codeHashes("x", 2), Event: raw(twofa.EventEnrollConfirmed), IssueEvent: newEvent(twofa.EventBackupCodesIssued, alice, "dev_p")})
				return err
			},
			pendingNoCodes},
		{"ActivateDevice/IssueEvent", true,
			func(t *testing.T, s twofa.Store) error {
				_, err := s.ActivateDevice(t.Context(), twofa.Activation{Ref: alice, DeviceID: "dev_p", Step: firstStep, Now: now0,
					BackupCodes: codeHashes("x", 2), Event: newEvent(twofa.EventEnrollConfirmed, alice, "dev_p"), IssueEvent: raw(twofa.EventBackupCodesIssued)})
				return err
			},
			pendingNoCodes},
		{"DeleteDevice", false,
			func(t *testing.T, s twofa.Store) error {
				return s.DeleteDevice(t.Context(), alice, "dev_a", raw(twofa.EventDeviceRevoked))
			},
			devicesKept},
		{"DeleteFactors", false,
			func(t *testing.T, s twofa.Store) error {
				return s.DeleteFactors(t.Context(), alice, raw(twofa.EventDisabled))
			},
			devicesKept},
		{"Attempt/AcceptStep", false,
			func(t *testing.T, s twofa.Store) error {
				return acceptStep(t.Context(), s, alice, "dev_a", firstStep+1, 0, now0, raw(twofa.EventVerifySucceeded))
			},
			func(t *testing.T, s twofa.Store) error {
				u, err := s.User(t.Context(), alice)
				if err != nil {
					return err
				}
				if d := u.Device("dev_a"); d == nil || d.LastStep != firstStep || u.Failures != 1 {
					return fmt.Errorf("device %+v, Failures %d; want LastStep %d and 1 failure", d, u.Failures, firstStep)
				}
				return nil
			}},
		{"Attempt/Failure", false,
			func(t *testing.T, s twofa.Store) error {
				return s.Attempt(t.Context(), twofa.AttemptRequest{Ref: alice, Now: now0, Hits: []twofa.LimitHit{{Key: "k", Window: time.Minute}}},
					func(*twofa.AttemptState) (*twofa.Outcome, error) {
						return &twofa.Outcome{Failures: 2, Hits: []twofa.LimitHit{{Key: "o", Window: time.Minute}}, Events: []*twofa.AuditEvent{raw(twofa.EventVerifyFailed)}}, nil
					})
			},
			codesAndFailuresKept},
		{"Unlock", false,
			func(t *testing.T, s twofa.Store) error { return s.Unlock(t.Context(), alice, raw(twofa.EventUnlocked)) },
			codesAndFailuresKept},
		{"Attempt/SpendBackupCode", false,
			func(t *testing.T, s twofa.Store) error {
				_, err := spendCode(t.Context(), s, alice, codeHashes("a", 3)[0], now0, raw(twofa.EventBackupCodeUsed))
				return err
			},
			codesAndFailuresKept},
		{"ReplaceBackupCodes", false,
			func(t *testing.T, s twofa.Store) error {
				return s.ReplaceBackupCodes(t.Context(), alice, codeHashes("b", 5), now0, raw(twofa.EventBackupCodesIssued))
			},
			codesAndFailuresKept},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, open)
			// alice has an active device dev_a, a pending one dev_p, three
			// codes from set "a" unless noCodes, and one failure.
			enroll(t, s, alice, "dev_a", now0)
			create(t, s, alice, "dev_p", now0)
			if !tt.noCodes {
				withCodes(t, s, alice, "a", 3)
			}
			failN(t, s, alice, 1, now0)
			err := tt.call(t, s)
			wantErr(t, tt.name+" with an unprepared event", err, twofa.ErrUnprepared)
			if err := tt.check(t, s); err != nil {
				t.Errorf("after the failed %s: %v", tt.name, err)
			}
			wantLog(t, s)
		})
	}
}

func pendingNoCodes(t *testing.T, s twofa.Store) error {
	u, err := s.User(t.Context(), alice)
	if err != nil {
		return err
	}
	if d := u.Device("dev_p"); d == nil || d.Status != twofa.StatusPending {
		return fmt.Errorf("device dev_p = %+v, want pending", d)
	}
	if u.BackupCodes != 0 || u.Failures != 1 {
		return fmt.Errorf("BackupCodes, Failures = %d, %d; want 0, 1", u.BackupCodes, u.Failures)
	}
	return nil
}

func devicesKept(t *testing.T, s twofa.Store) error {
	u, err := s.User(t.Context(), alice)
	if err != nil {
		return err
	}
	if len(u.Devices) != 2 {
		return fmt.Errorf("%d devices, want 2", len(u.Devices))
	}
	return codesAndFailuresKept(t, s)
}

func codesAndFailuresKept(t *testing.T, s twofa.Store) error {
	u, err := s.User(t.Context(), alice)
	if err != nil {
		return err
	}
	if u.BackupCodes != 3 || u.Failures != 1 {
		return fmt.Errorf("BackupCodes, Failures = %d, %d; want 3, 1", u.BackupCodes, u.Failures)
	}
	if _, err := spendCode(t.Context(), s, alice, codeHashes("a", 3)[0], now0, nil); err != nil {
		return fmt.Errorf("spending the first code = %v, want it unspent", err)
	}
	return nil
}

func testAuditChains(t *testing.T, open Opener) {
	s := openStore(t, open)
	n := s.AuditChains()
	if n < 1 {
		t.Fatalf("AuditChains() = %d, want at least 1", n)
	}
	// Events of many users, from two handles at once: a store with
	// several chains spreads them.
	const users = 64
	race(t, s, users, true, func(ctx context.Context, i int, st twofa.Store) error {
		ref := twofa.UserRef{Tenant: "acme", User: fmt.Sprint("user", i)}
		err := st.AppendAudit(ctx, newEvent(twofa.EventVerifyFailed, ref, ""), newEvent(twofa.EventLocked, ref, ""))
		if err != nil {
			t.Errorf("AppendAudit(%s) = %v", ref, err)
		}
		return err
	})
	all := allEvents(t, s) // verifies, walking the whole log by Seq
	if len(all) != 2*users {
		t.Fatalf("%d events, want %d", len(all), 2*users)
	}
	v := chain.Verifier()
	seen := 0
	for c := range n + 1 { // and one past the last chain, which is empty
		var after int64
		for {
			page, err := s.AuditEvents(t.Context(), twofa.AuditFilter{ByChain: true, Chain: c, After: after, Limit: 7})
			if err != nil {
				t.Fatalf("AuditEvents(chain %d) = %v", c, err)
			}
			for _, e := range page {
				if e.Chain != c || c >= n {
					t.Fatalf("AuditEvents(chain %d) returned entry %d of chain %d", c, e.Seq, e.Chain)
				}
				if e.Seq <= after {
					t.Fatalf("chain %d: entry %d after entry %d", c, e.Seq, after)
				}
				if !v.Next(e) {
					t.Fatalf("chain %d does not verify: %+v", c, v.State())
				}
				after = e.Seq
				seen++
			}
			if len(page) < 7 {
				break
			}
		}
	}
	if seen != len(all) {
		t.Errorf("the chains hold %d events, the log %d", seen, len(all))
	}
	// One user's events stay together, in one chain.
	byUser := map[string]int{}
	for _, e := range all {
		if c, ok := byUser[e.User]; ok && c != e.Chain {
			t.Errorf("user %s has entries in chains %d and %d", e.User, c, e.Chain)
		}
		byUser[e.User] = e.Chain
	}
	if st := v.State(); st.Events != int64(len(all)) || (n > 1) != (st.Chains > 1) {
		t.Errorf("walk by chain: %+v; want %d events, several chains iff the store keeps several", st, len(all))
	}
}

func testAuditSince(t *testing.T, open Opener) {
	s := openStore(t, open)
	// Times in minutes after now0, by Seq from 1: nearly, not exactly, in
	// order, as concurrent writers append them. Entries 7 and 8 are
	// globex's, the rest acme's; even ones alice's, odd ones bob's.
	minutes := []int{0, 2, 1, 3, 5, 4, 6, 2, 7}
	for i, m := range minutes {
		seq := i + 1
		ref := bob
		switch {
		case seq == 7 || seq == 8:
			ref = otherAlice
		case seq%2 == 0:
			ref = alice
		}
		e := newEvent(twofa.EventVerifyFailed, ref, "")
		e.Time = now0.Add(time.Duration(m) * time.Minute)
		wantNoErr(t, "AppendAudit", s.AppendAudit(t.Context(), e))
	}
	at := func(m int) time.Time { return now0.Add(time.Duration(m) * time.Minute) }
	for _, tt := range []struct {
		name string
		f    twofa.AuditFilter
		want []int64
	}{
		{"Tenant", twofa.AuditFilter{Tenant: "acme", Since: at(2)}, []int64{2, 4, 5, 6, 9}},
		{"AtTheMicrosecond", twofa.AuditFilter{Tenant: "acme", Since: at(2).Add(time.Microsecond)}, []int64{4, 5, 6, 9}},
		{"InAnotherZone", twofa.AuditFilter{Tenant: "acme", Since: at(2).In(time.FixedZone("UTC+5", 5*3600))}, []int64{2, 4, 5, 6, 9}},
		{"OtherTenant", twofa.AuditFilter{Tenant: "globex", Since: at(2)}, []int64{7, 8}},
		{"User", twofa.AuditFilter{Tenant: "acme", User: "bob", Since: at(1)}, []int64{3, 5, 9}},
		{"After", twofa.AuditFilter{Tenant: "acme", Since: at(2), After: 4}, []int64{5, 6, 9}},
		{"Limit", twofa.AuditFilter{Tenant: "acme", Since: at(2), Limit: 2}, []int64{2, 4}},
		{"PageOn", twofa.AuditFilter{Tenant: "acme", Since: at(2), After: 4, Limit: 2}, []int64{5, 6}},
		{"EveryTenant", twofa.AuditFilter{Since: at(5)}, []int64{5, 7, 9}},
		{"Future", twofa.AuditFilter{Tenant: "acme", Since: at(8)}, nil},
		{"Zero", twofa.AuditFilter{Tenant: "globex"}, []int64{7, 8}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.AuditEvents(t.Context(), tt.f)
			if err != nil {
				t.Fatalf("AuditEvents(%+v) = %v", tt.f, err)
			}
			var gotSeqs []int64
			for _, e := range got {
				gotSeqs = append(gotSeqs, e.Seq)
				if e.Time.Before(tt.f.Since) {
					t.Errorf("entry %d at %v is before Since %v", e.Seq, e.Time, tt.f.Since)
				}
			}
			if !slices.Equal(gotSeqs, tt.want) {
				t.Errorf("AuditEvents(%+v) = %v, want %v", tt.f, gotSeqs, tt.want)
			}
		})
	}
}

func testCountAudit(t *testing.T, open Opener) {
	s := openStore(t, open)
	// As in testAuditEvents: seq%3 == 0 in globex, the rest in acme,
	// where odd sequence numbers are alice's and even ones bob's; entry
	// seq is seq minutes after now0.
	for seq := 1; seq <= 30; seq++ {
		ref := bob
		switch {
		case seq%3 == 0:
			ref = otherAlice
		case seq%2 == 1:
			ref = alice
		}
		e := newEvent(twofa.EventVerifyFailed, ref, "")
		e.Time = now0.Add(time.Duration(seq) * time.Minute)
		wantNoErr(t, "AppendAudit", s.AppendAudit(t.Context(), e))
	}
	for _, tt := range []struct {
		name string
		f    twofa.AuditFilter
		want int64
	}{
		{"All", twofa.AuditFilter{}, 30},
		{"LimitIgnored", twofa.AuditFilter{Limit: 3}, 30},
		{"Tenant", twofa.AuditFilter{Tenant: "globex"}, 10},
		{"TenantUser", twofa.AuditFilter{Tenant: "acme", User: "alice"}, 10},
		{"After", twofa.AuditFilter{Tenant: "acme", After: 20}, 6},
		{"Since", twofa.AuditFilter{Tenant: "acme", Since: now0.Add(25 * time.Minute)}, 4},
		{"Chain0", twofa.AuditFilter{ByChain: true, Chain: 0, Tenant: "zeta"}, 0},
		{"UnknownTenant", twofa.AuditFilter{Tenant: "zeta"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := s.CountAudit(t.Context(), tt.f); got != tt.want || err != nil {
				t.Errorf("CountAudit(%+v) = %d, %v; want %d, nil", tt.f, got, err, tt.want)
			}
		})
	}
	t.Run("ByChain", func(t *testing.T) {
		// The chains' counts add up to the log's.
		var sum int64
		for c := range s.AuditChains() {
			n, err := s.CountAudit(t.Context(), twofa.AuditFilter{ByChain: true, Chain: c})
			if err != nil {
				t.Fatalf("CountAudit(chain %d) = %v", c, err)
			}
			sum += n
		}
		if sum != 30 {
			t.Errorf("the chains count %d entries, want 30", sum)
		}
	})
}

// checkpoint returns a checkpoint of the suite's chain.
func checkpoint(kind twofa.CheckpointKind, c int, seq int64) twofa.AuditCheckpoint {
	h := sha256.Sum256(fmt.Appendf(nil, "entry %d of chain %d", seq, c))
	return chain.Checkpoint(kind, twofa.ChainHead{Chain: c, Seq: seq, Hash: h[:], Events: seq * 2},
		now0.Add(time.Duration(seq)*time.Second).In(time.FixedZone("UTC-3", -3*3600)))
}

func testAuditCheckpoints(t *testing.T, open Opener) {
	const pruned twofa.CheckpointKind = "pruned" // another kind, as pruning will keep
	want := func(t *testing.T, s twofa.Store, kind twofa.CheckpointKind, cps ...twofa.AuditCheckpoint) {
		t.Helper()
		got, err := s.AuditCheckpoints(t.Context(), kind)
		if err != nil {
			t.Fatalf("AuditCheckpoints(%s) = %v", kind, err)
		}
		if len(got) != len(cps) {
			t.Fatalf("AuditCheckpoints(%s) = %d checkpoints, want %d", kind, len(got), len(cps))
		}
		for i, g := range got {
			w := cps[i]
			if g.Kind != w.Kind || g.Chain != w.Chain || g.Seq != w.Seq || g.Events != w.Events || !g.Time.Equal(w.Time) ||
				!bytes.Equal(g.Hash, w.Hash) || !bytes.Equal(g.MAC, w.MAC) {
				t.Errorf("checkpoint %d = %+v, want %+v", i, g, w)
			}
			if chain.CheckCheckpoint(g) != chain.CheckCheckpoint(w) {
				t.Errorf("checkpoint %d verifies %v as stored, %v as put", i, chain.CheckCheckpoint(g), chain.CheckCheckpoint(w))
			}
		}
	}
	put := func(t *testing.T, s twofa.Store, cp twofa.AuditCheckpoint, old []byte, stored bool) {
		t.Helper()
		if got, err := s.PutAuditCheckpoint(t.Context(), cp, old); got != stored || err != nil {
			t.Errorf("PutAuditCheckpoint(chain %d, seq %d) = %v, %v; want %v, nil", cp.Chain, cp.Seq, got, err, stored)
		}
	}
	v := twofa.CheckpointVerified

	t.Run("Empty", func(t *testing.T) {
		want(t, openStore(t, open), v)
	})
	t.Run("RoundTrip", func(t *testing.T) {
		s := openStore(t, open)
		a, b := checkpoint(v, 0, 5), checkpoint(v, 3, 9)
		put(t, s, b, nil, true)
		put(t, s, a, nil, true)
		want(t, s, v, a, b) // in chain order
		want(t, s, pruned)
	})
	t.Run("OnlyForward", func(t *testing.T) {
		s := openStore(t, open)
		put(t, s, checkpoint(v, 0, 5), nil, true)
		put(t, s, checkpoint(v, 0, 4), nil, false)
		put(t, s, checkpoint(v, 0, 5), nil, false)
		want(t, s, v, checkpoint(v, 0, 5))
		put(t, s, checkpoint(v, 0, 6), nil, true)
		want(t, s, v, checkpoint(v, 0, 6))
	})
	t.Run("ReplaceWhatWasRead", func(t *testing.T) {
		// A walk that found the stored checkpoint bad replaces it, even
		// with one behind it, naming the MAC it read; another MAC is not
		// enough.
		s := openStore(t, open)
		bad := checkpoint(v, 0, 1000)
		bad.MAC = bytes.Repeat([]byte{7}, 32)
		put(t, s, bad, nil, true)
		put(t, s, checkpoint(v, 0, 10), checkpoint(v, 0, 1000).MAC, false)
		want(t, s, v, bad)
		put(t, s, checkpoint(v, 0, 10), bad.MAC, true)
		want(t, s, v, checkpoint(v, 0, 10))
	})
	t.Run("KindsApart", func(t *testing.T) {
		s := openStore(t, open)
		put(t, s, checkpoint(v, 0, 7), nil, true)
		put(t, s, checkpoint(pruned, 0, 3), nil, true)
		want(t, s, v, checkpoint(v, 0, 7))
		want(t, s, pruned, checkpoint(pruned, 0, 3))
	})
	t.Run("RaceAcrossHandles", func(t *testing.T) {
		// Walks on two processes move the checkpoint on at once: it ends
		// at the furthest.
		o := openStore(t, open)
		errs := race(t, o, 16, true, func(ctx context.Context, i int, s twofa.Store) error {
			_, err := s.PutAuditCheckpoint(ctx, checkpoint(v, 1, int64(i+1)), nil)
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("PutAuditCheckpoint #%d = %v", i, err)
			}
		}
		want(t, o, v, checkpoint(v, 1, 16))
	})
}
