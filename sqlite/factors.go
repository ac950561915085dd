package sqlite

import (
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
	}
	return false, fmt.Errorf("sqlite: attempt: unknown effect %T", e)
}
