package web

import (
	"net/http"
	"time"

	"github.com/twofa/twofa"
)

// The caller's tenant's webhook: routes for admin keys (routes.go).

type webhookRequest struct {
	URL        string   `json:"url"`
	EventTypes []string `json:"event_types"`
}

func (q webhookRequest) Valid() map[string]string {
	if q.URL == "" {
		return map[string]string{"url": "required"}
	}
	return nil // the Service checks the URL and the event types
}

// webhookResponse is a tenant's webhook; Secret only when it was just
// made.
type webhookResponse struct {
	URL        string     `json:"url"`
	EventTypes []string   `json:"event_types"`
	Secret     string     `json:"secret,omitempty"`
	UpdatedAt  *time.Time `json:"updated_at,omitempty"`
}

func eventTypeNames(events []twofa.EventType) []string {
	names := make([]string, len(events))
	for i, t := range events {
		names[i] = string(t)
	}
	return names
}

func (s *server) handleSetWebhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[webhookRequest](w, r, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		events := make([]twofa.EventType, len(req.EventTypes))
		for i, t := range req.EventTypes {
			events[i] = twofa.EventType(t)
		}
		tenant := ref(r).Tenant
		secret, err := s.svc.SetWebhook(r.Context(), tenant, req.URL, events)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		hook, err := s.svc.Webhook(r.Context(), tenant)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, webhookResponse{URL: hook.URL, EventTypes: eventTypeNames(hook.Events), Secret: secret, UpdatedAt: timePtr(hook.UpdatedAt)})
	})
}

func (s *server) handleWebhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hook, err := s.svc.Webhook(r.Context(), ref(r).Tenant)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, webhookResponse{URL: hook.URL, EventTypes: eventTypeNames(hook.Events), UpdatedAt: timePtr(hook.UpdatedAt)})
	})
}

func (s *server) handleRemoveWebhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.svc.RemoveWebhook(r.Context(), ref(r).Tenant); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
