package twofa

import (
	"context"
	"errors"
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
// that appends the event, each queued and due at its NextAt, with its
// ID, Tenant, User, Channel, Kind, Payload, KeyID and CreatedAt (its
// other fields are the store's); when that transaction fails, no
// message is added.
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
