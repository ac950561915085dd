package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/twofa/twofa"
)

// nullBytes is NULL for an empty byte slice.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

const challengeCols = `id, tenant, user_id, device_id, factor, purpose, attempts, sends, last_sent_at, created_at, expires_at, consumed_at`

// CreateChallenge stores a new challenge with its first code.
func (s *Store) CreateChallenge(ctx context.Context, c *twofa.Challenge, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		if err := userExists(t, c.Ref()); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO challenges (`+challengeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Tenant, c.User, c.DeviceID, c.Factor, c.Purpose, c.Attempts, c.Sends,
			c.LastSentAt.UnixMicro(), c.CreatedAt.UnixMicro(), c.ExpiresAt.UnixMicro(), micros(c.ConsumedAt)); err != nil {
			return fmt.Errorf("sqlite: create challenge: %w", err)
		}
		for i, k := range c.Codes {
			if _, err := t.exec(`INSERT INTO challenge_codes (challenge_id, seq, hash, expires_at) VALUES (?, ?, ?, ?)`,
				c.ID, i+1, nonNil(k.Hash), k.ExpiresAt.UnixMicro()); err != nil {
				return fmt.Errorf("sqlite: create challenge code: %w", err)
			}
		}
		return t.appendEvents(e)
	})
}

// AddChallengeCode adds a code to a pending challenge, keeping the
// newest MaxLiveCodes.
func (s *Store) AddChallengeCode(ctx context.Context, ref twofa.UserRef, id string, code twofa.ChallengeCode, now time.Time, gap time.Duration, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		c, err := readChallenge(wq{t}, ref, id)
		if err != nil {
			return err
		}
		if c.State(now) != twofa.ChallengePending {
			return fmt.Errorf("challenge %s: %w", id, twofa.ErrChallengeEnded)
		}
		if next := c.LastSentAt.Add(gap); next.After(now) {
			return twofa.RateLimitedError("codes for this challenge", next)
		}
		var seq int
		if err := t.queryRow(`SELECT coalesce(max(seq), 0) FROM challenge_codes WHERE challenge_id = ?`, id).Scan(&seq); err != nil {
			return fmt.Errorf("sqlite: add challenge code: %w", err)
		}
		if _, err := t.exec(`INSERT INTO challenge_codes (challenge_id, seq, hash, expires_at) VALUES (?, ?, ?, ?)`,
			id, seq+1, nonNil(code.Hash), code.ExpiresAt.UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: add challenge code: %w", err)
		}
		if _, err := t.exec(`DELETE FROM challenge_codes WHERE challenge_id = ? AND seq <= ?`, id, seq+1-twofa.MaxLiveCodes); err != nil {
			return fmt.Errorf("sqlite: add challenge code: %w", err)
		}
		expires := max(c.ExpiresAt.UnixMicro(), code.ExpiresAt.UnixMicro())
		if _, err := t.exec(`UPDATE challenges SET sends = sends + 1, last_sent_at = ?, expires_at = ? WHERE id = ?`,
			now.UnixMicro(), expires, id); err != nil {
			return fmt.Errorf("sqlite: add challenge code: %w", err)
		}
		return t.appendEvents(e)
	})
}

// Challenge returns the user's challenge with its codes.
func (s *Store) Challenge(ctx context.Context, ref twofa.UserRef, id string) (*twofa.Challenge, error) {
	var c *twofa.Challenge
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = readChallenge(tq{ctx, tx}, ref, id)
		return err
	})
	return c, err
}

// DeleteChallenges deletes challenges that ended before before.
func (s *Store) DeleteChallenges(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(t *wtx) error {
		var err error
		n, err = rowsAffected(t.exec(`DELETE FROM challenges WHERE id IN (SELECT id FROM challenges
			WHERE expires_at < ?1 OR consumed_at < ?1 LIMIT 1000)`, before.UnixMicro()))
		if err != nil {
			return fmt.Errorf("sqlite: delete challenges: %w", err)
		}
		return nil
	})
	return int(n), err
}

// querier is what reading a challenge needs: the write transaction, or a
// read of the pool.
type querier interface {
	queryRow(query string, args ...any) scanner
	query(query string, args ...any) (rowSource, error)
}

type scanner interface{ Scan(dest ...any) error }

// wq reads in the write transaction.
type wq struct{ t *wtx }

func (q wq) queryRow(query string, args ...any) scanner { return q.t.queryRow(query, args...) }
func (q wq) query(query string, args ...any) (rowSource, error) {
	rows, err := q.t.query(query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// tq reads in a read transaction of the pool.
type tq struct {
	ctx context.Context
	tx  *sql.Tx
}

func (q tq) queryRow(query string, args ...any) scanner {
	return q.tx.QueryRowContext(q.ctx, query, args...)
}
func (q tq) query(query string, args ...any) (rowSource, error) {
	return q.tx.QueryContext(q.ctx, query, args...)
}

// readChallenge reads the user's challenge and its codes, oldest first.
// ErrNotFound.
func readChallenge(q querier, ref twofa.UserRef, id string) (*twofa.Challenge, error) {
	c := &twofa.Challenge{}
	var lastSent, created, expires int64
	var consumed sql.NullInt64
	err := q.queryRow(`SELECT `+challengeCols+` FROM challenges WHERE id = ? AND tenant = ? AND user_id = ?`, id, ref.Tenant, ref.User).Scan(
		&c.ID, &c.Tenant, &c.User, &c.DeviceID, &c.Factor, &c.Purpose, &c.Attempts, &c.Sends, &lastSent, &created, &expires, &consumed)
	if err == sql.ErrNoRows {
		return nil, fmt.Errorf("challenge %s of %s: %w", id, ref, twofa.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: challenge: %w", err)
	}
	c.LastSentAt, c.CreatedAt, c.ExpiresAt, c.ConsumedAt = time.UnixMicro(lastSent).UTC(), time.UnixMicro(created).UTC(), time.UnixMicro(expires).UTC(), fromMicros(consumed)
	rows, err := q.query(`SELECT hash, expires_at FROM challenge_codes WHERE challenge_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("sqlite: challenge codes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k twofa.ChallengeCode
		var exp int64
		if err := rows.Scan(&k.Hash, &exp); err != nil {
			return nil, fmt.Errorf("sqlite: challenge codes: %w", err)
		}
		k.ExpiresAt = time.UnixMicro(exp).UTC()
		c.Codes = append(c.Codes, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: challenge codes: %w", err)
	}
	return c, nil
}

// SetRestrictedOnly sets whether a restricted factor may be a user's only
// one in the tenant.
func (s *Store) SetRestrictedOnly(ctx context.Context, tenant string, allow bool, now time.Time, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		if _, err := t.exec(`INSERT INTO tenants (id, restricted_only, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
			ON CONFLICT (id) DO UPDATE SET restricted_only = excluded.restricted_only, updated_at = excluded.updated_at`,
			tenant, allow, micros(now)); err != nil {
			return fmt.Errorf("sqlite: set restricted factors of %s: %w", tenant, err)
		}
		return t.appendEvents(e)
	})
}

// RestrictedOnly reports whether a restricted factor may be a user's only
// one in the tenant.
func (s *Store) RestrictedOnly(ctx context.Context, tenant string) (bool, error) {
	var allow bool
	err := s.r.QueryRowContext(ctx, `SELECT restricted_only FROM tenants WHERE id = ?`, tenant).Scan(&allow)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: restricted factors of %s: %w", tenant, err)
	}
	return allow, nil
}
