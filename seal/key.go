package seal

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// ErrInsecureKeyFile is returned by LoadKeyFile for a key file that group or
// other users may access.
var ErrInsecureKeyFile = errors.New("seal: key file is accessible by group or other")

// maxKeyFileSize bounds LoadKeyFile's read; a real spec is a few hundred bytes.
const maxKeyFileSize = 64 << 10

// GenerateKey returns a new random KeySize-byte key.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("seal: generate key: %w", err)
	}
	return k, nil
}

// ParseKey decodes a key from padded standard base64, surrounding whitespace
// ignored. Errors never include the input, which may be a mistyped secret.
func ParseKey(s string) ([]byte, error) {
	k, reason := parseKey(s)
	if reason != "" {
		return nil, fmt.Errorf("%w: %s", ErrInvalidKey, reason)
	}
	return k, nil
}

// parseKey returns a reason rather than an error so that callers can add
// their context without repeating the "seal: " prefix.
func parseKey(s string) ([]byte, string) {
	// Strict rejects non-canonical encodings, so a key has one spelling.
	k, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(s))
	if err != nil {
		clear(k)
		return nil, "not padded standard base64"
	}
	if len(k) != KeySize {
		clear(k)
		return nil, fmt.Sprintf("decodes to %d bytes, want %d", len(k), KeySize)
	}
	return k, ""
}

// ParseKeyring parses a keyring spec: ID:BASE64 entries separated by commas
// or whitespace, the first entry being the active key, or a single bare
// base64 key, which gets ID 1. Errors name entries by position, never by
// content.
func ParseKeyring(spec string) (*Keyring, error) {
	fields := strings.FieldsFunc(spec, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	if len(fields) == 0 {
		return nil, errors.New("seal: empty keyring spec")
	}
	keys := make(map[uint32][]byte, len(fields))
	defer func() {
		// The keyring keeps only expanded cipher state, so the decoded
		// copies can go.
		for _, k := range keys {
			clear(k)
		}
	}()
	if len(fields) == 1 && !strings.Contains(fields[0], ":") {
		k, err := ParseKey(fields[0])
		if err != nil {
			return nil, err
		}
		keys[1] = k
		return NewKeyring(1, keys)
	}
	var active uint32
	for i, f := range fields {
		idStr, b64, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("seal: keyring entry %d: want ID:BASE64", i+1)
		}
		id64, err := strconv.ParseUint(idStr, 10, 32)
		if err != nil || id64 == 0 {
			return nil, fmt.Errorf("seal: keyring entry %d: key id must be a decimal from 1 to %d", i+1, uint32(1<<32-1))
		}
		id := uint32(id64)
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("seal: keyring entry %d: duplicate key id %d", i+1, id)
		}
		k, reason := parseKey(b64)
		if reason != "" {
			return nil, fmt.Errorf("%w: keyring entry %d (key id %d): %s", ErrInvalidKey, i+1, id, reason)
		}
		keys[id] = k
		if i == 0 {
			active = id
		}
	}
	return NewKeyring(active, keys)
}

// LoadKeyFile reads a keyring spec (see ParseKeyring) from a file. Outside
// Windows the file must not be accessible by group or other (mode & 0o077
// == 0), which rules out the 0644 and 0444 defaults of Kubernetes and Docker
// secrets: mount them with mode 0400.
func LoadKeyFile(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the one read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: key file %s: not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 or 0400", ErrInsecureKeyFile, path, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	// Best effort: the string copy made for parsing cannot be cleared.
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("seal: key file %s: larger than %d bytes", path, maxKeyFileSize)
	}
	kr, err := ParseKeyring(string(data))
	if err != nil {
		return nil, &fileError{path: path, err: err}
	}
	return kr, nil
}

// fileError adds the key file's path to a parse error without repeating the
// "seal: " prefix of the error it wraps.
type fileError struct {
	path string
	err  error
}

func (e *fileError) Error() string {
	return "seal: key file " + e.path + ": " + strings.TrimPrefix(e.err.Error(), "seal: ")
}

func (e *fileError) Unwrap() error { return e.err }
