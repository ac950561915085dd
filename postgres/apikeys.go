package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/twofa/twofa"
)

var _ twofa.APIKeyStore = (*Store)(nil)

// apiKeyCols are the columns scanAPIKey reads, in its order.
const apiKeyCols = `id, tenant, name, scope, hash, created_at, revoked_at, last_used_at`

// CreateAPIKey stores a new key. A key whose ID or hash is taken is an
// error, and nothing is written. The insert goes in the round trip that
// takes the audit log's head, the last lock of the transaction.
func (s *Store) CreateAPIKey(ctx context.Context, k *twofa.APIKey, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "CreateAPIKey")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO api_keys (`+apiKeyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			k.ID, k.Tenant, k.Name, string(k.Scope), nonNilBytes(k.Hash),
			tstz(k.CreatedAt), tstz(k.RevokedAt), tstz(k.LastUsedAt))
		return appendEvents(ctx, tx, b, e)
	})
}

// APIKeyByHash returns the unrevoked key with this hash. ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (_ *twofa.APIKey, err error) {
	defer wrap(&err, "APIKeyByHash")
	rows, _ := s.pool.Query(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE hash = $1 AND revoked_at IS NULL`,
		nonNilBytes(hash))
	k, err := pgx.CollectExactlyOneRow(rows, scanAPIKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("API key: %w", twofa.ErrNotFound)
	}
	return k, err
}

// APIKeys lists a tenant's keys, or every tenant's for "", revoked ones
// included, oldest first (by ID among keys made at the same time).
func (s *Store) APIKeys(ctx context.Context, tenant string) (_ []*twofa.APIKey, err error) {
	defer wrap(&err, "APIKeys")
	q, args := `SELECT `+apiKeyCols+` FROM api_keys ORDER BY created_at NULLS FIRST, id`, []any(nil)
	if tenant != "" {
		q, args = `SELECT `+apiKeyCols+` FROM api_keys WHERE tenant = $1 ORDER BY created_at NULLS FIRST, id`, []any{tenant}
	}
	rows, _ := s.pool.Query(ctx, q, args...)
	return pgx.CollectRows(rows, scanAPIKey)
}

// RevokeAPIKey revokes a key by ID. ErrNotFound when no unrevoked key has
// the ID. The key's row is locked before the audit log's head. The event,
// if any, is given the key's tenant.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, now time.Time, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "RevokeAPIKey")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		var tenant string
		err := tx.QueryRow(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING tenant`,
			tstz(now), id).Scan(&tenant)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("API key %s: %w", id, twofa.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if e != nil {
			e.Tenant = tenant
		}
		return appendEvents(ctx, tx, nil, e)
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
func findLegacyTokens(ctx context.Context, tx pgx.Tx) (*legacyTokens, error) {
	l := &legacyTokens{keys: map[string][]byte{}, links: map[string][]byte{}}
	for _, q := range []struct {
		m   map[string][]byte
		sql string
	}{
		{l.keys, `SELECT id, hash FROM api_keys`},
		{l.links, `SELECT id, hash FROM links WHERE used_at IS NULL`},
	} {
		rows, _ := tx.Query(ctx, q.sql)
		var id string
		var h []byte
		if _, err := pgx.ForEachRow(rows, []any{&id, &h}, func() error {
			q.m[id] = h
			h = nil // Scan would otherwise reuse the slice
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// UpgradeKeyHashes rehashes the API keys this handle's migration found
// plain, if any, and forgets them.
func (s *Store) UpgradeKeyHashes(ctx context.Context, rehash func([]byte) []byte) (int, error) {
	n, err := s.upgradeHashes(ctx, "api_keys", &s.legacy.keys, rehash)
	wrap(&err, "UpgradeKeyHashes")
	return n, err
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
	var n int64
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for id, plain := range *rows {
			b.Queue(`UPDATE `+table+` SET hash = $1 WHERE id = $2 AND hash = $3`, rehash(plain), id, plain).Exec(
				func(tag pgconn.CommandTag) error {
					n += tag.RowsAffected()
					return nil
				})
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, err
	}
	*rows = nil
	return int(n), nil
}

func scanAPIKey(row pgx.CollectableRow) (*twofa.APIKey, error) {
	var k twofa.APIKey
	var scope string
	err := row.Scan(&k.ID, &k.Tenant, &k.Name, &scope, &k.Hash, when(&k.CreatedAt), when(&k.RevokedAt), when(&k.LastUsedAt))
	k.Scope = twofa.Scope(scope)
	return &k, err
}

// nonNilBytes keeps an empty byte slice an empty bytea rather than NULL.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Ping checks that the database answers: a readiness check.
func (s *Store) Ping(ctx context.Context) (err error) {
	defer wrap(&err, "Ping")
	var one int
	return s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one)
}
