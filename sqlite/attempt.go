package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twofa/twofa"
)

// Attempt makes one attempt in one write transaction, hits, reads and
// writes included. The writer runs one transaction at a time, and other
// processes wait for SQLite's write lock, so nothing can change the user
// in between. The hits stand whatever becomes of the attempt (commitWith).
//
// This function is the same for every factor: what a factor reads is in
// readFactors, what it writes in writeEffect (factors.go).
func (s *Store) Attempt(ctx context.Context, a twofa.AttemptRequest, check func(*twofa.AttemptState) (*twofa.Outcome, error)) error {
	ref := a.Ref
	return s.write(ctx, func(t *wtx) error {
		st := &twofa.AttemptState{Hits: make([]int, len(a.Hits)), Peeks: make([]int, len(a.Peeks))}
		for i, h := range a.Hits {
			n, err := s.hit(t, h, a.Now)
			if err != nil {
				return err
			}
			st.Hits[i] = n
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
		st.User = u
		for i, h := range a.Peeks {
			if st.Peeks[i], err = count(t, h, a.Now); err != nil {
				return err
			}
		}
		if err := readFactors(t, ref, a.Reads, st); err != nil {
			return err
		}
		o, err := check(st)
		if err != nil {
			return refuse(err)
		}
		for _, e := range o.Effects {
			ok, err := writeEffect(t, ref, a.Now, rowids, e)
			if err != nil {
				return err
			}
			if !ok {
				// Nothing written since the hits.
				return refuse(fmt.Errorf("%T of %s: %w", e, ref, twofa.ErrReplayed))
			}
		}
		if o.Failures != u.Failures || !o.LockedUntil.Equal(u.LockedUntil) {
			if _, err := t.exec(setAttemptsSQL, o.Failures, micros(o.LockedUntil), ref.Tenant, ref.User); err != nil {
				return fmt.Errorf("sqlite: attempt: %w", err)
			}
		}
		for _, h := range o.Hits {
			if _, err := s.hit(t, h, a.Now); err != nil {
				return err
			}
		}
		answer := o.Err
		if ov := o.Over; ov != nil {
			n, err := s.hit(t, ov.Hit, a.Now)
			if err != nil {
				return err
			}
			if n > ov.Max {
				answer = ov.Err
			}
		}
		if err := t.appendEvents(o.Events...); err != nil {
			return err
		}
		if answer != nil {
			return commitWith{answer}
		}
		return nil
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
	var n int
	err := s.write(ctx, func(t *wtx) error {
		var err error
		n, err = s.hit(t, twofa.LimitHit{Key: key, Window: window}, now)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// hit counts one event of the limit at now, in t, and returns its count.
func (s *Store) hit(t *wtx, h twofa.LimitHit, now time.Time) (int, error) {
	start, end, from, err := h.Slot(now)
	if err != nil {
		return 0, fmt.Errorf("sqlite: hit: %w", err)
	}
	var n int
	if err := t.queryRow(hitSQL, h.Key, start, end).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: hit %q: %w", h.Key, err)
	}
	if from != start {
		if n, err = count(t, h, now); err != nil {
			return 0, err
		}
	}
	// Ended windows are swept now and then, by whichever process gets
	// there; the sweep uses the index on window_end.
	us := now.UnixMicro()
	last := s.lastSweep.Load()
	if (us-last >= sweepEvery.Microseconds() || us < last) && s.lastSweep.CompareAndSwap(last, us) {
		if _, err := t.exec(sweepSQL, us); err != nil {
			return 0, fmt.Errorf("sqlite: sweep limits: %w", err)
		}
	}
	return n, nil
}

// count returns the limit's count at now, in t, counting nothing.
func count(t *wtx, h twofa.LimitHit, now time.Time) (int, error) {
	start, _, from, err := h.Slot(now)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count: %w", err)
	}
	var n int
	if err := t.queryRow(countSQL, h.Key, from, start).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count %q: %w", h.Key, err)
	}
	return n, nil
}
