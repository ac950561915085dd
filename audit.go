package twofa

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EventType names what an audit event records.
type EventType string

// Audit event types.
const (
	EventEnrollStarted     EventType = "enrollment_started"
	EventEnrollConfirmed   EventType = "enrollment_confirmed"
	EventEnrollFailed      EventType = "enrollment_failed"
	EventEnrollExpired     EventType = "enrollment_expired"
	EventVerifySucceeded   EventType = "verify_succeeded"
	EventVerifyFailed      EventType = "verify_failed"
	EventReplayRejected    EventType = "replay_rejected"
	EventLocked            EventType = "user_locked"
	EventUnlocked          EventType = "user_unlocked"
	EventBackupCodeUsed    EventType = "backup_code_used"
	EventBackupCodesIssued EventType = "backup_codes_issued"
	EventDeviceRevoked     EventType = "device_revoked"
	EventDisabled          EventType = "2fa_disabled"
	EventResyncStarted     EventType = "resync_started"
	EventResyncSucceeded   EventType = "resync_succeeded"
	EventResyncFailed      EventType = "resync_failed"
	EventKeysRotated       EventType = "keys_rotated"
)

// AuditEvent is one entry of the append-only audit log. It never holds a
// code, secret or key. Each entry is chained to the one before it by a
// keyed hash, so an edit, an insertion or a deletion in the middle of the
// log is detected by whoever holds the key, and an attacker who can write
// the database but lacks the master key cannot forge a consistent chain.
//
// A store may keep several chains (AuditStore.AuditChains), so that
// writers of different chains need not wait for each other's commits;
// each entry is in one. Seq orders the whole log: it increases along
// every chain, but need not be dense, and entries of different chains
// may become visible out of Seq order.
type AuditEvent struct {
	Seq       int64 // position in the log, from 1, assigned by Link
	Chain     int   // the chain the entry is in, from 0, assigned by Link
	Time      time.Time
	Type      EventType
	Tenant    string
	User      string
	Device    string
	Factor    string // "totp" or "backup_code" where one was involved
	Reason    string // why a verification failed, and similar
	Actor     string // the API key or administrator
	IP        string // the end user's, as the calling application reports it
	UserAgent string
	Detail    string // free text for people; never a secret

	PrevHash []byte // Hash of the entry before; empty for the first
	Hash     []byte // HMAC-SHA-256 over PrevHash and the fields above

	// Messages are what the change the event records sends (notices,
	// codes, webhook deliveries): a store adds them to the outbox in the
	// transaction that appends the event, reading them after it has
	// linked the event (Link, LinkIn), which adds the tenant's webhook
	// message. They are not part of the entry.
	Messages []*Message

	chain   *AuditChain     // set by AuditChain.Prepare; unexported so it is never stored or printed
	webhook *pendingWebhook // the tenant's webhook message, made by LinkIn
}

// AuditChain links audit events with a secret key. The Service keeps the
// key sealed in the store and prepares each event it writes; stores call
// Link inside the transaction that appends the event.
type AuditChain struct {
	key     []byte
	scratch sync.Pool // of *chainScratch: an event is summed on every write
}

// chainScratch is a keyed HMAC and a buffer to encode an event in.
type chainScratch struct {
	mac hash.Hash
	buf []byte
}

// NewAuditChain returns a chain keyed with key (32 random bytes).
func NewAuditChain(key []byte) *AuditChain {
	c := &AuditChain{key: append([]byte(nil), key...)}
	c.scratch.New = func() any { return &chainScratch{mac: hmac.New(sha256.New, c.key)} }
	return c
}

// String hides the key.
func (c *AuditChain) String() string { return "twofa.AuditChain{key: REDACTED}" }

// GoString hides the key under %#v too.
func (c *AuditChain) GoString() string { return c.String() }

// Prepare lets the event be linked into this chain.
func (c *AuditChain) Prepare(e *AuditEvent) *AuditEvent {
	e.chain = c
	return e
}

// ErrUnprepared is returned by Link for an event no chain prepared.
var ErrUnprepared = errors.New("twofa: audit event was not prepared by an AuditChain")

// Link gives the event its place in the log: sequence number seq, after the
// entry whose hash is prev, in chain 0. It normalises Time to UTC
// microseconds, the precision every store keeps, and computes Hash. Stores
// call it inside the transaction that appends the event, holding the
// chain's head.
func (e *AuditEvent) Link(seq int64, prev []byte) error {
	return e.LinkIn(0, seq, prev)
}

// LinkIn is Link for an entry of the given chain. It also adds the
// event's webhook message, if its tenant has a webhook that wants it, to
// Messages (once, however often the event is linked): made now, it tells
// the event as the store appends it.
func (e *AuditEvent) LinkIn(chain int, seq int64, prev []byte) error {
	if e.chain == nil {
		return ErrUnprepared
	}
	if chain < 0 {
		return fmt.Errorf("twofa: audit chain %d", chain)
	}
	e.Seq, e.Chain = seq, chain
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.PrevHash = append([]byte(nil), prev...)
	e.Hash = e.chain.sum(e)
	return e.finishWebhook()
}

// sum is HMAC-SHA-256(key, encoding of the event and its predecessor's hash).
// Every field is length-prefixed, so no two events encode alike. An entry
// of chain 0 encodes as every entry did before there were chains; another
// chain's entry has "/chain" and the chain's number (uvarint) after the
// prefix, where chain 0's has the signed varint of a positive Seq, whose
// first byte is never '/'.
func (c *AuditChain) sum(e *AuditEvent) []byte {
	sc := c.scratch.Get().(*chainScratch)
	defer c.scratch.Put(sc)
	b := append(sc.buf[:0], "twofa/audit/v1"...)
	if e.Chain != 0 {
		b = append(b, "/chain"...)
		b = binary.AppendUvarint(b, uint64(e.Chain))
	}
	b = binary.AppendVarint(b, e.Seq)
	b = binary.AppendVarint(b, e.Time.UnixMicro())
	b = binary.AppendUvarint(b, uint64(len(e.PrevHash)))
	b = append(b, e.PrevHash...)
	for _, f := range [...]string{string(e.Type), e.Tenant, e.User, e.Device, e.Factor, e.Reason, e.Actor, e.IP, e.UserAgent, e.Detail} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	sc.buf = b
	sc.mac.Reset()
	sc.mac.Write(b)
	return sc.mac.Sum(make([]byte, 0, sha256.Size))
}

// ChainState is the result of walking the audit log.
type ChainState struct {
	// Events are the entries the walk vouches for: those it checked and,
	// when it resumed from checkpoints, those the checkpoints stand for.
	Events  int64
	Checked int64 // entries this walk read and checked
	Chains  int   // chains that hold entries
	// Heads are each chain's last entry, in chain order. Record them
	// elsewhere: a later walk given them (ChainVerifier.Expect) finds a
	// log truncated behind any of them.
	Heads []ChainHead
	// Head is one value for the log's end: the last entry's hash when one
	// chain holds entries, else SHA-256 over each chain's number and last
	// hash, in chain order. It tells whether the log changed, not where.
	Head    []byte
	OK      bool
	BadSeq  int64  // first entry that does not verify, when not OK
	Problem string // what is wrong with it
}

// ChainHead is the last entry of a chain, as a walk found it.
type ChainHead struct {
	Chain int
	Seq   int64
	Hash  []byte
	// Events are the chain's entries up to and including this one, as far
	// as the walk knows them; String leaves them out.
	Events int64
}

// String is "chain:seq:hash" (hash in hex), the form ParseChainHeads reads.
func (h ChainHead) String() string { return fmt.Sprintf("%d:%d:%x", h.Chain, h.Seq, h.Hash) }

// ParseChainHeads reads heads written as ChainHead.String does, separated
// by commas.
func ParseChainHeads(s string) ([]ChainHead, error) {
	var hs []ChainHead
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		parts := strings.Split(f, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("audit head %q: want chain:seq:hash", f)
		}
		c, err1 := strconv.Atoi(parts[0])
		seq, err2 := strconv.ParseInt(parts[1], 10, 64)
		hash, err3 := hex.DecodeString(parts[2])
		if err := errors.Join(err1, err2, err3); err != nil || c < 0 || seq < 1 || len(hash) != sha256.Size {
			return nil, fmt.Errorf("audit head %q: want chain:seq:hash, a chain from 0, a seq from 1 and a 32-byte hash in hex", f)
		}
		hs = append(hs, ChainHead{Chain: c, Seq: seq, Hash: hash})
	}
	return hs, nil
}

// ChainVerifier checks audit events one by one. Each chain's entries must
// come in Seq order; the chains may be interleaved in any way, or walked
// one after another.
type ChainVerifier struct {
	c      *AuditChain
	state  ChainState
	heads  map[int]chainHead
	expect map[int]ChainHead // recorded heads not yet seen
}

type chainHead struct {
	seq    int64
	hash   []byte
	events int64 // the chain's entries up to and including this one
}

// Expect makes the walk require the recorded heads: each must be found,
// with its hash, or the walk fails there. Call it before the first Next.
func (v *ChainVerifier) Expect(heads []ChainHead) {
	v.expect = map[int]ChainHead{}
	for _, h := range heads {
		if old, ok := v.expect[h.Chain]; !ok || h.Seq > old.Seq {
			v.expect[h.Chain] = h
		}
	}
}

// Resume makes the walk continue a chain after a checkpoint, as though it
// had checked the chain up to it: the chain's next entry must come after
// the checkpoint's entry and link to it, and the entries the checkpoint
// stands for count in Events. Call it before the chain's first Next. A
// recorded head (Expect) at or before the checkpoint is not seen by such a
// walk, and makes it fail: check those against the log another way.
func (v *ChainVerifier) Resume(cp AuditCheckpoint) {
	if old, ok := v.heads[cp.Chain]; ok {
		v.state.Events -= old.events
	}
	v.heads[cp.Chain] = chainHead{seq: cp.Seq, hash: cp.Hash, events: cp.Events}
	v.state.Events += cp.Events
}

// Verifier returns a ChainVerifier that starts at the beginning of the log.
func (c *AuditChain) Verifier() *ChainVerifier {
	return &ChainVerifier{c: c, state: ChainState{OK: true}, heads: map[int]chainHead{}}
}

// Next checks the next event and reports whether the log still holds.
func (v *ChainVerifier) Next(e *AuditEvent) bool {
	if !v.state.OK {
		return false
	}
	fail := func(format string, args ...any) bool {
		v.state.OK, v.state.BadSeq, v.state.Problem = false, e.Seq, fmt.Sprintf(format, args...)
		return false
	}
	h, seen := v.heads[e.Chain]
	switch {
	case e.Chain < 0:
		return fail("entry %d names chain %d", e.Seq, e.Chain)
	case e.Seq <= h.seq:
		return fail("entry %d comes after entry %d of chain %d", e.Seq, h.seq, e.Chain)
	case !hmac.Equal(e.PrevHash, h.hash) && !seen:
		return fail("entry %d, the first of chain %d, links to an entry before it: the chain's beginning is missing", e.Seq, e.Chain)
	case !hmac.Equal(e.PrevHash, h.hash):
		return fail("entry %d does not link to entry %d, the one before it in chain %d: an entry between them is missing or altered", e.Seq, h.seq, e.Chain)
	case !hmac.Equal(e.Hash, v.c.sum(e)):
		return fail("entry %d was altered", e.Seq)
	}
	if x, ok := v.expect[e.Chain]; ok && e.Seq >= x.Seq {
		if e.Seq > x.Seq || !hmac.Equal(e.Hash, x.Hash) {
			return fail("entry %d of chain %d, recorded as a head, is missing or replaced", x.Seq, e.Chain)
		}
		delete(v.expect, e.Chain)
	}
	v.heads[e.Chain] = chainHead{seq: e.Seq, hash: e.Hash, events: h.events + 1}
	v.state.Events++
	v.state.Checked++
	return true
}

// head is ChainState.Head.
func (v *ChainVerifier) head() []byte {
	if len(v.heads) == 0 {
		return nil
	}
	if len(v.heads) == 1 {
		for _, h := range v.heads {
			return h.hash
		}
	}
	chains := make([]int, 0, len(v.heads))
	for c := range v.heads {
		chains = append(chains, c)
	}
	slices.Sort(chains)
	d := sha256.New()
	for _, c := range chains {
		var b []byte
		b = binary.AppendUvarint(b, uint64(c))
		d.Write(b)
		d.Write(v.heads[c].hash)
	}
	return d.Sum(nil)
}

// State returns what the walk has found so far.
func (v *ChainVerifier) State() ChainState {
	st := v.state
	st.Chains, st.Head = len(v.heads), v.head()
	for c, h := range v.heads {
		st.Heads = append(st.Heads, ChainHead{Chain: c, Seq: h.seq, Hash: h.hash, Events: h.events})
	}
	slices.SortFunc(st.Heads, func(a, b ChainHead) int { return a.Chain - b.Chain })
	if st.OK && len(v.expect) > 0 {
		// A recorded head not reached: the chain ends before it.
		var first *ChainHead
		for _, x := range v.expect {
			if first == nil || x.Chain < first.Chain {
				first = &x
			}
		}
		st.OK, st.BadSeq = false, first.Seq
		st.Problem = fmt.Sprintf("entry %d of chain %d, recorded as a head, is missing: the chain was truncated", first.Seq, first.Chain)
	}
	return st
}

// AuditFilter selects audit events.
type AuditFilter struct {
	Tenant  string // empty: every tenant (administrators only)
	User    string // empty: every user
	ByChain bool   // only events of Chain
	Chain   int
	After   int64 // only events with Seq > After
	// Since keeps only events whose Time is at or after it; zero keeps
	// all. Stores find them by an index on (tenant, time), so give a
	// Tenant with it; each call reads every entry of the tenant since
	// then, to return the first in Seq order. A long listing begun at a
	// time goes on by After alone: the entries after the last one read
	// are all later in Seq, though a few may be a little earlier in
	// Time, since entries are appended in nearly, not exactly, time order.
	Since time.Time
	Limit int // at most this many; 0 means 100
}
