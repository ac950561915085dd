package postgres

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa"
)

// The factor state an attempt reads and the effects it writes: a new
// factor adds its read to queueReads and readFactors and its effect to
// queueEffect, and Attempt stays as it is.

// queueReads queues the reads of the factor state r names; readFactors
// reads their results, in the same order.
func queueReads(b *pgx.Batch, ref twofa.UserRef, r twofa.AttemptReads) {
	if r.BackupCode != nil {
		b.Queue(`SELECT count(*) FROM backup_codes WHERE tenant = $1 AND user_id = $2 AND hash = $3 AND used_at IS NULL`,
			ref.Tenant, ref.User, r.BackupCode)
	}
	if r.Challenge != "" {
		b.Queue(`SELECT `+challengeCols+` FROM challenges WHERE id = $1 AND tenant = $2 AND user_id = $3`, r.Challenge, ref.Tenant, ref.User)
		b.Queue(`SELECT hash, expires_at FROM challenge_codes WHERE challenge_id = $1 ORDER BY seq`, r.Challenge)
	}
}

// readFactors reads the results of queueReads into st.
func readFactors(br pgx.BatchResults, r twofa.AttemptReads, st *twofa.AttemptState) error {
	if r.BackupCode != nil {
		var n int
		if err := br.QueryRow().Scan(&n); err != nil {
			return err
		}
		st.BackupCodeFound = n > 0
	}
	if r.Challenge != "" {
		c, err := scanChallenge(br.QueryRow())
		if err != nil && !errors.Is(err, twofa.ErrNotFound) {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		codes, err := pgx.CollectRows(rows, scanCode)
		if err != nil {
			return err
		}
		if c != nil {
			c.Codes = codes
		}
		st.Challenge = c
	}
	return nil
}

// queueEffect queues one effect of an attempt's outcome: one statement
// whose condition holds when it changes exactly one row.
func queueEffect(b *pgx.Batch, ref twofa.UserRef, now time.Time, e twofa.Effect) error {
	switch e := e.(type) {
	case twofa.AcceptStep:
		st, err := step(e.Step)
		if err != nil {
			return err
		}
		b.Queue(`UPDATE devices SET last_step = $1, drift = $2, last_used_at = $3
			WHERE id = $4 AND tenant = $5 AND user_id = $6 AND status = 'active' AND last_step < $1`,
			st, e.Drift, tstz(now), e.DeviceID, ref.Tenant, ref.User)
	case twofa.SpendBackupCode:
		b.Queue(`UPDATE backup_codes SET used_at = $3 WHERE tenant = $1 AND user_id = $2 AND hash = $4 AND used_at IS NULL`,
			ref.Tenant, ref.User, tstz(now), e.Hash)
	case twofa.ConsumeChallenge:
		b.Queue(`UPDATE challenges SET consumed_at = $4 WHERE id = $1 AND tenant = $2 AND user_id = $3 AND consumed_at IS NULL`,
			e.ID, ref.Tenant, ref.User, tstz(now))
	case twofa.FailChallenge:
		b.Queue(`UPDATE challenges SET attempts = attempts + 1 WHERE id = $1 AND tenant = $2 AND user_id = $3 AND consumed_at IS NULL`,
			e.ID, ref.Tenant, ref.User)
	case twofa.ActivateDevice:
		b.Queue(`UPDATE devices SET status = 'active', confirmed_at = $4, last_used_at = $4, expires_at = NULL
			WHERE id = $1 AND tenant = $2 AND user_id = $3 AND status = 'pending' AND expires_at > $4`,
			e.DeviceID, ref.Tenant, ref.User, tstz(now))
	case twofa.UseDevice:
		b.Queue(`UPDATE devices SET last_used_at = $4 WHERE id = $1 AND tenant = $2 AND user_id = $3 AND status = 'active'`,
			e.DeviceID, ref.Tenant, ref.User, tstz(now))
	default:
		return fmt.Errorf("attempt: unknown effect %T", e)
	}
	return nil
}
