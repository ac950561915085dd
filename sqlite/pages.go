package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/keyrange"
)

var _ twofa.PageStore = (*Store)(nil)

// linkCols are the columns scanLink reads, in its order.
const linkCols = `id, hash, tenant, user_id, kind, created_at, expires_at, used_at`

// scanLink reads one row of linkCols.
func scanLink(row interface{ Scan(...any) error }) (*twofa.Link, error) {
	var (
		l                      twofa.Link
		kind                   string
		created, expires, used sql.NullInt64
	)
	if err := row.Scan(&l.ID, &l.Hash, &l.Tenant, &l.User, &kind, &created, &expires, &used); err != nil {
		return nil, err
	}
	l.Kind = twofa.LinkKind(kind)
	l.CreatedAt, l.ExpiresAt, l.UsedAt = fromMicros(created), fromMicros(expires), fromMicros(used)
	return &l, nil
}

// CreateLink stores a new link. A link whose ID or hash is taken is an
// error, and nothing is written.
func (s *Store) CreateLink(ctx context.Context, l *twofa.Link, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		if _, err := t.exec(`INSERT INTO links (`+linkCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			l.ID, nonNil(l.Hash), l.Tenant, l.User, string(l.Kind),
			micros(l.CreatedAt), micros(l.ExpiresAt), micros(l.UsedAt)); err != nil {
			return fmt.Errorf("sqlite: create link %s: %w", l.ID, err)
		}
		return t.appendEvents(e)
	})
}

// UseLink spends the link with this hash with one compare-and-set UPDATE
// in the write transaction, so that of concurrent uses, from any process,
// exactly one succeeds. The event, if any, is given the link's tenant,
// user and AuditDetail before it is linked, and is appended only on
// success.
//
// An expired link (ExpiresAt <= now, or no expiry at all) is not marked
// used: it is dead anyway, and stays ErrExpired. A link that was used is
// ErrNotFound whether or not it has expired since.
func (s *Store) UseLink(ctx context.Context, hash []byte, now time.Time, e *twofa.AuditEvent) (*twofa.Link, error) {
	var l *twofa.Link // the writer's until it answers
	err := s.write(ctx, func(t *wtx) error {
		var err error
		l, err = scanLink(t.queryRow(`UPDATE links SET used_at = ?2
			WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2
			RETURNING `+linkCols, nonNil(hash), now.UnixMicro()))
		if err == sql.ErrNoRows {
			// Unknown, used or expired: a read in the same transaction,
			// under the write lock, tells which.
			var used sql.NullInt64
			err := t.queryRow(`SELECT used_at FROM links WHERE hash = ?`, nonNil(hash)).Scan(&used)
			switch {
			case err == sql.ErrNoRows, err == nil && used.Valid:
				return fmt.Errorf("link: %w", twofa.ErrNotFound)
			case err == nil:
				return twofa.ErrExpired
			}
			return fmt.Errorf("sqlite: use link: %w", err)
		} else if err != nil {
			return fmt.Errorf("sqlite: use link: %w", err)
		}
		if e != nil {
			e.Tenant, e.User, e.Detail = l.Tenant, l.User, l.AuditDetail()
		}
		return t.appendEvents(e)
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// staleLinksBatch bounds the links one write deletes, so that a sweep of
// a long-unswept table never holds the writer for long.
const staleLinksBatch = 1000

// DeleteStaleLinks deletes the links that were used, or expired at or
// before now (no expiry counts as long past), a batch per write.
func (s *Store) DeleteStaleLinks(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := s.write(ctx, func(t *wtx) error {
			var err error
			n, err = rowsAffected(t.exec(`DELETE FROM links WHERE rowid IN (SELECT rowid FROM links
				WHERE used_at IS NOT NULL OR expires_at IS NULL OR expires_at <= ? LIMIT ?)`,
				now.UnixMicro(), staleLinksBatch))
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sqlite: delete stale links: %w", err)
		}
		total += int(n)
		if n < staleLinksBatch {
			return total, nil
		}
	}
}

// UpgradeLinkHashes rehashes the unused links this handle's migration
// found plain, if any, and forgets them.
func (s *Store) UpgradeLinkHashes(ctx context.Context, rehash func([]byte) []byte) (int, error) {
	return s.upgradeHashes(ctx, "links", &s.legacy.links, rehash)
}

// Tenant returns a tenant's settings. ErrNotFound. ReturnURLs is nil when
// the tenant has none, PromptKey nil when it has no prompt key, and the
// webhook's fields zero when it has no webhook.
func (s *Store) Tenant(ctx context.Context, id string) (*twofa.Tenant, error) {
	var (
		tn               twofa.Tenant
		keyID, hookKeyID int64
		urls, hookEvents string
		hookURL          sql.NullString
		created, updated sql.NullInt64
	)
	err := s.r.QueryRowContext(ctx, `SELECT id, prompt_key, key_id, return_urls,
			webhook_url, webhook_secret, webhook_key_id, webhook_events, created_at, updated_at
		FROM tenants WHERE id = ?`, id).Scan(&tn.ID, &tn.PromptKey, &keyID, &urls,
		&hookURL, &tn.WebhookSecret, &hookKeyID, &hookEvents, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("tenant %s: %w", id, twofa.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: tenant %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(urls), &tn.ReturnURLs); err != nil {
		return nil, fmt.Errorf("sqlite: tenant %s: return URLs: %w", id, err)
	}
	if len(tn.ReturnURLs) == 0 {
		tn.ReturnURLs = nil
	}
	if len(tn.PromptKey) == 0 {
		tn.PromptKey = nil
	}
	tn.KeyID = uint32(keyID)
	if err := json.Unmarshal([]byte(hookEvents), &tn.WebhookEvents); err != nil {
		return nil, fmt.Errorf("sqlite: tenant %s: webhook events: %w", id, err)
	}
	if len(tn.WebhookEvents) == 0 {
		tn.WebhookEvents = nil
	}
	if len(tn.WebhookSecret) == 0 {
		tn.WebhookSecret = nil
	}
	tn.WebhookURL, tn.WebhookKeyID = hookURL.String, uint32(hookKeyID)
	tn.CreatedAt, tn.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &tn, nil
}

// SetPromptKey sets a tenant's sealed prompt key and its master key ID
// with one upsert that writes those columns and updated_at only, creating
// the tenant (created_at = now, no return URLs) if needed: the return
// URLs stay as they are. An empty blob is stored as no prompt key (NULL).
func (s *Store) SetPromptKey(ctx context.Context, tenant string, blob []byte, keyID uint32, now time.Time, e *twofa.AuditEvent) error {
	var key any
	if len(blob) > 0 {
		key = blob
	}
	return s.write(ctx, func(t *wtx) error {
		if _, err := t.exec(`INSERT INTO tenants (id, prompt_key, key_id, created_at, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?4)
			ON CONFLICT (id) DO UPDATE SET prompt_key = excluded.prompt_key, key_id = excluded.key_id,
				updated_at = excluded.updated_at`,
			tenant, key, int64(keyID), micros(now)); err != nil {
			return fmt.Errorf("sqlite: set prompt key of %s: %w", tenant, err)
		}
		return t.appendEvents(e)
	})
}

// SetReturnURLs sets a tenant's return URLs, kept as a JSON array, with
// one upsert that writes that column and updated_at only, creating the
// tenant (created_at = now, no prompt key) if needed: the prompt key,
// which a rotation may re-seal meanwhile, is never written back. nil URLs
// are stored as none ('[]'), which Tenant returns as nil. A URL that is
// not valid UTF-8, which JSON would not keep exactly, is an error.
func (s *Store) SetReturnURLs(ctx context.Context, tenant string, urls []string, now time.Time, e *twofa.AuditEvent) error {
	for _, u := range urls {
		if !utf8.ValidString(u) {
			return fmt.Errorf("sqlite: set return URLs of %s: %q is not valid UTF-8", tenant, u)
		}
	}
	if urls == nil {
		urls = []string{}
	}
	js, err := json.Marshal(urls)
	if err != nil {
		return fmt.Errorf("sqlite: set return URLs of %s: %w", tenant, err)
	}
	return s.write(ctx, func(t *wtx) error {
		if _, err := t.exec(`INSERT INTO tenants (id, return_urls, created_at, updated_at)
			VALUES (?1, ?2, ?3, ?3)
			ON CONFLICT (id) DO UPDATE SET return_urls = excluded.return_urls, updated_at = excluded.updated_at`,
			tenant, string(js), micros(now)); err != nil {
			return fmt.Errorf("sqlite: set return URLs of %s: %w", tenant, err)
		}
		return t.appendEvents(e)
	})
}

// SetWebhook sets a tenant's webhook with one upsert that writes the
// webhook's columns and updated_at only, creating the tenant (created_at
// = now) if needed. An empty url clears them all: no URL or secret
// (NULL), key ID 0, no event types ('[]'). An event type or URL that is
// not valid UTF-8, which JSON or TEXT would not keep exactly, is an
// error.
func (s *Store) SetWebhook(ctx context.Context, tenant, url string, secret []byte, keyID uint32, events []twofa.EventType, now time.Time, e *twofa.AuditEvent) error {
	var hookURL, hookSecret any
	if url == "" {
		secret, keyID, events = nil, 0, nil
	} else {
		hookURL, hookSecret = url, nonNil(secret)
	}
	if !utf8.ValidString(url) {
		return fmt.Errorf("sqlite: set webhook of %s: the URL is not valid UTF-8", tenant)
	}
	for _, t := range events {
		if !utf8.ValidString(string(t)) {
			return fmt.Errorf("sqlite: set webhook of %s: event type %q is not valid UTF-8", tenant, t)
		}
	}
	if events == nil {
		events = []twofa.EventType{}
	}
	js, err := json.Marshal(events)
	if err != nil {
		return fmt.Errorf("sqlite: set webhook of %s: %w", tenant, err)
	}
	return s.write(ctx, func(t *wtx) error {
		if _, err := t.exec(`INSERT INTO tenants (id, webhook_url, webhook_secret, webhook_key_id, webhook_events, created_at, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
			ON CONFLICT (id) DO UPDATE SET webhook_url = excluded.webhook_url, webhook_secret = excluded.webhook_secret,
				webhook_key_id = excluded.webhook_key_id, webhook_events = excluded.webhook_events,
				updated_at = excluded.updated_at`,
			tenant, hookURL, hookSecret, int64(keyID), string(js), micros(now)); err != nil {
			return fmt.Errorf("sqlite: set webhook of %s: %w", tenant, err)
		}
		return t.appendEvents(e)
	})
}

// RenameDevice renames one of the user's devices. ErrNotFound.
func (s *Store) RenameDevice(ctx context.Context, ref twofa.UserRef, deviceID, name string, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		n, err := rowsAffected(t.exec(`UPDATE devices SET name = ? WHERE id = ? AND tenant = ? AND user_id = ?`,
			name, deviceID, ref.Tenant, ref.User))
		if err != nil {
			return fmt.Errorf("sqlite: rename device: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("device %s of %s: %w", deviceID, ref, twofa.ErrNotFound)
		}
		return t.appendEvents(e)
	})
}

// Users returns up to limit users of the tenant whose ID starts with
// prefix, after the ID after, in byte order of their IDs (the BINARY
// collation), each with their devices (oldest first) and unused backup
// code count.
//
// It reads in one read transaction, so the three queries see one
// snapshot: the users (a range scan of the primary key: the prefix is
// turned into the range [prefix, keyrange.PrefixEnd(prefix)), with no LIKE pattern
// to escape), then the devices and the code counts of all of them at
// once. The page's users are all the tenant's users from its first ID to
// its last, so those are read by that range of user IDs. A prefix that no
// stored ID can start with (invalid UTF-8, or a NUL) matches no one.
func (s *Store) Users(ctx context.Context, tenant, prefix, after string, limit int) ([]*twofa.User, error) {
	users := []*twofa.User{}
	if limit <= 0 || !utf8.ValidString(prefix) || strings.ContainsRune(prefix, 0) {
		return users, nil
	}
	q := `SELECT user_id, failures, locked_until, created_at FROM users
		WHERE tenant = ?1 AND user_id > ?2 AND user_id >= ?3`
	args := []any{tenant, after, prefix, limit}
	if end, ok := keyrange.PrefixEnd(prefix); ok {
		q += ` AND user_id < ?5`
		args = append(args, end)
	}
	q += ` ORDER BY user_id LIMIT ?4`

	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				u               = &twofa.User{Tenant: tenant}
				locked, created sql.NullInt64
			)
			if err := rows.Scan(&u.ID, &u.Failures, &locked, &created); err != nil {
				return err
			}
			u.LockedUntil, u.CreatedAt = fromMicros(locked), fromMicros(created)
			users = append(users, u)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if len(users) == 0 {
			return nil
		}
		first, last := users[0].ID, users[len(users)-1].ID
		byID := make(map[string]*twofa.User, len(users))
		for _, u := range users {
			byID[u.ID] = u
		}

		// devices_user serves both: (tenant, user_id).
		ds, err := scanDevices(tx.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices
			WHERE tenant = ? AND user_id BETWEEN ? AND ? ORDER BY user_id, created_at, rowid`, tenant, first, last))
		if err != nil {
			return err
		}
		for _, d := range ds {
			if u := byID[d.User]; u != nil {
				u.Devices = append(u.Devices, d)
			}
		}
		codes, err := tx.QueryContext(ctx, `SELECT user_id, count(*) FROM backup_codes
			WHERE tenant = ? AND user_id BETWEEN ? AND ? AND used_at IS NULL GROUP BY user_id`, tenant, first, last)
		if err != nil {
			return err
		}
		defer codes.Close()
		for codes.Next() {
			var (
				id string
				n  int
			)
			if err := codes.Scan(&id, &n); err != nil {
				return err
			}
			if u := byID[id]; u != nil {
				u.BackupCodes = n
			}
		}
		return codes.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: users of %s: %w", tenant, err)
	}
	return users, nil
}
