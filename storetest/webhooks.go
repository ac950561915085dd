package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/seal"
)

// webhookOf is a tenant's webhook as Tenant returns it.
type webhookOf struct {
	URL    string
	Secret []byte
	KeyID  uint32
	Events []twofa.EventType
}

func (w webhookOf) String() string {
	return fmt.Sprintf("{URL %q, Secret %x, KeyID %d, Events %q}", w.URL, w.Secret, w.KeyID, w.Events)
}

// newWebhook returns a webhook of the tenant whose secret is sealed
// under keyID.
func newWebhook(tenant string, keyID uint32, events ...twofa.EventType) webhookOf {
	return webhookOf{URL: "https://hooks." + tenant + ".example/twofa?token=t0k3n", Secret: sealed(keyID, "webhook secret of "+tenant), KeyID: keyID, Events: events}
}

func setWebhook(t *testing.T, s twofa.Store, tenant string, w webhookOf, at time.Time) {
	t.Helper()
	if err := s.SetWebhook(t.Context(), tenant, w.URL, w.Secret, w.KeyID, w.Events, at, nil); err != nil {
		t.Fatalf("SetWebhook(%s) = %v", tenant, err)
	}
}

// wantWebhook checks every field of a tenant: its webhook is w, its other
// settings, and its times, those of want.
func wantWebhook(t *testing.T, ps twofa.PageStore, want *twofa.Tenant, w webhookOf) {
	t.Helper()
	got, err := ps.Tenant(t.Context(), want.ID)
	if err != nil {
		t.Errorf("Tenant(%s) = %v", want.ID, err)
		return
	}
	diffs := tenantDiff(got, want)
	g := webhookOf{got.WebhookURL, got.WebhookSecret, got.WebhookKeyID, got.WebhookEvents}
	if g.URL != w.URL || !bytes.Equal(g.Secret, w.Secret) || g.KeyID != w.KeyID || !slices.Equal(g.Events, w.Events) {
		diffs = append(diffs, fmt.Sprintf("webhook = %v, want %v", g, w))
	}
	if len(diffs) > 0 {
		t.Errorf("Tenant(%s):\n\t%s", want.ID, strings.Join(diffs, "\n\t"))
	}
}

func testSetWebhook(t *testing.T, open Opener) {
	t.Run("Create", func(t *testing.T) {
		// A new tenant, with nothing but the webhook, made at now.
		o := openStore(t, open)
		at := now0.In(time.FixedZone("UTC+2", 7200))
		w := newWebhook("acme", 1, twofa.EventLocked, twofa.EventDisabled)
		err := o.SetWebhook(t.Context(), "acme", w.URL, w.Secret, w.KeyID, w.Events, at, tenantEvent("acme", "webhook to https://hooks.acme.example"))
		wantNoErr(t, "SetWebhook", err)
		a := &twofa.Tenant{ID: "acme", CreatedAt: at, UpdatedAt: at}
		wantWebhook(t, pageStore(t, o.Store), a, w)
		wantWebhook(t, pageStore(t, o.second(t)), a, w) // in every process, at once
		wantNoTenant(t, pageStore(t, o.Store), "globex")
		wantTenantLog(t, o, "acme", "webhook to https://hooks.acme.example")
	})

	t.Run("Replace", func(t *testing.T) {
		// The webhook is replaced whole and UpdatedAt moves; the prompt
		// key, return URLs and CreatedAt stay, and other tenants are
		// untouched.
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		a := putTenant(t, ps, newTenant("acme", 1, now0))
		g := putTenant(t, ps, newTenant("globex", 2, now0))
		gw := newWebhook("globex", 2)
		setWebhook(t, o, "globex", gw, now0)
		setWebhook(t, o, "acme", newWebhook("acme", 1, twofa.EventLocked), now0.Add(time.Minute))
		later := now0.Add(time.Hour + time.Microsecond)
		w := webhookOf{URL: "http://localhost:9000/hook", Secret: sealed(4_000_000_001, "another secret"), KeyID: 4_000_000_001}
		wantNoErr(t, "SetWebhook(replace)", o.SetWebhook(t.Context(), "acme", w.URL, w.Secret, w.KeyID, nil, later, tenantEvent("acme", "again")))
		wa := *a
		wa.UpdatedAt = later
		wantWebhook(t, ps, &wa, w)
		wantWebhook(t, pageStore(t, o.second(t)), &wa, w)
		wantWebhook(t, ps, g, gw)
		wantTenantLog(t, o, "acme", "again")
	})

	t.Run("Remove", func(t *testing.T) {
		// An empty URL clears the webhook whole, whatever else is given;
		// the tenant and its other settings stay.
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		a := putTenant(t, ps, newTenant("acme", 1, now0))
		setWebhook(t, o, "acme", newWebhook("acme", 1, twofa.EventLocked), now0)
		later := now0.Add(time.Hour)
		wantNoErr(t, "SetWebhook(remove)", o.SetWebhook(t.Context(), "acme", "", sealed(1, "ignored"), 7, []twofa.EventType{twofa.EventLocked}, later, tenantEvent("acme", "webhook removed")))
		wa := *a
		wa.UpdatedAt = later
		wantWebhook(t, ps, &wa, webhookOf{})
		wantTenantLog(t, o, "acme", "webhook removed")
		if total, _, err := o.CountSealed(t.Context(), 1); total != 1 || err != nil {
			t.Errorf("CountSealed after the removal = %d, %v; want 1 (the prompt key)", total, err)
		}
		// Removing a webhook that is not there, of a tenant or of no
		// tenant yet, is no error.
		wantNoErr(t, "SetWebhook(remove again)", o.SetWebhook(t.Context(), "acme", "", nil, 0, nil, later, nil))
		wantNoErr(t, "SetWebhook(remove, new tenant)", o.SetWebhook(t.Context(), "globex", "", nil, 0, nil, now0, nil))
		wantWebhook(t, ps, &twofa.Tenant{ID: "globex", CreatedAt: now0, UpdatedAt: now0}, webhookOf{})
	})

	t.Run("KeptByOtherSettings", func(t *testing.T) {
		// Setting the prompt key or the return URLs leaves the webhook
		// as it is, and the webhook leaves them.
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		w := newWebhook("acme", 3, twofa.EventVerifyFailed)
		setWebhook(t, o, "acme", w, now0)
		blob := sealed(1, "prompt key")
		wantNoErr(t, "SetPromptKey", ps.SetPromptKey(t.Context(), "acme", blob, 1, now0.Add(time.Minute), nil))
		urls := []string{"https://acme.example/2fa"}
		wantNoErr(t, "SetReturnURLs", ps.SetReturnURLs(t.Context(), "acme", urls, now0.Add(2*time.Minute), nil))
		want := &twofa.Tenant{ID: "acme", PromptKey: blob, KeyID: 1, ReturnURLs: urls, CreatedAt: now0, UpdatedAt: now0.Add(2 * time.Minute)}
		wantWebhook(t, ps, want, w)
		w2 := newWebhook("acme", 4)
		setWebhook(t, o, "acme", w2, now0.Add(3*time.Minute))
		want.UpdatedAt = now0.Add(3 * time.Minute)
		wantWebhook(t, ps, want, w2)
		wantLog(t, o)
	})

	t.Run("Events", func(t *testing.T) {
		// Exactly as given, order and duplicates included; nil and empty
		// are both none.
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		for i, events := range [][]twofa.EventType{
			{twofa.EventVerifyFailed, twofa.EventLocked, twofa.EventVerifyFailed, "2fa_disabled", `a "quoted", {odd} \ one`, "ü"},
			{twofa.EventLocked},
			nil,
			{},
		} {
			w := newWebhook("acme", 1, events...)
			at := now0.Add(time.Duration(i) * time.Second)
			setWebhook(t, o, "acme", w, at)
			if len(w.Events) == 0 {
				w.Events = nil
			}
			wantWebhook(t, ps, &twofa.Tenant{ID: "acme", CreatedAt: now0, UpdatedAt: at}, w)
		}
	})

	t.Run("Unprepared", func(t *testing.T) {
		o := openStore(t, open)
		ps := pageStore(t, o.Store)
		w := newWebhook("globex", 1)
		err := o.SetWebhook(t.Context(), "globex", w.URL, w.Secret, 1, nil, now0, rawEvent(twofa.EventTenantUpdated, twofa.UserRef{Tenant: "globex"}))
		wantErr(t, "SetWebhook(new) with an unprepared event", err, twofa.ErrUnprepared)
		wantNoTenant(t, ps, "globex")
		wantNoSealed(t, o)
		a := putTenant(t, ps, newTenant("acme", 1, now0))
		aw := newWebhook("acme", 1)
		setWebhook(t, o, "acme", aw, now0)
		err = o.SetWebhook(t.Context(), "acme", "", nil, 0, nil, now0.Add(time.Hour), rawEvent(twofa.EventTenantUpdated, twofa.UserRef{Tenant: "acme"}))
		wantErr(t, "SetWebhook(remove) with an unprepared event", err, twofa.ErrUnprepared)
		wantWebhook(t, ps, a, aw)
		wantLog(t, o)
	})
}

// webhookSealedFixture is tenantSealedFixture with webhooks: acme's
// secret under key 2, initech's under key 1, and globex's removed.
func webhookSealedFixture(t *testing.T, s twofa.Store) map[string]webhookOf {
	t.Helper()
	tenantSealedFixture(t, s)
	hooks := map[string]webhookOf{"acme": newWebhook("acme", 2), "initech": newWebhook("initech", 1)}
	for id, w := range hooks {
		setWebhook(t, s, id, w, now0)
	}
	setWebhook(t, s, "globex", newWebhook("globex", 1), now0)
	setWebhook(t, s, "globex", webhookOf{}, now0)
	return hooks
}

// wantWebhookSealed checks that a page of SealedSecrets has these refs,
// and that its webhook entries are the fixture's.
func wantWebhookSealed(t *testing.T, call string, got []twofa.SealedSecret, refs []string, hooks map[string]webhookOf) {
	t.Helper()
	var gotRefs []string
	for _, s := range got {
		gotRefs = append(gotRefs, s.Ref)
		id, ok := strings.CutPrefix(s.Ref, "webhook:")
		if !ok {
			if s.WebhookOf != "" {
				t.Errorf("%s: %s: WebhookOf = %q, want none", call, s.Ref, s.WebhookOf)
			}
			continue
		}
		w, known := hooks[id]
		if !known || s.WebhookOf != id || s.PromptKeyOf != "" || s.Device != nil || s.Setting != "" {
			t.Errorf("%s: %s: WebhookOf, PromptKeyOf, Device, Setting = %q, %q, %v, %q; want %q and nothing else", call, s.Ref, s.WebhookOf, s.PromptKeyOf, s.Device, s.Setting, id)
			continue
		}
		if !bytes.Equal(s.Blob, w.Secret) || s.KeyID != w.KeyID {
			t.Errorf("%s: %s: Blob, KeyID = %x, %d; want %x, %d", call, s.Ref, s.Blob, s.KeyID, w.Secret, w.KeyID)
		}
	}
	if !slices.Equal(gotRefs, refs) {
		t.Errorf("%s = %q, want %q", call, gotRefs, refs)
	}
}

// testWebhookSecrets: webhook secrets are sealed values like the others,
// after the tenants' prompt keys: listed, replaced and counted for a key
// rotation.
func testWebhookSecrets(t *testing.T, open Opener) {
	all := []string{"device:dev_a", "device:dev_b", "device:dev_c", "setting:audit_key", "setting:webhook_secret",
		"tenant:acme", "tenant:globex", "webhook:acme", "webhook:initech"}

	t.Run("SealedSecrets", func(t *testing.T) {
		s := openStore(t, open)
		hooks := webhookSealedFixture(t, s)
		for _, tt := range []struct {
			keyID uint32
			want  []string
		}{
			{3, all},
			{2, []string{"device:dev_a", "device:dev_c", "setting:audit_key", "setting:webhook_secret", "tenant:acme", "webhook:initech"}},
			{1, []string{"device:dev_b", "tenant:globex", "webhook:acme"}},
		} {
			got, err := s.SealedSecrets(t.Context(), tt.keyID, "", 100)
			wantNoErr(t, "SealedSecrets", err)
			wantWebhookSealed(t, fmt.Sprintf("SealedSecrets(%d)", tt.keyID), got, tt.want, hooks)
		}
	})

	t.Run("Paged", func(t *testing.T) {
		s := openStore(t, open)
		hooks := webhookSealedFixture(t, s)
		for _, tt := range []struct {
			after string
			limit int
			want  []string
		}{
			{"", 9, all},
			{"tenant:acme", 2, all[6:8]}, // across kinds
			{"tenant:globex", 100, all[7:]},
			{"tenant:zzz", 100, all[7:]},
			{"u", 100, all[7:]},
			{"webhook:", 1, all[7:8]},
			{"webhook:acme", 100, all[8:]},
			{"webhook:b", 100, all[8:]},
			{"webhook:initech", 100, nil},
			{"x", 100, nil},
		} {
			got, err := s.SealedSecrets(t.Context(), 3, tt.after, tt.limit)
			wantNoErr(t, "SealedSecrets", err)
			wantWebhookSealed(t, fmt.Sprintf("SealedSecrets(3, %q, %d)", tt.after, tt.limit), got, tt.want, hooks)
		}
	})

	t.Run("ReplaceSealed", func(t *testing.T) {
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		hooks := webhookSealedFixture(t, s)
		before, err := ps.Tenant(t.Context(), "acme")
		wantNoErr(t, "Tenant", err)
		old := findSealed(t, s, "webhook:acme")
		blob := sealed(3, "webhook secret of acme")
		if ok, err := s.ReplaceSealed(t.Context(), old, blob, 3); !ok || err != nil {
			t.Fatalf("ReplaceSealed(webhook:acme) = %t, %v; want true, nil", ok, err)
		}
		w := hooks["acme"]
		w.Secret, w.KeyID = blob, 3 // and nothing else changes: not the prompt key, nor UpdatedAt
		wantWebhook(t, ps, before, w)

		// A second rotation that read the old value loses.
		if ok, err := s.ReplaceSealed(t.Context(), old, sealed(4, "x"), 4); ok || err != nil {
			t.Errorf("ReplaceSealed(stale) = %t, %v; want false, nil", ok, err)
		}
		wantWebhook(t, ps, before, w)

		// A secret replaced or removed meanwhile is left alone, and so is
		// a tenant without a webhook, or no tenant.
		old = findSealed(t, s, "webhook:initech")
		replaced := newWebhook("initech", 2)
		replaced.URL = "https://new.initech.example/"
		setWebhook(t, s, "initech", replaced, now0)
		if ok, err := s.ReplaceSealed(t.Context(), old, sealed(3, "x"), 3); ok || err != nil {
			t.Errorf("ReplaceSealed(a replaced webhook secret) = %t, %v; want false, nil", ok, err)
		}
		setWebhook(t, s, "initech", webhookOf{}, now0)
		if ok, err := s.ReplaceSealed(t.Context(), old, sealed(3, "x"), 3); ok || err != nil {
			t.Errorf("ReplaceSealed(a removed webhook) = %t, %v; want false, nil", ok, err)
		}
		in, err := ps.Tenant(t.Context(), "initech")
		wantNoErr(t, "Tenant", err)
		if in.WebhookURL != "" || in.WebhookSecret != nil || in.WebhookKeyID != 0 {
			t.Errorf("initech's webhook after a lost ReplaceSealed = %q, %x, %d; want none", in.WebhookURL, in.WebhookSecret, in.WebhookKeyID)
		}
		for _, id := range []string{"globex", "nope"} {
			ss := twofa.SealedSecret{Ref: "webhook:" + id, WebhookOf: id, Blob: sealed(1, "webhook secret of "+id), KeyID: 1}
			if ok, err := s.ReplaceSealed(t.Context(), ss, sealed(2, "x"), 2); ok || err != nil {
				t.Errorf("ReplaceSealed(webhook:%s) = %t, %v; want false, nil", id, ok, err)
			}
		}
		wantNoTenant(t, ps, "nope")
		g, err := ps.Tenant(t.Context(), "globex")
		wantNoErr(t, "Tenant", err)
		if g.WebhookSecret != nil {
			t.Errorf("globex's webhook secret = %x after ReplaceSealed of a removed one, want none", g.WebhookSecret)
		}
	})

	t.Run("CountSealed", func(t *testing.T) {
		s := openStore(t, open)
		webhookSealedFixture(t, s)
		for _, tt := range []struct {
			keyID        uint32
			total, stale int
		}{
			{3, 9, 9},
			{2, 9, 6},
			{1, 9, 3},
		} {
			if total, stale, err := s.CountSealed(t.Context(), tt.keyID); total != tt.total || stale != tt.stale || err != nil {
				t.Errorf("CountSealed(%d) = %d, %d, %v; want %d, %d, nil", tt.keyID, total, stale, err, tt.total, tt.stale)
			}
		}
		if ok, err := s.ReplaceSealed(t.Context(), findSealed(t, s, "webhook:initech"), sealed(2, "initech"), 2); !ok || err != nil {
			t.Fatalf("ReplaceSealed(webhook:initech) = %t, %v", ok, err)
		}
		if total, stale, err := s.CountSealed(t.Context(), 2); total != 9 || stale != 5 || err != nil {
			t.Errorf("CountSealed(2) after moving initech's webhook secret to key 2 = %d, %d, %v; want 9, 5, nil", total, stale, err)
		}
	})

	t.Run("KeptBySettings", func(t *testing.T) {
		// A rotation re-seals the webhook secret between an
		// administrator's read of the tenant and their change of another
		// setting: the change keeps the re-sealed secret.
		s := openStore(t, open)
		ps := pageStore(t, s.Store)
		hooks := webhookSealedFixture(t, s)
		blob := sealed(3, "webhook secret of acme")
		if ok, err := s.ReplaceSealed(t.Context(), findSealed(t, s, "webhook:acme"), blob, 3); !ok || err != nil {
			t.Fatalf("ReplaceSealed(webhook:acme) = %t, %v", ok, err)
		}
		wantNoErr(t, "SetReturnURLs", ps.SetReturnURLs(t.Context(), "acme", []string{"https://acme.example/x"}, now0.Add(time.Hour), nil))
		wantNoErr(t, "SetPromptKey", ps.SetPromptKey(t.Context(), "acme", sealed(3, "k"), 3, now0.Add(time.Hour), nil))
		got, err := ps.Tenant(t.Context(), "acme")
		wantNoErr(t, "Tenant", err)
		w := hooks["acme"]
		if got.WebhookURL != w.URL || !bytes.Equal(got.WebhookSecret, blob) || got.WebhookKeyID != 3 {
			t.Errorf("acme's webhook = %q, %x, %d; want %q, the re-sealed %x, 3", got.WebhookURL, got.WebhookSecret, got.WebhookKeyID, w.URL, blob)
		}
	})
}

// testWebhookMessages: an event of a tenant with a webhook, appended by
// the store, puts the webhook message in the outbox in its transaction,
// made from the event as the store linked it. It needs a store that
// keeps the outbox (twofa.OutboxStore), and a Service.
func testWebhookMessages(t *testing.T, open Opener) {
	o := openStore(t, open)
	outbox, ok := o.Store.(twofa.OutboxStore)
	if !ok {
		t.Skipf("store %T keeps no outbox (twofa.OutboxStore)", o.Store)
	}
	ctx := twofa.WithMeta(t.Context(), twofa.Meta{Actor: "key_storetest", IP: "192.0.2.7"})
	keys, err := seal.NewKeyring(1, map[uint32][]byte{1: bytes.Repeat([]byte{7}, 32)})
	wantNoErr(t, "NewKeyring", err)
	svc, err := twofa.NewService(ctx, o.Store, keys, twofa.Options{Now: func() time.Time { return now0 }})
	wantNoErr(t, "NewService", err)
	if _, err := svc.SetWebhook(ctx, "acme", "https://hooks.acme.example/twofa", nil); err != nil {
		t.Fatalf("SetWebhook = %v", err)
	}
	// An event whose detail the Service sets after making it, and one of
	// a tenant without a webhook.
	_, k, err := svc.CreateAPIKey(ctx, "acme", "app", twofa.ScopeApp)
	wantNoErr(t, "CreateAPIKey(acme)", err)
	if _, _, err := svc.CreateAPIKey(ctx, "globex", "app", twofa.ScopeApp); err != nil {
		t.Fatalf("CreateAPIKey(globex) = %v", err)
	}

	msgs, err := outbox.Messages(ctx, twofa.MessageFilter{Limit: 100})
	wantNoErr(t, "Messages", err)
	// The Service's chain key, not the suite's, links these events.
	if st, err := svc.VerifyAudit(ctx); err != nil || !st.OK {
		t.Errorf("VerifyAudit = %+v, %v; want a log that verifies", st, err)
	}
	events, err := o.AuditEvents(ctx, twofa.AuditFilter{Limit: 1000})
	wantNoErr(t, "AuditEvents", err)
	byType := map[twofa.EventType]*twofa.AuditEvent{}
	for _, e := range events {
		if e.Tenant == "acme" {
			byType[e.Type] = e
		}
	}
	var got []string
	for _, m := range msgs {
		if m.Channel != twofa.ChannelWebhook || m.Kind != twofa.KindEvent || m.Tenant != "acme" || m.Status != twofa.MessageQueued {
			t.Errorf("message %s: channel %s, kind %s, tenant %s, status %s; want a queued webhook event of acme", m.ID, m.Channel, m.Kind, m.Tenant, m.Status)
			continue
		}
		plain, err := keys.Open(m.Payload, twofa.MessageAD(m))
		if err != nil {
			t.Errorf("message %s: payload does not open: %v", m.ID, err)
			continue
		}
		var body twofa.MessageBody
		if err := json.Unmarshal(plain, &body); err != nil || body.Event == nil {
			t.Errorf("message %s: body %s: %v", m.ID, plain, err)
			continue
		}
		ev := body.Event
		got = append(got, string(ev.Type))
		e := byType[ev.Type]
		if e == nil || ev.ID != m.ID || body.To != "https://hooks.acme.example/twofa" || ev.Detail != e.Detail || !ev.Time.Equal(e.Time) || ev.Actor != e.Actor || ev.IP != e.IP {
			t.Errorf("message %s: To %q, event %+v; want the audit entry %+v", m.ID, body.To, ev, e)
		}
	}
	slices.Sort(got)
	if want := []string{string(twofa.EventAPIKeyCreated), string(twofa.EventTenantUpdated)}; !slices.Equal(got, want) {
		t.Errorf("webhook messages of %v, want of %v (key %s)", got, want, k.ID)
	}
}
