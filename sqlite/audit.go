package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

// AppendAudit appends events, in order, in one transaction.
func (s *Store) AppendAudit(ctx context.Context, events ...*twofa.AuditEvent) error {
	for _, e := range events {
		if e != nil {
			return s.write(ctx, func(t *wtx) error { return t.appendEvents(events...) })
		}
	}
	return nil
}

// AuditChains returns 1: with one writer, there is nothing to gain from
// more.
func (s *Store) AuditChains() int { return 1 }

// auditWhere is the WHERE clause of f, and its arguments. ok is false when
// nothing can match (a chain other than the one there is).
func auditWhere(f twofa.AuditFilter) (where string, args []any, ok bool) {
	if f.ByChain && f.Chain != 0 {
		return "", nil, false // one chain: the single writer takes every append in turn
	}
	conds := []string{"seq > ?"}
	args = []any{f.After}
	if f.Tenant != "" {
		conds, args = append(conds, "tenant = ?"), append(args, f.Tenant)
	}
	if f.User != "" {
		conds, args = append(conds, "user_id = ?"), append(args, f.User)
	}
	if !f.Since.IsZero() {
		// Served by the index audit_time (tenant, time).
		conds, args = append(conds, "time >= ?"), append(args, f.Since.UnixMicro())
	}
	return strings.Join(conds, " AND "), args, true
}

// AuditEvents returns events matching f in Seq order.
func (s *Store) AuditEvents(ctx context.Context, f twofa.AuditFilter) ([]*twofa.AuditEvent, error) {
	where, args, ok := auditWhere(f)
	if !ok {
		return nil, nil
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, `SELECT `+auditCols+` FROM audit WHERE `+where+` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit events: %w", err)
	}
	defer rows.Close()
	var es []*twofa.AuditEvent
	for rows.Next() {
		var (
			e  twofa.AuditEvent
			t  int64
			ty string
		)
		if err := rows.Scan(&e.Seq, &t, &ty, &e.Tenant, &e.User, &e.Device, &e.Factor, &e.Reason, &e.Actor,
			&e.IP, &e.UserAgent, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("sqlite: audit events: %w", err)
		}
		e.Time, e.Type = time.UnixMicro(t).UTC(), twofa.EventType(ty)
		if len(e.PrevHash) == 0 {
			e.PrevHash = nil
		}
		es = append(es, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit events: %w", err)
	}
	return es, nil
}

// CountAudit returns how many events match f.
func (s *Store) CountAudit(ctx context.Context, f twofa.AuditFilter) (int64, error) {
	where, args, ok := auditWhere(f)
	if !ok {
		return 0, nil
	}
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM audit WHERE `+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count audit events: %w", err)
	}
	return n, nil
}

// AuditCheckpoints returns the stored checkpoints of a kind, in chain order.
func (s *Store) AuditCheckpoints(ctx context.Context, kind twofa.CheckpointKind) ([]twofa.AuditCheckpoint, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT chain, seq, hash, events, time, mac FROM audit_checkpoints
		WHERE kind = ? ORDER BY chain`, string(kind))
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit checkpoints: %w", err)
	}
	defer rows.Close()
	var cps []twofa.AuditCheckpoint
	for rows.Next() {
		cp := twofa.AuditCheckpoint{Kind: kind}
		var t int64
		if err := rows.Scan(&cp.Chain, &cp.Seq, &cp.Hash, &cp.Events, &t, &cp.MAC); err != nil {
			return nil, fmt.Errorf("sqlite: audit checkpoints: %w", err)
		}
		cp.Time = time.UnixMicro(t).UTC()
		cps = append(cps, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit checkpoints: %w", err)
	}
	return cps, nil
}

// PutAuditCheckpoint stores cp if no checkpoint of its kind and chain is
// stored, if the stored one is behind it, or if the stored one's MAC is old.
func (s *Store) PutAuditCheckpoint(ctx context.Context, cp twofa.AuditCheckpoint, old []byte) (bool, error) {
	var oldMAC any // NULL, which equals nothing, when there is none
	if old != nil {
		oldMAC = old
	}
	var stored bool
	err := s.write(ctx, func(t *wtx) error {
		n, err := rowsAffected(t.exec(`INSERT INTO audit_checkpoints (kind, chain, seq, hash, events, time, mac)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
			ON CONFLICT (kind, chain) DO UPDATE SET seq = ?3, hash = ?4, events = ?5, time = ?6, mac = ?7
			WHERE audit_checkpoints.seq < ?3 OR audit_checkpoints.mac = ?8`,
			string(cp.Kind), cp.Chain, cp.Seq, nonNil(cp.Hash), cp.Events, cp.Time.UnixMicro(), nonNil(cp.MAC), oldMAC))
		stored = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: put audit checkpoint: %w", err)
	}
	return stored, nil
}
