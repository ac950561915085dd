package twofa

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twofa/twofa/seal"
)

// This file holds tenants' webhooks: a tenant's application can receive
// every audit event of the tenant as a webhook signed as Standard
// Webhooks specifies, delivered through the outbox (webhook.Sender). The
// tenant's administrator sets the URL and is given the signing secret
// once; twofa keeps it sealed in the tenant's row.

// Webhook is a tenant's webhook as its administrators see it: never its
// secret.
type Webhook struct {
	Tenant string
	URL    string
	// Events are the event types sent; none: every event.
	Events    []EventType
	UpdatedAt time.Time
}

// WebhookStore keeps tenants' webhooks, in the tenant's row that
// PageStore.Tenant reads.
type WebhookStore interface {
	// SetWebhook sets a tenant's webhook: its URL, its sealed secret and
	// that secret's master key ID, and the event types it receives (none:
	// every event), creating the tenant (CreatedAt = now) if needed, and
	// sets UpdatedAt = now. An empty url removes the webhook: URL, secret,
	// key ID and event types alike. The tenant's other settings stay as
	// they are, as with SetPromptKey.
	SetWebhook(ctx context.Context, tenant, url string, secret []byte, keyID uint32, events []EventType, now time.Time, e *AuditEvent) error
}

// webhookSecretPrefix starts a secret as it is handed out: Standard
// Webhooks' "whsec_", then the key in standard base64, as
// webhook.EncodeSecret writes it.
const webhookSecretPrefix = "whsec_"

// maxWebhookURL bounds a webhook URL's length.
const maxWebhookURL = 2048

func webhookSecretAD(tenant string) []byte { return seal.AD("twofa/webhook-secret/v1", tenant) }

// webhookEvents are the event types a webhook may be limited to: every
// event a tenant has. A new event type goes here or in noWebhookEvents
// (TestWebhookEvents_Classified sees that it does).
var webhookEvents = []EventType{
	EventEnrollStarted, EventEnrollConfirmed, EventEnrollFailed, EventEnrollExpired,
	EventVerifySucceeded, EventVerifyFailed, EventReplayRejected,
	EventLocked, EventUnlocked,
	EventBackupCodeUsed, EventBackupCodesIssued,
	EventDeviceRevoked, EventDisabled, EventDeviceRenamed,
	EventResyncStarted, EventResyncSucceeded, EventResyncFailed,
	EventChallengeCreated, EventChallengeResent, EventChallengeVerified,
	EventAPIKeyCreated, EventAPIKeyRevoked,
	EventLinkCreated, EventLinkUsed, EventPromptPassed,
	EventTenantUpdated,
}

// noWebhookEvents are the event types never sent, and why. An event that
// records a delivery of the outbox belongs here: were it sent, each
// webhook's delivery would make another, forever.
var noWebhookEvents = map[EventType]string{
	EventKeysRotated:    "it concerns the operator, and no tenant",
	EventMessageSent:    "it records a delivery of the outbox",
	EventMessageFailed:  "it records a delivery of the outbox",
	EventMessageRetried: "it records an operator's retry of a delivery",
}

// WebhookEvents returns the event types a webhook may be limited to.
func WebhookEvents() []EventType { return slices.Clone(webhookEvents) }

// SetWebhook sets the tenant's webhook, replacing any other, and returns
// its new signing secret ("whsec_…"), once: twofa keeps it sealed. The
// URL is absolute, https (http only for localhost), without credentials
// or fragment; events, if any, limit the webhook to those event types
// (WebhookEvents). Every later event of the tenant is delivered, this
// change's own tenant_updated event first, so a receiver can check its
// set-up at once. A new secret replaces the old one at once: deliveries
// from then on, retries of older messages included, are signed with the
// new one.
func (s *Service) SetWebhook(ctx context.Context, tenant, rawURL string, events []EventType) (string, error) {
	if err := validateID("tenant", tenant); err != nil {
		return "", err
	}
	if err := checkWebhookURL(rawURL); err != nil {
		return "", err
	}
	events, err := checkWebhookEvents(events)
	if err != nil {
		return "", err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generating a webhook secret: %w", err)
	}
	defer clear(key)
	blob, err := s.keys.Seal(key, webhookSecretAD(tenant))
	if err != nil {
		return "", err
	}
	now := s.now()
	e := s.event(ctx, EventTenantUpdated, UserRef{Tenant: tenant}, "", now)
	e.Detail = "webhook to " + webhookOrigin(rawURL) + eventsDetail(events)
	// This change's event goes to the new webhook, not to the one it
	// replaces.
	if e.webhook = s.pendingWebhook(e, rawURL, events); e.webhook != nil {
		s.Notify()
	}
	if err := s.store.SetWebhook(ctx, tenant, rawURL, blob, s.keys.ActiveID(), events, now, e); err != nil {
		return "", err
	}
	s.webhooks.put(tenant, &webhookTarget{url: rawURL, events: events}, now)
	return webhookSecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// RemoveWebhook removes the tenant's webhook. Messages still queued for
// it are not sent. ErrNotFound when the tenant has none.
func (s *Service) RemoveWebhook(ctx context.Context, tenant string) error {
	if _, err := s.Webhook(ctx, tenant); err != nil {
		return err
	}
	now := s.now()
	e := s.event(ctx, EventTenantUpdated, UserRef{Tenant: tenant}, "", now)
	e.Detail = "webhook removed"
	e.webhook = nil // nowhere to send it
	if err := s.store.SetWebhook(ctx, tenant, "", nil, 0, nil, now, e); err != nil {
		return err
	}
	s.webhooks.put(tenant, nil, now)
	return nil
}

// Webhook returns the tenant's webhook, without its secret. ErrNotFound
// when the tenant has none.
func (s *Service) Webhook(ctx context.Context, tenant string) (*Webhook, error) {
	if err := validateID("tenant", tenant); err != nil {
		return nil, err
	}
	t, err := s.store.Tenant(ctx, tenant)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil || t.WebhookURL == "" {
		return nil, noWebhook(tenant)
	}
	return &Webhook{Tenant: tenant, URL: t.WebhookURL, Events: t.WebhookEvents, UpdatedAt: t.UpdatedAt}, nil
}

func noWebhook(tenant string) error {
	return &Error{Code: ENOTFOUND, Reason: ErrNotFound.Reason, Message: fmt.Sprintf("tenant %s has no webhook", tenant)}
}

// WebhookSecret returns the tenant's webhook URL and its secret, opened,
// for the webhook sender (webhook.Secrets): read from the store on each
// call, so a delivery never uses a secret or URL replaced meanwhile.
// ErrNotFound when the tenant has no webhook. The caller clears the
// secret when done.
func (s *Service) WebhookSecret(ctx context.Context, tenant string) (string, []byte, error) {
	t, err := s.store.Tenant(ctx, tenant)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", nil, err
	}
	if err != nil || t.WebhookURL == "" {
		return "", nil, noWebhook(tenant)
	}
	key, err := s.keys.Open(t.WebhookSecret, webhookSecretAD(tenant))
	if err != nil {
		return "", nil, fmt.Errorf("opening the webhook secret of tenant %s: %w", tenant, err)
	}
	return t.WebhookURL, key, nil
}

// checkWebhookURL accepts what a webhook may be sent to, as return URLs
// are checked: an absolute https URL (http only for localhost), without
// credentials (the signature authenticates twofa) or fragment. Whether
// its address is public is checked when it is sent to, after DNS.
func checkWebhookURL(raw string) error {
	if len(raw) > maxWebhookURL {
		return Errorf(EINVALID, "webhook URL is longer than %d bytes", maxWebhookURL)
	}
	if !utf8.ValidString(raw) || strings.ContainsFunc(raw, unicode.IsControl) || strings.ContainsAny(raw, " \t") {
		return Errorf(EINVALID, "webhook URL must not hold spaces, control characters or invalid UTF-8")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return Errorf(EINVALID, "webhook URL must be an absolute URL without credentials or fragment")
	}
	h := u.Hostname()
	local := h == "localhost" || h == "127.0.0.1" || h == "::1"
	if u.Scheme != "https" && !(u.Scheme == "http" && local) {
		return Errorf(EINVALID, "webhook URL must use https (http only for localhost)")
	}
	return nil
}

// checkWebhookEvents returns the event types without duplicates, in the
// order given, refusing an unknown one.
func checkWebhookEvents(events []EventType) ([]EventType, error) {
	var out []EventType
	for _, t := range events {
		if !slices.Contains(webhookEvents, t) {
			return nil, Errorf(EINVALID, "unknown event type %q (see the list in docs/operations.md, Webhooks)", t)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// webhookOrigin is a webhook URL as the audit log names it: its scheme
// and host, for its path and query may hold a token of the receiver's.
func webhookOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Scheme + "://" + u.Host
}

func eventsDetail(events []EventType) string {
	if len(events) == 0 {
		return ", every event"
	}
	names := make([]string, len(events))
	for i, t := range events {
		names[i] = string(t)
	}
	return ", events " + strings.Join(names, " ")
}

// webhookCacheTTL bounds how stale a process's view of a tenant's
// webhook may be. Every event of a tenant asks whether it has a webhook,
// and a database read per event would double the cost of a verification;
// so for up to this long after an administrator sets, changes or removes
// a webhook in another process, that process's events go by the old
// setting (the process that made the change knows at once). A message
// queued for a webhook changed meanwhile goes to the new URL (the sender
// reads the current one); one queued for a removed webhook is not sent.
const webhookCacheTTL = 5 * time.Second

// webhookTarget is a tenant's webhook as events need it.
type webhookTarget struct {
	url    string
	events []EventType // none: every event
}

// wants reports whether the webhook receives events of type t.
func (w *webhookTarget) wants(t EventType) bool {
	if _, never := noWebhookEvents[t]; never {
		return false
	}
	return len(w.events) == 0 || slices.Contains(w.events, t)
}

// webhookCache remembers tenants' webhooks, and that a tenant has none.
type webhookCache struct {
	mu sync.Mutex
	m  map[string]cachedWebhook
}

type cachedWebhook struct {
	w       *webhookTarget // nil: no webhook
	expires time.Time
}

// get returns the cached webhook of the tenant, and whether the entry is
// fresh; a stale entry is returned too, for when the store cannot answer.
func (c *webhookCache) get(tenant string, now time.Time) (w *webhookTarget, found, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[tenant]
	return e.w, ok, ok && now.Before(e.expires)
}

func (c *webhookCache) put(tenant string, w *webhookTarget, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > 10000 {
		c.m = map[string]cachedWebhook{}
	}
	c.m[tenant] = cachedWebhook{w: w, expires: now.Add(webhookCacheTTL)}
}

// webhookKey is the context key of webhookFor's answer for one tenant.
type webhookKey struct{}

type resolvedWebhook struct {
	tenant string
	w      *webhookTarget
}

// withWebhook looks the tenant's webhook up once and keeps the answer in
// the context, for events made where the store must not be called, such
// as an attempt's check, which runs inside the store's transaction.
func (s *Service) withWebhook(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, webhookKey{}, resolvedWebhook{tenant, s.webhookFor(ctx, tenant)})
}

// webhookFor returns the tenant's webhook, or nil: from the context
// (withWebhook), else from the cache, else from the store. When the store
// fails, it goes by what it knew before, if anything, and says so in the
// log: the event is recorded all the same.
func (s *Service) webhookFor(ctx context.Context, tenant string) *webhookTarget {
	if tenant == "" {
		return nil
	}
	if r, ok := ctx.Value(webhookKey{}).(resolvedWebhook); ok && r.tenant == tenant {
		return r.w
	}
	now := s.now()
	w, found, fresh := s.webhooks.get(tenant, now)
	if fresh {
		return w
	}
	t, err := s.store.Tenant(ctx, tenant)
	switch {
	case errors.Is(err, ErrNotFound):
		w = nil
	case err != nil:
		s.log.ErrorContext(ctx, "reading the tenant's webhook; its events go by what this process knew", "tenant", tenant, "known", found, "err", err)
		return w
	case t.WebhookURL == "":
		w = nil
	default:
		w = &webhookTarget{url: t.WebhookURL, events: t.WebhookEvents}
	}
	s.webhooks.put(tenant, w, now)
	return w
}
