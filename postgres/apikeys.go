package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
