package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/twofa/twofa"
)

// The factor state an attempt reads and the effects it writes: a new
// factor adds its read to readFactors and its effect to writeEffect,
// and Attempt stays as it is.

// readFactors reads the factor state named by r into st, in t.
func readFactors(t *wtx, ref twofa.UserRef, r twofa.AttemptReads, st *twofa.AttemptState) error {
	if r.BackupCode != nil {
		var n int
		if err := t.queryRow(findCodeSQL, ref.Tenant, ref.User, nonNil(r.BackupCode)).Scan(&n); err != nil {
			return fmt.Errorf("sqlite: find backup code: %w", err)
		}
		st.BackupCodeFound = n > 0
	}
	if r.Challenge != "" {
		c, err := readChallenge(wq{t}, ref, r.Challenge)
		if err != nil && !errors.Is(err, twofa.ErrNotFound) {
			return err
		}
		st.Challenge = c
	}
	return nil
}

// writeEffect writes one effect of an attempt's outcome, in t, and
// reports whether its condition held; when it did not, it wrote nothing.
// rowids are the rowids of the user's devices, as the attempt read them.
func writeEffect(t *wtx, ref twofa.UserRef, now time.Time, rowids map[string]int64, e twofa.Effect) (bool, error) {
	switch e := e.(type) {
	case twofa.AcceptStep:
		st, err := step(e.Step)
		if err != nil {
			return false, err
		}
		n, err := rowsAffected(t.exec(acceptRowSQL, st, e.Drift, micros(now), e.DeviceID, ref.Tenant, ref.User, rowids[e.DeviceID]))
		if err != nil {
			return false, fmt.Errorf("sqlite: accept step: %w", err)
		}
		return n == 1, nil
	case twofa.SpendBackupCode:
		n, err := rowsAffected(t.exec(spendCodeSQL, micros(now), ref.Tenant, ref.User, nonNil(e.Hash)))
		if err != nil {
			return false, fmt.Errorf("sqlite: spend backup code: %w", err)
		}
		return n == 1, nil
	case twofa.ConsumeChallenge:
		return one(t.exec(`UPDATE challenges SET consumed_at = ? WHERE id = ? AND tenant = ? AND user_id = ? AND consumed_at IS NULL`,
			now.UnixMicro(), e.ID, ref.Tenant, ref.User))
	case twofa.FailChallenge:
		return one(t.exec(`UPDATE challenges SET attempts = attempts + 1 WHERE id = ? AND tenant = ? AND user_id = ? AND consumed_at IS NULL`,
			e.ID, ref.Tenant, ref.User))
	case twofa.ActivateDevice:
		return one(t.exec(`UPDATE devices SET status = 'active', confirmed_at = ?1, last_used_at = ?1, expires_at = NULL
			WHERE id = ?2 AND tenant = ?3 AND user_id = ?4 AND status = 'pending' AND expires_at > ?1`,
			now.UnixMicro(), e.DeviceID, ref.Tenant, ref.User))
	case twofa.UseDevice:
		return one(t.exec(`UPDATE devices SET last_used_at = ? WHERE id = ? AND tenant = ? AND user_id = ? AND status = 'active'`,
			now.UnixMicro(), e.DeviceID, ref.Tenant, ref.User))
	}
	return false, fmt.Errorf("sqlite: attempt: unknown effect %T", e)
}

// one reports whether a statement changed exactly one row.
func one(res sql.Result, err error) (bool, error) {
	n, err := rowsAffected(res, err)
	if err != nil {
		return false, fmt.Errorf("sqlite: attempt: %w", err)
	}
	return n == 1, nil
}
