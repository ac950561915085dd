package twofa

import "context"

// EventMessageQueued is the type of QueueMessage's events.
const EventMessageQueued EventType = "test_message_queued"

// QueueMessage seals body into m and adds m to the outbox with an audit
// event of m's user, as a change that sends a message does, and wakes
// the worker.
func (s *Service) QueueMessage(ctx context.Context, m *Message, body MessageBody) error {
	if err := s.SealMessage(m, body); err != nil {
		return err
	}
	e := s.event(ctx, EventMessageQueued, UserRef{Tenant: m.Tenant, User: m.User}, "", s.now())
	e.Messages = []*Message{m}
	if err := s.store.AppendAudit(ctx, e); err != nil {
		return err
	}
	s.Notify()
	return nil
}
