package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/twofa/twofa"
)

// BeginAttempt counts one attempt for the user before it is checked.
func (s *Store) BeginAttempt(ctx context.Context, ref twofa.UserRef, now time.Time, lockUntil func(failures int, now time.Time) time.Time) (int, error) {
	var failures int
	err := s.write(ctx, func(t *wtx) error {
		err := t.queryRow(beginAttemptSQL, ref.Tenant, ref.User, now.UnixMicro()).Scan(&failures)
		if err == sql.ErrNoRows {
			var locked sql.NullInt64
			err := t.queryRow(userLockSQL, ref.Tenant, ref.User).Scan(&locked)
			if err == sql.ErrNoRows {
				return fmt.Errorf("user %s: %w", ref, twofa.ErrNotFound)
			} else if err != nil {
				return fmt.Errorf("sqlite: begin attempt: %w", err)
			}
			return twofa.LockedError(fromMicros(locked))
		} else if err != nil {
			return fmt.Errorf("sqlite: begin attempt: %w", err)
		}
		if until := lockUntil(failures, now); until.After(now) {
			if _, err := t.exec(setLockSQL, micros(until), ref.Tenant, ref.User); err != nil {
				return fmt.Errorf("sqlite: lock user: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return failures, nil
}

// Attempt makes one verification attempt in one write transaction, hits
// included. The writer runs one transaction at a time, and other
// processes wait for SQLite's write lock, so nothing can change the user
// in between. The hits stand whatever becomes of the attempt (commitWith).
func (s *Store) Attempt(ctx context.Context, a twofa.AttemptRequest, check func(u *twofa.User, hits []int) (*twofa.Outcome, error)) error {
	ref := a.Ref
	return s.write(ctx, func(t *wtx) error {
		counts := make([]int, len(a.Hits))
		for i, h := range a.Hits {
			n, err := s.hit(t, h.Key, h.Window, a.Now)
			if err != nil {
				return err
			}
			counts[i] = n
		}
		refuse := func(err error) error {
			if len(a.Hits) > 0 {
				return commitWith{err}
			}
			return err
		}
		rows, err := t.query(userQuery, ref.Tenant, ref.User)
		if err != nil {
			return fmt.Errorf("sqlite: attempt: %w", err)
		}
		u, rowids, err := scanUser(ref, rows)
		if cerr := rows.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("sqlite: attempt: %w", cerr)
		}
		if errors.Is(err, twofa.ErrNotFound) {
			return refuse(err)
		}
		if err != nil {
			return err
		}
		o, err := check(u, counts)
		if err != nil {
			return refuse(err)
		}
		if a := o.Accept; a != nil {
			st, err := step(a.Step)
			if err != nil {
				return err
			}
			n, err := rowsAffected(t.exec(acceptRowSQL, st, a.Drift, micros(a.Now), a.DeviceID, ref.Tenant, ref.User, rowids[a.DeviceID]))
			if err != nil {
				return fmt.Errorf("sqlite: accept step: %w", err)
			}
			if n == 0 {
				// Nothing written since the hits.
				return refuse(fmt.Errorf("device %s of %s, step %d: %w", a.DeviceID, ref, a.Step, twofa.ErrReplayed))
			}
		}
		if o.Failures != u.Failures || !o.LockedUntil.Equal(u.LockedUntil) {
			if _, err := t.exec(setAttemptsSQL, o.Failures, micros(o.LockedUntil), ref.Tenant, ref.User); err != nil {
				return fmt.Errorf("sqlite: attempt: %w", err)
			}
		}
		return t.appendEvents(o.Events...)
	})
}

// AcceptStep accepts a TOTP step for an active device, if it is newer than
// the device's last accepted step.
func (s *Store) AcceptStep(ctx context.Context, a twofa.StepAcceptance) error {
	st, err := step(a.Step)
	if err != nil {
		return err
	}
	return s.write(ctx, func(t *wtx) error {
		n, err := rowsAffected(t.exec(acceptStepSQL, st, a.Drift, micros(a.Now), a.DeviceID, a.Ref.Tenant, a.Ref.User))
		if err != nil {
			return fmt.Errorf("sqlite: accept step: %w", err)
		}
		if n == 0 {
			var one int
			err := t.queryRow(activeDeviceSQL, a.DeviceID, a.Ref.Tenant, a.Ref.User).Scan(&one)
			switch {
			case err == sql.ErrNoRows:
				return fmt.Errorf("active device %s of %s: %w", a.DeviceID, a.Ref, twofa.ErrNotFound)
			case err != nil:
				return fmt.Errorf("sqlite: accept step: %w", err)
			}
			return fmt.Errorf("device %s of %s, step %d: %w", a.DeviceID, a.Ref, a.Step, twofa.ErrReplayed)
		}
		if a.ResetFailures {
			if _, err := t.exec(resetFailuresSQL, a.Ref.Tenant, a.Ref.User); err != nil {
				return fmt.Errorf("sqlite: reset failures: %w", err)
			}
		}
		return t.appendEvents(a.Event)
	})
}

// SetResync remembers the first code of a resync pair for the device.
func (s *Store) SetResync(ctx context.Context, ref twofa.UserRef, deviceID string, stp uint64, at time.Time, e *twofa.AuditEvent) error {
	st, err := step(stp)
	if err != nil {
		return err
	}
	return s.write(ctx, func(t *wtx) error {
		n, err := rowsAffected(t.exec(`UPDATE devices SET resync_step = ?, resync_at = ?
			WHERE id = ? AND tenant = ? AND user_id = ?`, st, micros(at), deviceID, ref.Tenant, ref.User))
		if err != nil {
			return fmt.Errorf("sqlite: set resync: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("device %s of %s: %w", deviceID, ref, twofa.ErrNotFound)
		}
		return t.appendEvents(e)
	})
}

// Unlock clears the user's failure count and lock.
func (s *Store) Unlock(ctx context.Context, ref twofa.UserRef, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		n, err := rowsAffected(t.exec(resetFailuresSQL, ref.Tenant, ref.User))
		if err != nil {
			return fmt.Errorf("sqlite: unlock: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("user %s: %w", ref, twofa.ErrNotFound)
		}
		return t.appendEvents(e)
	})
}

// ConsumeBackupCode spends the user's unused backup code with this hash.
func (s *Store) ConsumeBackupCode(ctx context.Context, ref twofa.UserRef, hash []byte, now time.Time, e *twofa.AuditEvent) (int, error) {
	var remaining int
	err := s.write(ctx, func(t *wtx) error {
		n, err := rowsAffected(t.exec(consumeCodeSQL, micros(now), ref.Tenant, ref.User, nonNil(hash)))
		if err != nil {
			return fmt.Errorf("sqlite: consume backup code: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("backup code of %s: %w", ref, twofa.ErrNotFound)
		}
		if _, err := t.exec(resetFailuresSQL, ref.Tenant, ref.User); err != nil {
			return fmt.Errorf("sqlite: reset failures: %w", err)
		}
		if err := t.queryRow(countCodesSQL, ref.Tenant, ref.User).Scan(&remaining); err != nil {
			return fmt.Errorf("sqlite: count backup codes: %w", err)
		}
		return t.appendEvents(e)
	})
	if err != nil {
		return 0, err
	}
	return remaining, nil
}

// ReplaceBackupCodes replaces all of the user's backup codes.
func (s *Store) ReplaceBackupCodes(ctx context.Context, ref twofa.UserRef, hashes [][]byte, now time.Time, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		if err := userExists(t, ref); err != nil {
			return err
		}
		if err := insertCodes(t, ref, hashes, now); err != nil {
			return err
		}
		return t.appendEvents(e)
	})
}

// Hit counts one event for key in the window containing now.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	var count int
	err := s.write(ctx, func(t *wtx) error {
		var err error
		count, err = s.hit(t, key, window, now)
		return err
	})
	if err != nil {
		return 0, err
	}
	return count, nil
}

// hit counts one event for key in the window containing now, in t.
func (s *Store) hit(t *wtx, key string, window time.Duration, now time.Time) (int, error) {
	w := window.Microseconds()
	if w <= 0 {
		return 0, fmt.Errorf("sqlite: hit %q: window %v is shorter than a microsecond", key, window)
	}
	us := now.UnixMicro()
	start := us / w * w
	if us < 0 && us%w != 0 {
		start -= w // floor, for times before 1970
	}
	var count int
	if err := t.queryRow(hitSQL, key, start, start+w).Scan(&count); err != nil {
		return 0, fmt.Errorf("sqlite: hit %q: %w", key, err)
	}
	// Ended windows are swept now and then, by whichever process gets
	// there; the sweep uses the index on window_end.
	last := s.lastSweep.Load()
	if (us-last >= sweepEvery.Microseconds() || us < last) && s.lastSweep.CompareAndSwap(last, us) {
		if _, err := t.exec(sweepSQL, us); err != nil {
			return 0, fmt.Errorf("sqlite: sweep limits: %w", err)
		}
	}
	return count, nil
}
