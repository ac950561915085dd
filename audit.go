package twofa

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
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
type AuditEvent struct {
	Seq       int64 // position in the log, from 1, assigned by Link
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

	chain *AuditChain // set by AuditChain.Prepare; unexported so it is never stored or printed
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
// entry whose hash is prev. It normalises Time to UTC microseconds, the
// precision every store keeps, and computes Hash. Stores call it inside the
// transaction that appends the event, holding the log's head.
func (e *AuditEvent) Link(seq int64, prev []byte) error {
	if e.chain == nil {
		return ErrUnprepared
	}
	e.Seq = seq
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.PrevHash = append([]byte(nil), prev...)
	e.Hash = e.chain.sum(e)
	return nil
}

// sum is HMAC-SHA-256(key, encoding of the event and its predecessor's hash).
// Every field is length-prefixed, so no two events encode alike.
func (c *AuditChain) sum(e *AuditEvent) []byte {
	sc := c.scratch.Get().(*chainScratch)
	defer c.scratch.Put(sc)
	b := append(sc.buf[:0], "twofa/audit/v1"...)
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
	Events  int64  // entries checked
	Head    []byte // hash of the last entry: record it elsewhere to detect truncation
	OK      bool
	BadSeq  int64  // first entry that does not verify, when not OK
	Problem string // what is wrong with it
}

// ChainVerifier checks audit events one by one, in log order.
type ChainVerifier struct {
	c     *AuditChain
	state ChainState
	prev  []byte
}

// Verifier returns a ChainVerifier that starts at the beginning of the log.
func (c *AuditChain) Verifier() *ChainVerifier {
	return &ChainVerifier{c: c, state: ChainState{OK: true}}
}

// Next checks the next event and reports whether the chain still holds.
func (v *ChainVerifier) Next(e *AuditEvent) bool {
	if !v.state.OK {
		return false
	}
	want := v.state.Events + 1
	fail := func(format string, args ...any) bool {
		v.state.OK, v.state.BadSeq, v.state.Problem = false, want, fmt.Sprintf(format, args...)
		return false
	}
	switch {
	case e.Seq != want:
		return fail("entry %d is missing: found %d in its place", want, e.Seq)
	case !hmac.Equal(e.PrevHash, v.prev):
		return fail("entry %d does not link to entry %d", e.Seq, e.Seq-1)
	case !hmac.Equal(e.Hash, v.c.sum(e)):
		return fail("entry %d was altered", e.Seq)
	}
	v.prev = e.Hash
	v.state.Events, v.state.Head = want, e.Hash
	return true
}

// State returns what the walk has found so far.
func (v *ChainVerifier) State() ChainState { return v.state }

// AuditFilter selects audit events.
type AuditFilter struct {
	Tenant string // empty: every tenant (administrators only)
	User   string // empty: every user
	After  int64  // only events with Seq > After
	Limit  int    // at most this many; 0 means 100
}
