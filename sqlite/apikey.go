package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twofa/twofa"
)

var _ twofa.APIKeyStore = (*Store)(nil)

// apiKeyCols are the columns scanAPIKey reads, in its order.
const apiKeyCols = `id, tenant, name, scope, hash, created_at, revoked_at, last_used_at`

// CreateAPIKey stores a new key. A key whose ID or hash is taken is an
// error, and nothing is written.
func (s *Store) CreateAPIKey(ctx context.Context, k *twofa.APIKey, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		if _, err := t.exec(`INSERT INTO api_keys (`+apiKeyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.Tenant, k.Name, string(k.Scope), nonNil(k.Hash),
			micros(k.CreatedAt), micros(k.RevokedAt), micros(k.LastUsedAt)); err != nil {
			return fmt.Errorf("sqlite: create API key %s: %w", k.ID, err)
		}
		return t.appendEvents(e)
	})
}

// APIKeyByHash returns the unrevoked key with this hash. ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*twofa.APIKey, error) {
	k, err := scanAPIKey(s.r.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys
		WHERE hash = ? AND revoked_at IS NULL`, nonNil(hash)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("API key: %w", twofa.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: API key by hash: %w", err)
	}
	return k, nil
}

// APIKeys lists a tenant's keys, or every tenant's for "", revoked ones
// included, oldest first (by ID among keys made at the same time).
func (s *Store) APIKeys(ctx context.Context, tenant string) ([]*twofa.APIKey, error) {
	q, args := `SELECT `+apiKeyCols+` FROM api_keys ORDER BY created_at, id`, []any(nil)
	if tenant != "" {
		q, args = `SELECT `+apiKeyCols+` FROM api_keys WHERE tenant = ? ORDER BY created_at, id`, []any{tenant}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: API keys: %w", err)
	}
	defer rows.Close()
	var ks []*twofa.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: API keys: %w", err)
		}
		ks = append(ks, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: API keys: %w", err)
	}
	return ks, nil
}

// RevokeAPIKey revokes a key by ID. ErrNotFound when no unrevoked key has
// the ID. The event, if any, is given the key's tenant.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, now time.Time, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		var tenant string
		err := t.queryRow(`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING tenant`,
			micros(now), id).Scan(&tenant)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("API key %s: %w", id, twofa.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: revoke API key %s: %w", id, err)
		}
		if e != nil {
			e.Tenant = tenant
		}
		return t.appendEvents(e)
	})
}

// keyedHashesVersion is the migration after which API keys' and links'
// hashes are keyed.
const keyedHashesVersion = 5

// legacyTokens are the API keys and the unused links whose hashes were
// plain SHA-256 when this handle applied migration keyedHashesVersion,
// by ID: the only rows UpgradeKeyHashes and UpgradeLinkHashes rehash.
// They are kept in memory, never in the database, so that no one who can
// write the database can add to them.
type legacyTokens struct {
	mu    sync.Mutex
	keys  map[string][]byte
	links map[string][]byte
}

func (l *legacyTokens) set(found *legacyTokens) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys, l.links = found.keys, found.links
}

// findLegacyTokens reads the rows a new schema at keyedHashesVersion
// leaves plain, in the transaction that migrates it.
func findLegacyTokens(t *wtx) (*legacyTokens, error) {
	l := &legacyTokens{}
	for _, q := range []struct {
		m   *map[string][]byte
		sql string
	}{
		{&l.keys, `SELECT id, hash FROM api_keys`},
		{&l.links, `SELECT id, hash FROM links WHERE used_at IS NULL`},
	} {
		rs, err := t.query(q.sql)
		if err != nil {
			return nil, err
		}
		*q.m = map[string][]byte{}
		for rs.Next() {
			var id string
			var h []byte
			if err := rs.Scan(&id, &h); err != nil {
				rs.Close()
				return nil, err
			}
			(*q.m)[id] = h
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}

// UpgradeKeyHashes rehashes the API keys this handle's migration found
// plain, if any, and forgets them.
func (s *Store) UpgradeKeyHashes(ctx context.Context, rehash func([]byte) []byte) (int, error) {
	return s.upgradeHashes(ctx, "api_keys", &s.legacy.keys, rehash)
}

// upgradeHashes sets the hash of each row of table in rows, by ID, to
// rehash of its plain hash, in one transaction, if the row still has the
// plain hash; then forgets rows.
func (s *Store) upgradeHashes(ctx context.Context, table string, rows *map[string][]byte, rehash func([]byte) []byte) (int, error) {
	s.legacy.mu.Lock()
	defer s.legacy.mu.Unlock()
	if len(*rows) == 0 {
		return 0, nil
	}
	plains := *rows // the writer's copy: a later call may forget *rows
	keyed := make(map[string][]byte, len(plains))
	for id, plain := range plains {
		keyed[id] = rehash(plain)
	}
	var n int
	err := s.write(ctx, func(t *wtx) error {
		n = 0
		for id, plain := range plains {
			k, err := rowsAffected(t.exec(`UPDATE `+table+` SET hash = ? WHERE id = ? AND hash = ?`, keyed[id], id, plain))
			if err != nil {
				return fmt.Errorf("sqlite: rehash %s %s: %w", table, id, err)
			}
			n += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	*rows = nil
	return n, nil
}

// scanAPIKey reads one row of apiKeyCols.
func scanAPIKey(row interface{ Scan(...any) error }) (*twofa.APIKey, error) {
	var (
		k                      twofa.APIKey
		scope                  string
		created, revoked, used sql.NullInt64
	)
	if err := row.Scan(&k.ID, &k.Tenant, &k.Name, &scope, &k.Hash, &created, &revoked, &used); err != nil {
		return nil, err
	}
	k.Scope = twofa.Scope(scope)
	k.CreatedAt, k.RevokedAt, k.LastUsedAt = fromMicros(created), fromMicros(revoked), fromMicros(used)
	return &k, nil
}

// Ping checks that the database answers, on the read pool: a readiness
// check that never queues behind writers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}
