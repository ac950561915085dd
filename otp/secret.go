package otp

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
)

// b32 is the encoding of secrets: RFC 4648 base32, upper case, no padding,
// as the key URI format asks.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// GenerateSecret returns a new random secret of the recommended size for
// the algorithm (20 bytes for SHA1, 32 for SHA256, 64 for SHA512), read
// from crypto/rand.
func GenerateSecret(a Algorithm) ([]byte, error) {
	return GenerateSecretSize(a.SecretSize())
}

// GenerateSecretSize returns a new random secret of n bytes, n >= MinSecretSize.
func GenerateSecretSize(n int) ([]byte, error) {
	if n < MinSecretSize {
		return nil, ErrSecretTooShort
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return nil, fmt.Errorf("otp: reading random secret: %w", err)
	}
	return b, nil
}

// EncodeSecret returns secret as unpadded upper-case base32.
func EncodeSecret(secret []byte) string { return b32.EncodeToString(secret) }

// ErrSecretEncoding is the error of DecodeSecret for input that is not base32.
var ErrSecretEncoding = errors.New("otp: secret is not valid base32")

// maxSecretInput bounds the text DecodeSecret reads: 1 KiB of base32 is far
// beyond any real secret.
const maxSecretInput = 1024

// DecodeSecret decodes a base32 secret as people and apps write it: upper or
// lower case, grouped with spaces or hyphens, padded or not. Anything else,
// such as the digits 0, 1, 8 and 9, is an error that wraps ErrSecretEncoding
// and gives the position but never the secret itself. It does not check the
// length: NewKey does.
func DecodeSecret(s string) ([]byte, error) {
	if len(s) > maxSecretInput {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrSecretEncoding, maxSecretInput)
	}
	clean := make([]byte, 0, len(s))
	pad := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-':
			continue
		case c == '=':
			pad++
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return nil, fmt.Errorf("%w: invalid character at position %d", ErrSecretEncoding, i+1)
		}
		if pad > 0 {
			return nil, fmt.Errorf("%w: padding before position %d", ErrSecretEncoding, i+1)
		}
		clean = append(clean, c)
	}
	if len(clean) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrSecretEncoding)
	}
	if pad > 0 && (len(clean)+pad)%8 != 0 || pad > 6 {
		return nil, fmt.Errorf("%w: wrong padding", ErrSecretEncoding)
	}
	// A final group of 1, 3 or 6 characters encodes no whole byte.
	if r := len(clean) % 8; r == 1 || r == 3 || r == 6 {
		return nil, fmt.Errorf("%w: %d characters is not a valid base32 length", ErrSecretEncoding, len(clean))
	}
	out := make([]byte, b32.DecodedLen(len(clean)))
	n, err := b32.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot decode", ErrSecretEncoding)
	}
	return out[:n], nil
}
