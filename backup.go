package twofa

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Backup codes are 15 characters of Crockford's base32 alphabet, 75 random
// bits each (NIST SP 800-63B rev. 4 asks at least 64 for saved recovery
// codes), written in three groups of five. Input ignores case, spaces and
// hyphens, and reads o as 0 and i or l as 1, as Crockford intends.
const (
	backupAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	backupLen      = 15
	backupGroup    = 5
	backupExample  = "k7m2q-xp4d9-3hn8w"
)

// newBackupCodes returns a new set of backup codes and their hashes.
func (s *Service) newBackupCodes(ref UserRef) (codes []string, hashes [][]byte, err error) {
	n := s.policy.BackupCodes
	codes, hashes = make([]string, n), make([][]byte, n)
	var raw [backupLen]byte
	for i := range codes {
		// 32 symbols: each random byte's low five bits are uniform.
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, nil, fmt.Errorf("generating backup codes: %w", err)
		}
		var b strings.Builder
		for j, r := range raw {
			if j > 0 && j%backupGroup == 0 {
				b.WriteByte('-')
			}
			b.WriteByte(backupAlphabet[r&31])
		}
		codes[i] = b.String()
		norm, _ := normalizeBackupCode(codes[i])
		hashes[i] = s.backupHash(ref, norm)
	}
	return codes, hashes, nil
}

// normalizeBackupCode returns the canonical form of a typed backup code,
// and whether it has the form of one.
func normalizeBackupCode(code string) (string, bool) {
	if len(code) > 4*backupLen {
		return "", false
	}
	var b [backupLen]byte
	n := 0
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		switch c {
		case 'o':
			c = '0'
		case 'i', 'l':
			c = '1'
		}
		if strings.IndexByte(backupAlphabet, c) < 0 || n == backupLen {
			return "", false
		}
		b[n] = c
		n++
	}
	if n != backupLen {
		return "", false
	}
	return string(b[:]), true
}

// backupHash is the stored form of a backup code: HMAC-SHA-256 under a key
// that is sealed by the master key, over the tenant, the user and the
// code. The key makes a stolen database useless for guessing codes
// offline; the user in the input acts as a salt.
func (s *Service) backupHash(ref UserRef, norm string) []byte {
	m := hmac.New(sha256.New, s.pepper)
	var buf [binary.MaxVarintLen64]byte
	for _, f := range []string{"twofa/backup-code/v1", ref.Tenant, ref.User, norm} {
		m.Write(buf[:binary.PutUvarint(buf[:], uint64(len(f)))])
		m.Write([]byte(f))
	}
	return m.Sum(nil)
}

// RegenerateBackupCodes replaces the user's backup codes with a new set,
// returned once; the old set stops working. Errors: ErrNotEnrolled.
func (s *Service) RegenerateBackupCodes(ctx context.Context, ref UserRef) ([]string, error) {
	u, err := s.user(ctx, ref)
	if errors.Is(err, ErrNotFound) || err == nil && !u.Enrolled() {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, err
	}
	codes, hashes, err := s.newBackupCodes(ref)
	if err != nil {
		return nil, err
	}
	e := s.event(ctx, EventBackupCodesIssued, ref, "", s.now())
	e.Factor, e.Detail = FactorBackupCode, fmt.Sprintf("%d codes, replacing the old set", len(codes))
	s.attachNotices(ctx, e, u, nil)
	if err := s.store.ReplaceBackupCodes(ctx, ref, hashes, s.now(), e); err != nil {
		return nil, err
	}
	return codes, nil
}
