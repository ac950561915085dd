package twofa_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

// refSum is the audit MAC as docs/security.md defines it, written out
// plainly. Logs written by any version verify only while Link agrees.
func refSum(key []byte, e *twofa.AuditEvent) []byte {
	m := hmac.New(sha256.New, key)
	var b []byte
	b = append(b, "twofa/audit/v1"...)
	if e.Chain != 0 {
		b = append(b, "/chain"...)
		b = binary.AppendUvarint(b, uint64(e.Chain))
	}
	b = binary.AppendVarint(b, e.Seq)
	b = binary.AppendVarint(b, e.Time.UnixMicro())
	for _, f := range [][]byte{e.PrevHash, []byte(e.Type), []byte(e.Tenant), []byte(e.User), []byte(e.Device), []byte(e.Factor),
		[]byte(e.Reason), []byte(e.Actor), []byte(e.IP), []byte(e.UserAgent), []byte(e.Detail)} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	m.Write(b)
	return m.Sum(nil)
}

func TestAuditLinkFormat(t *testing.T) {
	key := []byte("audit format test key, 32 bytes!")
	c := twofa.NewAuditChain(key)
	prev := bytes.Repeat([]byte{0xab}, 32)
	events := []*twofa.AuditEvent{
		{},
		{Type: twofa.EventVerifySucceeded, Tenant: "acme", User: "alice", Device: "dev_1", Factor: "totp", Detail: "step offset +0"},
		{Type: twofa.EventLocked, Tenant: "t", User: strings.Repeat("ü", 300), IP: "203.0.113.9", UserAgent: strings.Repeat("x", 5000), Actor: "key:k1", Reason: "r"},
		{Type: "a", Tenant: "bc"}, // must differ from {Type: "ab", Tenant: "c"}
		{Type: "ab", Tenant: "c"},
	}
	seen := map[string]bool{}
	for i, e := range events {
		e.Time = time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
		if err := c.Prepare(e).LinkIn(i%2*7, int64(i+1), prev); err != nil { // chains 0 and 7
			t.Fatal(err)
		}
		if want := refSum(key, e); !bytes.Equal(e.Hash, want) {
			t.Errorf("event %d: Hash = %x, want %x", i, e.Hash, want)
		}
		if seen[string(e.Hash)] {
			t.Errorf("event %d: hash repeats", i)
		}
		seen[string(e.Hash)] = true
	}
}

// TestAuditLinkConcurrent links events from many goroutines with one
// chain, whose scratch state is pooled: every hash must still be the
// event's own.
func TestAuditLinkConcurrent(t *testing.T) {
	key := []byte("audit format test key, 32 bytes!")
	c := twofa.NewAuditChain(key)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				e := c.Prepare(&twofa.AuditEvent{Type: twofa.EventVerifyFailed, User: fmt.Sprint(g, "-", i), Detail: strings.Repeat("d", i)})
				if err := e.Link(int64(i), nil); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(e.Hash, refSum(key, e)) {
					t.Errorf("goroutine %d event %d: wrong hash", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
}

// chainLog links n events over the given number of chains, round robin,
// with increasing Seq, as a store would.
func chainLog(t *testing.T, c *twofa.AuditChain, n, chains int) []*twofa.AuditEvent {
	t.Helper()
	prev := map[int][]byte{}
	var log []*twofa.AuditEvent
	for i := range n {
		ch := i % chains
		e := c.Prepare(&twofa.AuditEvent{Time: time.Unix(1700000000+int64(i), 0), Type: twofa.EventVerifyFailed, Tenant: "acme", User: fmt.Sprint("u", i)})
		if err := e.LinkIn(ch, int64(10+3*i), prev[ch]); err != nil {
			t.Fatal(err)
		}
		prev[ch] = e.Hash
		log = append(log, e)
	}
	return log
}

func verify(c *twofa.AuditChain, log []*twofa.AuditEvent) twofa.ChainState {
	v := c.Verifier()
	for _, e := range log {
		if !v.Next(e) {
			break
		}
	}
	return v.State()
}

func TestChainVerifier(t *testing.T) {
	c := twofa.NewAuditChain([]byte("audit format test key, 32 bytes!"))
	clone := func(log []*twofa.AuditEvent) []*twofa.AuditEvent {
		out := make([]*twofa.AuditEvent, len(log))
		for i, e := range log {
			cp := *e
			out[i] = &cp
		}
		return out
	}
	base := chainLog(t, c, 12, 3) // chain of event i: i%3
	for _, tt := range []struct {
		name   string
		change func([]*twofa.AuditEvent) []*twofa.AuditEvent
		bad    int64 // Seq of the first bad entry; 0: the log verifies
	}{
		{"Intact", func(l []*twofa.AuditEvent) []*twofa.AuditEvent { return l }, 0},
		{"ChainByChain", func(l []*twofa.AuditEvent) []*twofa.AuditEvent {
			var out []*twofa.AuditEvent
			for ch := range 3 {
				for i := ch; i < len(l); i += 3 {
					out = append(out, l[i])
				}
			}
			return out
		}, 0},
		{"OtherInterleaving", func(l []*twofa.AuditEvent) []*twofa.AuditEvent {
			l[1], l[2] = l[2], l[1] // different chains: still in order along each
			return l
		}, 0},
		{"Altered", func(l []*twofa.AuditEvent) []*twofa.AuditEvent { l[7].Detail = "x"; return l }, l7},
		{"AlteredTime", func(l []*twofa.AuditEvent) []*twofa.AuditEvent { l[7].Time = l[7].Time.Add(time.Second); return l }, l7},
		{"MiddleDeleted", func(l []*twofa.AuditEvent) []*twofa.AuditEvent { return append(l[:4:4], l[5:]...) }, seq(7)},
		{"FirstDeleted", func(l []*twofa.AuditEvent) []*twofa.AuditEvent { return l[1:] }, seq(3)},
		{"SwappedInChain", func(l []*twofa.AuditEvent) []*twofa.AuditEvent { l[4], l[7] = l[7], l[4]; return l }, seq(7)},
		{"Duplicated", func(l []*twofa.AuditEvent) []*twofa.AuditEvent {
			return append(l[:6:6], append([]*twofa.AuditEvent{l[5]}, l[6:]...)...)
		}, seq(5)},
		{"MovedToAnotherChain", func(l []*twofa.AuditEvent) []*twofa.AuditEvent { l[9].Chain = 1; return l }, seq(9)},
		{"Renumbered", func(l []*twofa.AuditEvent) []*twofa.AuditEvent { l[6].Seq++; return l }, seq(6) + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := verify(c, tt.change(clone(base)))
			if got := !st.OK; got != (tt.bad != 0) || st.BadSeq != tt.bad {
				t.Errorf("OK %v, BadSeq %d (%s); want BadSeq %d", st.OK, st.BadSeq, st.Problem, tt.bad)
			}
		})
	}

	// The head names every chain's end: truncating any chain changes it.
	full := verify(c, base)
	if full.Chains != 3 || full.Events != 12 {
		t.Fatalf("state %+v, want 12 events in 3 chains", full)
	}
	for _, drop := range []int{9, 10, 11} { // the last entry of each chain
		l := append(clone(base[:drop]), clone(base[drop+1:])...)
		st := verify(c, l)
		if !st.OK || bytes.Equal(st.Head, full.Head) {
			t.Errorf("without entry %d: OK %v, head unchanged %v; want OK and another head", base[drop].Seq, st.OK, bytes.Equal(st.Head, full.Head))
		}
	}
	// Recorded heads: a later walk finds a chain cut behind one of them.
	recorded := full.Heads
	if len(recorded) != 3 || recorded[1].Chain != 1 || recorded[1].Seq != base[10].Seq || !bytes.Equal(recorded[1].Hash, base[10].Hash) {
		t.Fatalf("heads %v, want the last entry of each of 3 chains", recorded)
	}
	parsed, err := twofa.ParseChainHeads(recorded[0].String() + "," + recorded[1].String() + "," + recorded[2].String())
	if err != nil || len(parsed) != 3 || parsed[2].Seq != recorded[2].Seq || !bytes.Equal(parsed[2].Hash, recorded[2].Hash) {
		t.Fatalf("ParseChainHeads(String()) = %v, %v", parsed, err)
	}
	for _, tt := range []struct {
		name string
		log  []*twofa.AuditEvent
		bad  int64
	}{
		{"Intact", clone(base), 0},
		{"ChainCut", append(clone(base[:10]), clone(base[11:])...), base[10].Seq},
		{"ChainCutDeeper", clone(base[:7]), base[9].Seq},
	} {
		v := c.Verifier()
		v.Expect(recorded)
		for _, e := range tt.log {
			if !v.Next(e) {
				break
			}
		}
		st := v.State()
		if st.OK != (tt.bad == 0) || st.BadSeq != tt.bad {
			t.Errorf("%s against recorded heads: OK %v, BadSeq %d (%s); want BadSeq %d", tt.name, st.OK, st.BadSeq, st.Problem, tt.bad)
		}
	}
	for _, bad := range []string{"1:2", "x:1:00", "1:0:" + strings.Repeat("00", 32), "1:1:abc", "-1:1:" + strings.Repeat("00", 32)} {
		if _, err := twofa.ParseChainHeads(bad); err == nil {
			t.Errorf("ParseChainHeads(%q): no error", bad)
		}
	}

	// One chain: the head is its last hash, as before there were chains.
	one := chainLog(t, c, 5, 1)
	if st := verify(c, one); !st.OK || st.Chains != 1 || !bytes.Equal(st.Head, one[4].Hash) {
		t.Errorf("one chain: %+v, want head %x", st, one[4].Hash)
	}
}

// seq is the Seq chainLog gives event i; l7 is that of event 7.
func seq(i int) int64 { return int64(10 + 3*i) }

var l7 = seq(7)

// refCheckpointMAC is the checkpoint MAC as docs/security.md defines it.
func refCheckpointMAC(key []byte, cp twofa.AuditCheckpoint) []byte {
	m := hmac.New(sha256.New, key)
	b := []byte("twofa/audit-checkpoint/v1")
	b = binary.AppendUvarint(b, uint64(len(cp.Kind)))
	b = append(b, cp.Kind...)
	for _, v := range []int64{int64(cp.Chain), cp.Seq, cp.Events, cp.Time.UnixMicro()} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(cp.Hash)))
	b = append(b, cp.Hash...)
	m.Write(b)
	return m.Sum(nil)
}

func TestAuditCheckpointFormat(t *testing.T) {
	key := []byte("audit format test key, 32 bytes!")
	c := twofa.NewAuditChain(key)
	at := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	h := twofa.ChainHead{Chain: 3, Seq: 1000, Hash: bytes.Repeat([]byte{0xab}, 32), Events: 42}
	cp := c.Checkpoint(twofa.CheckpointVerified, h, at)
	if !cp.Time.Equal(at.Truncate(time.Microsecond)) || cp.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v in UTC", cp.Time, at.Truncate(time.Microsecond))
	}
	if want := refCheckpointMAC(key, cp); !bytes.Equal(cp.MAC, want) {
		t.Errorf("MAC = %x, want %x", cp.MAC, want)
	}
	if !c.CheckCheckpoint(cp) {
		t.Error("a checkpoint does not check")
	}
	// Whatever is changed, the MAC no longer checks.
	for name, change := range map[string]func(*twofa.AuditCheckpoint){
		"Kind":   func(cp *twofa.AuditCheckpoint) { cp.Kind = "pruned" },
		"Chain":  func(cp *twofa.AuditCheckpoint) { cp.Chain = 4 },
		"Seq":    func(cp *twofa.AuditCheckpoint) { cp.Seq++ },
		"Events": func(cp *twofa.AuditCheckpoint) { cp.Events++ },
		"Time":   func(cp *twofa.AuditCheckpoint) { cp.Time = cp.Time.Add(time.Microsecond) },
		"Hash":   func(cp *twofa.AuditCheckpoint) { cp.Hash = bytes.Repeat([]byte{0xac}, 32) },
		"NoMAC":  func(cp *twofa.AuditCheckpoint) { cp.MAC = nil },
		"Entry":  func(cp *twofa.AuditCheckpoint) { cp.MAC = refSum(key, &twofa.AuditEvent{Seq: cp.Seq}) },
	} {
		changed := cp
		change(&changed)
		if c.CheckCheckpoint(changed) {
			t.Errorf("a checkpoint with another %s checks", name)
		}
	}
	if twofa.NewAuditChain([]byte("another key, 32 bytes, not ours!")).CheckCheckpoint(cp) {
		t.Error("a checkpoint checks under another key")
	}
}

func TestChainVerifier_Resume(t *testing.T) {
	c := twofa.NewAuditChain([]byte("audit format test key, 32 bytes!"))
	log := chainLog(t, c, 12, 3) // chain of event i: i%3
	// Checkpoints at events 3, 4 and 8: the last but one of chains 0 and
	// 1, and of chain 2 after 3 entries.
	at := time.Unix(1700000000, 0)
	cps := []twofa.AuditCheckpoint{
		c.Checkpoint(twofa.CheckpointVerified, twofa.ChainHead{Chain: 0, Seq: log[3].Seq, Hash: log[3].Hash, Events: 2}, at),
		c.Checkpoint(twofa.CheckpointVerified, twofa.ChainHead{Chain: 1, Seq: log[4].Seq, Hash: log[4].Hash, Events: 2}, at),
		c.Checkpoint(twofa.CheckpointVerified, twofa.ChainHead{Chain: 2, Seq: log[8].Seq, Hash: log[8].Hash, Events: 3}, at),
	}
	rest := []*twofa.AuditEvent{log[6], log[7], log[9], log[10], log[11]}
	for _, tt := range []struct {
		name string
		log  []*twofa.AuditEvent
		bad  int64
	}{
		{"Intact", rest, 0},
		{"Altered", []*twofa.AuditEvent{log[6], log[7], {Seq: log[9].Seq, Hash: log[9].Hash, PrevHash: log[9].PrevHash}, log[10], log[11]}, log[9].Seq},
		{"FirstAfterMissing", []*twofa.AuditEvent{log[7], log[9], log[10], log[11]}, log[9].Seq},
		{"BeforeTheCheckpoint", []*twofa.AuditEvent{log[3], log[6], log[7], log[9], log[10], log[11]}, log[3].Seq},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := c.Verifier()
			for _, cp := range cps {
				v.Resume(cp)
			}
			for _, e := range tt.log {
				if !v.Next(e) {
					break
				}
			}
			st := v.State()
			if st.OK != (tt.bad == 0) || st.BadSeq != tt.bad {
				t.Fatalf("OK %v, BadSeq %d (%s); want BadSeq %d", st.OK, st.BadSeq, st.Problem, tt.bad)
			}
			if !st.OK {
				return
			}
			whole := verify(c, log)
			if st.Events != 12 || st.Checked != 5 || !bytes.Equal(st.Head, whole.Head) || len(st.Heads) != 3 || st.Heads[1].Events != 4 {
				t.Errorf("state %+v; want 12 entries, 5 checked, the whole log's head, chain 1's head its 4th entry", st)
			}
		})
	}
}
