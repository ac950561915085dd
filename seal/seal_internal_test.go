package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"testing"
)

// TestHeaderAuthenticated checks that the key ID is bound by the AEAD and not
// merely by the choice of key: NewKeyring refuses one key under two IDs, so
// the keyring is built by hand here.
func TestHeaderAuthenticated(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i + 1)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		t.Fatal(err)
	}
	kr := &Keyring{active: 1, ids: []uint32{1, 2}, aeads: map[uint32]cipher.AEAD{1: aead, 2: aead}}

	blob, err := kr.Seal([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kr.Open(blob, nil); err != nil || string(got) != "secret" {
		t.Fatalf("Open() = %q, %v, want %q, nil", got, err, "secret")
	}
	binary.BigEndian.PutUint32(blob[1:5], 2)
	if _, err := kr.Open(blob, nil); !errors.Is(err, ErrAuth) {
		t.Errorf("Open() with key id rewritten to an alias of the same key: error = %v, want %v", err, ErrAuth)
	}
}
