package postgres

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa"
)

// appendEvents sends the statements queued in b (checking only for their
// errors), then appends the non-nil events to the audit log, in tx. It
// takes the log's head as late as it can, in the same round trip as b, so
// the one lock every writer shares is held only for the inserts and the
// commit.
func appendEvents(ctx context.Context, tx pgx.Tx, b *pgx.Batch, events ...*twofa.AuditEvent) error {
	if b == nil {
		b = &pgx.Batch{}
	}
	pre := b.Len()
	var evs []*twofa.AuditEvent
	for _, e := range events {
		if e != nil {
			evs = append(evs, e)
		}
	}
	if len(evs) == 0 {
		if pre == 0 {
			return nil
		}
		return tx.SendBatch(ctx, b).Close()
	}

	b.Queue(`SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE`)
	br := tx.SendBatch(ctx, b)
	for range pre {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	var seq int64
	var prev []byte
	if err := br.QueryRow().Scan(&seq, &prev); err != nil {
		br.Close()
		return err
	}
	if err := br.Close(); err != nil {
		return err
	}

	ins := &pgx.Batch{}
	for _, e := range evs {
		seq++
		if err := e.Link(seq, prev); err != nil {
			return err
		}
		prev = e.Hash
		ins.Queue(`INSERT INTO audit (seq, time, type, tenant, user_id, device, factor, reason, actor, ip, user_agent, detail, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			e.Seq, tstz(e.Time), string(e.Type), e.Tenant, e.User, e.Device, e.Factor, e.Reason, e.Actor,
			[]byte(e.IP), []byte(e.UserAgent), []byte(e.Detail), nilIfEmpty(e.PrevHash), e.Hash)
	}
	ins.Queue(`UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1`, seq, prev)
	return tx.SendBatch(ctx, ins).Close()
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// AppendAudit appends events, in order, in one transaction.
func (s *Store) AppendAudit(ctx context.Context, events ...*twofa.AuditEvent) (err error) {
	defer wrap(&err, "AppendAudit")
	for _, e := range events {
		if e != nil {
			return inTx(ctx, s.pool, func(tx pgx.Tx) error {
				return appendEvents(ctx, tx, nil, events...)
			})
		}
	}
	return nil
}

// AuditEvents returns events matching f in Seq order.
func (s *Store) AuditEvents(ctx context.Context, f twofa.AuditFilter) (_ []*twofa.AuditEvent, err error) {
	defer wrap(&err, "AuditEvents")
	q := `SELECT seq, time, type, tenant, user_id, device, factor, reason, actor, ip, user_agent, detail, prev_hash, hash
		FROM audit WHERE seq > $1`
	args := []any{f.After}
	if f.Tenant != "" {
		args = append(args, f.Tenant)
		q += ` AND tenant = $` + strconv.Itoa(len(args))
	}
	if f.User != "" {
		args = append(args, f.User)
		q += ` AND user_id = $` + strconv.Itoa(len(args))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	q += ` ORDER BY seq LIMIT $` + strconv.Itoa(len(args))

	rows, _ := s.pool.Query(ctx, q, args...)
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*twofa.AuditEvent, error) {
		var e twofa.AuditEvent
		var typ string
		var ip, ua, detail []byte
		err := row.Scan(&e.Seq, when(&e.Time), &typ, &e.Tenant, &e.User, &e.Device, &e.Factor, &e.Reason, &e.Actor,
			&ip, &ua, &detail, &e.PrevHash, &e.Hash)
		e.Type, e.IP, e.UserAgent, e.Detail = twofa.EventType(typ), string(ip), string(ua), string(detail)
		return &e, err
	})
}
