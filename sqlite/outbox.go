package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twofa/twofa"
)

// The outbox. The single writer takes claims one at a time, in any
// process (SQLite's write lock), so a claim that reads a message as due
// and leases it cannot be overtaken by another.

// outboxCols are the columns scanMessages reads, in its order.
const outboxCols = `seq, id, tenant, user_id, channel, kind, payload, key_id, status, attempts, next_at, last_error, created_at, sent_at`

const (
	outboxInsertSQL = `INSERT INTO outbox (id, tenant, user_id, channel, kind, payload, key_id, status, next_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)`
	// finishSQL records a send's outcome, only under the claim's token.
	finishSQL = `UPDATE outbox SET status = ?1,
			next_at = CASE WHEN ?1 = 'queued' THEN ?2 ELSE next_at END,
			last_error = ?3,
			payload = CASE WHEN ?1 = 'sent' THEN NULL ELSE payload END,
			key_id = CASE WHEN ?1 = 'sent' THEN 0 ELSE key_id END,
			sent_at = CASE WHEN ?1 = 'queued' THEN NULL ELSE ?4 END,
			lease_token = NULL, lease_until = NULL
		WHERE id = ?5 AND lease_token = ?6 AND status = 'queued'`
	retrySQL = `UPDATE outbox SET status = 'queued', next_at = ?, sent_at = NULL
		WHERE id = ? AND status IN ('queued', 'failed')`
)

// insertMessages adds the messages of event e, queued, in t.
func insertMessages(t *wtx, e *twofa.AuditEvent) error {
	for _, m := range e.Messages {
		if m == nil {
			continue
		}
		created, next, err := twofa.NewMessageTimes(m, e)
		if err != nil {
			return fmt.Errorf("sqlite: outbox: %w", err)
		}
		if _, err := t.exec(outboxInsertSQL, m.ID, m.Tenant, m.User, string(m.Channel), string(m.Kind),
			m.Payload, int64(m.KeyID), next.UnixMicro(), created.UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: outbox: message %s: %w", m.ID, err)
		}
	}
	return nil
}

// ClaimMessages leases up to limit due messages of the channels.
func (s *Store) ClaimMessages(ctx context.Context, channels []twofa.Channel, now time.Time, lease time.Duration, token string, limit int) ([]*twofa.Message, error) {
	if limit <= 0 || len(channels) == 0 {
		return nil, nil
	}
	if token == "" || lease <= 0 {
		return nil, fmt.Errorf("sqlite: claim messages: a token and a positive lease are required")
	}
	us := now.UnixMicro()
	args := []any{token, now.Add(lease).UnixMicro(), us, limit}
	marks := make([]string, len(channels))
	for i, c := range channels {
		args = append(args, string(c))
		marks[i] = fmt.Sprintf("?%d", len(args))
	}
	// INDEXED BY: without statistics, SQLite would rather read every
	// queued message by status and sort them, those waiting for a retry
	// an hour away included.
	q := `UPDATE outbox SET attempts = attempts + 1, lease_token = ?1, lease_until = ?2
		WHERE seq IN (SELECT seq FROM outbox INDEXED BY outbox_due
			WHERE status = 'queued' AND next_at <= ?3 AND (lease_until IS NULL OR lease_until <= ?3)
				AND channel IN (` + strings.Join(marks, ", ") + `)
			ORDER BY next_at, seq LIMIT ?4)
		RETURNING ` + outboxCols
	var out []*twofa.Message
	var seqs map[*twofa.Message]int64
	err := s.write(ctx, func(t *wtx) error {
		var err error
		out, seqs, err = scanMessages(t.query(q, args...))
		if err != nil {
			return fmt.Errorf("sqlite: claim messages: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *twofa.Message) int {
		return cmp.Or(a.NextAt.Compare(b.NextAt), cmp.Compare(seqs[a], seqs[b]))
	})
	return out, nil
}

// FinishMessage records the outcome of a send under the claim's token.
func (s *Store) FinishMessage(ctx context.Context, id, token string, status twofa.MessageStatus, next time.Time, lastError string, now time.Time, e *twofa.AuditEvent) (bool, error) {
	if err := checkStatus(status); err != nil {
		return false, err
	}
	if next.IsZero() {
		next = now
	}
	var done bool
	err := s.write(ctx, func(t *wtx) error {
		done = false // a batch may run this again
		n, err := rowsAffected(t.exec(finishSQL, string(status), next.UnixMicro(), lastError, now.UnixMicro(), id, token))
		if err != nil {
			return fmt.Errorf("sqlite: finish message %s: %w", id, err)
		}
		if n == 0 {
			return nil
		}
		done = true
		return t.appendEvents(e)
	})
	if err != nil {
		return false, err
	}
	return done, nil
}

// checkStatus refuses a status that is not one of the three.
func checkStatus(st twofa.MessageStatus) error {
	switch st {
	case twofa.MessageQueued, twofa.MessageSent, twofa.MessageFailed:
		return nil
	}
	return twofa.Errorf(twofa.EINVALID, "message status %q is not queued, sent or failed", st)
}

// RetryMessage makes a failed or queued message due at now.
func (s *Store) RetryMessage(ctx context.Context, id string, now time.Time, e *twofa.AuditEvent) error {
	return s.write(ctx, func(t *wtx) error {
		n, err := rowsAffected(t.exec(retrySQL, now.UnixMicro(), id))
		if err != nil {
			return fmt.Errorf("sqlite: retry message %s: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("message %s: %w", id, twofa.ErrNotFound)
		}
		return t.appendEvents(e)
	})
}

// Messages lists messages matching f, last added first.
func (s *Store) Messages(ctx context.Context, f twofa.MessageFilter) ([]*twofa.Message, error) {
	var (
		where []string
		args  []any
	)
	if f.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, f.Tenant)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.ID != "" {
		where, args = append(where, "id = ?"), append(args, f.ID)
	}
	if f.Before != "" {
		where, args = append(where, "seq < (SELECT seq FROM outbox WHERE id = ?)"), append(args, f.Before)
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
	ms, _, err := scanMessages(s.r.QueryContext(ctx, q+` ORDER BY seq DESC LIMIT ?`, args...))
	if err != nil {
		return nil, fmt.Errorf("sqlite: messages: %w", err)
	}
	return ms, nil
}

// OutboxStats counts the messages by status.
func (s *Store) OutboxStats(ctx context.Context) (twofa.OutboxStats, error) {
	var st twofa.OutboxStats
	var oldest sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE status = 'queued'),
		(SELECT count(*) FROM outbox WHERE status = 'sent'),
		(SELECT count(*) FROM outbox WHERE status = 'failed'),
		(SELECT min(created_at) FROM outbox WHERE status = 'queued')`).Scan(&st.Queued, &st.Sent, &st.Failed, &oldest)
	if err != nil {
		return twofa.OutboxStats{}, fmt.Errorf("sqlite: outbox stats: %w", err)
	}
	st.OldestQueued = fromMicros(oldest)
	return st, nil
}

// scanMessages reads rows of outboxCols, and each message's seq.
func scanMessages[R rowSource](rows R, err error) ([]*twofa.Message, map[*twofa.Message]int64, error) {
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var ms []*twofa.Message
	seqs := map[*twofa.Message]int64{}
	for rows.Next() {
		var (
			m                     twofa.Message
			seq, keyID            int64
			channel, kind, status string
			next, created         int64
			sent                  sql.NullInt64
		)
		if err := rows.Scan(&seq, &m.ID, &m.Tenant, &m.User, &channel, &kind, &m.Payload, &keyID, &status,
			&m.Attempts, &next, &m.LastError, &created, &sent); err != nil {
			return nil, nil, err
		}
		m.Channel, m.Kind, m.Status = twofa.Channel(channel), twofa.MessageKind(kind), twofa.MessageStatus(status)
		m.KeyID = uint32(keyID)
		m.NextAt, m.CreatedAt, m.SentAt = time.UnixMicro(next).UTC(), time.UnixMicro(created).UTC(), fromMicros(sent)
		ms = append(ms, &m)
		seqs[&m] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return ms, seqs, nil
}

// DeleteMessages deletes messages that were done (sent or failed for
// good) before before, a thousand at a time.
func (s *Store) DeleteMessages(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(t *wtx) error {
		var err error
		n, err = rowsAffected(t.exec(`DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox
			WHERE status <> 'queued' AND sent_at < ? LIMIT 1000)`, before.UnixMicro()))
		if err != nil {
			return fmt.Errorf("sqlite: delete messages: %w", err)
		}
		return nil
	})
	return int(n), err
}
