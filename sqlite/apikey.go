package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
