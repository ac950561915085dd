package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/twofa/twofa/seal"
)

func TestNewEvent(t *testing.T) {
	// The suite's events are prepared: they link, and the log verifies.
	v := chain.Verifier()
	var prev []byte
	for seq := int64(1); seq <= 3; seq++ {
		e := newEvent("test", alice, "dev_a")
		if err := e.Link(seq, prev); err != nil {
			t.Fatalf("Link(%d) = %v", seq, err)
		}
		if !v.Next(e) {
			t.Fatalf("Verifier: %+v", v.State())
		}
		prev = e.Hash
	}
}

func TestSealed(t *testing.T) {
	for _, id := range []uint32{1, 2, 4_000_000_001} {
		b := sealed(id, "x")
		if got, err := seal.KeyID(b); got != id || err != nil {
			t.Errorf("seal.KeyID(sealed(%d)) = %d, %v; want %d, nil", id, got, err, id)
		}
	}
	if bytes.Equal(sealed(1, "x"), sealed(1, "x")) {
		t.Error("sealed returned the same blob twice; want a fresh nonce each time")
	}
}

func TestDeviceDiff(t *testing.T) {
	d := newDevice(alice, "dev_a", now0)
	w := *d
	w.CreatedAt = now0.In(time.FixedZone("X", 3600)) // the same instant
	if diffs := deviceDiff(d, &w); len(diffs) != 0 {
		t.Errorf("deviceDiff(same device) = %q, want none", diffs)
	}
	w.Secret = append([]byte(nil), d.Secret...)
	w.Secret[0] ^= 1
	w.LastUsedAt = now0
	w.Params.T0 = 1
	if diffs := deviceDiff(d, &w); len(diffs) != 3 {
		t.Errorf("deviceDiff = %q, want Secret, Params and LastUsedAt", diffs)
	}
}

func TestCodeHashes(t *testing.T) {
	a, b := codeHashes("a", 3), codeHashes("a", 3)
	for i := range a {
		if !bytes.Equal(a[i], b[i]) || len(a[i]) != 32 || a[i][0] != 0 {
			t.Errorf("codeHashes(%q)[%d] = %x and %x; want equal 32-byte hashes starting with 0", "a", i, a[i], b[i])
		}
	}
	if bytes.Equal(a[0], a[1]) || bytes.Equal(a[0], codeHashes("b", 1)[0]) {
		t.Error("codeHashes repeats a hash")
	}
}
