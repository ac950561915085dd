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

// Attempt makes one attempt in one transaction that first locks the
// user's row FOR NO KEY UPDATE, the first lock every change of the user's
// failures takes, so attempts on one user, from any process, run one
// after another. The user is read by a second statement of the same round
// trip, whose snapshot, under READ COMMITTED, is taken after the lock is
// held and so sees what the attempt before left. Devices and backup codes
// are not locked: each effect is a compare-and-set, which tells of a
// change in between.
//
// Every round trip waits for the network and for two schedulers, so the
// transaction takes three, pipelined on one connection: BEGIN, the lock,
// the read of the user, the counters and the factors' state; the effects,
// the user's failures, the audit chain's head and the sequence numbers;
// the counters the outcome counts, the audit entries, the new head and
// COMMIT. The outcome's counters are written in the last round trip, so
// a counter shared by many users (an address's) is held only while it
// runs, not across the network.
//
// The hits are counted first, each in a transaction of its own, as Hit
// counts them: inside the attempt's, a tenant's counter would stay locked
// until the attempt commits, and the tenant's attempts, from every
// replica, would commit one at a time.
//
// This function is the same for every factor: what a factor reads and
// writes is in factors.go.
func (s *Store) Attempt(ctx context.Context, a twofa.AttemptRequest, check func(*twofa.AttemptState) (*twofa.Outcome, error)) (err error) {
	ref := a.Ref
	st := &twofa.AttemptState{Hits: make([]int, len(a.Hits)), Peeks: make([]int, len(a.Peeks))}
	for i, h := range a.Hits {
		if st.Hits[i], err = s.hit(ctx, h, a.Now); err != nil {
			return err
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: Attempt: %w", err)
	}
	defer conn.Release()
	var answer error // the check's error, or the outcome's
	answered := false
	open := false
	defer func() {
		if open { // not committed: roll back, or drop the connection
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, rerr := conn.Exec(rctx, "ROLLBACK"); rerr != nil {
				conn.Conn().Close(rctx)
			}
		}
		if answered {
			err = answer // as check gave it, not the store's
		} else {
			wrap(&err, "Attempt")
		}
	}()

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockUser, ref.Tenant, ref.User)
	b.Queue(userQuery, ref.Tenant, ref.User)
	for _, h := range a.Peeks {
		if err := queueCount(b, h, a.Now); err != nil {
			return err
		}
	}
	queueReads(b, ref, a.Reads)
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
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			st.User, err = scanUser(ref, rows)
		}
	}
	for i := range a.Peeks {
		if err == nil {
			err = br.QueryRow().Scan(&st.Peeks[i])
		}
	}
	if err == nil {
		err = readFactors(br, a.Reads, st)
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return err
	}
	u := st.User
	o, err := check(st)
	if err != nil {
		answer, answered = err, true
		return err
	}

	// The effects and the user, then the chain's head and the events' numbers.
	b = &pgx.Batch{}
	for _, e := range o.Effects {
		if err := queueEffect(b, ref, a.Now, e); err != nil {
			return err
		}
	}
	userChanged := o.Failures != u.Failures || !o.LockedUntil.Equal(u.LockedUntil)
	if userChanged {
		b.Queue(`UPDATE users SET failures = $3, locked_until = $4 WHERE tenant = $1 AND user_id = $2`,
			ref.Tenant, ref.User, o.Failures, tstz(o.LockedUntil))
	}
	evs := nonNilEvents(o.Events)
	var chain int
	if len(evs) > 0 {
		chain = chainOf(evs[0])
		queueHead(b, chain, len(evs))
	}
	var prev []byte
	var seqs []int64
	if b.Len() > 0 {
		br = conn.SendBatch(ctx, b)
		for _, e := range o.Effects {
			tag, err := br.Exec()
			if err == nil && tag.RowsAffected() != 1 {
				err = fmt.Errorf("%T of %s: %w", e, ref, twofa.ErrReplayed)
			}
			if err != nil {
				br.Close()
				return err
			}
		}
		if len(evs) > 0 {
			pre := 0
			if userChanged {
				pre = 1
			}
			prev, seqs, err = readHead(br, pre, len(evs))
		}
		if err := errors.Join(err, br.Close()); err != nil {
			return err
		}
	}

	// The outcome's counters, the events, the new head and the commit.
	b = &pgx.Batch{}
	var sweep bool
	hits := o.Hits
	if o.Over != nil {
		hits = append(hits[:len(hits):len(hits)], o.Over.Hit) // the last one's count decides
	}
	for _, h := range hits {
		if err := queueHit(b, h, a.Now); err != nil {
			return err
		}
	}
	if len(evs) > 0 {
		if err := queueEvents(b, chain, seqs, prev, evs); err != nil {
			return err
		}
	}
	b.Queue("COMMIT")
	br = conn.SendBatch(ctx, b)
	var n int
	for range hits {
		if err = br.QueryRow().Scan(&n); err != nil {
			break
		}
		sweep = sweep || n == 1
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return err
	}
	open = false
	if sweep {
		s.sweepLimits(ctx, a.Now)
	}
	answer, answered = o.Err, true
	if o.Over != nil && n > o.Over.Max {
		answer = o.Over.Err
	}
	return answer
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
	return s.hit(ctx, twofa.LimitHit{Key: key, Window: window}, now)
}

// hit counts one event of the limit at now, in a transaction of its own,
// and returns its count.
func (s *Store) hit(ctx context.Context, h twofa.LimitHit, now time.Time) (int, error) {
	start, end, from, err := h.Slot(now)
	if err != nil {
		return 0, err
	}
	var n int
	if from == start {
		err = s.pool.QueryRow(ctx, hitSQL, h.Key, time.UnixMicro(start), time.UnixMicro(end)).Scan(&n)
	} else {
		err = s.pool.QueryRow(ctx, `WITH hit AS (`+hitSQL+`)
			SELECT (SELECT count FROM hit) + coalesce((SELECT sum(count) FROM limits
				WHERE key = $1 AND window_start >= $4 AND window_start < $2), 0)`,
			h.Key, time.UnixMicro(start), time.UnixMicro(end), time.UnixMicro(from)).Scan(&n)
	}
	if err != nil {
		return 0, err
	}
	if n == 1 {
		s.sweepLimits(ctx, now)
	}
	return n, nil
}

// hitSQL counts one event in a slot and returns the slot's count.
const hitSQL = `INSERT INTO limits (key, window_start, window_end, count) VALUES ($1, $2, $3, 1)
	ON CONFLICT (key, window_start, window_end) DO UPDATE SET count = limits.count + 1
	RETURNING count`

// queueHit queues the count of one event of the limit at now; its result
// is the slot's count.
func queueHit(b *pgx.Batch, h twofa.LimitHit, now time.Time) error {
	start, end, _, err := h.Slot(now)
	if err != nil {
		return err
	}
	b.Queue(hitSQL, h.Key, time.UnixMicro(start), time.UnixMicro(end))
	return nil
}

// queueCount queues the read of the limit's count at now.
func queueCount(b *pgx.Batch, h twofa.LimitHit, now time.Time) error {
	start, _, from, err := h.Slot(now)
	if err != nil {
		return err
	}
	b.Queue(`SELECT coalesce(sum(count), 0)::int FROM limits WHERE key = $1 AND window_start >= $2 AND window_start <= $3`,
		h.Key, time.UnixMicro(from), time.UnixMicro(start))
	return nil
}

// sweepLimits deletes some windows that have ended, when one opened.
// Best effort, and SKIP LOCKED so that sweepers never queue behind each
// other; a failure here undoes no count.
func (s *Store) sweepLimits(ctx context.Context, now time.Time) {
	_, _ = s.pool.Exec(ctx, `DELETE FROM limits WHERE ctid IN (
		SELECT ctid FROM limits WHERE window_end <= $1 LIMIT 1000 FOR UPDATE SKIP LOCKED)`, now.Truncate(time.Microsecond))
}
