package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/seal"
)

// Ref prefixes of sealed values. Every device Ref sorts before every
// message Ref, every message Ref before every setting Ref, every setting
// Ref before every tenant Ref, and every tenant Ref before every webhook
// Ref, so SealedSecrets reads devices, then outbox messages, then
// settings, then tenants' prompt keys, then tenants' webhook secrets.
const (
	devicePrefix  = "device:"
	messagePrefix = "message:"
	settingPrefix = "setting:"
	tenantPrefix  = "tenant:"
	webhookPrefix = "webhook:"
)

// blobKeyID is the key ID in a sealed blob's header, 0 if it has none.
func blobKeyID(blob []byte) int64 {
	id, err := seal.KeyID(blob)
	if err != nil {
		return 0
	}
	return int64(id)
}

// InitSetting stores value under name unless a value is stored already,
// and returns the stored value.
func (s *Store) InitSetting(ctx context.Context, name string, value []byte) (_ []byte, err error) {
	defer wrap(&err, "InitSetting")
	var stored []byte
	err = s.pool.QueryRow(ctx, `INSERT INTO settings (name, value, key_id) VALUES ($1, coalesce($2, ''::bytea), $3)
		ON CONFLICT DO NOTHING RETURNING value`, name, value, blobKeyID(value)).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another writer won. The INSERT waited for it to commit, and this
		// statement's fresh snapshot sees its row; settings are never deleted.
		err = s.pool.QueryRow(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&stored)
	}
	return stored, err
}

// SealedSecrets returns up to limit sealed values not under keyID, in Ref
// order, after the Ref after: devices by ID, then the payloads of
// messages not yet sent by ID, then settings by name, then the prompt
// keys of tenants that have one by tenant ID, all byte-ordered by their
// "C" collation as Go orders strings.
func (s *Store) SealedSecrets(ctx context.Context, keyID uint32, after string, limit int) (_ []twofa.SealedSecret, err error) {
	defer wrap(&err, "SealedSecrets")
	var out []twofa.SealedSecret
	if limit <= 0 {
		return out, nil
	}
	// from returns the condition on the key column for refs with prefix
	// that sort after after, and whether there can be any.
	from := func(prefix, col string) (string, string, bool) {
		switch {
		case strings.HasPrefix(after, prefix):
			return col + ` > $3`, after[len(prefix):], true
		case after < prefix:
			return col + ` >= $3`, "", true // every key
		}
		return "", "", false
	}

	if cond, arg, ok := from(devicePrefix, "id"); ok {
		rows, _ := s.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE key_id <> $1 AND `+cond+`
			ORDER BY id LIMIT $2`, int64(keyID), limit, arg)
		ds, err := pgx.CollectRows(rows, scanDevice)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			out = append(out, twofa.SealedSecret{Ref: devicePrefix + d.ID, Device: d, Blob: d.Secret, KeyID: d.KeyID})
		}
	}
	if cond, arg, ok := from(messagePrefix, "id"); ok && len(out) < limit {
		rows, _ := s.pool.Query(ctx, `SELECT `+outboxCols+` FROM outbox
			WHERE payload IS NOT NULL AND key_id <> $1 AND `+cond+`
			ORDER BY id LIMIT $2`, int64(keyID), limit-len(out), arg)
		ms, _, err := collectMessages(rows)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			out = append(out, twofa.SealedSecret{Ref: messagePrefix + m.ID, Message: m, Blob: m.Payload, KeyID: m.KeyID})
		}
	}
	if cond, arg, ok := from(settingPrefix, "name"); ok && len(out) < limit {
		rows, _ := s.pool.Query(ctx, `SELECT name, value, key_id FROM settings WHERE key_id <> $1 AND `+cond+`
			ORDER BY name LIMIT $2`, int64(keyID), limit-len(out), arg)
		ss, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (twofa.SealedSecret, error) {
			var s twofa.SealedSecret
			var id int64
			err := row.Scan(&s.Setting, &s.Blob, &id)
			s.Ref, s.KeyID = settingPrefix+s.Setting, uint32(id)
			return s, err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, ss...)
	}
	if cond, arg, ok := from(tenantPrefix, "id"); ok && len(out) < limit {
		rows, _ := s.pool.Query(ctx, `SELECT id, prompt_key, key_id FROM tenants
			WHERE prompt_key IS NOT NULL AND key_id <> $1 AND `+cond+`
			ORDER BY id LIMIT $2`, int64(keyID), limit-len(out), arg)
		ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (twofa.SealedSecret, error) {
			var s twofa.SealedSecret
			var id int64
			err := row.Scan(&s.PromptKeyOf, &s.Blob, &id)
			s.Ref, s.KeyID = tenantPrefix+s.PromptKeyOf, uint32(id)
			return s, err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	if cond, arg, ok := from(webhookPrefix, "id"); ok && len(out) < limit {
		rows, _ := s.pool.Query(ctx, `SELECT id, webhook_secret, webhook_key_id FROM tenants
			WHERE webhook_secret IS NOT NULL AND webhook_key_id <> $1 AND `+cond+`
			ORDER BY id LIMIT $2`, int64(keyID), limit-len(out), arg)
		ws, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (twofa.SealedSecret, error) {
			var s twofa.SealedSecret
			var id int64
			err := row.Scan(&s.WebhookOf, &s.Blob, &id)
			s.Ref, s.KeyID = webhookPrefix+s.WebhookOf, uint32(id)
			return s, err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, ws...)
	}
	return out, nil
}

// ReplaceSealed replaces a sealed value only if it still equals s.Blob.
func (s *Store) ReplaceSealed(ctx context.Context, old twofa.SealedSecret, blob []byte, keyID uint32) (_ bool, err error) {
	defer wrap(&err, "ReplaceSealed")
	var q, key string
	switch {
	case strings.HasPrefix(old.Ref, devicePrefix):
		q, key = `UPDATE devices SET secret = $1, key_id = $2 WHERE id = $3 AND secret = $4`, old.Ref[len(devicePrefix):]
	case strings.HasPrefix(old.Ref, messagePrefix):
		// A message sent meanwhile (NULL) equals nothing.
		q, key = `UPDATE outbox SET payload = $1, key_id = $2 WHERE id = $3 AND payload = $4`, old.Ref[len(messagePrefix):]
	case strings.HasPrefix(old.Ref, settingPrefix):
		q, key = `UPDATE settings SET value = $1, key_id = $2 WHERE name = $3 AND value = $4`, old.Ref[len(settingPrefix):]
	case strings.HasPrefix(old.Ref, tenantPrefix):
		// A prompt key removed meanwhile (NULL) equals nothing.
		q, key = `UPDATE tenants SET prompt_key = $1, key_id = $2 WHERE id = $3 AND prompt_key = $4`, old.Ref[len(tenantPrefix):]
	case strings.HasPrefix(old.Ref, webhookPrefix):
		// A webhook removed (NULL) or replaced meanwhile equals nothing.
		q, key = `UPDATE tenants SET webhook_secret = $1, webhook_key_id = $2 WHERE id = $3 AND webhook_secret = $4`, old.Ref[len(webhookPrefix):]
	default:
		return false, fmt.Errorf("unknown ref %q", old.Ref)
	}
	tag, err := s.pool.Exec(ctx, q, blob, int64(keyID), key, old.Blob)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// CountSealed returns the number of sealed values, and of those not under
// keyID: devices' secrets, the payloads of messages not yet sent,
// settings, tenants' prompt keys and tenants' webhook secrets.
func (s *Store) CountSealed(ctx context.Context, keyID uint32) (total, stale int, err error) {
	defer wrap(&err, "CountSealed")
	err = s.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM devices) + (SELECT count(*) FROM settings)
				+ (SELECT count(*) FROM tenants WHERE prompt_key IS NOT NULL)
				+ (SELECT count(*) FROM tenants WHERE webhook_secret IS NOT NULL)
				+ (SELECT count(*) FROM outbox WHERE payload IS NOT NULL),
			(SELECT count(*) FROM devices WHERE key_id <> $1) + (SELECT count(*) FROM settings WHERE key_id <> $1)
				+ (SELECT count(*) FROM tenants WHERE prompt_key IS NOT NULL AND key_id <> $1)
				+ (SELECT count(*) FROM tenants WHERE webhook_secret IS NOT NULL AND webhook_key_id <> $1)
				+ (SELECT count(*) FROM outbox WHERE payload IS NOT NULL AND key_id <> $1)`,
		int64(keyID)).Scan(&total, &stale)
	return total, stale, err
}
