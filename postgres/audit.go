package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa"
)

// auditChains is how many chains the log is kept in (migration 0004 makes
// their head rows). With one, appends commit one at a time: ~1,700
// verifications/s here, whatever the number of replicas.
const auditChains = 16

// AuditChains returns how many chains the log is kept in.
func (s *Store) AuditChains() int { return auditChains }

// chainOf is the chain of a transaction whose first event is e: a hash of
// its tenant and user, so one user's entries stay in one chain and
// different users' spread over all.
func chainOf(e *twofa.AuditEvent) int {
	h := fnv.New32a()
	h.Write([]byte(e.Tenant))
	h.Write([]byte{0})
	h.Write([]byte(e.User))
	return int(h.Sum32() % auditChains)
}

// appendEvents sends the statements queued in b (checking only for their
// errors), then appends the non-nil events to the audit log, in tx, all
// in the chain of the first. It takes the chain's head as late as it can,
// in the same round trip as b, so the lock that writers of the chain
// share is held only for the inserts and the commit; the events' Seq
// values are taken from the sequence in that round trip too, after the
// head is held.
func appendEvents(ctx context.Context, tx pgx.Tx, b *pgx.Batch, events ...*twofa.AuditEvent) error {
	if b == nil {
		b = &pgx.Batch{}
	}
	pre := b.Len()
	evs := nonNilEvents(events)
	if len(evs) == 0 {
		if pre == 0 {
			return nil
		}
		return tx.SendBatch(ctx, b).Close()
	}

	chain := chainOf(evs[0])
	queueHead(b, chain, len(evs))
	br := tx.SendBatch(ctx, b)
	prev, seqs, err := readHead(br, pre, len(evs))
	if err := errors.Join(err, br.Close()); err != nil {
		return err
	}
	ins := &pgx.Batch{}
	if err := queueEvents(ins, chain, seqs, prev, evs); err != nil {
		return err
	}
	return tx.SendBatch(ctx, ins).Close()
}

// nonNilEvents returns the events that are not nil.
func nonNilEvents(events []*twofa.AuditEvent) []*twofa.AuditEvent {
	var evs []*twofa.AuditEvent
	for _, e := range events {
		if e != nil {
			evs = append(evs, e)
		}
	}
	return evs
}

// queueHead queues the two statements that take the chain's head and n
// sequence numbers, in that order, so the numbers are taken with the head
// held and increase along the chain.
func queueHead(b *pgx.Batch, chain, n int) {
	b.Queue(`SELECT hash FROM audit_heads WHERE chain = $1 FOR UPDATE`, chain)
	b.Queue(`SELECT nextval('audit_seq') FROM generate_series(1, $1::int) ORDER BY 1`, n)
}

// readHead reads the results of br up to queueHead's statements (skipping
// pre results before them, checking only for errors), and returns the
// chain's last hash and the n sequence numbers.
func readHead(br pgx.BatchResults, pre, n int) (prev []byte, seqs []int64, err error) {
	for range pre {
		if _, err := br.Exec(); err != nil {
			return nil, nil, err
		}
	}
	if err := br.QueryRow().Scan(&prev); err != nil {
		return nil, nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	if seqs, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		return nil, nil, err
	}
	if len(seqs) != n {
		return nil, nil, fmt.Errorf("audit: %d sequence numbers for %d events", len(seqs), n)
	}
	return prev, seqs, nil
}

// queueEvents links the events into the chain after prev, with the
// sequence numbers seqs, and queues their inserts, the inserts of the
// outbox messages they carry, and the new head.
func queueEvents(b *pgx.Batch, chain int, seqs []int64, prev []byte, evs []*twofa.AuditEvent) error {
	for i, e := range evs {
		if err := e.LinkIn(chain, seqs[i], prev); err != nil {
			return err
		}
		if err := queueMessages(b, e); err != nil {
			return err
		}
		prev = e.Hash
		b.Queue(`INSERT INTO audit (seq, chain, time, type, tenant, user_id, device, factor, reason, actor, ip, user_agent, detail, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			e.Seq, e.Chain, tstz(e.Time), string(e.Type), e.Tenant, e.User, e.Device, e.Factor, e.Reason, e.Actor,
			[]byte(e.IP), []byte(e.UserAgent), []byte(e.Detail), nilIfEmpty(e.PrevHash), e.Hash)
	}
	b.Queue(`UPDATE audit_heads SET seq = $2, hash = $3 WHERE chain = $1`, chain, seqs[len(seqs)-1], prev)
	return nil
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

// auditWhere is the WHERE clause of f, and its arguments.
func auditWhere(f twofa.AuditFilter) (string, []any) {
	// seq > 0 is left out, so that a count by tenant reads the index on
	// (tenant, time) alone.
	q, args := `TRUE`, []any(nil)
	add := func(cond string, arg any) {
		args = append(args, arg)
		q += ` AND ` + cond + ` $` + strconv.Itoa(len(args))
	}
	if f.After != 0 {
		add(`seq >`, f.After)
	}
	if f.ByChain {
		add(`chain =`, f.Chain)
	}
	if f.Tenant != "" {
		add(`tenant =`, f.Tenant)
	}
	if f.User != "" {
		add(`user_id =`, f.User)
	}
	if !f.Since.IsZero() {
		add(`time >=`, tstz(f.Since)) // the index audit_time (tenant, time)
	}
	return q, args
}

// AuditEvents returns events matching f in Seq order.
func (s *Store) AuditEvents(ctx context.Context, f twofa.AuditFilter) (_ []*twofa.AuditEvent, err error) {
	defer wrap(&err, "AuditEvents")
	where, args := auditWhere(f)
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	q := `SELECT seq, chain, time, type, tenant, user_id, device, factor, reason, actor, ip, user_agent, detail, prev_hash, hash
		FROM audit WHERE ` + where + ` ORDER BY seq LIMIT $` + strconv.Itoa(len(args))

	rows, _ := s.pool.Query(ctx, q, args...)
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*twofa.AuditEvent, error) {
		var e twofa.AuditEvent
		var typ string
		var ip, ua, detail []byte
		err := row.Scan(&e.Seq, &e.Chain, when(&e.Time), &typ, &e.Tenant, &e.User, &e.Device, &e.Factor, &e.Reason, &e.Actor,
			&ip, &ua, &detail, &e.PrevHash, &e.Hash)
		e.Type, e.IP, e.UserAgent, e.Detail = twofa.EventType(typ), string(ip), string(ua), string(detail)
		return &e, err
	})
}

// CountAudit returns how many events match f.
func (s *Store) CountAudit(ctx context.Context, f twofa.AuditFilter) (n int64, err error) {
	defer wrap(&err, "CountAudit")
	where, args := auditWhere(f)
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM audit WHERE `+where, args...).Scan(&n)
	return n, err
}

// AuditCheckpoints returns the stored checkpoints of a kind, in chain order.
func (s *Store) AuditCheckpoints(ctx context.Context, kind twofa.CheckpointKind) (_ []twofa.AuditCheckpoint, err error) {
	defer wrap(&err, "AuditCheckpoints")
	rows, _ := s.pool.Query(ctx, `SELECT chain, seq, hash, events, time, mac FROM audit_checkpoints
		WHERE kind = $1 ORDER BY chain`, string(kind))
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (twofa.AuditCheckpoint, error) {
		cp := twofa.AuditCheckpoint{Kind: kind}
		var chain int16
		err := row.Scan(&chain, &cp.Seq, &cp.Hash, &cp.Events, when(&cp.Time), &cp.MAC)
		cp.Chain = int(chain)
		return cp, err
	})
}

// PutAuditCheckpoint stores cp if no checkpoint of its kind and chain is
// stored, if the stored one is behind it, or if the stored one's MAC is old.
func (s *Store) PutAuditCheckpoint(ctx context.Context, cp twofa.AuditCheckpoint, old []byte) (_ bool, err error) {
	defer wrap(&err, "PutAuditCheckpoint")
	tag, err := s.pool.Exec(ctx, `INSERT INTO audit_checkpoints AS c (kind, chain, seq, hash, events, time, mac)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (kind, chain) DO UPDATE SET seq = $3, hash = $4, events = $5, time = $6, mac = $7
		WHERE c.seq < $3 OR c.mac = $8`,
		string(cp.Kind), cp.Chain, cp.Seq, cp.Hash, cp.Events, tstz(cp.Time), cp.MAC, old)
	return tag.RowsAffected() > 0, err
}
