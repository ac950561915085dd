package twofa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twofa/twofa/seal"
)

// This file holds the transactional outbox: every message twofa sends
// (email now; SMS, push and webhooks next) is a row written in the same
// transaction as the change that causes it, and a worker (DeliverOutbox)
// sends it, retries it with backoff, and records the outcome in the row
// and the audit log. A crash between the commit and the send loses
// nothing; a crash after the send and before the row is marked repeats
// the send with the same message ID, so the receiving side can drop the
// duplicate.

// Channel is how an outbox message travels.
type Channel string

// MessageRetention is how long a message that is done (sent, or failed
// for good) stays in the outbox before SweepExpired deletes it.
const MessageRetention = 30 * 24 * time.Hour

// Channels.
const (
	ChannelEmail   Channel = "email"
	ChannelWebhook Channel = "webhook"
)

// MessageKind is what a message says, which decides how a sender renders
// it.
type MessageKind string

// Message kinds.
const (
	// KindCode carries a one-time code for the user to type.
	KindCode MessageKind = "code"
	// KindNotice tells the user of a change to their factors.
	KindNotice MessageKind = "notice"
	// KindEvent carries an audit event to the tenant's webhook.
	KindEvent MessageKind = "event"
)

// MessageStatus is where a message is in its life.
type MessageStatus string

// Message statuses. A queued message waits for its first send or for a
// retry; sent and failed are final.
const (
	MessageQueued MessageStatus = "queued"
	MessageSent   MessageStatus = "sent"
	MessageFailed MessageStatus = "failed"
)

// Message is one row of the outbox.
type Message struct {
	// ID ("msg_…") is stable across retries: it is the email's
	// Message-ID and the webhook's webhook-id, so a receiver can drop a
	// repeated delivery.
	ID      string
	Tenant  string
	User    string // empty for a tenant's own messages
	Channel Channel
	Kind    MessageKind
	// Payload is the sealed MessageBody, bound to the row by its
	// associated data (MessageAD); KeyID is its master key's ID. Both are
	// cleared once the message is sent: a code must not outlive its
	// delivery. A failed message keeps them, so an operator can retry it.
	Payload []byte
	KeyID   uint32

	Status    MessageStatus
	Attempts  int       // sends tried so far
	NextAt    time.Time // when a queued message is due
	LastError string    // the last failure, for operators; never a secret
	CreatedAt time.Time
	SentAt    time.Time // when it was sent, or failed for good
}

// MessageBody is what a message carries, sealed at rest: it may hold a
// code, and holds an address.
type MessageBody struct {
	To string `json:"to"` // an email address or a URL

	// Code and CodeExpires, for KindCode; Purpose says what the code is
	// for ("sign_in", "confirm_email").
	Code        string    `json:"code,omitempty"`
	CodeExpires time.Time `json:"code_expires,omitzero"`
	Purpose     string    `json:"purpose,omitempty"`

	// Event, for KindNotice and KindEvent: what happened, when, from
	// where, as the audit log records it (without its chain fields).
	Event *NoticeEvent `json:"event,omitempty"`
}

// NoticeEvent is an audit event as a notice or webhook tells it.
type NoticeEvent struct {
	ID        string    `json:"id"` // the message's ID, for webhooks
	Type      EventType `json:"type"`
	Time      time.Time `json:"time"`
	Tenant    string    `json:"tenant"`
	User      string    `json:"user,omitempty"`
	Device    string    `json:"device,omitempty"`
	Factor    string    `json:"factor,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// Outgoing is a message as a Sender gets it: its row and its opened body.
type Outgoing struct {
	*Message
	Body MessageBody
	// Issuer names the service to the user, as authenticator apps show it.
	Issuer string
}

// A Sender delivers the messages of one channel. It returns nil once the
// receiver has accepted the message, a Permanent error when a retry
// would not help (a refused address, bad credentials), and any other
// error when it might (a timeout, a 4xx of SMTP, a 5xx of HTTP).
type Sender interface {
	Send(ctx context.Context, m *Outgoing) error
}

// permanentError marks a failure that a retry would not fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure that a retry would not fix.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// OutboxStore keeps the outbox. Messages are added by the change that
// causes them: a store appends AuditEvent.Messages in the transaction
// that appends the event, each queued, with its ID, Tenant, User,
// Channel, Kind, Payload and KeyID, created and due as NewMessageTimes
// says (its other fields are the store's); when that transaction fails,
// no message is added.
type OutboxStore interface {
	// ClaimMessages leases up to limit queued messages of the channels
	// that are due at now (NextAt <= now and no unexpired lease), oldest
	// due first, until now+lease, under the token lease (a random string
	// of the caller's), and returns them with Attempts counting this try.
	// A message is leased by one caller at a time, in any process; one
	// whose lease ran out (a worker that died) is due again.
	ClaimMessages(ctx context.Context, channels []Channel, now time.Time, lease time.Duration, token string, limit int) ([]*Message, error)

	// FinishMessage records the outcome of a send of a message claimed
	// under token, only if the message is still queued under that token:
	// a worker whose lease ran out and was claimed by another changes
	// nothing and gets false (one whose lease ran out unclaimed still
	// records its outcome). With MessageSent the message is final, its
	// payload cleared and SentAt now; with MessageFailed it is final,
	// keeps its payload and SentAt is now; with MessageQueued it is due
	// again at next. lastError is kept for operators. The lease is
	// released, and e appended in the same transaction when the outcome
	// is recorded (and only then).
	FinishMessage(ctx context.Context, id, token string, status MessageStatus, next time.Time, lastError string, now time.Time, e *AuditEvent) (bool, error)

	// Messages lists messages matching f, newest (last added) first.
	Messages(ctx context.Context, f MessageFilter) ([]*Message, error)

	// RetryMessage makes a failed or queued message queued and due at
	// now, as an operator asks. A lease it is under stays: a worker is
	// sending it, and its outcome stands. ErrNotFound, appending nothing,
	// when no such message is failed or queued (a sent one has no payload
	// left to send).
	RetryMessage(ctx context.Context, id string, now time.Time, e *AuditEvent) error

	// OutboxStats counts the messages by status, and returns the creation
	// time of the oldest queued one (zero when none is queued).
	OutboxStats(ctx context.Context) (OutboxStats, error)

	// DeleteMessages deletes up to a thousand messages that were done
	// (sent, or failed for good) before before, and returns how many.
	// Queued messages are never deleted.
	DeleteMessages(ctx context.Context, before time.Time) (int, error)
}

// NewMessageTimes returns when a message that event e carries is created
// (its CreatedAt, or else the event's Time) and first due (its NextAt, or
// else at once), for stores, which refuse a message without an ID,
// tenant, channel or kind.
func NewMessageTimes(m *Message, e *AuditEvent) (created, next time.Time, err error) {
	if m.ID == "" || m.Tenant == "" || m.Channel == "" || m.Kind == "" {
		return created, next, fmt.Errorf("message %q lacks an ID, tenant, channel or kind", m.ID)
	}
	created, next = m.CreatedAt, m.NextAt
	if created.IsZero() {
		created = e.Time
	}
	if next.IsZero() {
		next = created
	}
	if created.IsZero() {
		return created, next, fmt.Errorf("message %s has no creation time, nor its event a time", m.ID)
	}
	return created, next, nil
}

// MessageFilter selects outbox messages.
type MessageFilter struct {
	Tenant string        // "": every tenant
	Status MessageStatus // "": every status
	ID     string        // "": every message; else only this one
	Before string        // page: messages added before this one (none if it is unknown)
	Limit  int           // at most this many; 0 means 100
}

// MessageAD is the associated data that binds a message's sealed payload
// to its row.
func MessageAD(m *Message) []byte {
	return seal.AD("twofa/message/v1", m.ID, m.Tenant, m.User, string(m.Channel), string(m.Kind))
}

// OutboxStats is the state of the outbox, for metrics.
type OutboxStats struct {
	Queued, Sent, Failed int64
	OldestQueued         time.Time
}

// Audit event types of the outbox. Each names the message in Detail.
const (
	EventMessageSent    EventType = "message_sent"
	EventMessageFailed  EventType = "message_failed" // Reason: permanent, expired, gave_up or unreadable
	EventMessageRetried EventType = "message_retried"
)

// NewMessage returns a message to queue for the user (ref.User empty for
// a tenant's own), due at once: add it to the AuditEvent of the change
// that sends it, after SealMessage.
func NewMessage(ref UserRef, ch Channel, kind MessageKind, now time.Time) *Message {
	now = now.UTC().Truncate(time.Microsecond)
	return &Message{
		ID: NewID("msg"), Tenant: ref.Tenant, User: ref.User, Channel: ch, Kind: kind,
		Status: MessageQueued, NextAt: now, CreatedAt: now,
	}
}

// SealMessage seals body as m's payload, under the active master key and
// bound to m's row (MessageAD), so the store holds neither the code nor
// the address in the clear.
func (s *Service) SealMessage(m *Message, body MessageBody) error {
	if m.ID == "" || m.Tenant == "" || m.Channel == "" || m.Kind == "" {
		return fmt.Errorf("sealing a message: ID, tenant, channel and kind are required")
	}
	plain, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("sealing message %s: %w", m.ID, err)
	}
	defer clear(plain)
	blob, err := s.keys.Seal(plain, MessageAD(m))
	if err != nil {
		return fmt.Errorf("sealing message %s: %w", m.ID, err)
	}
	m.Payload, m.KeyID = blob, s.keys.ActiveID()
	return nil
}

// openMessage opens m's payload.
func (s *Service) openMessage(m *Message) (MessageBody, error) {
	var body MessageBody
	if len(m.Payload) == 0 {
		return body, fmt.Errorf("message %s has no payload", m.ID)
	}
	plain, err := s.keys.Open(m.Payload, MessageAD(m))
	if err != nil {
		return body, fmt.Errorf("opening message %s: %w", m.ID, err)
	}
	defer clear(plain)
	if err := json.Unmarshal(plain, &body); err != nil {
		return MessageBody{}, fmt.Errorf("opening message %s: malformed body", m.ID)
	}
	return body, nil
}

// errNoMessage is the answer about a message that does not exist, or is
// another tenant's.
var errNoMessage = &Error{Code: ENOTFOUND, Reason: "not_found", Message: "no such message"}

// OutboxMessages lists outbox messages, newest first, for operators: a
// tenant's (f.Tenant) or every tenant's. Their payloads are left out:
// they hold codes and addresses.
func (s *Service) OutboxMessages(ctx context.Context, f MessageFilter) ([]*Message, error) {
	switch f.Status {
	case "", MessageQueued, MessageSent, MessageFailed:
	default:
		return nil, Errorf(EINVALID, "status must be queued, sent or failed")
	}
	if f.Limit < 0 || f.Limit > 1000 {
		return nil, Errorf(EINVALID, "limit must be 1 to 1000")
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	ms, err := s.store.Messages(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		m.Payload = nil
	}
	return ms, nil
}

// RetryMessage queues a failed message again, due at once, or makes a
// queued one waiting for its next try due at once, as an operator asks.
// tenant, when not empty, is the caller's: another tenant's message is
// not found. A sent message is a conflict: its payload is gone. The
// message keeps its creation time, so one that failed after retrying
// for a day gets one more try.
func (s *Service) RetryMessage(ctx context.Context, tenant, id string) error {
	if id == "" {
		return Errorf(EINVALID, "message ID is empty")
	}
	ms, err := s.store.Messages(ctx, MessageFilter{Tenant: tenant, ID: id, Limit: 1})
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return errNoMessage
	}
	m := ms[0]
	if m.Status == MessageSent {
		return &Error{Code: ECONFLICT, Reason: "already_sent", Message: "the message was sent: there is nothing left to send"}
	}
	now := s.now()
	e := s.event(ctx, EventMessageRetried, UserRef{Tenant: m.Tenant, User: m.User}, "", now)
	e.Detail = messageDetail(m)
	if err := s.store.RetryMessage(ctx, id, now, e); err != nil {
		if errors.Is(err, ErrNotFound) {
			return errNoMessage // sent meanwhile
		}
		return err
	}
	s.Notify()
	return nil
}

// OutboxStats returns the state of the outbox, for metrics.
func (s *Service) OutboxStats(ctx context.Context) (OutboxStats, error) {
	return s.store.OutboxStats(ctx)
}

// messageDetail names a message in an audit entry: never its payload.
func messageDetail(m *Message) string {
	return fmt.Sprintf("message %s (%s %s)", m.ID, m.Channel, m.Kind)
}
