package seal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/twofa/twofa/seal"
)

// testKey returns a fixed key so that failures reproduce and fuzz seeds stay
// valid; key IDs 1 and 2 get different material.
func testKey(id uint32) []byte {
	k := make([]byte, seal.KeySize)
	for i := range k {
		k[i] = byte(int(id-1)*100 + i + 1)
	}
	return k
}

// newKeyring builds a keyring of fixed test keys with the first ID active.
func newKeyring(tb testing.TB, ids ...uint32) *seal.Keyring {
	tb.Helper()
	keys := make(map[uint32][]byte, len(ids))
	for _, id := range ids {
		keys[id] = testKey(id)
	}
	kr, err := seal.NewKeyring(ids[0], keys)
	if err != nil {
		tb.Fatalf("NewKeyring(%d, %v) error: %v", ids[0], ids, err)
	}
	return kr
}

var testAD = seal.AD("totp-secret/v1", "tenant-1", "user-42", "device-7")

func TestRoundTrip(t *testing.T) {
	kr := newKeyring(t, 1)
	tests := []struct {
		name string
		pt   []byte
		ad   []byte
	}{
		{"empty plaintext", []byte{}, testAD},
		{"nil ad", []byte("JBSWY3DPEHPK3PXP"), nil},
		{"20 bytes", bytes.Repeat([]byte{0xaa}, 20), testAD},
		{"64 bytes", bytes.Repeat([]byte{0x55}, 64), testAD},
		{"4 KiB", bytes.Repeat([]byte("x"), 4096), seal.AD("label")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blob, err := kr.Seal(tt.pt, tt.ad)
			if err != nil {
				t.Fatalf("Seal() error: %v", err)
			}
			if got, want := len(blob), len(tt.pt)+seal.Overhead; got != want {
				t.Errorf("len(blob) = %d, want %d", got, want)
			}
			if got, want := blob[0], byte(seal.Version); got != want {
				t.Errorf("version byte = %d, want %d", got, want)
			}
			if got, want := binary.BigEndian.Uint32(blob[1:5]), uint32(1); got != want {
				t.Errorf("header key id = %d, want %d", got, want)
			}
			if id, err := seal.KeyID(blob); err != nil || id != 1 {
				t.Errorf("KeyID() = %d, %v, want 1, nil", id, err)
			}
			got, err := kr.Open(blob, tt.ad)
			if err != nil {
				t.Fatalf("Open() error: %v", err)
			}
			if !bytes.Equal(got, tt.pt) {
				t.Errorf("Open() = %q, want %q", got, tt.pt)
			}
		})
	}
}

func TestSealDoesNotAliasInputs(t *testing.T) {
	kr := newKeyring(t, 1)
	pt := []byte("secret")
	ad := seal.AD("l", "a")
	blob, err := kr.Seal(pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	// Appending to the result must not write over anything Open relies on.
	_ = append(blob, 0xff)
	got, err := kr.Open(blob, ad)
	if err != nil || string(got) != "secret" {
		t.Fatalf("Open() = %q, %v, want %q, nil", got, err, "secret")
	}
	_ = append(got, "-suffix"...) // must not reach into a later Open's buffer
	if got2, err := kr.Open(blob, ad); err != nil || string(got2) != "secret" {
		t.Fatalf("second Open() = %q, %v, want %q, nil", got2, err, "secret")
	}
}

func TestNonceFresh(t *testing.T) {
	kr := newKeyring(t, 1)
	pt := []byte("JBSWY3DPEHPK3PXP")
	const n = 1000
	seen := make(map[string]bool, n)
	var first []byte
	for i := range n {
		blob, err := kr.Seal(pt, testAD)
		if err != nil {
			t.Fatalf("Seal() error: %v", err)
		}
		nonce := string(blob[5 : 5+12])
		if seen[nonce] {
			t.Fatalf("seal %d reused nonce %x", i, nonce)
		}
		seen[nonce] = true
		if first == nil {
			first = blob
		} else if bytes.Equal(blob[17:], first[17:]) {
			t.Fatalf("seal %d: ciphertext and tag equal to the first seal's", i)
		}
	}
}

func TestTamper(t *testing.T) {
	kr := newKeyring(t, 1)
	pt := []byte("JBSWY3DPEHPK3PXP")
	blob, err := kr.Seal(pt, testAD)
	if err != nil {
		t.Fatal(err)
	}
	tagStart := len(blob) - 16
	tests := []struct {
		name     string
		from, to int
		want     []error
	}{
		{"version", 0, 1, []error{seal.ErrMalformed}},
		// Only key 1 is in the keyring, so any other ID is unknown, and ID 0
		// is malformed; TestHeaderAuthenticated covers an ID that names the
		// same key.
		{"key id", 1, 5, []error{seal.ErrUnknownKey, seal.ErrMalformed}},
		{"nonce", 5, 17, []error{seal.ErrAuth}},
		{"body", 17, tagStart, []error{seal.ErrAuth}},
		{"tag", tagStart, len(blob), []error{seal.ErrAuth}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := tt.from; i < tt.to; i++ {
				for _, mask := range []byte{0x01, 0x80, 0xff} {
					bad := bytes.Clone(blob)
					bad[i] ^= mask
					got, err := kr.Open(bad, testAD)
					if !slices.ContainsFunc(tt.want, func(want error) bool { return errors.Is(err, want) }) {
						t.Errorf("byte %d ^ %#x: Open() error = %v, want %v", i, mask, err, tt.want)
					}
					if got != nil {
						t.Errorf("byte %d ^ %#x: Open() returned plaintext %q with error", i, mask, got)
					}
				}
			}
		})
	}
}

func TestWrongAD(t *testing.T) {
	kr := newKeyring(t, 1)
	blob, err := kr.Seal([]byte("secret"), seal.AD("totp-secret/v1", "t1", "u1", "d1"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ad   []byte
	}{
		{"nil", nil},
		{"other tenant", seal.AD("totp-secret/v1", "t2", "u1", "d1")},
		{"other user", seal.AD("totp-secret/v1", "t1", "u2", "d1")},
		{"other device", seal.AD("totp-secret/v1", "t1", "u1", "d2")},
		{"other label", seal.AD("recovery-code/v1", "t1", "u1", "d1")},
		{"missing part", seal.AD("totp-secret/v1", "t1", "u1")},
		{"extra part", seal.AD("totp-secret/v1", "t1", "u1", "d1", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := kr.Open(blob, tt.ad); !errors.Is(err, seal.ErrAuth) {
				t.Errorf("Open() error = %v, want %v", err, seal.ErrAuth)
			}
		})
	}
}

func TestADUnambiguous(t *testing.T) {
	kr := newKeyring(t, 1)
	tests := []struct {
		name string
		a, b []byte
	}{
		{"NUL inside parts", seal.AD("l", "a\x00b", "c"), seal.AD("l", "a", "b\x00c")},
		{"label boundary", seal.AD("ab"), seal.AD("a", "b")},
		{"empty trailing part", seal.AD("a", ""), seal.AD("a")},
		{"empty leading part", seal.AD("", "a"), seal.AD("a")},
		{"moved boundary", seal.AD("l", "ab", "c"), seal.AD("l", "a", "bc")},
		{"length byte smuggled", seal.AD("l", "a\x01b"), seal.AD("l", "a", "b")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.a, tt.b) {
				t.Fatalf("AD encodings are equal: %q", tt.a)
			}
			blob, err := kr.Seal([]byte("secret"), tt.a)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kr.Open(blob, tt.b); !errors.Is(err, seal.ErrAuth) {
				t.Errorf("Open() with the other AD error = %v, want %v", err, seal.ErrAuth)
			}
		})
	}
}

func TestUnknownKey(t *testing.T) {
	blob, err := newKeyring(t, 7).Seal([]byte("secret"), testAD)
	if err != nil {
		t.Fatal(err)
	}
	_, err = newKeyring(t, 1, 2).Open(blob, testAD)
	if !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("Open() error = %v, want %v", err, seal.ErrUnknownKey)
	}
	if got, want := err.Error(), "seal: unknown key id 7"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestTruncated(t *testing.T) {
	kr := newKeyring(t, 1)
	blob, err := kr.Seal([]byte("JBSWY3DPEHPK3PXP"), testAD)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(blob); n++ {
		// Below the fixed overhead the blob cannot be parsed; above it the
		// tag no longer matches.
		want := seal.ErrAuth
		if n < seal.Overhead {
			want = seal.ErrMalformed
		}
		if _, err := kr.Open(blob[:n], testAD); !errors.Is(err, want) {
			t.Errorf("Open(blob[:%d]) error = %v, want %v", n, err, want)
		}
		if _, err := kr.Open(blob[len(blob)-n:], testAD); err == nil {
			t.Errorf("Open(blob[%d:]) succeeded", len(blob)-n)
		}
	}
	if _, err := kr.Open(append(bytes.Clone(blob), 0), testAD); !errors.Is(err, seal.ErrAuth) {
		t.Errorf("Open(extended blob) error = %v, want %v", err, seal.ErrAuth)
	}
}

func TestKeyID(t *testing.T) {
	header := func(v byte, id uint32) []byte {
		b := make([]byte, seal.Overhead)
		b[0] = v
		binary.BigEndian.PutUint32(b[1:], id)
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		want    uint32
		wantErr error
	}{
		{"minimal", header(1, 9), 9, nil},
		{"max id", header(1, 1<<32-1), 1<<32 - 1, nil},
		{"nil", nil, 0, seal.ErrMalformed},
		{"short", header(1, 9)[:seal.Overhead-1], 0, seal.ErrMalformed},
		{"version 0", header(0, 9), 0, seal.ErrMalformed},
		{"version 2", header(2, 9), 0, seal.ErrMalformed},
		{"key id 0", header(1, 0), 0, seal.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := seal.KeyID(tt.in)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("KeyID() = %d, %v, want %d, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	pt := []byte("JBSWY3DPEHPK3PXP")
	old := newKeyring(t, 1)
	blob1, err := old.Seal(pt, testAD)
	if err != nil {
		t.Fatal(err)
	}

	both := newKeyring(t, 2, 1)
	if got := both.ActiveID(); got != 2 {
		t.Fatalf("ActiveID() = %d, want 2", got)
	}
	if got, err := both.Open(blob1, testAD); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open(key 1 blob) with keys 1,2 = %q, %v, want %q, nil", got, err, pt)
	}
	if !both.NeedsRotation(blob1) {
		t.Errorf("NeedsRotation(key 1 blob) = false, want true")
	}
	if _, _, err := both.Reseal(blob1, seal.AD("other")); !errors.Is(err, seal.ErrAuth) {
		t.Errorf("Reseal() with wrong AD error = %v, want %v", err, seal.ErrAuth)
	}
	blob2, changed, err := both.Reseal(blob1, testAD)
	if err != nil || !changed {
		t.Fatalf("Reseal(key 1 blob) = changed %v, %v, want true, nil", changed, err)
	}
	if id, _ := seal.KeyID(blob2); id != 2 {
		t.Errorf("KeyID(resealed) = %d, want 2", id)
	}
	if both.NeedsRotation(blob2) {
		t.Errorf("NeedsRotation(resealed) = true, want false")
	}
	again, changed, err := both.Reseal(blob2, testAD)
	if err != nil || changed || !bytes.Equal(again, blob2) {
		t.Errorf("Reseal(resealed) = changed %v, %v, want unchanged blob, false, nil", changed, err)
	}
	if !both.NeedsRotation([]byte("garbage")) {
		t.Errorf("NeedsRotation(garbage) = false, want true")
	}
	if _, _, err := both.Reseal([]byte("garbage"), testAD); !errors.Is(err, seal.ErrMalformed) {
		t.Errorf("Reseal(garbage) error = %v, want %v", err, seal.ErrMalformed)
	}

	retired := newKeyring(t, 2)
	if _, err := retired.Open(blob1, testAD); !errors.Is(err, seal.ErrUnknownKey) {
		t.Errorf("Open(key 1 blob) after retiring key 1 error = %v, want %v", err, seal.ErrUnknownKey)
	}
	if got, err := retired.Open(blob2, testAD); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("Open(resealed) after retiring key 1 = %q, %v, want %q, nil", got, err, pt)
	}
}

func TestNewKeyring(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	tests := []struct {
		name    string
		active  uint32
		keys    map[uint32][]byte
		wantErr string
	}{
		{"ok", 2, map[uint32][]byte{1: k1, 2: k2}, ""},
		{"no keys", 1, nil, "seal: keyring has no keys"},
		{"id 0", 1, map[uint32][]byte{0: k2, 1: k1}, "seal: key id 0 is reserved"},
		{"active missing", 3, map[uint32][]byte{1: k1, 2: k2}, "seal: active key id 3 is not in the keyring"},
		{"short key", 1, map[uint32][]byte{1: k1[:16]}, "seal: invalid key: key 1 is 16 bytes, want 32"},
		{"long key", 1, map[uint32][]byte{1: append(bytes.Clone(k1), 0)}, "seal: invalid key: key 1 is 33 bytes, want 32"},
		{"zero key", 1, map[uint32][]byte{1: make([]byte, 32)}, "seal: invalid key: key 1 is all zeros"},
		{"same key twice", 1, map[uint32][]byte{1: k1, 5: bytes.Clone(k1)}, "seal: invalid key: keys 1 and 5 are identical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := seal.NewKeyring(tt.active, tt.keys)
			if tt.wantErr == "" {
				if err != nil || kr == nil {
					t.Fatalf("NewKeyring() = %v, %v, want keyring, nil", kr, err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("NewKeyring() error = %v, want %q", err, tt.wantErr)
			}
			if kr != nil {
				t.Errorf("NewKeyring() returned a keyring with an error")
			}
		})
	}
}

func TestNewKeyringCopiesKeys(t *testing.T) {
	key := testKey(1)
	kr, err := seal.NewKeyring(1, map[uint32][]byte{1: key})
	if err != nil {
		t.Fatal(err)
	}
	clear(key)
	blob, err := kr.Seal([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := newKeyring(t, 1).Open(blob, nil); err != nil || string(got) != "secret" {
		t.Errorf("Open() after caller cleared key = %q, %v, want %q, nil", got, err, "secret")
	}
	if got, want := kr.IDs(), []uint32{1}; !slices.Equal(got, want) {
		t.Errorf("IDs() = %v, want %v", got, want)
	}
}

func TestParseKey(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	key := testKey(1)
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"ok", b64(key), ""},
		{"surrounding whitespace", "  " + b64(key) + "\n", ""},
		{"16 bytes", b64(key[:16]), "seal: invalid key: decodes to 16 bytes, want 32"},
		{"33 bytes", b64(append(bytes.Clone(key), 7)), "seal: invalid key: decodes to 33 bytes, want 32"},
		{"empty", "", "seal: invalid key: decodes to 0 bytes, want 32"},
		{"unpadded", base64.RawStdEncoding.EncodeToString(key), "seal: invalid key: not padded standard base64"},
		{"url alphabet", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16)), "seal: invalid key: not padded standard base64"},
		{"hex", hex.EncodeToString(key), "seal: invalid key: decodes to 48 bytes, want 32"},
		{"garbage", "not-a-key!not-a-key!not-a-key!not-a-key!1234", "seal: invalid key: not padded standard base64"},
		{"non-canonical padding bits", b64(key)[:42] + "B=", "seal: invalid key: not padded standard base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := seal.ParseKey(tt.in)
			if tt.wantErr == "" {
				if err != nil || !bytes.Equal(got, key) {
					t.Fatalf("ParseKey() = %x, %v, want %x, nil", got, err, key)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("ParseKey() error = %v, want %q", err, tt.wantErr)
			}
			if !errors.Is(err, seal.ErrInvalidKey) {
				t.Errorf("ParseKey() error is not ErrInvalidKey")
			}
			if in := strings.TrimSpace(tt.in); in != "" && strings.Contains(err.Error(), in) {
				t.Errorf("ParseKey() error %q echoes its input", err)
			}
		})
	}
}

func TestParseKeyring(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(testKey(1))
	k2 := base64.StdEncoding.EncodeToString(testKey(2))
	tests := []struct {
		name       string
		spec       string
		wantActive uint32
		wantIDs    []uint32
		wantErr    string
	}{
		{"bare key", k1, 1, []uint32{1}, ""},
		{"bare key with newline", k1 + "\n", 1, []uint32{1}, ""},
		{"one entry", "7:" + k1, 7, []uint32{7}, ""},
		{"first is active", "2:" + k2 + ",1:" + k1, 2, []uint32{1, 2}, ""},
		{"old key first", "1:" + k1 + ",2:" + k2, 1, []uint32{1, 2}, ""},
		{"lines and spaces", "\n 2:" + k2 + "\n\t1:" + k1 + " ,\n", 2, []uint32{1, 2}, ""},
		{"empty", " \n,", 0, nil, "seal: empty keyring spec"},
		{"missing colon", "2:" + k2 + "," + k1, 0, nil, "seal: keyring entry 2: want ID:BASE64"},
		{"id 0", "0:" + k1, 0, nil, "seal: keyring entry 1: key id must be a decimal from 1 to 4294967295"},
		{"id too big", "4294967296:" + k1, 0, nil, "seal: keyring entry 1: key id must be a decimal from 1 to 4294967295"},
		{"id not a number", "x:" + k1, 0, nil, "seal: keyring entry 1: key id must be a decimal from 1 to 4294967295"},
		{"duplicate id", "1:" + k1 + ",1:" + k2, 0, nil, "seal: keyring entry 2: duplicate key id 1"},
		{"bad key", "1:" + k1 + ",2:" + k2[:40], 0, nil, "seal: invalid key: keyring entry 2 (key id 2): decodes to 30 bytes, want 32"},
		{"bad base64", "1:" + k1 + ",2:" + k2[:43], 0, nil, "seal: invalid key: keyring entry 2 (key id 2): not padded standard base64"},
		{"bad bare key", k1[:43], 0, nil, "seal: invalid key: not padded standard base64"},
		{"same key twice", "1:" + k1 + ",2:" + k1, 0, nil, "seal: invalid key: keys 1 and 2 are identical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := seal.ParseKeyring(tt.spec)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseKeyring() error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), k1[:16]) || strings.Contains(err.Error(), k2[:16]) {
					t.Errorf("ParseKeyring() error %q echoes key material", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeyring() error: %v", err)
			}
			if got := kr.ActiveID(); got != tt.wantActive {
				t.Errorf("ActiveID() = %d, want %d", got, tt.wantActive)
			}
			if got := kr.IDs(); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("IDs() = %v, want %v", got, tt.wantIDs)
			}
		})
	}
}

func TestLoadKeyFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file permission bits are not enforced on Windows")
	}
	k1 := base64.StdEncoding.EncodeToString(testKey(1))
	k2 := base64.StdEncoding.EncodeToString(testKey(2))
	tests := []struct {
		name       string
		content    string
		mode       os.FileMode
		wantActive uint32
		wantErr    error
	}{
		{"single key 0600", k1 + "\n", 0o600, 1, nil},
		{"single key 0400", k1, 0o400, 1, nil},
		{"spec 0600", "2:" + k2 + "\n1:" + k1 + "\n", 0o600, 2, nil},
		{"world readable 0644", k1, 0o644, 0, seal.ErrInsecureKeyFile},
		{"group readable 0640", k1, 0o640, 0, seal.ErrInsecureKeyFile},
		{"other writable 0602", k1, 0o602, 0, seal.ErrInsecureKeyFile},
		{"bad content", k1[:20], 0o600, 0, seal.ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			// Chmod explicitly: WriteFile's mode is filtered by the umask.
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			kr, err := seal.LoadKeyFile(path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("LoadKeyFile() error = %v, want %v", err, tt.wantErr)
				}
				msg := err.Error()
				if !strings.Contains(msg, path) {
					t.Errorf("LoadKeyFile() error %q does not name the file", msg)
				}
				if strings.Count(msg, "seal:") != 1 {
					t.Errorf("LoadKeyFile() error %q repeats its prefix", msg)
				}
				if strings.Contains(msg, k1[:16]) {
					t.Errorf("LoadKeyFile() error %q echoes key material", msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadKeyFile() error: %v", err)
			}
			if got := kr.ActiveID(); got != tt.wantActive {
				t.Errorf("ActiveID() = %d, want %d", got, tt.wantActive)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		_, err := seal.LoadKeyFile(filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("LoadKeyFile() error = %v, want %v", err, os.ErrNotExist)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := seal.LoadKeyFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("LoadKeyFile(dir) error = %v, want not a regular file", err)
		}
	})
}

func TestGenerateKey(t *testing.T) {
	a, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != seal.KeySize || bytes.Equal(a, b) {
		t.Fatalf("GenerateKey() gave %d-byte keys, equal=%v; want %d-byte distinct keys", len(a), bytes.Equal(a, b), seal.KeySize)
	}
	if got, err := seal.ParseKey(base64.StdEncoding.EncodeToString(a)); err != nil || !bytes.Equal(got, a) {
		t.Errorf("ParseKey(base64(GenerateKey())) = %v, want the key back", err)
	}
}

// TestNoSecretsInOutput formats keyrings and errors every way a careless
// caller might and checks that no form of the key or plaintext appears.
func TestNoSecretsInOutput(t *testing.T) {
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(3, map[uint32][]byte{3: key, 4: testKey(4)})
	if err != nil {
		t.Fatal(err)
	}
	plaintext := "JBSWY3DPEHPK3PXP-plaintext"
	blob, err := kr.Seal([]byte(plaintext), testAD)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"base64":     base64.StdEncoding.EncodeToString(key),
		"raw base64": base64.RawStdEncoding.EncodeToString(key),
		"url base64": base64.URLEncoding.EncodeToString(key),
		"hex":        hex.EncodeToString(key),
		"HEX":        strings.ToUpper(hex.EncodeToString(key)),
		"hex head":   hex.EncodeToString(key[:8]),
		"hex tail":   hex.EncodeToString(key[24:]),
		"decimal":    strings.Trim(fmt.Sprint(key[:8]), "[]"),
		"raw":        string(key),
		"plaintext":  plaintext,
		"blob hex":   hex.EncodeToString(blob[17:]),
	}

	var textLog, jsonLog bytes.Buffer
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("loaded", "keyring", kr)
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("loaded", slog.Any("keyring", kr))

	outputs := map[string]string{
		"%v":                   fmt.Sprintf("%v", kr),
		"%+v":                  fmt.Sprintf("%+v", kr),
		"%#v":                  fmt.Sprintf("%#v", kr),
		"%s":                   fmt.Sprintf("%s", kr),
		"%d":                   fmt.Sprintf("%d", kr),
		"%x":                   fmt.Sprintf("%x", kr),
		"%v value":             fmt.Sprintf("%v", *kr),
		"%#v value":            fmt.Sprintf("%#v", *kr),
		"%+v unexported field": fmt.Sprintf("%+v", struct{ kr seal.Keyring }{*kr}),
		"%#v unexported field": fmt.Sprintf("%#v", struct{ kr *seal.Keyring }{kr}),
		"slog text":            textLog.String(),
		"slog json":            jsonLog.String(),
	}
	errs := map[string]func() error{
		"wrong ad": func() error { _, err := kr.Open(blob, nil); return err },
		"unknown key": func() error {
			_, err := newKeyring(t, 1).Open(blob, testAD)
			return err
		},
		"tampered": func() error {
			bad := bytes.Clone(blob)
			bad[len(bad)-1] ^= 1
			_, err := kr.Open(bad, testAD)
			return err
		},
		"truncated":      func() error { _, err := kr.Open(blob[:20], testAD); return err },
		"short key":      func() error { _, err := seal.NewKeyring(1, map[uint32][]byte{1: key[:31]}); return err },
		"duplicate keys": func() error { _, err := seal.NewKeyring(1, map[uint32][]byte{1: key, 2: key}); return err },
		"ParseKey short": func() error {
			_, err := seal.ParseKey(base64.StdEncoding.EncodeToString(key[:24]))
			return err
		},
		"ParseKey corrupt": func() error {
			_, err := seal.ParseKey(hex.EncodeToString(key) + "!")
			return err
		},
		"ParseKeyring": func() error {
			_, err := seal.ParseKeyring("1:" + base64.StdEncoding.EncodeToString(key) + "," + hex.EncodeToString(key))
			return err
		},
	}
	for name, fn := range errs {
		err := fn()
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		outputs["error "+name] = err.Error()
		outputs["error %+v "+name] = fmt.Sprintf("%+v", err)
	}

	for _, want := range []string{"%v", "%s", "%d", "%x", "%v value"} {
		if got := outputs[want]; got != "seal.Keyring{active: 3, ids: [3 4]}" {
			t.Errorf("%s = %q, want %q", want, got, "seal.Keyring{active: 3, ids: [3 4]}")
		}
	}
	if got, want := outputs["%#v"], "seal.Keyring{active:3, ids:[]uint32{3, 4}}"; got != want {
		t.Errorf("%%#v = %q, want %q", got, want)
	}
	if !strings.Contains(textLog.String(), "keyring.active=3 keyring.ids=\"[3 4]\"") {
		t.Errorf("slog text = %q, want key IDs", textLog.String())
	}
	for oname, out := range outputs {
		for sname, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s output contains the %s form of a secret: %q", oname, sname, out)
			}
		}
	}
}

func TestConcurrent(t *testing.T) {
	kr := newKeyring(t, 2, 1)
	old := newKeyring(t, 1)
	const goroutines, iterations = 16, 200
	var wg sync.WaitGroup
	errc := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ad := seal.AD("concurrent", fmt.Sprint(g))
			for i := range iterations {
				pt := fmt.Appendf(nil, "secret %d/%d", g, i)
				blob, err := kr.Seal(pt, ad)
				if err == nil && i%4 == 0 {
					blob, err = old.Seal(pt, ad)
					if err == nil {
						blob, _, err = kr.Reseal(blob, ad)
					}
				}
				if err != nil {
					errc <- err
					return
				}
				got, err := kr.Open(blob, ad)
				if err != nil || !bytes.Equal(got, pt) {
					errc <- fmt.Errorf("goroutine %d iteration %d: Open() = %q, %v, want %q", g, i, got, err, pt)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// fuzzGenuine are blobs sealed once under the fixed test keys with fuzzAD,
// by plaintext. They are constants, not sealed at run time, because the
// fuzzing engine runs seeds in worker processes that would seal with other
// nonces; testdata/fuzz/FuzzOpen holds one of them too.
var fuzzGenuine = map[string]string{
	"010000000127215025bd5de2de9b3ab35bd1f69a3ca43d0fbd0b078361768e89b0":                                         "",
	"0100000001e0b4a0d6a123bf19a0073cc4eeeca402adb5aac61b9365c8da9703a7f5dd707a17fb2ab34036aa6d2a51a31b":         "JBSWY3DPEHPK3PXP",
	"01000000022db627fb40b0ba2ac89c8890ed4e6642f52782762d05eb4e84835c2ee7d85a345708698933e1bc9d435f92a0edafa02b": "12345678901234567890",
}

var fuzzAD = seal.AD("fuzz/v1", "tenant", "user")

func FuzzOpen(f *testing.F) {
	kr := newKeyring(f, 1, 2)
	known := make(map[string]string, len(fuzzGenuine))
	for h, pt := range fuzzGenuine {
		blob, err := hex.DecodeString(h)
		if err != nil {
			f.Fatal(err)
		}
		if got, err := kr.Open(blob, fuzzAD); err != nil || string(got) != pt {
			f.Fatalf("seed %s: Open() = %q, %v, want %q, nil", h, got, err, pt)
		}
		known[string(blob)] = pt
		f.Add(blob)
	}
	f.Add([]byte{})
	f.Add(make([]byte, seal.Overhead))

	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		pt, err := kr.Open(data, fuzzAD)
		id, idErr := seal.KeyID(data)
		needs := kr.NeedsRotation(data)
		if !bytes.Equal(data, orig) {
			t.Fatalf("Open modified its input")
		}
		if idErr == nil && needs != (id != kr.ActiveID()) {
			t.Errorf("NeedsRotation() = %v for key id %d, active %d", needs, id, kr.ActiveID())
		}
		if err != nil {
			if pt != nil {
				t.Errorf("Open() returned plaintext %q with error %v", pt, err)
			}
			if !errors.Is(err, seal.ErrMalformed) && !errors.Is(err, seal.ErrUnknownKey) && !errors.Is(err, seal.ErrAuth) {
				t.Errorf("Open() error %v is none of the sentinels", err)
			}
			if errors.Is(err, seal.ErrMalformed) != (idErr != nil) {
				t.Errorf("Open() error %v disagrees with KeyID() error %v", err, idErr)
			}
			return
		}
		want, ok := known[string(data)]
		if !ok {
			t.Fatalf("Open() accepted a blob that was never sealed: %x", data)
		}
		if string(pt) != want {
			t.Errorf("Open() = %q, want %q", pt, want)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	for _, n := range []int{20, 64} {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			kr := newKeyring(b, 1)
			pt := bytes.Repeat([]byte{'s'}, n)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := kr.Seal(pt, testAD); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{20, 64} {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			kr := newKeyring(b, 1)
			blob, err := kr.Seal(bytes.Repeat([]byte{'s'}, n), testAD)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := kr.Open(blob, testAD); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
