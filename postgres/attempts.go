package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/twofa/twofa"
)

// BeginAttempt counts one attempt, holding the user's row from reading the
// count and lock to writing them back, so that concurrent attempts, from
// any process, count one by one and none slips past a lock.
func (s *Store) BeginAttempt(ctx context.Context, ref twofa.UserRef, now time.Time, lockUntil func(failures int, now time.Time) time.Time) (failures int, err error) {
	defer wrap(&err, "BeginAttempt")
	err = inTx(ctx, s.pool, func(tx pgx.Tx) error {
		var n int
		var until time.Time
		err := tx.QueryRow(ctx, `SELECT failures, locked_until FROM users WHERE tenant = $1 AND user_id = $2 FOR NO KEY UPDATE`,
			ref.Tenant, ref.User).Scan(&n, when(&until))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return twofa.ErrNotFound
		case err != nil:
			return err
		case until.After(now):
			return twofa.LockedError(until)
		}
		n++
		if lock := lockUntil(n, now); lock.After(now) {
			until = lock
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET failures = $3, locked_until = $4 WHERE tenant = $1 AND user_id = $2`,
			ref.Tenant, ref.User, n, tstz(until)); err != nil {
			return err
		}
		failures = n
		return nil
	})
	return failures, err
}

// Attempt makes one verification attempt in one transaction that first
// locks the user's row FOR NO KEY UPDATE, the first lock every change of
// the user's failures takes, so attempts on one user, from any process,
// run one after another. The user is read by a second statement of the
// same round trip, whose snapshot, under READ COMMITTED, is taken after
// the lock is held and so sees what the attempt before left. Devices are
// not locked: the step is accepted with AcceptStep's compare-and-set,
// which tells of a step accepted in between (by a resync).
//
// Every round trip waits for the network and for two schedulers, so the
// transaction takes three, pipelined on one connection: BEGIN, the lock
// and the read; the writes, the audit chain's head and the sequence
// numbers; the audit entries, the new head and COMMIT.
//
// The hits are counted first, each in a transaction of its own, as Hit
// counts them: inside the attempt's, a tenant's counter would stay locked
// until the attempt commits, and the tenant's verifications, from every
// replica, would commit one at a time.
func (s *Store) Attempt(ctx context.Context, a twofa.AttemptRequest, check func(u *twofa.User, hits []int) (*twofa.Outcome, error)) (err error) {
	ref := a.Ref
	counts := make([]int, len(a.Hits))
	for i, h := range a.Hits {
		if counts[i], err = s.Hit(ctx, h.Key, h.Window, a.Now); err != nil {
			return err
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: Attempt: %w", err)
	}
	defer conn.Release()
	var checkErr error
	open := false
	defer func() {
		if open { // not committed: roll back, or drop the connection
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, rerr := conn.Exec(rctx, "ROLLBACK"); rerr != nil {
				conn.Conn().Close(rctx)
			}
		}
		if checkErr != nil {
			err = checkErr // as check gave it, not the store's
		} else {
			wrap(&err, "Attempt")
		}
	}()

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockUser, ref.Tenant, ref.User)
	b.Queue(userQuery, ref.Tenant, ref.User)
	open = true
	br := conn.SendBatch(ctx, b)
	_, err = br.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if err == nil && tag.RowsAffected() == 0 {
		err = twofa.ErrNotFound
	}
	var u *twofa.User
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			u, err = scanUser(ref, rows)
		}
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return err
	}
	o, err := check(u, counts)
	if err != nil {
		checkErr = err
		return err
	}

	// The writes, then the chain's head and the events' numbers.
	b = &pgx.Batch{}
	if a := o.Accept; a != nil {
		st, err := step(a.Step)
		if err != nil {
			return err
		}
		b.Queue(`UPDATE devices SET last_step = $1, drift = $2, last_used_at = $3, resync_step = 0, resync_at = NULL
			WHERE id = $4 AND tenant = $5 AND user_id = $6 AND status = 'active' AND last_step < $1`,
			st, a.Drift, tstz(a.Now), a.DeviceID, ref.Tenant, ref.User)
	}
	if o.Failures != u.Failures || !o.LockedUntil.Equal(u.LockedUntil) {
		b.Queue(`UPDATE users SET failures = $3, locked_until = $4 WHERE tenant = $1 AND user_id = $2`,
			ref.Tenant, ref.User, o.Failures, tstz(o.LockedUntil))
	}
	evs := nonNilEvents(o.Events)
	var chain int
	if len(evs) > 0 {
		chain = chainOf(evs[0])
		queueHead(b, chain, len(evs))
	}
	br = conn.SendBatch(ctx, b)
	if o.Accept != nil {
		tag, err := br.Exec()
		if err == nil && tag.RowsAffected() == 0 {
			err = twofa.ErrReplayed
		}
		if err != nil {
			br.Close()
			return err
		}
	}
	var prev []byte
	var seqs []int64
	if len(evs) > 0 {
		pre := b.Len() - 2 // the statements before queueHead's
		if o.Accept != nil {
			pre-- // read above
		}
		prev, seqs, err = readHead(br, pre, len(evs))
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return err
	}

	// The events, the new head and the commit.
	b = &pgx.Batch{}
	if len(evs) > 0 {
		if err := queueEvents(b, chain, seqs, prev, evs); err != nil {
			return err
		}
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	open = false
	return nil
}

// AcceptStep accepts a TOTP step with one compare-and-set UPDATE.
func (s *Store) AcceptStep(ctx context.Context, a twofa.StepAcceptance) (err error) {
	defer wrap(&err, "AcceptStep")
	st, err := step(a.Step)
	if err != nil {
		return err
	}
	ref := a.Ref
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		if a.ResetFailures {
			// The user's row before the device's, like everyone else.
			b.Queue(`UPDATE users SET failures = 0, locked_until = NULL WHERE tenant = $1 AND user_id = $2`, ref.Tenant, ref.User)
		}
		b.Queue(`UPDATE devices SET last_step = $1, drift = $2, last_used_at = $3, resync_step = 0, resync_at = NULL
			WHERE id = $4 AND tenant = $5 AND user_id = $6 AND status = 'active' AND last_step < $1`,
			st, a.Drift, tstz(a.Now), a.DeviceID, ref.Tenant, ref.User)
		br := tx.SendBatch(ctx, b)
		var users, devices int64 = 1, 0
		var err error
		if a.ResetFailures {
			var tag pgconn.CommandTag
			tag, err = br.Exec()
			users = tag.RowsAffected()
		}
		if err == nil {
			var tag pgconn.CommandTag
			tag, err = br.Exec()
			devices = tag.RowsAffected()
		}
		if err := errors.Join(err, br.Close()); err != nil {
			return err
		}
		if users == 0 {
			return twofa.ErrNotFound
		}
		if devices == 0 {
			// Rare: tell a replay from a missing device.
			var status string
			err := tx.QueryRow(ctx, `SELECT status FROM devices WHERE id = $1 AND tenant = $2 AND user_id = $3`,
				a.DeviceID, ref.Tenant, ref.User).Scan(&status)
			switch {
			case errors.Is(err, pgx.ErrNoRows) || err == nil && status != string(twofa.StatusActive):
				return twofa.ErrNotFound
			case err != nil:
				return err
			}
			return twofa.ErrReplayed
		}
		return appendEvents(ctx, tx, nil, a.Event)
	})
}

// SetResync remembers the first code of a resync pair for the device.
func (s *Store) SetResync(ctx context.Context, ref twofa.UserRef, deviceID string, resync uint64, at time.Time, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "SetResync")
	st, err := step(resync)
	if err != nil {
		return err
	}
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE devices SET resync_step = $1, resync_at = $2 WHERE id = $3 AND tenant = $4 AND user_id = $5`,
			st, tstz(at), deviceID, ref.Tenant, ref.User)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return twofa.ErrNotFound
		}
		return appendEvents(ctx, tx, nil, e)
	})
}

// Unlock clears the user's failure count and lock.
func (s *Store) Unlock(ctx context.Context, ref twofa.UserRef, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "Unlock")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET failures = 0, locked_until = NULL WHERE tenant = $1 AND user_id = $2`,
			ref.Tenant, ref.User)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return twofa.ErrNotFound
		}
		return appendEvents(ctx, tx, nil, e)
	})
}

// ConsumeBackupCode spends the unused code with this hash. The UPDATE's
// "used_at IS NULL" is the compare-and-set: of concurrent calls, the ones
// that lose find the code used and change nothing.
func (s *Store) ConsumeBackupCode(ctx context.Context, ref twofa.UserRef, hash []byte, now time.Time, e *twofa.AuditEvent) (remaining int, err error) {
	defer wrap(&err, "ConsumeBackupCode")
	err = inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		// The user's row first, so that the code is counted under the lock
		// ReplaceBackupCodes takes.
		b.Queue(`UPDATE users SET failures = 0, locked_until = NULL WHERE tenant = $1 AND user_id = $2`, ref.Tenant, ref.User)
		// One snapshot: the count of unused codes still includes this one.
		b.Queue(`WITH used AS (
				UPDATE backup_codes SET used_at = coalesce($3, now())
				WHERE tenant = $1 AND user_id = $2 AND hash = $4 AND used_at IS NULL RETURNING 1)
			SELECT (SELECT count(*) FROM used),
				(SELECT count(*) FROM backup_codes WHERE tenant = $1 AND user_id = $2 AND used_at IS NULL)`,
			ref.Tenant, ref.User, tstz(now), hash)
		br := tx.SendBatch(ctx, b)
		var used, unused int
		tag, err := br.Exec()
		if err == nil {
			err = br.QueryRow().Scan(&used, &unused)
		}
		if err := errors.Join(err, br.Close()); err != nil {
			return err
		}
		if tag.RowsAffected() == 0 || used == 0 {
			return twofa.ErrNotFound
		}
		remaining = unused - used
		return appendEvents(ctx, tx, nil, e)
	})
	return remaining, err
}

// ReplaceBackupCodes replaces all of the user's backup codes.
func (s *Store) ReplaceBackupCodes(ctx context.Context, ref twofa.UserRef, hashes [][]byte, now time.Time, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "ReplaceBackupCodes")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, lockUser, ref.Tenant, ref.User)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return twofa.ErrNotFound
		}
		b := &pgx.Batch{}
		queueReplaceCodes(b, ref, hashes, now)
		return appendEvents(ctx, tx, b, e)
	})
}

// queueReplaceCodes queues the replacement of the user's backup codes; the
// caller holds the user's row. A hash given twice is one code.
func queueReplaceCodes(b *pgx.Batch, ref twofa.UserRef, hashes [][]byte, now time.Time) {
	b.Queue(`DELETE FROM backup_codes WHERE tenant = $1 AND user_id = $2`, ref.Tenant, ref.User)
	if len(hashes) > 0 {
		b.Queue(`INSERT INTO backup_codes (tenant, user_id, hash, created_at)
			SELECT $1, $2, h, $4 FROM unnest($3::bytea[]) AS h ON CONFLICT DO NOTHING`,
			ref.Tenant, ref.User, hashes, tstz(now))
	}
}

// Hit counts one event for key in its window with one upsert.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration, now time.Time) (_ int, err error) {
	defer wrap(&err, "Hit")
	w := window.Microseconds()
	if w <= 0 {
		return 0, fmt.Errorf("window %v is shorter than a microsecond", window)
	}
	us := now.UnixMicro()
	start := us - (us%w+w)%w // floor, before the epoch too
	var n int
	err = s.pool.QueryRow(ctx, `INSERT INTO limits (key, window_start, window_end, count) VALUES ($1, $2, $3, 1)
		ON CONFLICT (key, window_start, window_end) DO UPDATE SET count = limits.count + 1
		RETURNING count`, key, time.UnixMicro(start), time.UnixMicro(start+w)).Scan(&n)
	if err != nil {
		return 0, err
	}
	if n == 1 {
		// A window opened: sweep some that have ended. Best effort, and
		// SKIP LOCKED so that sweepers never queue behind each other;
		// a failure here does not undo the hit.
		_, _ = s.pool.Exec(ctx, `DELETE FROM limits WHERE ctid IN (
			SELECT ctid FROM limits WHERE window_end <= $1 LIMIT 1000 FOR UPDATE SKIP LOCKED)`, now.Truncate(time.Microsecond))
	}
	return n, nil
}
