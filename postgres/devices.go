package postgres

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/otp"
)

const deviceCols = `id, tenant, user_id, kind, name, status, secret, key_id, algorithm, digits, period, t0,
	last_step, drift, created_at, expires_at, confirmed_at, last_used_at, address_index`

// deviceRow is the scan destination of deviceCols.
type deviceRow struct {
	d            twofa.Device
	kind, status string
	keyID        int64
	alg          int16
	lastStep     int64
}

func (r *deviceRow) dests() []any {
	d := &r.d
	return []any{&d.ID, &d.Tenant, &d.User, &r.kind, &d.Name, &r.status, &d.Secret, &r.keyID, &r.alg,
		&d.Params.Digits, &d.Params.Period, &d.Params.T0, &r.lastStep, &d.Drift,
		when(&d.CreatedAt), when(&d.ExpiresAt), when(&d.ConfirmedAt), when(&d.LastUsedAt), &d.AddressIndex}
}

func (r *deviceRow) device() *twofa.Device {
	d := r.d
	d.Kind, d.Status = twofa.DeviceKind(r.kind), twofa.DeviceStatus(r.status)
	d.KeyID, d.Params.Algorithm = uint32(r.keyID), otp.Algorithm(r.alg)
	d.LastStep = uint64(r.lastStep)
	return &d
}

func scanDevice(row pgx.CollectableRow) (*twofa.Device, error) {
	var r deviceRow
	err := row.Scan(r.dests()...)
	return r.device(), err
}

// oldestFirst orders devices by creation, as User lists them.
func oldestFirst(ds []*twofa.Device) {
	slices.SortStableFunc(ds, func(a, b *twofa.Device) int { return a.CreatedAt.Compare(b.CreatedAt) })
}

// User returns the user with their devices and unused backup code count,
// in one statement and so from one snapshot.
func (s *Store) User(ctx context.Context, ref twofa.UserRef) (_ *twofa.User, err error) {
	defer wrap(&err, "User")
	rows, _ := s.pool.Query(ctx, userQuery, ref.Tenant, ref.User)
	return scanUser(ref, rows)
}

// userQuery reads a user, their devices oldest first and the number of
// their unused backup codes.
const userQuery = `
		SELECT u.failures, u.locked_until, u.created_at, c.n,
			coalesce(d.id, ''), u.tenant, u.user_id, coalesce(d.kind, ''), coalesce(d.name, ''),
			coalesce(d.status, ''), d.secret, coalesce(d.key_id, 0), coalesce(d.algorithm, 0),
			coalesce(d.digits, 0), coalesce(d.period, 0), coalesce(d.t0, 0), coalesce(d.last_step, 0),
			coalesce(d.drift, 0), d.created_at, d.expires_at,
			d.confirmed_at, d.last_used_at, d.address_index
		FROM users u
		CROSS JOIN LATERAL (SELECT count(*) AS n FROM backup_codes b
			WHERE b.tenant = u.tenant AND b.user_id = u.user_id AND b.used_at IS NULL) c
		LEFT JOIN devices d ON d.tenant = u.tenant AND d.user_id = u.user_id
		WHERE u.tenant = $1 AND u.user_id = $2
		ORDER BY d.created_at, d.ord`

// scanUser reads the user of userQuery's rows, and closes them;
// ErrNotFound if there are none.
func scanUser(ref twofa.UserRef, rows pgx.Rows) (*twofa.User, error) {
	defer rows.Close()
	var u *twofa.User
	for rows.Next() {
		var next twofa.User
		var r deviceRow
		if err := rows.Scan(append([]any{&next.Failures, when(&next.LockedUntil), when(&next.CreatedAt), &next.BackupCodes}, r.dests()...)...); err != nil {
			return nil, err
		}
		if u == nil {
			next.Tenant, next.ID = ref.Tenant, ref.User
			u = &next
		}
		if r.d.ID != "" {
			u.Devices = append(u.Devices, r.device())
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if u == nil {
		return nil, twofa.ErrNotFound
	}
	return u, nil
}

// lockUser locks the user's row, first of the locks a transaction takes.
// FOR NO KEY UPDATE, unlike FOR UPDATE, does not block the foreign key
// checks of inserts into devices and backup_codes.
const lockUser = `SELECT FROM users WHERE tenant = $1 AND user_id = $2 FOR NO KEY UPDATE`

// deleteDevicesInOrder deletes the devices the WHERE clause selects,
// locking them in ID order like every statement that locks several
// devices, so that two of them never wait for each other.
func deleteDevicesInOrder(where string) string {
	return `DELETE FROM devices WHERE id IN (SELECT id FROM devices WHERE ` + where + ` ORDER BY id FOR UPDATE)
		RETURNING ` + deviceCols
}

// expiredWhere selects pending devices that expired at or before the
// parameter now, a missing expiry (the zero time) counting as long past.
func expiredWhere(now string) string {
	return `status = 'pending' AND (expires_at <= ` + now + ` OR expires_at IS NULL)`
}

// CreateDevice adds the pending device d, creating its user if needed,
// after deleting and returning the user's expired pending devices.
func (s *Store) CreateDevice(ctx context.Context, d *twofa.Device, max int, now time.Time, e *twofa.AuditEvent) (expired []*twofa.Device, err error) {
	defer wrap(&err, "CreateDevice")
	lastStep, err := step(d.LastStep)
	if err != nil {
		return nil, err
	}
	status := d.Status
	if status == "" {
		status = twofa.StatusPending
	}
	err = inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		// Create the user if needed and lock them, so that concurrent
		// enrollments count devices one at a time.
		b.Queue(`INSERT INTO users (tenant, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			d.Tenant, d.User, tstz(now))
		b.Queue(lockUser, d.Tenant, d.User)
		b.Queue(deleteDevicesInOrder(`tenant = $1 AND user_id = $2 AND `+expiredWhere("$3")), d.Tenant, d.User, tstz(now))
		b.Queue(`SELECT count(*) FROM devices WHERE tenant = $1 AND user_id = $2`, d.Tenant, d.User)
		br := tx.SendBatch(ctx, b)
		var n int
		_, err := br.Exec()
		if err == nil {
			_, err = br.Exec()
		}
		if err == nil {
			rows, _ := br.Query()
			expired, err = pgx.CollectRows(rows, scanDevice)
		}
		if err == nil {
			err = br.QueryRow().Scan(&n)
		}
		if err := errors.Join(err, br.Close()); err != nil {
			return err
		}
		if n >= max {
			return twofa.ErrDeviceLimit
		}

		b = &pgx.Batch{}
		b.Queue(`INSERT INTO devices (`+deviceCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
			d.ID, d.Tenant, d.User, string(d.Kind), d.Name, string(status), d.Secret, int64(d.KeyID),
			int16(d.Params.Algorithm), d.Params.Digits, d.Params.Period, d.Params.T0, lastStep, d.Drift,
			tstz(d.CreatedAt), tstz(d.ExpiresAt), tstz(d.ConfirmedAt), tstz(d.LastUsedAt), nilIfEmpty(d.AddressIndex))
		err = appendEvents(ctx, tx, b, e)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "devices_address" {
			return twofa.ErrAddressTaken
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	oldestFirst(expired)
	return expired, nil
}

// ActivateDevice confirms a pending device, issuing the first backup codes
// if the user has no unused one.
func (s *Store) ActivateDevice(ctx context.Context, a twofa.Activation) (issued bool, err error) {
	defer wrap(&err, "ActivateDevice")
	lastStep, err := step(a.Step)
	if err != nil {
		return false, err
	}
	ref := a.Ref
	var expired bool
	err = inTx(ctx, s.pool, func(tx pgx.Tx) error {
		issued, expired = false, false
		b := &pgx.Batch{}
		b.Queue(lockUser, ref.Tenant, ref.User)
		b.Queue(`SELECT status, expires_at FROM devices WHERE id = $1 AND tenant = $2 AND user_id = $3 FOR UPDATE`,
			a.DeviceID, ref.Tenant, ref.User)
		b.Queue(`SELECT count(*) FROM backup_codes WHERE tenant = $1 AND user_id = $2 AND used_at IS NULL`,
			ref.Tenant, ref.User)
		br := tx.SendBatch(ctx, b)
		var status string
		var expiresAt time.Time
		var unused int
		_, err := br.Exec()
		if err == nil {
			err = br.QueryRow().Scan(&status, when(&expiresAt))
		}
		if err == nil {
			err = br.QueryRow().Scan(&unused)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			err = twofa.ErrNotFound
		}
		if err := errors.Join(err, br.Close()); err != nil {
			return err
		}
		switch {
		case status != string(twofa.StatusPending):
			return twofa.ErrNotFound
		case !expiresAt.After(a.Now):
			// Commit the deletion, but none of a's events: the caller
			// records the expiry.
			expired = true
			_, err := tx.Exec(ctx, `DELETE FROM devices WHERE id = $1`, a.DeviceID)
			return err
		}

		b = &pgx.Batch{}
		b.Queue(`UPDATE devices SET status = 'active', last_step = $2, confirmed_at = $3, last_used_at = $3, expires_at = NULL
			WHERE id = $1`, a.DeviceID, lastStep, tstz(a.Now))
		issued = len(a.BackupCodes) > 0 && unused == 0
		events := []*twofa.AuditEvent{a.Event}
		if issued {
			// Used codes go too, so that a new code equal to a used one
			// is not born used.
			queueReplaceCodes(b, ref, a.BackupCodes, a.Now)
			events = append(events, a.IssueEvent)
		}
		return appendEvents(ctx, tx, b, events...)
	})
	switch {
	case err != nil:
		return false, err
	case expired:
		return false, twofa.ErrExpired
	}
	return issued, nil
}

// DeleteDevice deletes one device of the user.
func (s *Store) DeleteDevice(ctx context.Context, ref twofa.UserRef, deviceID string, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "DeleteDevice")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM devices WHERE id = $1 AND tenant = $2 AND user_id = $3`,
			deviceID, ref.Tenant, ref.User)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return twofa.ErrNotFound
		}
		return appendEvents(ctx, tx, nil, e)
	})
}

// DeleteFactors deletes all of the user's devices and backup codes.
func (s *Store) DeleteFactors(ctx context.Context, ref twofa.UserRef, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "DeleteFactors")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(lockUser, ref.Tenant, ref.User)
		b.Queue(deleteDevicesInOrder(`tenant = $1 AND user_id = $2`), ref.Tenant, ref.User)
		b.Queue(`DELETE FROM backup_codes WHERE tenant = $1 AND user_id = $2`, ref.Tenant, ref.User)
		br := tx.SendBatch(ctx, b)
		tag, err := br.Exec()
		if err := errors.Join(err, br.Close()); err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return twofa.ErrNotFound
		}
		return appendEvents(ctx, tx, nil, e)
	})
}

// DeleteExpired deletes every pending device that expired at or before
// now. Of concurrent calls, each expired device is returned by one.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (_ []*twofa.Device, err error) {
	defer wrap(&err, "DeleteExpired")
	rows, _ := s.pool.Query(ctx, deleteDevicesInOrder(expiredWhere("$1")), tstz(now))
	ds, err := pgx.CollectRows(rows, scanDevice)
	if err != nil {
		return nil, err
	}
	oldestFirst(ds)
	return ds, nil
}
