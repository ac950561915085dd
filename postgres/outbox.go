package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa"
)

// The outbox. Replicas claim messages with FOR UPDATE SKIP LOCKED: a
// claim locks the due rows it takes and passes over those another claim
// has locked, so claims never wait for each other and never take one
// message twice; a row another claim leased and committed meanwhile is
// read again as it now is (READ COMMITTED re-checks the condition on the
// newest version) and is no longer due.

// outboxCols are the columns scanMessage reads, in its order.
const outboxCols = `seq, id, tenant, user_id, channel, kind, payload, key_id, status, attempts, next_at, last_error, created_at, sent_at`

// queueMessages queues the inserts of event e's messages, queued.
func queueMessages(b *pgx.Batch, e *twofa.AuditEvent) error {
	for _, m := range e.Messages {
		if m == nil {
			continue
		}
		created, next, err := twofa.NewMessageTimes(m, e)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		b.Queue(`INSERT INTO outbox (id, tenant, user_id, channel, kind, payload, key_id, status, next_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9)`,
			m.ID, m.Tenant, m.User, string(m.Channel), string(m.Kind), m.Payload, int64(m.KeyID), tstz(next), tstz(created))
	}
	return nil
}

// ClaimMessages leases up to limit due messages of the channels.
func (s *Store) ClaimMessages(ctx context.Context, channels []twofa.Channel, now time.Time, lease time.Duration, token string, limit int) (_ []*twofa.Message, err error) {
	defer wrap(&err, "ClaimMessages")
	if limit <= 0 || len(channels) == 0 {
		return nil, nil
	}
	if token == "" || lease <= 0 {
		return nil, fmt.Errorf("a token and a positive lease are required")
	}
	chans := make([]string, len(channels))
	for i, c := range channels {
		chans[i] = string(c)
	}
	rows, _ := s.pool.Query(ctx, `UPDATE outbox o SET attempts = o.attempts + 1, lease_token = $1, lease_until = $2
		FROM (SELECT id FROM outbox
			WHERE status = 'queued' AND next_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
				AND channel = ANY($4::text[])
			ORDER BY next_at, seq LIMIT $5
			FOR UPDATE SKIP LOCKED) due
		WHERE o.id = due.id
		RETURNING `+prefixed("o.", outboxCols),
		token, tstz(now.Add(lease)), tstz(now), chans, limit)
	ms, seqs, err := collectMessages(rows)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ms, func(a, b *twofa.Message) int {
		return cmp.Or(a.NextAt.Compare(b.NextAt), cmp.Compare(seqs[a], seqs[b]))
	})
	return ms, nil
}

// prefixed qualifies each of the comma-separated columns with p.
func prefixed(p, cols string) string {
	fs := strings.Split(cols, ",")
	for i, f := range fs {
		fs[i] = p + strings.TrimSpace(f)
	}
	return strings.Join(fs, ", ")
}

// FinishMessage records the outcome of a send under the claim's token.
func (s *Store) FinishMessage(ctx context.Context, id, token string, status twofa.MessageStatus, next time.Time, lastError string, now time.Time, e *twofa.AuditEvent) (done bool, err error) {
	defer wrap(&err, "FinishMessage")
	switch status {
	case twofa.MessageQueued, twofa.MessageSent, twofa.MessageFailed:
	default:
		return false, twofa.Errorf(twofa.EINVALID, "message status %q is not queued, sent or failed", status)
	}
	if next.IsZero() {
		next = now
	}
	err = inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox SET status = $3,
				next_at = CASE WHEN $3 = 'queued' THEN $4 ELSE next_at END,
				last_error = $5,
				payload = CASE WHEN $3 = 'sent' THEN NULL ELSE payload END,
				key_id = CASE WHEN $3 = 'sent' THEN 0 ELSE key_id END,
				sent_at = CASE WHEN $3 = 'queued' THEN NULL ELSE $6::timestamptz END,
				lease_token = NULL, lease_until = NULL
			WHERE id = $1 AND lease_token = $2 AND status = 'queued'`,
			id, token, string(status), tstz(next), lastError, tstz(now))
		if err != nil {
			return err
		}
		if done = tag.RowsAffected() == 1; !done {
			return nil
		}
		return appendEvents(ctx, tx, nil, e)
	})
	if err != nil {
		return false, err
	}
	return done, nil
}

// RetryMessage makes a failed or queued message due at now.
func (s *Store) RetryMessage(ctx context.Context, id string, now time.Time, e *twofa.AuditEvent) (err error) {
	defer wrap(&err, "RetryMessage")
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox SET status = 'queued', next_at = $2, sent_at = NULL
			WHERE id = $1 AND status IN ('queued', 'failed')`, id, tstz(now))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("message %s: %w", id, twofa.ErrNotFound)
		}
		return appendEvents(ctx, tx, nil, e)
	})
}

// Messages lists messages matching f, last added first.
func (s *Store) Messages(ctx context.Context, f twofa.MessageFilter) (_ []*twofa.Message, err error) {
	defer wrap(&err, "Messages")
	var (
		where []string
		args  []any
	)
	cond := func(c string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(c, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Tenant != "" {
		cond("tenant = ?", f.Tenant)
	}
	if f.Status != "" {
		cond("status = ?", string(f.Status))
	}
	if f.ID != "" {
		cond("id = ?", f.ID)
	}
	if f.Before != "" {
		cond("seq < (SELECT seq FROM outbox WHERE id = ?)", f.Before)
	}
	q := `SELECT ` + outboxCols + ` FROM outbox`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	q += ` ORDER BY seq DESC LIMIT $` + strconv.Itoa(len(args))
	rows, _ := s.pool.Query(ctx, q, args...)
	ms, _, err := collectMessages(rows)
	return ms, err
}

// OutboxStats counts the messages by status.
func (s *Store) OutboxStats(ctx context.Context) (_ twofa.OutboxStats, err error) {
	defer wrap(&err, "OutboxStats")
	var st twofa.OutboxStats
	err = s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE status = 'queued'),
		(SELECT count(*) FROM outbox WHERE status = 'sent'),
		(SELECT count(*) FROM outbox WHERE status = 'failed'),
		(SELECT min(created_at) FROM outbox WHERE status = 'queued')`).Scan(&st.Queued, &st.Sent, &st.Failed, when(&st.OldestQueued))
	return st, err
}

// collectMessages reads rows of outboxCols, and each message's seq.
func collectMessages(rows pgx.Rows) ([]*twofa.Message, map[*twofa.Message]int64, error) {
	seqs := map[*twofa.Message]int64{}
	ms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*twofa.Message, error) {
		var (
			m                     twofa.Message
			seq, keyID            int64
			channel, kind, status string
		)
		err := row.Scan(&seq, &m.ID, &m.Tenant, &m.User, &channel, &kind, &m.Payload, &keyID, &status,
			&m.Attempts, when(&m.NextAt), &m.LastError, when(&m.CreatedAt), when(&m.SentAt))
		m.Channel, m.Kind, m.Status = twofa.Channel(channel), twofa.MessageKind(kind), twofa.MessageStatus(status)
		m.KeyID = uint32(keyID)
		seqs[&m] = seq
		return &m, err
	})
	if err != nil {
		return nil, nil, err
	}
	return ms, seqs, nil
}

// DeleteMessages deletes messages that were done (sent or failed for
// good) before before, a thousand at a time, skipping rows others hold.
func (s *Store) DeleteMessages(ctx context.Context, before time.Time) (_ int, err error) {
	defer wrap(&err, "DeleteMessages")
	tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox
		WHERE status <> 'queued' AND sent_at < $1 LIMIT 1000 FOR UPDATE SKIP LOCKED)`, tstz(before))
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
