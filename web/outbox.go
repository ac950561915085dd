package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/twofa/twofa"
)

// The outbox, for administrators: what is stuck, and retrying it. Never
// a payload: it holds codes and addresses.

// messageJSON is an outbox message as the API shows it.
type messageJSON struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id,omitempty"`
	Channel   string     `json:"channel"`
	Kind      string     `json:"kind"`
	Status    string     `json:"status"`
	Attempts  int        `json:"attempts"`
	NextAt    *time.Time `json:"next_at"`
	LastError string     `json:"last_error,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	DoneAt    *time.Time `json:"done_at"`
}

func toMessageJSON(m *twofa.Message) messageJSON {
	out := messageJSON{
		ID: m.ID, UserID: m.User, Channel: string(m.Channel), Kind: string(m.Kind), Status: string(m.Status),
		Attempts: m.Attempts, LastError: m.LastError, CreatedAt: m.CreatedAt.UTC(),
	}
	if m.Status == twofa.MessageQueued {
		next := m.NextAt.UTC()
		out.NextAt = &next
	}
	if !m.SentAt.IsZero() {
		done := m.SentAt.UTC()
		out.DoneAt = &done
	}
	return out
}

// handleOutbox lists the key's tenant's messages, newest first.
func (s *server) handleOutbox() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.Context().Value(keyAPIKey).(*twofa.APIKey)
		q := r.URL.Query()
		f := twofa.MessageFilter{Tenant: k.Tenant, Before: q.Get("before"), Limit: 100}
		switch st := twofa.MessageStatus(q.Get("status")); st {
		case "", twofa.MessageQueued, twofa.MessageSent, twofa.MessageFailed:
			f.Status = st
		default:
			s.writeError(w, r, invalid("status must be queued, sent or failed"))
			return
		}
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				s.writeError(w, r, invalid("limit must be 1 to 1000"))
				return
			}
			f.Limit = n
		}
		ms, err := s.svc.OutboxMessages(r.Context(), f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := struct {
			Messages   []messageJSON `json:"messages"`
			NextBefore *string       `json:"next_before"`
		}{Messages: []messageJSON{}}
		for _, m := range ms {
			out.Messages = append(out.Messages, toMessageJSON(m))
		}
		if len(ms) == f.Limit {
			last := ms[len(ms)-1].ID
			out.NextBefore = &last
		}
		encode(w, http.StatusOK, out)
	})
}

// handleOutboxRetry queues a failed message of the key's tenant again.
func (s *server) handleOutboxRetry() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := decode[noBody](w, r, true); err != nil {
			s.writeError(w, r, err)
			return
		}
		k := r.Context().Value(keyAPIKey).(*twofa.APIKey)
		if err := s.svc.RetryMessage(r.Context(), k.Tenant, r.PathValue("message_id")); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
