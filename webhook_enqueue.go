package twofa

import (
	"context"
	"fmt"
)

// This file puts a tenant's audit events in the outbox for its webhook.
//
// The Service makes an event (Service.event) before it knows all of it:
// callers set Detail, Reason, Factor after, and stores fill in a link's
// or a key's tenant. So the event carries a pendingWebhook from then on,
// and the message is made and sealed when the store links the event
// (AuditEvent.LinkIn), inside the transaction that appends the event and
// its messages: the webhook tells exactly what the audit log holds.

// pendingWebhook is an event's webhook message, waiting for the event's
// final fields.
type pendingWebhook struct {
	id   string // the message's ID, chosen when the event is made
	url  string
	seal func(*Message, MessageBody) error
	done bool // the message is in the event's Messages
}

// attachWebhook gives the event a webhook message if its tenant has a
// webhook that wants it, and wakes the outbox's worker, as notices do.
func (s *Service) attachWebhook(ctx context.Context, e *AuditEvent) {
	if w := s.webhookFor(ctx, e.Tenant); w != nil {
		if e.webhook = s.pendingWebhook(e, w.url, w.events); e.webhook != nil {
			s.Notify()
		}
	}
}

// pendingWebhook returns the webhook message of event e for a webhook at
// url limited to events, or nil if the webhook does not want e.
func (s *Service) pendingWebhook(e *AuditEvent, url string, events []EventType) *pendingWebhook {
	if !(&webhookTarget{url: url, events: events}).wants(e.Type) {
		return nil
	}
	return &pendingWebhook{id: NewID("msg"), url: url, seal: s.SealMessage}
}

// finishWebhook adds the event's webhook message to its Messages, once,
// from its fields as they are now. LinkIn calls it.
func (e *AuditEvent) finishWebhook() error {
	p := e.webhook
	if p == nil || p.done {
		return nil
	}
	m := &Message{
		ID: p.id, Tenant: e.Tenant, User: e.User, Channel: ChannelWebhook, Kind: KindEvent,
		Status: MessageQueued, NextAt: e.Time, CreatedAt: e.Time,
	}
	if err := p.seal(m, MessageBody{To: p.url, Event: noticeOf(e, p.id)}); err != nil {
		return fmt.Errorf("twofa: sealing the webhook message of a %s event: %w", e.Type, err)
	}
	e.Messages = append(e.Messages, m)
	p.done = true
	return nil
}
