package twofa

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twofa/twofa/seal"
)

// DeliverOptions configure DeliverOutbox. The zero value takes the
// defaults.
type DeliverOptions struct {
	// Concurrency is how many sends run at once (default 8).
	Concurrency int
	// Batch is the most messages claimed at once (default Concurrency):
	// a worker claims no more than it has room to send, so leases do not
	// run out while messages wait.
	Batch int
	// Poll is how often the worker looks for due messages when nothing
	// wakes it (Notify) sooner (default 1 s).
	Poll time.Duration
	// Lease is how long a claimed message is the worker's (default 2
	// min): if the worker dies, another sends the message once the lease
	// has run out. It must be longer than SendTimeout.
	Lease time.Duration
	// SendTimeout bounds one send (default 30 s).
	SendTimeout time.Duration
	// OnSend, when set, is called after each try, with the message's
	// channel and the outcome: for metrics.
	OnSend func(Channel, SendOutcome)
}

// SendOutcome is what became of one try to send a message.
type SendOutcome string

// Send outcomes.
const (
	SendSent    SendOutcome = "sent"    // the receiver accepted it
	SendRetry   SendOutcome = "retry"   // it failed and will be tried again
	SendFailed  SendOutcome = "failed"  // it failed for good
	SendExpired SendOutcome = "expired" // its code expired before it could go: not sent
)

// Retries: the first comes retryFirst after a failure, each later one
// twice as late, up to retryMax; a message still failing giveUpAfter
// after it was created fails for good.
const (
	retryFirst  = 30 * time.Second
	retryMax    = time.Hour
	giveUpAfter = 24 * time.Hour
	// maxLastError bounds the failure text kept in the row and the audit
	// log.
	maxLastError = 300
	// finishTimeout bounds the recording of an outcome, which goes on
	// after the worker is told to stop: a message sent and not recorded
	// would be sent again.
	finishTimeout = 10 * time.Second
)

func (o DeliverOptions) withDefaults() (DeliverOptions, error) {
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if o.Batch == 0 {
		o.Batch = o.Concurrency
	}
	if o.Poll == 0 {
		o.Poll = time.Second
	}
	if o.Lease == 0 {
		o.Lease = 2 * time.Minute
	}
	if o.SendTimeout == 0 {
		o.SendTimeout = 30 * time.Second
	}
	switch {
	case o.Concurrency < 0 || o.Batch < 0 || o.Poll < 0 || o.Lease < 0 || o.SendTimeout < 0:
		return o, fmt.Errorf("deliver options: no value may be negative")
	case o.SendTimeout >= o.Lease:
		return o, fmt.Errorf("deliver options: the lease (%v) must be longer than a send may take (%v)", o.Lease, o.SendTimeout)
	}
	return o, nil
}

// Notify wakes DeliverOutbox at once, for a message just queued (a code
// the user is waiting for), rather than at its next poll. It never
// blocks.
func (s *Service) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// DeliverOutbox sends the outbox's messages of the channels it has a
// sender for, until ctx ends; then it waits for the sends under way and
// returns nil. Any number of workers, in any number of processes, may run
// on one store: each message is leased to one worker at a time.
//
// A message whose payload opens is handed to its channel's Sender, with
// a timeout. Sent: the payload is wiped and message_sent audited. A
// Permanent error, or any error a day after the message was created:
// failed, with the error's text (never a secret: the recipient and the
// code are cut out of it), and message_failed audited. Any other error:
// tried again after 30 s, then 1 min, 2 min... up to 1 h. A code that
// expired before it could go is failed without being sent.
func (s *Service) DeliverOutbox(ctx context.Context, senders map[Channel]Sender, opts DeliverOptions) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	var channels []Channel
	for c, sn := range senders {
		if sn != nil {
			channels = append(channels, c)
		}
	}
	slices.Sort(channels)
	if len(channels) == 0 {
		<-ctx.Done()
		return nil
	}

	done := make(chan struct{}, opts.Concurrency) // a send ended
	inflight := 0
	poll := time.NewTicker(opts.Poll)
	defer poll.Stop()
	more := true // a claim now may find due messages
	for {
		if more && inflight < opts.Concurrency && ctx.Err() == nil {
			n := min(opts.Concurrency-inflight, opts.Batch)
			token := leaseToken()
			ms, err := s.store.ClaimMessages(ctx, channels, s.now(), opts.Lease, token, n)
			if err != nil {
				if ctx.Err() == nil {
					s.log.ErrorContext(ctx, "outbox: claiming messages", "err", err)
				}
				more = false
			} else {
				more = len(ms) == n
			}
			for _, m := range ms {
				inflight++
				go func() {
					defer func() { done <- struct{}{} }()
					s.deliver(ctx, m, senders[m.Channel], token, opts)
				}()
			}
			if more && inflight < opts.Concurrency {
				continue
			}
		}
		select {
		case <-ctx.Done():
			for ; inflight > 0; inflight-- {
				<-done
			}
			return nil
		case <-done:
			inflight--
		case <-poll.C:
			more = true
		case <-s.wake:
			more = true
		}
	}
}

// leaseToken returns a new claim token: 80 bits from crypto/rand, which
// no other worker can guess or repeat.
func leaseToken() string { return NewID("lease") }

// deliver tries once to send a message claimed under token, and records
// the outcome.
func (s *Service) deliver(ctx context.Context, m *Message, sender Sender, token string, opts DeliverOptions) {
	var (
		status  MessageStatus
		next    time.Time
		outcome SendOutcome
		reason  string
		text    string
	)
	body, err := s.openMessage(m)
	now := s.now()
	switch {
	case errors.Is(err, seal.ErrUnknownKey):
		// Sealed under a key this process lacks: a replica that has it
		// (keys roll out one replica at a time) may send it.
		s.log.ErrorContext(ctx, "outbox: message sealed under a key this keyring lacks", "message", m.ID, "key_id", m.KeyID)
		status, next, outcome, text = MessageQueued, now.Add(retryDelay(m.Attempts)), SendRetry,
			fmt.Sprintf("sealed under master key %d, which this process's keyring lacks", m.KeyID)
		if now.Sub(m.CreatedAt) >= giveUpAfter {
			status, outcome, reason = MessageFailed, SendFailed, "gave_up"
		}
	case err != nil:
		// A payload that does not open under its key never will: altered,
		// or moved to another row.
		s.log.ErrorContext(ctx, "outbox: message does not open", "message", m.ID, "err", err)
		status, outcome, reason, text = MessageFailed, SendFailed, "unreadable", "the payload does not open"
	case m.Kind == KindCode && !body.CodeExpires.IsZero() && !now.Before(body.CodeExpires):
		status, outcome, reason, text = MessageFailed, SendExpired, "expired", "the code expired before it could be sent"
	default:
		sctx, cancel := context.WithTimeout(ctx, opts.SendTimeout)
		err = sender.Send(sctx, &Outgoing{Message: m, Body: body, Issuer: s.policy.Issuer})
		cancel()
		now = s.now()
		switch {
		case err == nil:
			status, outcome = MessageSent, SendSent
		case IsPermanent(err):
			status, outcome, reason, text = MessageFailed, SendFailed, "permanent", scrub(err, body)
		case ctx.Err() != nil:
			// Stopped: due again at once, for this worker's successor.
			status, next, outcome, text = MessageQueued, now, SendRetry, "interrupted: "+scrub(err, body)
		case now.Sub(m.CreatedAt) >= giveUpAfter:
			status, outcome, reason, text = MessageFailed, SendFailed, "gave_up", scrub(err, body)
		default:
			status, next, outcome, text = MessageQueued, now.Add(retryDelay(m.Attempts)), SendRetry, scrub(err, body)
		}
	}
	body = MessageBody{}

	var e *AuditEvent
	ref := UserRef{Tenant: m.Tenant, User: m.User}
	switch status {
	case MessageSent:
		e = s.event(ctx, EventMessageSent, ref, "", now)
		e.Detail = fmt.Sprintf("%s, try %d", messageDetail(m), m.Attempts)
	case MessageFailed:
		e = s.event(ctx, EventMessageFailed, ref, "", now)
		e.Reason = reason
		e.Detail = fmt.Sprintf("%s, try %d: %s", messageDetail(m), m.Attempts, text)
	default:
		s.log.WarnContext(ctx, "outbox: send failed; will retry", "message", m.ID, "channel", string(m.Channel),
			"try", m.Attempts, "next", next, "err", text)
	}
	e = prepared(e, "twofa")
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	ok, err := s.store.FinishMessage(fctx, m.ID, token, status, next, text, now, e)
	switch {
	case err != nil:
		s.log.ErrorContext(ctx, "outbox: recording a send", "message", m.ID, "outcome", string(outcome), "err", err)
	case !ok:
		s.log.WarnContext(ctx, "outbox: lease lost before the outcome was recorded; another worker has the message",
			"message", m.ID, "outcome", string(outcome))
	}
	if opts.OnSend != nil {
		opts.OnSend(m.Channel, outcome)
	}
}

// prepared gives a worker's event its actor; nil stays nil.
func prepared(e *AuditEvent, actor string) *AuditEvent {
	if e != nil {
		e.Actor = actor
	}
	return e
}

// retryDelay is the wait after the attempts-th failed try: retryFirst,
// doubling, at most retryMax.
func retryDelay(attempts int) time.Duration {
	d := retryFirst
	for i := 1; i < attempts && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// scrub makes a sender's error fit for the row and the audit log: the
// recipient and the code cut out (an SMTP server may quote the address,
// an HTTP client the URL), one line of printable text, at most
// maxLastError bytes.
func scrub(err error, body MessageBody) string {
	text := err.Error()
	if body.To != "" {
		text = strings.ReplaceAll(text, body.To, "[recipient]")
	}
	if body.Code != "" {
		text = strings.ReplaceAll(text, body.Code, "[code]")
	}
	text = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(text, "?"))
	text = strings.TrimSpace(text)
	if len(text) > maxLastError {
		cut := maxLastError
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	return text
}
