package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
)

// KeySize is the length in bytes of an AES-256 master key.
const KeySize = 32

// Version is the format version written in the first byte of every blob.
const Version = 1

const (
	headerSize = 1 + 4
	nonceSize  = 12
	tagSize    = 16
)

// Overhead is how many bytes longer a sealed blob is than its plaintext.
const Overhead = headerSize + nonceSize + tagSize

// Errors returned by Open, KeyID and Reseal. They are sentinels to be tested
// with errors.Is; the wrapped messages carry only non-secret details.
var (
	// ErrMalformed means the blob is too short or of an unknown version.
	ErrMalformed = errors.New("seal: malformed ciphertext")
	// ErrUnknownKey means the blob names a key ID that is not in the keyring.
	ErrUnknownKey = errors.New("seal: unknown key id")
	// ErrAuth means authentication failed: wrong associated data, a wrong
	// key, or a tampered blob.
	ErrAuth = errors.New("seal: message authentication failed")
)

// ErrInvalidKey is returned for key material that is not exactly 32 bytes of
// standard base64, or that is unusable (all zeros, reused under two IDs).
var ErrInvalidKey = errors.New("seal: invalid key")

// Keyring holds AES-256 keys by ID, one of which is active for new writes.
// It is immutable after construction and safe for concurrent use. It keeps no
// raw key bytes, and formats and logs as its key IDs only.
type Keyring struct {
	active uint32
	ids    []uint32 // sorted
	aeads  map[uint32]cipher.AEAD
}

// NewKeyring returns a keyring of keys by ID with active as the key used by
// Seal. Each key must be KeySize bytes; the keyring does not retain the
// slices, so callers may clear them afterwards.
func NewKeyring(active uint32, keys map[uint32][]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: keyring has no keys")
	}
	ids := make([]uint32, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	// Sorted so that validation errors are the same from run to run.
	slices.Sort(ids)
	if ids[0] == 0 {
		return nil, errors.New("seal: key id 0 is reserved")
	}
	if _, ok := keys[active]; !ok {
		return nil, fmt.Errorf("seal: active key id %d is not in the keyring", active)
	}
	for i, id := range ids {
		k := keys[id]
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w: key %d is %d bytes, want %d", ErrInvalidKey, id, len(k), KeySize)
		}
		if allZero(k) {
			return nil, fmt.Errorf("%w: key %d is all zeros", ErrInvalidKey, id)
		}
		// The same key under two IDs would make rotation between them a no-op.
		for _, prev := range ids[:i] {
			if subtle.ConstantTimeCompare(k, keys[prev]) == 1 {
				return nil, fmt.Errorf("%w: keys %d and %d are identical", ErrInvalidKey, prev, id)
			}
		}
	}
	aeads := make(map[uint32]cipher.AEAD, len(ids))
	for _, id := range ids {
		// aes.NewCipher expands the key into its own state, which is how the
		// keyring avoids holding a copy of the caller's bytes.
		block, err := aes.NewCipher(keys[id])
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: cannot create cipher", id)
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("seal: key %d: cannot create gcm", id)
		}
		aeads[id] = aead
	}
	return &Keyring{active: active, ids: ids, aeads: aeads}, nil
}

func allZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// ActiveID returns the ID of the key that Seal uses.
func (k *Keyring) ActiveID() uint32 { return k.active }

// IDs returns the key IDs in the keyring in ascending order.
func (k *Keyring) IDs() []uint32 { return slices.Clone(k.ids) }

// Seal encrypts plaintext under the active key with a fresh random nonce,
// binding it to ad, which must be passed again to Open.
func (k *Keyring) Seal(plaintext, ad []byte) ([]byte, error) {
	if k == nil || k.aeads == nil {
		return nil, errors.New("seal: keyring is not initialised")
	}
	aead := k.aeads[k.active]
	n := headerSize + nonceSize + len(plaintext) + tagSize
	out, fullAD := alloc(n, ad)
	out = out[:headerSize]
	out[0] = Version
	binary.BigEndian.PutUint32(out[1:headerSize], k.active)
	fillAD(fullAD, out, ad)
	// The AEAD with random nonce writes nonce|ciphertext|tag after the header.
	return aead.Seal(out, nil, plaintext, fullAD), nil
}

// Open authenticates and decrypts a blob made by Seal with the same ad, using
// the key named in its header. Failures wrap ErrMalformed, ErrUnknownKey or
// ErrAuth.
func (k *Keyring) Open(ciphertext, ad []byte) ([]byte, error) {
	id, err := KeyID(ciphertext)
	if err != nil {
		return nil, err
	}
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("%w %d", ErrUnknownKey, id)
	}
	n := len(ciphertext) - Overhead
	out, fullAD := alloc(n, ad)
	fillAD(fullAD, ciphertext[:headerSize], ad)
	pt, err := aead.Open(out[:0], nil, ciphertext[headerSize:], fullAD)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// alloc returns an output buffer of capacity n and an AD buffer for header
// plus ad, carved from one allocation to halve allocations per call. The
// capacity of out is capped so appends by the caller cannot reach fullAD.
func alloc(n int, ad []byte) (out, fullAD []byte) {
	buf := make([]byte, n+headerSize+len(ad))
	return buf[:n:n], buf[n:]
}

// fillAD writes header|ad into dst. The header has a fixed length, so the
// concatenation is unambiguous.
func fillAD(dst, header, ad []byte) {
	copy(dst[copy(dst, header[:headerSize]):], ad)
}

// KeyID returns the ID of the key a blob was sealed under, without opening
// or authenticating it.
func KeyID(ciphertext []byte) (uint32, error) {
	if len(ciphertext) < Overhead {
		return 0, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(ciphertext), Overhead)
	}
	if v := ciphertext[0]; v != Version {
		return 0, fmt.Errorf("%w: unsupported version %d", ErrMalformed, v)
	}
	id := binary.BigEndian.Uint32(ciphertext[1:headerSize])
	if id == 0 {
		return 0, fmt.Errorf("%w: key id 0", ErrMalformed)
	}
	return id, nil
}

// NeedsRotation reports whether a blob is not under the active key. It also
// reports true for a blob it cannot parse, so that a rotation pass surfaces
// the corrupt row through Reseal's error instead of skipping it.
func (k *Keyring) NeedsRotation(ciphertext []byte) bool {
	id, err := KeyID(ciphertext)
	return err != nil || id != k.active
}

// Reseal moves a blob to the active key. A blob already under the active key
// is returned as is, unauthenticated, with false; otherwise it is opened with
// its own key and sealed again with a fresh nonce, and Reseal returns true.
func (k *Keyring) Reseal(ciphertext, ad []byte) ([]byte, bool, error) {
	id, err := KeyID(ciphertext)
	if err != nil {
		return nil, false, err
	}
	if id == k.active {
		return ciphertext, false, nil
	}
	pt, err := k.Open(ciphertext, ad)
	if err != nil {
		return nil, false, err
	}
	defer clear(pt)
	out, err := k.Seal(pt, ad)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// AD encodes a label and parts as associated data. Every field is prefixed
// with its length as a uvarint, so no two distinct inputs share an encoding,
// which joining with a separator cannot promise.
func AD(label string, parts ...string) []byte {
	n := binary.MaxVarintLen64 + len(label)
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(label)))
	b = append(b, label...)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// String describes the keyring by its key IDs only.
func (k Keyring) String() string {
	var b strings.Builder
	b.WriteString("seal.Keyring{active: ")
	b.WriteString(strconv.FormatUint(uint64(k.active), 10))
	b.WriteString(", ids: [")
	for i, id := range k.ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(uint64(id), 10))
	}
	b.WriteString("]}")
	return b.String()
}

// GoString describes the keyring by its key IDs only, for %#v.
func (k Keyring) GoString() string {
	var b strings.Builder
	b.WriteString("seal.Keyring{active:")
	b.WriteString(strconv.FormatUint(uint64(k.active), 10))
	b.WriteString(", ids:[]uint32{")
	for i, id := range k.ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatUint(uint64(id), 10))
	}
	b.WriteString("}}")
	return b.String()
}

// Format implements fmt.Formatter so that every verb, not just %v and %s,
// prints the key IDs rather than the cipher state that holds the key schedule.
func (k Keyring) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, k.GoString())
		return
	}
	io.WriteString(f, k.String())
}

// LogValue implements slog.LogValuer, logging the key IDs only.
func (k Keyring) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Uint64("active", uint64(k.active)),
		slog.Any("ids", slices.Clone(k.ids)),
	)
}
