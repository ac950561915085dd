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
		if err := c.Prepare(e).Link(int64(i+1), prev); err != nil {
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
