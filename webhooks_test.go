package twofa_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/seal"
)

// recorder is a store that remembers the events it was given, to see the
// messages linking added to them: the stores do not keep an outbox yet
// in every branch, and the events show what they are handed.
type recorder struct {
	twofa.Store
	mu     sync.Mutex
	events []*twofa.AuditEvent
	// inCheck is set while an attempt's check runs, which must not call
	// the store; readsInCheck counts the tenants it read then.
	inCheck      bool
	readsInCheck int
}

func (r *recorder) Tenant(ctx context.Context, id string) (*twofa.Tenant, error) {
	r.mu.Lock()
	if r.inCheck {
		r.readsInCheck++
	}
	r.mu.Unlock()
	return r.Store.Tenant(ctx, id)
}

func (r *recorder) keep(events ...*twofa.AuditEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		if e != nil {
			r.events = append(r.events, e)
		}
	}
}

// take returns the events recorded since the last take.
func (r *recorder) take() []*twofa.AuditEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func (r *recorder) AppendAudit(ctx context.Context, events ...*twofa.AuditEvent) error {
	err := r.Store.AppendAudit(ctx, events...)
	if err == nil {
		r.keep(events...)
	}
	return err
}

func (r *recorder) CreateAPIKey(ctx context.Context, k *twofa.APIKey, e *twofa.AuditEvent) error {
	err := r.Store.CreateAPIKey(ctx, k, e)
	if err == nil {
		r.keep(e)
	}
	return err
}

func (r *recorder) Unlock(ctx context.Context, ref twofa.UserRef, e *twofa.AuditEvent) error {
	err := r.Store.Unlock(ctx, ref, e)
	if err == nil {
		r.keep(e)
	}
	return err
}

func (r *recorder) SetWebhook(ctx context.Context, tenant, url string, secret []byte, keyID uint32, events []twofa.EventType, now time.Time, e *twofa.AuditEvent) error {
	err := r.Store.SetWebhook(ctx, tenant, url, secret, keyID, events, now, e)
	if err == nil {
		r.keep(e)
	}
	return err
}

func (r *recorder) Attempt(ctx context.Context, a twofa.AttemptRequest, check func(*twofa.AttemptState) (*twofa.Outcome, error)) error {
	var events []*twofa.AuditEvent
	err := r.Store.Attempt(ctx, a, func(st *twofa.AttemptState) (*twofa.Outcome, error) {
		r.mu.Lock()
		r.inCheck = true
		r.mu.Unlock()
		defer func() { r.mu.Lock(); r.inCheck = false; r.mu.Unlock() }()
		o, err := check(st)
		if o != nil {
			events = o.Events
		}
		return o, err
	})
	if err == nil || errors.Is(err, twofa.ErrLocked) {
		r.keep(events...)
	}
	return err
}

// webhookMessages returns the webhook messages of an event, opened.
func webhookMessages(t *testing.T, keys *seal.Keyring, e *twofa.AuditEvent) []*twofa.MessageBody {
	t.Helper()
	var out []*twofa.MessageBody
	for _, m := range e.Messages {
		if m.Channel != twofa.ChannelWebhook {
			continue
		}
		if m.Kind != twofa.KindEvent || m.Tenant != e.Tenant || m.User != e.User || m.Status != twofa.MessageQueued ||
			!m.NextAt.Equal(e.Time) || !strings.HasPrefix(m.ID, "msg_") || m.KeyID != keys.ActiveID() {
			t.Errorf("%s event's webhook message = %+v; want a queued event of the event's tenant and user, due at once", e.Type, m)
		}
		plain, err := keys.Open(m.Payload, twofa.MessageAD(m))
		if err != nil {
			t.Fatalf("%s event's webhook message does not open: %v", e.Type, err)
		}
		var b twofa.MessageBody
		if err := json.Unmarshal(plain, &b); err != nil || b.Event == nil {
			t.Fatalf("%s event's webhook message holds %s: %v", e.Type, plain, err)
		}
		if b.Event.ID != m.ID {
			t.Errorf("webhook message %s: event ID %s, want the message's", m.ID, b.Event.ID)
		}
		out = append(out, &b)
	}
	return out
}

// wantNotice checks that a webhook body tells the event exactly.
func wantNotice(t *testing.T, b *twofa.MessageBody, to string, e *twofa.AuditEvent) {
	t.Helper()
	n := b.Event
	want := twofa.NoticeEvent{ID: n.ID, Type: e.Type, Time: e.Time, Tenant: e.Tenant, User: e.User, Device: e.Device,
		Factor: e.Factor, Reason: e.Reason, Actor: e.Actor, IP: e.IP, UserAgent: e.UserAgent, Detail: e.Detail}
	if b.To != to || !n.Time.Equal(want.Time) {
		t.Errorf("webhook of %s: To %q, time %v; want %q, %v", e.Type, b.To, n.Time, to, want.Time)
	}
	n2 := *n
	n2.Time = want.Time
	if n2 != want {
		t.Errorf("webhook of %s tells\n\t%+v\nwant\n\t%+v", e.Type, n2, want)
	}
}

// TestService_WebhookMessages: every event of a tenant with a webhook
// carries exactly one webhook message, made from the event as appended;
// a tenant without one, none; the event-type filter.
func TestService_WebhookMessages(t *testing.T) {
	store, _ := openSQLite(t)
	rec := &recorder{Store: store}
	f := newFixture(t, rec, nil)
	ctx := twofa.WithMeta(context.Background(), twofa.Meta{Actor: "key_admin", IP: "203.0.113.9", UserAgent: "Firefox"})
	alice := twofa.UserRef{Tenant: "acme", User: "alice"}
	const hook = "https://hooks.acme.example/twofa?token=t0k3n"

	// Before the webhook, nothing.
	if err := f.svc.Unlock(ctx, alice); err != nil && !errors.Is(err, twofa.ErrNotFound) {
		t.Fatal(err)
	}
	f.enroll(t, alice, "Phone")
	for _, e := range rec.take() {
		if len(e.Messages) != 0 {
			t.Errorf("%s event before the webhook carries %d messages", e.Type, len(e.Messages))
		}
	}

	// Setting it: its own event goes to it, naming only its origin.
	if _, err := f.svc.SetWebhook(ctx, "acme", hook, nil); err != nil {
		t.Fatalf("SetWebhook = %v", err)
	}
	evs := rec.take()
	if len(evs) != 1 || evs[0].Type != twofa.EventTenantUpdated {
		t.Fatalf("SetWebhook recorded %v, want one tenant_updated", evs)
	}
	if evs[0].Detail != "webhook to https://hooks.acme.example, every event" {
		t.Errorf("SetWebhook's audit detail %q", evs[0].Detail)
	}
	if bs := webhookMessages(t, f.keys, evs[0]); len(bs) != 1 {
		t.Errorf("SetWebhook's event carries %d webhook messages, want 1", len(bs))
	} else {
		wantNotice(t, bs[0], hook, evs[0])
	}

	// Every event of the tenant: one message each, telling the event as
	// the store linked it (the Service set Detail, Reason and Factor
	// after making the event).
	f.clock.Add(30 * time.Second)
	if _, err := f.svc.Verify(ctx, alice, "000000"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Unlock(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.CreateAPIKey(ctx, "acme", "app", twofa.ScopeApp); err != nil {
		t.Fatal(err)
	}
	evs = rec.take()
	var types []twofa.EventType
	for _, e := range evs {
		types = append(types, e.Type)
		bs := webhookMessages(t, f.keys, e)
		if len(bs) != 1 {
			t.Errorf("%s event carries %d webhook messages, want 1", e.Type, len(bs))
			continue
		}
		wantNotice(t, bs[0], hook, e)
	}
	if want := []twofa.EventType{twofa.EventVerifyFailed, twofa.EventUnlocked, twofa.EventAPIKeyCreated}; !slices.Equal(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
	if e := evs[0]; e.Reason != twofa.ReasonInvalidCode || e.Factor == "" || e.Detail == "" {
		t.Errorf("verify_failed event: reason %q, factor %q, detail %q; want them set", e.Reason, e.Factor, e.Detail)
	}

	// The attempt's check makes its events inside the store's
	// transaction: the tenant's webhook was looked up before.
	f.clock.Add(time.Minute) // past the cache's life
	if _, err := f.svc.Verify(ctx, alice, "000000"); err != nil {
		t.Fatal(err)
	}
	if evs := rec.take(); len(evs) != 1 || len(webhookMessages(t, f.keys, evs[0])) != 1 {
		t.Errorf("a verification after the cache expired recorded %d events, want one with a webhook message", len(evs))
	}
	if rec.readsInCheck != 0 {
		t.Errorf("the store was asked for the tenant %d times inside an attempt's check", rec.readsInCheck)
	}

	// Another tenant's events: none.
	if _, _, err := f.svc.CreateAPIKey(ctx, "globex", "app", twofa.ScopeApp); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Unlock(ctx, twofa.UserRef{Tenant: "globex", User: "bob"}); err != nil && !errors.Is(err, twofa.ErrNotFound) {
		t.Fatal(err)
	}
	for _, e := range rec.take() {
		if len(e.Messages) != 0 {
			t.Errorf("globex's %s event carries %d messages, want none", e.Type, len(e.Messages))
		}
	}

	// The filter: only the types asked for, this change's own event
	// included.
	if _, err := f.svc.SetWebhook(ctx, "acme", hook, []twofa.EventType{twofa.EventUnlocked, twofa.EventLocked}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(ctx, alice, "000000"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Unlock(ctx, alice); err != nil {
		t.Fatal(err)
	}
	sent := map[twofa.EventType]int{}
	for _, e := range rec.take() {
		sent[e.Type] += len(webhookMessages(t, f.keys, e))
	}
	if want := map[twofa.EventType]int{twofa.EventTenantUpdated: 0, twofa.EventVerifyFailed: 0, twofa.EventUnlocked: 1}; !mapsEqual(sent, want) {
		t.Errorf("webhook messages by event type %v, want %v", sent, want)
	}

	// Removing it: its own event goes nowhere, and nothing after.
	if err := f.svc.RemoveWebhook(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Unlock(ctx, alice); err != nil {
		t.Fatal(err)
	}
	for _, e := range rec.take() {
		if len(e.Messages) != 0 {
			t.Errorf("%s event after the removal carries %d messages", e.Type, len(e.Messages))
		}
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestService_WebhookCache: a tenant's webhook is read once per
// webhookCacheTTL (5 s) per process: another process's events follow a
// change within that, and the process that made it at once.
func TestService_WebhookCache(t *testing.T) {
	store, _ := openSQLite(t)
	rec := &recorder{Store: store}
	f := newFixture(t, rec, nil)
	other := f.service(t, f.keys, nil) // another process on the same database
	ctx := context.Background()
	alice := twofa.UserRef{Tenant: "acme", User: "alice"}
	f.enroll(t, alice, "Phone")
	carries := func(svc *twofa.Service) int {
		t.Helper()
		rec.take()
		if err := svc.Unlock(ctx, alice); err != nil {
			t.Fatal(err)
		}
		evs := rec.take()
		if len(evs) != 1 {
			t.Fatalf("Unlock recorded %d events", len(evs))
		}
		return len(evs[0].Messages)
	}
	if n := carries(other); n != 0 { // other now knows acme has no webhook
		t.Fatalf("before the webhook: %d messages", n)
	}
	if _, err := f.svc.SetWebhook(ctx, "acme", "https://hooks.acme.example/", nil); err != nil {
		t.Fatal(err)
	}
	if n := carries(f.svc); n != 1 {
		t.Errorf("the process that set the webhook: %d messages, want 1 at once", n)
	}
	f.clock.Add(4 * time.Second)
	if n := carries(other); n != 0 {
		t.Errorf("another process within 5 s: %d messages, want 0 (it may not know yet)", n)
	}
	f.clock.Add(time.Second)
	if n := carries(other); n != 1 {
		t.Errorf("another process after 5 s: %d messages, want 1", n)
	}
	if err := f.svc.RemoveWebhook(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if n := carries(f.svc); n != 0 {
		t.Errorf("the process that removed the webhook: %d messages, want 0 at once", n)
	}
	f.clock.Add(5 * time.Second)
	if n := carries(other); n != 0 {
		t.Errorf("another process 5 s after the removal: %d messages, want 0", n)
	}
}

func TestService_SetWebhook(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		if _, err := f.svc.Webhook(ctx, "acme"); !errors.Is(err, twofa.ErrNotFound) {
			t.Errorf("Webhook before any = %v, want ErrNotFound", err)
		}
		if err := f.svc.RemoveWebhook(ctx, "acme"); !errors.Is(err, twofa.ErrNotFound) {
			t.Errorf("RemoveWebhook before any = %v, want ErrNotFound", err)
		}
		if _, _, err := f.svc.WebhookSecret(ctx, "acme"); !errors.Is(err, twofa.ErrNotFound) {
			t.Errorf("WebhookSecret before any = %v, want ErrNotFound", err)
		}

		const hook = "https://hooks.acme.example/twofa"
		events := []twofa.EventType{twofa.EventLocked, twofa.EventDisabled, twofa.EventLocked}
		secret, err := f.svc.SetWebhook(ctx, "acme", hook, events)
		if err != nil {
			t.Fatalf("SetWebhook = %v", err)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if !strings.HasPrefix(secret, "whsec_") || err != nil || len(raw) != 32 {
			t.Errorf("secret %q: want whsec_ and the base64 of 32 bytes", secret)
		}
		w, err := f.svc.Webhook(ctx, "acme")
		if err != nil || w.URL != hook || !slices.Equal(w.Events, events[:2]) || w.Tenant != "acme" || !w.UpdatedAt.Equal(testStart) {
			t.Errorf("Webhook = %+v, %v; want %s, events %v (no duplicate)", w, err, hook, events[:2])
		}
		url, key, err := f.svc.WebhookSecret(ctx, "acme")
		if err != nil || url != hook || string(key) != string(raw) {
			t.Errorf("WebhookSecret = %q, %x, %v; want %q and the secret handed out", url, key, err, hook)
		}

		// Sealed at rest, bound to the tenant.
		tn, err := store.Tenant(ctx, "acme")
		if err != nil || len(tn.WebhookSecret) == 0 || strings.Contains(string(tn.WebhookSecret), string(raw)) || tn.WebhookKeyID != 1 {
			t.Fatalf("stored tenant: %+v, %v; want a sealed secret under key 1", tn, err)
		}
		if err := store.SetWebhook(ctx, "globex", hook, tn.WebhookSecret, 1, nil, testStart, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.WebhookSecret(ctx, "globex"); err == nil {
			t.Error("acme's sealed secret copied to globex opens")
		}

		// Again: a new secret.
		again, err := f.svc.SetWebhook(ctx, "acme", hook, nil)
		if err != nil || again == secret {
			t.Errorf("SetWebhook again = %v; same secret %t, want a new one", err, again == secret)
		}
		if w, _ := f.svc.Webhook(ctx, "acme"); w == nil || w.Events != nil {
			t.Errorf("Webhook after setting no events = %+v, want every event (nil)", w)
		}

		// Bad input changes nothing.
		for _, tt := range []struct {
			name, tenant, url string
			events            []twofa.EventType
		}{
			{"HTTP", "acme", "http://hooks.acme.example/", nil},
			{"Relative", "acme", "/hooks", nil},
			{"NoHost", "acme", "https:///hooks", nil},
			{"Credentials", "acme", "https://user:pass@hooks.acme.example/", nil},
			{"Fragment", "acme", "https://hooks.acme.example/#x", nil},
			{"FTP", "acme", "ftp://hooks.acme.example/", nil},
			{"Empty", "acme", "", nil},
			{"Space", "acme", "https://hooks.acme.example/a b", nil},
			{"ControlCharacter", "acme", "https://hooks.acme.example/\x00", nil},
			{"NotUTF8", "acme", "https://hooks.acme.example/\xff", nil},
			{"TooLong", "acme", "https://hooks.acme.example/" + strings.Repeat("a", 2048), nil},
			{"Opaque", "acme", "https:hooks.acme.example", nil},
			{"UnknownEvent", "acme", hook, []twofa.EventType{"verify_faild"}},
			{"NeverSentEvent", "acme", hook, []twofa.EventType{twofa.EventKeysRotated}},
			{"EmptyEvent", "acme", hook, []twofa.EventType{""}},
			{"NoTenant", "", hook, nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := f.svc.SetWebhook(ctx, tt.tenant, tt.url, tt.events)
				if twofa.ErrorCode(err) != twofa.EINVALID {
					t.Errorf("SetWebhook(%q, %q, %q) = %v, want invalid", tt.tenant, tt.url, tt.events, err)
				}
				if _, key2, _ := f.svc.WebhookSecret(ctx, "acme"); string(key2) == string(raw) || len(key2) != 32 {
					t.Error("a refused SetWebhook changed the secret")
				}
			})
		}
		// http is for localhost only.
		for _, u := range []string{"http://localhost:8080/hook", "http://127.0.0.1/hook", "http://[::1]:9/hook"} {
			if _, err := f.svc.SetWebhook(ctx, "acme", u, nil); err != nil {
				t.Errorf("SetWebhook(%q) = %v, want nil", u, err)
			}
		}

		if err := f.svc.RemoveWebhook(ctx, "acme"); err != nil {
			t.Fatalf("RemoveWebhook = %v", err)
		}
		if _, err := f.svc.Webhook(ctx, "acme"); !errors.Is(err, twofa.ErrNotFound) {
			t.Errorf("Webhook after RemoveWebhook = %v, want ErrNotFound", err)
		}
		if _, _, err := f.svc.WebhookSecret(ctx, "acme"); !errors.Is(err, twofa.ErrNotFound) {
			t.Errorf("WebhookSecret after RemoveWebhook = %v, want ErrNotFound", err)
		}
	})
}

// TestService_WebhookSecretRotates: a key rotation re-seals webhook
// secrets, which then open under the new key alone.
func TestService_WebhookSecretRotates(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		secret, err := f.svc.SetWebhook(ctx, "acme", "https://hooks.acme.example/", nil)
		if err != nil {
			t.Fatal(err)
		}
		ring := rotatedKeyring(t, f.keys)
		rotated := f.service(t, ring, nil)
		_, total, stale, err := rotated.KeyStatus(ctx)
		if err != nil || stale != total || total == 0 {
			t.Fatalf("KeyStatus before the rotation = %d, %d, %v", total, stale, err)
		}
		if _, err := rotated.RotateKeys(ctx, nil); err != nil {
			t.Fatalf("RotateKeys = %v", err)
		}
		only := f.service(t, newOnlyKeyring(t, ring, 2), nil)
		_, key, err := only.WebhookSecret(ctx, "acme")
		if err != nil || "whsec_"+base64.StdEncoding.EncodeToString(key) != secret {
			t.Errorf("WebhookSecret under the new key alone = %v; want the secret handed out", err)
		}
		if _, _, stale, _ := only.KeyStatus(ctx); stale != 0 {
			t.Errorf("%d values left under the old key", stale)
		}
	})
}
