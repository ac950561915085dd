package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa"
)

const challengeCols = `id, tenant, user_id, device_id, factor, purpose, attempts, sends, last_sent_at, created_at, expires_at, consumed_at`

// CreateChallenge stores a new challenge with its first code.
func (s *Store) CreateChallenge(ctx context.Context, c *twofa.Challenge, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "CreateChallenge")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, lockUser, c.Tenant, c.User)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return twofa.ErrNotFound
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO challenges (`+challengeCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			c.ID, c.Tenant, c.User, c.DeviceID, c.Factor, c.Purpose, c.Attempts, c.Sends,
			tstz(c.LastSentAt), tstz(c.CreatedAt), tstz(c.ExpiresAt), tstz(c.ConsumedAt))
		for i, k := range c.Codes {
			b.Queue(`INSERT INTO challenge_codes (challenge_id, seq, hash, expires_at) VALUES ($1, $2, $3, $4)`,
				c.ID, i+1, k.Hash, tstz(k.ExpiresAt))
		}
		return appendEvents(ctx, tx, b, e)
	})
}

// AddChallengeCode adds a code to a pending challenge, keeping the
// newest MaxLiveCodes. The challenge's row is locked first, so resends
// are taken one at a time.
func (s *Store) AddChallengeCode(ctx context.Context, ref twofa.UserRef, id string, code twofa.ChallengeCode, now time.Time, gap time.Duration, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "AddChallengeCode")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		c, err := readChallenge(ctx, tx, ref, id, true)
		if err != nil {
			return err
		}
		if c.State(now) != twofa.ChallengePending {
			return twofa.ErrChallengeEnded
		}
		if next := c.LastSentAt.Add(gap); next.After(now) {
			return twofa.RateLimitedError("codes for this challenge", next)
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO challenge_codes (challenge_id, seq, hash, expires_at)
			SELECT $1, coalesce(max(seq), 0) + 1, $2, $3 FROM challenge_codes WHERE challenge_id = $1`, id, code.Hash, tstz(code.ExpiresAt))
		b.Queue(`DELETE FROM challenge_codes WHERE challenge_id = $1 AND seq <= (SELECT max(seq) FROM challenge_codes WHERE challenge_id = $1) - $2`,
			id, twofa.MaxLiveCodes)
		expires := c.ExpiresAt
		if code.ExpiresAt.After(expires) {
			expires = code.ExpiresAt
		}
		b.Queue(`UPDATE challenges SET sends = sends + 1, last_sent_at = $2, expires_at = $3 WHERE id = $1`, id, tstz(now), tstz(expires))
		return appendEvents(ctx, tx, b, e)
	})
}

// Challenge returns the user's challenge with its codes.
func (s *Store) Challenge(ctx context.Context, ref twofa.UserRef, id string) (_ *twofa.Challenge, err error) {
	defer wrap(&err, "Challenge")
	var c *twofa.Challenge
	err = inTx(ctx, s.pool, func(tx pgx.Tx) error {
		c, err = readChallenge(ctx, tx, ref, id, false)
		return err
	})
	return c, err
}

// DeleteChallenges deletes challenges that ended before before, a
// thousand at a time, skipping rows other transactions hold.
func (s *Store) DeleteChallenges(ctx context.Context, before time.Time) (_ int, err error) {
	defer wrap(&err, "DeleteChallenges")
	tag, err := s.pool.Exec(ctx, `DELETE FROM challenges WHERE id IN (SELECT id FROM challenges
		WHERE expires_at < $1 OR consumed_at < $1 LIMIT 1000 FOR UPDATE SKIP LOCKED)`, tstz(before))
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// querier is a transaction or a batch's reader.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readChallenge reads the user's challenge, locking its row if lock, and
// its codes, oldest first. ErrNotFound.
func readChallenge(ctx context.Context, q querier, ref twofa.UserRef, id string, lock bool) (*twofa.Challenge, error) {
	query := `SELECT ` + challengeCols + ` FROM challenges WHERE id = $1 AND tenant = $2 AND user_id = $3`
	if lock {
		query += ` FOR UPDATE`
	}
	c, err := scanChallenge(q.QueryRow(ctx, query, id, ref.Tenant, ref.User))
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT hash, expires_at FROM challenge_codes WHERE challenge_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	c.Codes, err = pgx.CollectRows(rows, scanCode)
	return c, err
}

func scanChallenge(row pgx.Row) (*twofa.Challenge, error) {
	c := &twofa.Challenge{}
	err := row.Scan(&c.ID, &c.Tenant, &c.User, &c.DeviceID, &c.Factor, &c.Purpose, &c.Attempts, &c.Sends,
		when(&c.LastSentAt), when(&c.CreatedAt), when(&c.ExpiresAt), when(&c.ConsumedAt))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, twofa.ErrNotFound
	}
	return c, err
}

func scanCode(row pgx.CollectableRow) (twofa.ChallengeCode, error) {
	var k twofa.ChallengeCode
	err := row.Scan(&k.Hash, when(&k.ExpiresAt))
	return k, err
}

// SetRestrictedOnly sets whether a restricted factor may be a user's only
// one in the tenant.
func (s *Store) SetRestrictedOnly(ctx context.Context, tenant string, allow bool, now time.Time, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "SetRestrictedOnly")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO tenants (id, restricted_only, created_at, updated_at) VALUES ($1, $2, $3, $3)
			ON CONFLICT (id) DO UPDATE SET restricted_only = excluded.restricted_only, updated_at = excluded.updated_at`,
			tenant, allow, tstz(now))
		return appendEvents(ctx, tx, b, e)
	})
}

// RestrictedOnly reports whether a restricted factor may be a user's only
// one in the tenant.
func (s *Store) RestrictedOnly(ctx context.Context, tenant string) (_ bool, err error) {
	defer wrap(&err, "RestrictedOnly")
	var allow bool
	err = s.pool.QueryRow(ctx, `SELECT restricted_only FROM tenants WHERE id = $1`, tenant).Scan(&allow)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return allow, err
}
