package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
)

// deviceCols are the columns deviceRow scans, in its order.
const deviceCols = `id, tenant, user_id, kind, name, status, secret, key_id, algorithm, digits, period, t0,
	last_step, drift, created_at, expires_at, confirmed_at, last_used_at, address_index`

// userQuery reads a user, their devices oldest first (insertion order
// among equal times) and their unused backup codes in one statement, so
// one implicit read transaction sees them all.
const userQuery = `SELECT u.failures, u.locked_until, u.created_at,
	(SELECT count(*) FROM backup_codes b WHERE b.tenant = u.tenant AND b.user_id = u.user_id AND b.used_at IS NULL),
	d.id, d.tenant, d.user_id, d.kind, d.name, d.status, d.secret, d.key_id, d.algorithm, d.digits, d.period, d.t0,
	d.last_step, d.drift, d.created_at, d.expires_at, d.confirmed_at, d.last_used_at, d.address_index, d.rowid
FROM users u LEFT JOIN devices d ON d.tenant = u.tenant AND d.user_id = u.user_id
WHERE u.tenant = ? AND u.user_id = ?
ORDER BY d.created_at, d.rowid`

const auditCols = `seq, time, type, tenant, user_id, device, factor, reason, actor, ip, user_agent, detail, prev_hash, hash`

// Statements of the verify path. Every write statement is prepared once
// on the write connection, as it first runs (wtx.stmt).
const (
	setAttemptsSQL   = `UPDATE users SET failures = ?, locked_until = ? WHERE tenant = ? AND user_id = ?`
	resetFailuresSQL = `UPDATE users SET failures = 0, locked_until = NULL WHERE tenant = ? AND user_id = ?`
	// The compare-and-set of a time step (twofa.AcceptStep): only a newer
	// step of an active device changes the row. It finds the row by the
	// rowid the attempt read, so that it does not descend the index on id
	// too: with a million users that was one more page per verification
	// to read and keep cached.
	acceptRowSQL = `UPDATE devices SET last_step = ?1, drift = ?2, last_used_at = ?3
		WHERE rowid = ?7 AND id = ?4 AND tenant = ?5 AND user_id = ?6 AND status = 'active' AND last_step < ?1`
	// Spending a code (twofa.SpendBackupCode): only an unused one changes.
	spendCodeSQL   = `UPDATE backup_codes SET used_at = ? WHERE tenant = ? AND user_id = ? AND hash = ? AND used_at IS NULL`
	findCodeSQL    = `SELECT count(*) FROM backup_codes WHERE tenant = ? AND user_id = ? AND hash = ? AND used_at IS NULL`
	countCodesSQL  = `SELECT count(*) FROM backup_codes WHERE tenant = ? AND user_id = ? AND used_at IS NULL`
	auditHeadSQL   = `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`
	auditInsertSQL = `INSERT INTO audit (` + auditCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	hitSQL         = `INSERT INTO limits (key, window_start, window_end, count) VALUES (?, ?, ?, 1)
		ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1 RETURNING count`
	countSQL = `SELECT coalesce(sum(count), 0) FROM limits WHERE key = ? AND window_start >= ? AND window_start <= ?`
	sweepSQL = `DELETE FROM limits WHERE window_end <= ?`
)

// prepare prepares the statements of the read pool.
func (s *Store) prepare(ctx context.Context) error {
	st, err := s.r.PrepareContext(ctx, userQuery)
	if err != nil {
		return fmt.Errorf("prepare user query: %w", err)
	}
	s.userStmt = st
	return nil
}

// deviceRow scans deviceCols; every field is nullable for LEFT JOINs.
type deviceRow struct {
	id, tenant, user, kind, name, status    sql.NullString
	secret, addressIndex                    []byte
	keyID, alg, digits, period, t0          sql.NullInt64
	lastStep, drift                         sql.NullInt64
	createdAt, expiresAt, confirmedAt, used sql.NullInt64
}

func (r *deviceRow) dest() []any {
	return []any{&r.id, &r.tenant, &r.user, &r.kind, &r.name, &r.status, &r.secret, &r.keyID, &r.alg, &r.digits, &r.period, &r.t0,
		&r.lastStep, &r.drift, &r.createdAt, &r.expiresAt, &r.confirmedAt, &r.used, &r.addressIndex}
}

func (r *deviceRow) device() *twofa.Device {
	return &twofa.Device{
		ID:     r.id.String,
		Tenant: r.tenant.String,
		User:   r.user.String,
		Kind:   twofa.DeviceKind(r.kind.String),
		Name:   r.name.String,
		Status: twofa.DeviceStatus(r.status.String),
		Secret: r.secret,
		KeyID:  uint32(r.keyID.Int64),
		Params: otp.Params{
			Algorithm: otp.Algorithm(r.alg.Int64),
			Digits:    int(r.digits.Int64),
			Period:    int(r.period.Int64),
			T0:        r.t0.Int64,
		},
		LastStep:    unstep(r.lastStep.Int64),
		Drift:       int(r.drift.Int64),
		CreatedAt:   fromMicros(r.createdAt),
		ExpiresAt:   fromMicros(r.expiresAt),
		ConfirmedAt: fromMicros(r.confirmedAt),
		LastUsedAt:  fromMicros(r.used),

		AddressIndex: r.addressIndex,
	}
}

// rowSource is sql.Rows, or rows of the write connection.
type rowSource interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// scanDevices reads rows of deviceCols.
func scanDevices[R rowSource](rows R, err error) ([]*twofa.Device, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ds []*twofa.Device
	for rows.Next() {
		var r deviceRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, err
		}
		ds = append(ds, r.device())
	}
	return ds, rows.Err()
}

// appendEvents links the non-nil events to the head of the log and
// inserts them, each with the outbox messages it carries. It runs inside a write transaction, which holds SQLite's
// write lock: no other writer, in any process, can move the head. The head
// is read once per transaction and then followed as this transaction's
// inserts move it (wtx.head, forgotten at every rollback), so a write in a
// batch links to the event inserted by the write before it.
func (t *wtx) appendEvents(events ...*twofa.AuditEvent) error {
	for _, e := range events {
		if e == nil {
			continue
		}
		if !t.head.ok {
			var seq int64
			var prev []byte
			err := t.queryRow(auditHeadSQL).Scan(&seq, &prev)
			if err != nil && err != sql.ErrNoRows {
				return fmt.Errorf("sqlite: audit head: %w", err)
			}
			t.head.seq, t.head.hash, t.head.ok = seq, prev, true
		}
		if err := e.Link(t.head.seq+1, t.head.hash); err != nil {
			return fmt.Errorf("sqlite: audit: %w", err)
		}
		if _, err := t.exec(auditInsertSQL, e.Seq, e.Time.UnixMicro(), string(e.Type), e.Tenant, e.User, e.Device,
			e.Factor, e.Reason, e.Actor, e.IP, e.UserAgent, e.Detail, nonNil(e.PrevHash), e.Hash); err != nil {
			t.head.ok = false
			return fmt.Errorf("sqlite: audit: %w", err)
		}
		t.head.seq, t.head.hash = e.Seq, bytes.Clone(e.Hash)
		if err := insertMessages(t, e); err != nil {
			return err
		}
	}
	return nil
}

// nonNil keeps an empty hash an empty BLOB rather than NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// sweepEvery is how often, by the callers' clock, Hit deletes ended windows.
const sweepEvery = time.Minute
