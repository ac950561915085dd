package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

// User returns the user with their devices and unused backup codes.
func (s *Store) User(ctx context.Context, ref twofa.UserRef) (*twofa.User, error) {
	rows, err := s.userStmt.QueryContext(ctx, ref.Tenant, ref.User)
	if err != nil {
		return nil, fmt.Errorf("sqlite: user %s: %w", ref, err)
	}
	defer rows.Close()
	u, _, err := scanUser(ref, rows)
	return u, err
}

// userRows is what scanUser needs of userQuery's rows: sql.Rows, or the
// writer's rows.
type userRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanUser reads the user of userQuery's rows, and their devices'
// rowids; ErrNotFound if there are none.
func scanUser(ref twofa.UserRef, rows userRows) (*twofa.User, map[string]int64, error) {
	var u *twofa.User
	var rowids map[string]int64
	for rows.Next() {
		var (
			failures, codes int
			locked, created sql.NullInt64
			d               deviceRow
			rowid           sql.NullInt64
		)
		dest := append([]any{&failures, &locked, &created, &codes}, d.dest()...)
		if err := rows.Scan(append(dest, &rowid)...); err != nil {
			return nil, nil, fmt.Errorf("sqlite: user %s: %w", ref, err)
		}
		if u == nil {
			u = &twofa.User{
				Tenant:      ref.Tenant,
				ID:          ref.User,
				Failures:    failures,
				LockedUntil: fromMicros(locked),
				BackupCodes: codes,
				CreatedAt:   fromMicros(created),
			}
		}
		if d.id.Valid {
			u.Devices = append(u.Devices, d.device())
			if rowids == nil {
				rowids = map[string]int64{}
			}
			rowids[d.id.String] = rowid.Int64
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("sqlite: user %s: %w", ref, err)
	}
	if u == nil {
		return nil, nil, fmt.Errorf("user %s: %w", ref, twofa.ErrNotFound)
	}
	return u, rowids, nil
}

// CreateDevice adds the pending device d, creating its user if needed.
func (s *Store) CreateDevice(ctx context.Context, d *twofa.Device, max int, now time.Time, e *twofa.AuditEvent) ([]*twofa.Device, error) {
	lastStep, err := step(d.LastStep)
	if err != nil {
		return nil, err
	}
	status := d.Status
	if status == "" {
		status = twofa.StatusPending
	}
	nowUS := now.UnixMicro()
	var expired []*twofa.Device // the writer's until it answers
	err = s.write(ctx, func(t *wtx) error {
		if _, err := t.exec(`INSERT INTO users (tenant, user_id, created_at) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, d.Tenant, d.User, micros(now)); err != nil {
			return fmt.Errorf("sqlite: create user: %w", err)
		}
		var err error
		expired, err = scanDevices(t.query(`DELETE FROM devices
			WHERE tenant = ? AND user_id = ? AND status = 'pending' AND expires_at <= ?
			RETURNING `+deviceCols, d.Tenant, d.User, nowUS))
		if err != nil {
			return fmt.Errorf("sqlite: delete expired devices: %w", err)
		}
		var n int
		if err := t.queryRow(`SELECT count(*) FROM devices WHERE tenant = ? AND user_id = ?
			AND (status = 'active' OR expires_at IS NULL OR expires_at > ?)`, d.Tenant, d.User, nowUS).Scan(&n); err != nil {
			return fmt.Errorf("sqlite: count devices: %w", err)
		}
		if n >= max {
			return fmt.Errorf("user %s has %d devices: %w", d.Ref(), n, twofa.ErrDeviceLimit)
		}
		if _, err := t.exec(`INSERT INTO devices (`+deviceCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.Tenant, d.User, string(d.Kind), d.Name, string(status), nonNil(d.Secret), int64(d.KeyID),
			int64(d.Params.Algorithm), d.Params.Digits, d.Params.Period, d.Params.T0,
			lastStep, d.Drift, micros(d.CreatedAt), micros(d.ExpiresAt),
			micros(d.ConfirmedAt), micros(d.LastUsedAt), nullBytes(d.AddressIndex)); err != nil {
			if strings.Contains(err.Error(), "devices.address_index") {
				return fmt.Errorf("user %s: %w", d.Ref(), twofa.ErrAddressTaken)
			}
			return fmt.Errorf("sqlite: create device: %w", err)
		}
		return t.appendEvents(e)
	})
	if err != nil {
		return nil, err
	}
	sortDevices(expired)
	return expired, nil
}

// ActivateDevice confirms a pending device.
func (s *Store) ActivateDevice(ctx context.Context, a twofa.Activation) (bool, error) {
	st, err := step(a.Step)
	if err != nil {
		return false, err
	}
	var issued bool // the writer's until it answers
	err = s.write(ctx, func(t *wtx) error {
		issued = false
		var expires sql.NullInt64
		err := t.queryRow(`SELECT expires_at FROM devices
			WHERE id = ? AND tenant = ? AND user_id = ? AND status = 'pending'`,
			a.DeviceID, a.Ref.Tenant, a.Ref.User).Scan(&expires)
		if err == sql.ErrNoRows {
			return fmt.Errorf("pending device %s of %s: %w", a.DeviceID, a.Ref, twofa.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("sqlite: activate device: %w", err)
		}
		if expires.Valid && expires.Int64 <= a.Now.UnixMicro() {
			if _, err := t.exec(`DELETE FROM devices WHERE id = ?`, a.DeviceID); err != nil {
				return fmt.Errorf("sqlite: delete expired device: %w", err)
			}
			return commitWith{fmt.Errorf("device %s of %s: %w", a.DeviceID, a.Ref, twofa.ErrExpired)}
		}
		// Confirming burns the code's step, which is a use of the device.
		if _, err := t.exec(`UPDATE devices SET status = 'active', last_step = ?1, confirmed_at = ?2, last_used_at = ?2, expires_at = NULL
			WHERE id = ?3`, st, micros(a.Now), a.DeviceID); err != nil {
			return fmt.Errorf("sqlite: activate device: %w", err)
		}
		if len(a.BackupCodes) > 0 {
			var unused int
			if err := t.queryRow(countCodesSQL, a.Ref.Tenant, a.Ref.User).Scan(&unused); err != nil {
				return fmt.Errorf("sqlite: count backup codes: %w", err)
			}
			if unused == 0 {
				if err := insertCodes(t, a.Ref, a.BackupCodes, a.Now); err != nil {
					return err
				}
				issued = true
			}
		}
		issue := a.IssueEvent
		if !issued {
			issue = nil
		}
		return t.appendEvents(a.Event, issue)
	})
	if err != nil {
		return false, err
	}
	return issued, nil
}

// insertCodes replaces the user's backup codes, used or not, with hashes.
func insertCodes(t *wtx, ref twofa.UserRef, hashes [][]byte, now time.Time) error {
	if _, err := t.exec(`DELETE FROM backup_codes WHERE tenant = ? AND user_id = ?`, ref.Tenant, ref.User); err != nil {
		return fmt.Errorf("sqlite: delete backup codes: %w", err)
	}
	for _, h := range hashes {
		if _, err := t.exec(`INSERT INTO backup_codes (tenant, user_id, hash, created_at) VALUES (?, ?, ?, ?)`,
			ref.Tenant, ref.User, nonNil(h), micros(now)); err != nil {
			return fmt.Errorf("sqlite: insert backup code: %w", err)
		}
	}
	return nil
}

// DeleteDevice deletes one device of the user.
func (s *Store) DeleteDevice(ctx context.Context, ref twofa.UserRef, deviceID string, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		n, err := rowsAffected(t.exec(`DELETE FROM devices WHERE id = ? AND tenant = ? AND user_id = ?`,
			deviceID, ref.Tenant, ref.User))
		if err != nil {
			return fmt.Errorf("sqlite: delete device: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("device %s of %s: %w", deviceID, ref, twofa.ErrNotFound)
		}
		return t.appendEvents(e)
	})
}

// DeleteFactors deletes all of the user's devices and backup codes.
func (s *Store) DeleteFactors(ctx context.Context, ref twofa.UserRef, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		if err := userExists(t, ref); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM devices WHERE tenant = ? AND user_id = ?`, ref.Tenant, ref.User); err != nil {
			return fmt.Errorf("sqlite: delete devices: %w", err)
		}
		if _, err := t.exec(`DELETE FROM backup_codes WHERE tenant = ? AND user_id = ?`, ref.Tenant, ref.User); err != nil {
			return fmt.Errorf("sqlite: delete backup codes: %w", err)
		}
		return t.appendEvents(e)
	})
}

func userExists(t *wtx, ref twofa.UserRef) error {
	var one int
	err := t.queryRow(`SELECT 1 FROM users WHERE tenant = ? AND user_id = ?`, ref.Tenant, ref.User).Scan(&one)
	if err == sql.ErrNoRows {
		return fmt.Errorf("user %s: %w", ref, twofa.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("sqlite: user %s: %w", ref, err)
	}
	return nil
}

// DeleteExpired deletes every pending device that expired at or before now.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) ([]*twofa.Device, error) {
	var ds []*twofa.Device
	err := s.write(ctx, func(t *wtx) error {
		var err error
		ds, err = scanDevices(t.query(`DELETE FROM devices WHERE status = 'pending' AND expires_at <= ?
			RETURNING `+deviceCols, now.UnixMicro()))
		if err != nil {
			return fmt.Errorf("sqlite: delete expired devices: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err // ds is the writer's until it answers
	}
	sortDevices(ds)
	return ds, nil
}

// sortDevices orders devices oldest first, as User does; RETURNING
// promises no order.
func sortDevices(ds []*twofa.Device) {
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].CreatedAt.Before(ds[j].CreatedAt) })
}
