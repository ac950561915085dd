package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/keyrange"
)

var _ twofa.PageStore = (*Store)(nil)

// linkCols are the columns scanLink reads, in its order.
const linkCols = `id, hash, tenant, user_id, kind, created_at, expires_at, used_at`

func scanLink(row pgx.CollectableRow) (*twofa.Link, error) {
	var l twofa.Link
	var kind string
	err := row.Scan(&l.ID, &l.Hash, &l.Tenant, &l.User, &kind, when(&l.CreatedAt), when(&l.ExpiresAt), when(&l.UsedAt))
	l.Kind = twofa.LinkKind(kind)
	return &l, err
}

// CreateLink stores a new link. A link whose ID or hash is taken is an
// error, and nothing is written. The insert goes in the round trip that
// takes the audit log's head.
func (s *Store) CreateLink(ctx context.Context, l *twofa.Link, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "CreateLink")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO links (`+linkCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			l.ID, nonNilBytes(l.Hash), l.Tenant, l.User, string(l.Kind),
			tstz(l.CreatedAt), tstz(l.ExpiresAt), tstz(l.UsedAt))
		return appendEvents(ctx, tx, b, e)
	})
}

// UseLink spends the link with this hash with one compare-and-set UPDATE,
// so that of concurrent uses, from any process, exactly one succeeds. The
// event, if any, is given the link's tenant, user and AuditDetail before
// it is linked, and is appended only on success.
//
// An expired link (ExpiresAt <= now, or no expiry at all) is not marked
// used: it is dead anyway, and stays ErrExpired. A link that was used is
// ErrNotFound whether or not it has expired since.
func (s *Store) UseLink(ctx context.Context, hash []byte, now time.Time, e *twofa.AuditEvent) (_ *twofa.Link, err error) {
	defer wrap(&err, "UseLink")
	var l *twofa.Link
	err = inTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `UPDATE links SET used_at = $2
			WHERE hash = $1 AND used_at IS NULL AND expires_at > $2
			RETURNING `+linkCols, nonNilBytes(hash), tstz(now))
		var err error
		l, err = pgx.CollectExactlyOneRow(rows, scanLink)
		if errors.Is(err, pgx.ErrNoRows) {
			// Unknown, used or expired: a read tells which. A use that
			// commits meanwhile makes the link used, which is ErrNotFound.
			var usedAt time.Time
			err = tx.QueryRow(ctx, `SELECT used_at FROM links WHERE hash = $1`, nonNilBytes(hash)).Scan(when(&usedAt))
			switch {
			case errors.Is(err, pgx.ErrNoRows), err == nil && !usedAt.IsZero():
				return fmt.Errorf("link: %w", twofa.ErrNotFound)
			case err == nil:
				return twofa.ErrExpired
			}
		}
		if err != nil {
			return err
		}
		if e != nil {
			e.Tenant, e.User, e.Detail = l.Tenant, l.User, l.AuditDetail()
		}
		return appendEvents(ctx, tx, nil, e)
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// staleLinksBatch bounds the links one statement deletes, so that a sweep
// of a long-unswept table is a series of short transactions.
const staleLinksBatch = 1000

// DeleteStaleLinks deletes the links that were used, or expired at or
// before now (no expiry counts as long past), a batch per statement. Rows
// another transaction holds (a use in progress) are left to the next
// sweep, so a sweep never waits for one.
func (s *Store) DeleteStaleLinks(ctx context.Context, now time.Time) (_ int, err error) {
	defer wrap(&err, "DeleteStaleLinks")
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM links WHERE id IN (SELECT id FROM links
			WHERE used_at IS NOT NULL OR expires_at IS NULL OR expires_at <= $1
			LIMIT $2 FOR UPDATE SKIP LOCKED)`, tstz(now), staleLinksBatch)
		if err != nil {
			return total, err
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < staleLinksBatch {
			return total, nil
		}
	}
}

// UpgradeLinkHashes rehashes the unused links this handle's migration
// found plain, if any, and forgets them.
func (s *Store) UpgradeLinkHashes(ctx context.Context, rehash func([]byte) []byte) (int, error) {
	n, err := s.upgradeHashes(ctx, "links", &s.legacy.links, rehash)
	wrap(&err, "UpgradeLinkHashes")
	return n, err
}

// Tenant returns a tenant's settings. ErrNotFound. ReturnURLs is nil when
// the tenant has none, PromptKey nil when it has no prompt key, and the
// webhook's fields zero when it has no webhook.
func (s *Store) Tenant(ctx context.Context, id string) (_ *twofa.Tenant, err error) {
	defer wrap(&err, "Tenant")
	var t twofa.Tenant
	var keyID, hookKeyID int64
	var urls, hookEvents []string
	var hookURL *string
	err = s.pool.QueryRow(ctx, `SELECT id, prompt_key, key_id, return_urls,
			webhook_url, webhook_secret, webhook_key_id, webhook_events, created_at, updated_at
		FROM tenants WHERE id = $1`, id).
		Scan(&t.ID, &t.PromptKey, &keyID, &urls, &hookURL, &t.WebhookSecret, &hookKeyID, &hookEvents,
			when(&t.CreatedAt), when(&t.UpdatedAt))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("tenant %s: %w", id, twofa.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	t.KeyID = uint32(keyID)
	if len(urls) > 0 {
		t.ReturnURLs = urls
	}
	if hookURL != nil {
		t.WebhookURL = *hookURL
	}
	t.WebhookKeyID = uint32(hookKeyID)
	for _, e := range hookEvents {
		t.WebhookEvents = append(t.WebhookEvents, twofa.EventType(e))
	}
	return &t, nil
}

// SetPromptKey sets a tenant's sealed prompt key and its master key ID
// with one upsert that writes those columns and updated_at only, creating
// the tenant (created_at = now, no return URLs) if needed: the return
// URLs stay as they are. An empty blob is stored as no prompt key (NULL).
func (s *Store) SetPromptKey(ctx context.Context, tenant string, blob []byte, keyID uint32, now time.Time, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "SetPromptKey")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO tenants (id, prompt_key, key_id, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $4)
			ON CONFLICT (id) DO UPDATE SET prompt_key = EXCLUDED.prompt_key, key_id = EXCLUDED.key_id,
				updated_at = EXCLUDED.updated_at`,
			tenant, nilIfEmpty(blob), int64(keyID), tstz(now))
		return appendEvents(ctx, tx, b, e)
	})
}

// SetReturnURLs sets a tenant's return URLs with one upsert that writes
// that column and updated_at only, creating the tenant (created_at = now,
// no prompt key) if needed: the prompt key, which a rotation may re-seal
// meanwhile, is never written back. nil URLs are stored as none (the
// empty array), which Tenant returns as nil.
func (s *Store) SetReturnURLs(ctx context.Context, tenant string, urls []string, now time.Time, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "SetReturnURLs")
	if urls == nil {
		urls = []string{}
	}
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO tenants (id, return_urls, created_at, updated_at)
			VALUES ($1, $2, $3, $3)
			ON CONFLICT (id) DO UPDATE SET return_urls = EXCLUDED.return_urls, updated_at = EXCLUDED.updated_at`,
			tenant, urls, tstz(now))
		return appendEvents(ctx, tx, b, e)
	})
}

// SetWebhook sets a tenant's webhook with one upsert that writes the
// webhook's columns and updated_at only, creating the tenant (created_at
// = now) if needed. An empty url clears them all: no URL or secret
// (NULL), key ID 0, no event types (the empty array).
func (s *Store) SetWebhook(ctx context.Context, tenant, url string, secret []byte, keyID uint32, events []twofa.EventType, now time.Time, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "SetWebhook")
	var hookURL *string
	var hookSecret []byte
	if url == "" {
		keyID, events = 0, nil
	} else {
		hookURL, hookSecret = &url, nonNilBytes(secret)
	}
	names := make([]string, len(events))
	for i, t := range events {
		names[i] = string(t)
	}
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO tenants (id, webhook_url, webhook_secret, webhook_key_id, webhook_events, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6)
			ON CONFLICT (id) DO UPDATE SET webhook_url = EXCLUDED.webhook_url, webhook_secret = EXCLUDED.webhook_secret,
				webhook_key_id = EXCLUDED.webhook_key_id, webhook_events = EXCLUDED.webhook_events,
				updated_at = EXCLUDED.updated_at`,
			tenant, hookURL, hookSecret, int64(keyID), names, tstz(now))
		return appendEvents(ctx, tx, b, e)
	})
}

// RenameDevice renames one of the user's devices. ErrNotFound. Only the
// device's row is locked, then the audit log's head.
func (s *Store) RenameDevice(ctx context.Context, ref twofa.UserRef, deviceID, name string, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "RenameDevice")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE devices SET name = $1 WHERE id = $2 AND tenant = $3 AND user_id = $4`,
			name, deviceID, ref.Tenant, ref.User)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("device %s: %w", deviceID, twofa.ErrNotFound)
		}
		return appendEvents(ctx, tx, nil, e)
	})
}

// Users returns up to limit users of the tenant whose ID starts with
// prefix, after the ID after, in byte order of their IDs, each with their
// devices (oldest first) and unused backup code count.
//
// It reads in one read-only REPEATABLE READ transaction, so the three
// queries see one snapshot: the users (a range scan of the primary key:
// the prefix is turned into the range [prefix, keyrange.PrefixEnd(prefix)), with
// no LIKE pattern to escape), then the devices and the code counts of all
// of them at once, by = ANY. A prefix that no stored ID can start with
// (invalid UTF-8, or a NUL) matches no one.
func (s *Store) Users(ctx context.Context, tenant, prefix, after string, limit int) (_ []*twofa.User, err error) {
	defer wrap(&err, "Users")
	users := []*twofa.User{}
	if limit <= 0 || !utf8.ValidString(prefix) || strings.ContainsRune(prefix, 0) {
		return users, nil
	}
	q := `SELECT user_id, failures, locked_until, created_at FROM users
		WHERE tenant = $1 AND user_id > $2 AND user_id >= $3`
	args := []any{tenant, after, prefix, limit}
	if end, ok := keyrange.PrefixEnd(prefix); ok {
		q += ` AND user_id < $5`
		args = append(args, end)
	}
	q += ` ORDER BY user_id LIMIT $4`

	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	rows, _ := tx.Query(ctx, q, args...)
	users, err = pgx.AppendRows(users, rows, func(row pgx.CollectableRow) (*twofa.User, error) {
		u := &twofa.User{Tenant: tenant}
		err := row.Scan(&u.ID, &u.Failures, when(&u.LockedUntil), when(&u.CreatedAt))
		return u, err
	})
	if err != nil || len(users) == 0 {
		return users, err
	}
	ids := make([]string, len(users))
	byID := make(map[string]*twofa.User, len(users))
	for i, u := range users {
		ids[i], byID[u.ID] = u.ID, u
	}

	b := &pgx.Batch{}
	// devices_user serves both: (tenant, user_id, created_at, ord).
	b.Queue(`SELECT `+deviceCols+` FROM devices WHERE tenant = $1 AND user_id = ANY($2)
		ORDER BY user_id, created_at, ord`, tenant, ids)
	b.Queue(`SELECT user_id, count(*) FROM backup_codes WHERE tenant = $1 AND user_id = ANY($2) AND used_at IS NULL
		GROUP BY user_id`, tenant, ids)
	br := tx.SendBatch(ctx, b)
	rows, _ = br.Query()
	ds, err := pgx.CollectRows(rows, scanDevice)
	if err == nil {
		for _, d := range ds {
			if u := byID[d.User]; u != nil {
				u.Devices = append(u.Devices, d)
			}
		}
		rows, _ = br.Query()
		var id string
		var n int
		_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
			if u := byID[id]; u != nil {
				u.BackupCodes = n
			}
			return nil
		})
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return nil, err
	}
	return users, tx.Commit(ctx)
}
