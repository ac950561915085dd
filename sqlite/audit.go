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

// AuditEvents returns events matching f in Seq order.
func (s *Store) AuditEvents(ctx context.Context, f twofa.AuditFilter) ([]*twofa.AuditEvent, error) {
	if f.ByChain && f.Chain != 0 {
		return nil, nil // one chain: the single writer takes every append in turn
	}
	var (
		where = []string{"seq > ?"}
		args  = []any{f.After}
	)
	if f.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, f.Tenant)
	}
	if f.User != "" {
		where, args = append(where, "user_id = ?"), append(args, f.User)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, `SELECT `+auditCols+` FROM audit WHERE `+strings.Join(where, " AND ")+
		` ORDER BY seq LIMIT ?`, args...)
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
