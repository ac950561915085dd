package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/seal"
)

// Refs of sealed values. "device:" sorts before "message:", "message:"
// before "setting:", "setting:" before "tenant:", and "tenant:" before
// "webhook:", so a page of SealedSecrets is a page of devices by ID, then
// of outbox messages by ID, then of settings by name, then of tenants'
// prompt keys by tenant ID, then of tenants' webhook secrets by tenant
// ID, all in byte order (the BINARY collation), as Go orders strings.
const (
	devicePrefix  = "device:"
	messagePrefix = "message:"
	settingPrefix = "setting:"
	tenantPrefix  = "tenant:"
	webhookPrefix = "webhook:"
)

// InitSetting stores value under name unless a value is stored already,
// and returns the stored value.
func (s *Store) InitSetting(ctx context.Context, name string, value []byte) ([]byte, error) {
	var stored []byte
	err := s.write(ctx, func(t *wtx) error {
		if _, err := t.exec(`INSERT INTO settings (name, value, key_id) VALUES (?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, name, nonNil(value), int64(blobKeyID(value))); err != nil {
			return fmt.Errorf("sqlite: init setting %q: %w", name, err)
		}
		if err := t.queryRow(`SELECT value FROM settings WHERE name = ?`, name).Scan(&stored); err != nil {
			return fmt.Errorf("sqlite: init setting %q: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// blobKeyID is the key ID of a sealed blob, or 0 for a value that is not
// one, which every rotation then finds stale and surfaces.
func blobKeyID(b []byte) uint32 {
	id, err := seal.KeyID(b)
	if err != nil {
		return 0
	}
	return id
}

// SealedSecrets returns up to limit sealed values not under keyID, ordered
// by Ref, after the Ref after.
func (s *Store) SealedSecrets(ctx context.Context, keyID uint32, after string, limit int) ([]twofa.SealedSecret, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []twofa.SealedSecret
	err := s.read(ctx, func(tx *sql.Tx) error {
		if from, ok := rangeAfter(after, devicePrefix); ok {
			ds, err := scanDevices(tx.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices
				WHERE key_id != ? AND id > ? ORDER BY id LIMIT ?`, int64(keyID), from, limit))
			if err != nil {
				return fmt.Errorf("sqlite: sealed secrets: %w", err)
			}
			for _, d := range ds {
				out = append(out, twofa.SealedSecret{Ref: devicePrefix + d.ID, Device: d, Blob: d.Secret, KeyID: d.KeyID})
			}
		}
		if from, ok := rangeAfter(after, messagePrefix); ok && len(out) < limit {
			ms, _, err := scanMessages(tx.QueryContext(ctx, `SELECT `+outboxCols+` FROM outbox
				WHERE payload IS NOT NULL AND key_id != ? AND id > ? ORDER BY id LIMIT ?`, int64(keyID), from, limit-len(out)))
			if err != nil {
				return fmt.Errorf("sqlite: sealed secrets: %w", err)
			}
			for _, m := range ms {
				out = append(out, twofa.SealedSecret{Ref: messagePrefix + m.ID, Message: m, Blob: m.Payload, KeyID: m.KeyID})
			}
		}
		if from, ok := rangeAfter(after, settingPrefix); ok && len(out) < limit {
			var err error
			out, err = appendSealed(ctx, tx, out, settingPrefix, func(ss *twofa.SealedSecret, name string) { ss.Setting = name },
				`SELECT name, value, key_id FROM settings WHERE key_id != ? AND name > ? ORDER BY name LIMIT ?`,
				int64(keyID), from, limit-len(out))
			if err != nil {
				return fmt.Errorf("sqlite: sealed secrets: %w", err)
			}
		}
		if from, ok := rangeAfter(after, tenantPrefix); ok && len(out) < limit {
			var err error
			out, err = appendSealed(ctx, tx, out, tenantPrefix, func(ss *twofa.SealedSecret, id string) { ss.PromptKeyOf = id },
				`SELECT id, prompt_key, key_id FROM tenants
				WHERE prompt_key IS NOT NULL AND key_id != ? AND id > ? ORDER BY id LIMIT ?`,
				int64(keyID), from, limit-len(out))
			if err != nil {
				return fmt.Errorf("sqlite: sealed secrets: %w", err)
			}
		}
		if from, ok := rangeAfter(after, webhookPrefix); ok && len(out) < limit {
			var err error
			out, err = appendSealed(ctx, tx, out, webhookPrefix, func(ss *twofa.SealedSecret, id string) { ss.WebhookOf = id },
				`SELECT id, webhook_secret, webhook_key_id FROM tenants
				WHERE webhook_secret IS NOT NULL AND webhook_key_id != ? AND id > ? ORDER BY id LIMIT ?`,
				int64(keyID), from, limit-len(out))
			if err != nil {
				return fmt.Errorf("sqlite: sealed secrets: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// rangeAfter returns the key after which the refs with prefix that sort
// after the ref after begin ("" for all of them; keys are compared after
// a strict >, and "" is below every key but the empty one), and whether
// any can.
func rangeAfter(after, prefix string) (string, bool) {
	switch {
	case strings.HasPrefix(after, prefix):
		return after[len(prefix):], true
	case after < prefix:
		return "", true
	}
	return "", false
}

// ReplaceSealed replaces a sealed value with blob, only if it still equals
// s.Blob.
func (s *Store) ReplaceSealed(ctx context.Context, ss twofa.SealedSecret, blob []byte, keyID uint32) (bool, error) {
	var q, key string
	switch {
	case strings.HasPrefix(ss.Ref, devicePrefix):
		q, key = `UPDATE devices SET secret = ?, key_id = ? WHERE id = ? AND secret = ?`, ss.Ref[len(devicePrefix):]
	case strings.HasPrefix(ss.Ref, messagePrefix):
		// A message sent meanwhile (NULL) equals nothing.
		q, key = `UPDATE outbox SET payload = ?, key_id = ? WHERE id = ? AND payload = ?`, ss.Ref[len(messagePrefix):]
	case strings.HasPrefix(ss.Ref, settingPrefix):
		q, key = `UPDATE settings SET value = ?, key_id = ? WHERE name = ? AND value = ?`, ss.Ref[len(settingPrefix):]
	case strings.HasPrefix(ss.Ref, tenantPrefix):
		// A prompt key removed meanwhile (NULL) equals nothing.
		q, key = `UPDATE tenants SET prompt_key = ?, key_id = ? WHERE id = ? AND prompt_key = ?`, ss.Ref[len(tenantPrefix):]
	case strings.HasPrefix(ss.Ref, webhookPrefix):
		// A webhook removed (NULL) or replaced meanwhile equals nothing.
		q, key = `UPDATE tenants SET webhook_secret = ?, webhook_key_id = ? WHERE id = ? AND webhook_secret = ?`, ss.Ref[len(webhookPrefix):]
	default:
		return false, fmt.Errorf("sqlite: replace sealed: unknown ref %q", ss.Ref)
	}
	var n int64
	err := s.write(ctx, func(t *wtx) error {
		var err error
		n, err = rowsAffected(t.exec(q, nonNil(blob), int64(keyID), key, nonNil(ss.Blob)))
		if err != nil {
			return fmt.Errorf("sqlite: replace sealed %s: %w", ss.Ref, err)
		}
		return nil
	})
	if err != nil {
		return false, err // n is the writer's until it answers
	}
	return n > 0, nil
}

// CountSealed returns the number of sealed values, and of those not under
// keyID: devices' secrets, the payloads of messages not yet sent,
// settings, tenants' prompt keys and tenants' webhook secrets.
func (s *Store) CountSealed(ctx context.Context, keyID uint32) (total, stale int, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM devices) + (SELECT count(*) FROM settings)
			+ (SELECT count(*) FROM tenants WHERE prompt_key IS NOT NULL)
			+ (SELECT count(*) FROM tenants WHERE webhook_secret IS NOT NULL)
			+ (SELECT count(*) FROM outbox WHERE payload IS NOT NULL),
		(SELECT count(*) FROM devices WHERE key_id != ?1) + (SELECT count(*) FROM settings WHERE key_id != ?1)
			+ (SELECT count(*) FROM tenants WHERE prompt_key IS NOT NULL AND key_id != ?1)
			+ (SELECT count(*) FROM tenants WHERE webhook_secret IS NOT NULL AND webhook_key_id != ?1)
			+ (SELECT count(*) FROM outbox WHERE payload IS NOT NULL AND key_id != ?1)`,
		int64(keyID)).Scan(&total, &stale)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: count sealed: %w", err)
	}
	return total, stale, nil
}

// appendSealed appends the sealed values that a query of (name, blob,
// key_id) rows returns, each named by set and referred to as prefix+name.
func appendSealed(ctx context.Context, tx *sql.Tx, out []twofa.SealedSecret, prefix string,
	set func(*twofa.SealedSecret, string), query string, args ...any) ([]twofa.SealedSecret, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			ss   twofa.SealedSecret
			name string
			id   int64
		)
		if err := rows.Scan(&name, &ss.Blob, &id); err != nil {
			return out, err
		}
		set(&ss, name)
		ss.Ref, ss.KeyID = prefix+name, uint32(id)
		out = append(out, ss)
	}
	return out, rows.Err()
}
