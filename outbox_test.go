package twofa_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

func TestService_OutboxMessages(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	m := f.queue(t, twofa.ChannelEmail, twofa.KindCode, codeBody(f.clock.Now()))
	ms, err := f.svc.OutboxMessages(ctx, twofa.MessageFilter{Tenant: "acme"})
	if err != nil || len(ms) != 1 || ms[0].ID != m.ID {
		t.Fatalf("OutboxMessages = %v, %v; want the message", ms, err)
	}
	if ms[0].Payload != nil {
		t.Errorf("OutboxMessages returned the payload; operators never see it")
	}
	if stored(t, f.store, m.ID).Payload == nil {
		t.Errorf("the stored payload is gone after a listing")
	}
	for _, bad := range []twofa.MessageFilter{{Status: "delivered"}, {Limit: 1001}, {Limit: -1}} {
		if _, err := f.svc.OutboxMessages(ctx, bad); twofa.ErrorCode(err) != twofa.EINVALID {
			t.Errorf("OutboxMessages(%+v) = %v, want invalid", bad, err)
		}
	}
}

func TestService_RetryMessage(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := twofa.WithMeta(context.Background(), twofa.Meta{Actor: "key:admin"})
	failed := f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress})
	sent := f.queue(t, twofa.ChannelEmail, twofa.KindNotice, twofa.MessageBody{To: testAddress})
	for _, m := range []struct {
		id     string
		status twofa.MessageStatus
	}{{failed.ID, twofa.MessageFailed}, {sent.ID, twofa.MessageSent}} {
		if _, err := f.store.ClaimMessages(ctx, []twofa.Channel{twofa.ChannelEmail}, f.clock.Now(), time.Minute, "lease_"+m.id, 1); err != nil {
			t.Fatal(err)
		}
		if ok, err := f.store.FinishMessage(ctx, m.id, "lease_"+m.id, m.status, time.Time{}, "", f.clock.Now(), nil); !ok || err != nil {
			t.Fatalf("FinishMessage = %t, %v", ok, err)
		}
	}
	for _, tt := range []struct {
		name, tenant, id string
		want             error
	}{
		{"AnotherTenant", "globex", failed.ID, twofa.ErrNotFound},
		{"Unknown", "", "msg_nope", twofa.ErrNotFound},
		{"Empty", "", "", nil},
		{"Sent", "acme", sent.ID, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := f.svc.RetryMessage(ctx, tt.tenant, tt.id)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("RetryMessage(%q, %q) = %v, want %v", tt.tenant, tt.id, err, tt.want)
			}
		})
	}
	if err := f.svc.RetryMessage(ctx, "", sent.ID); twofa.ErrorCode(err) != twofa.ECONFLICT {
		t.Errorf("RetryMessage(sent) = %v, want conflict", err)
	}
	if evs := messageEvents(t, f); len(evs) != 0 {
		t.Errorf("refused retries appended %d events", len(evs))
	}
	f.clock.Add(time.Hour)
	if err := f.svc.RetryMessage(ctx, "acme", failed.ID); err != nil {
		t.Fatalf("RetryMessage = %v", err)
	}
	if m := stored(t, f.store, failed.ID); m.Status != twofa.MessageQueued || !m.NextAt.Equal(f.clock.Now()) {
		t.Errorf("retried: %s, due %v; want queued, due now (%v)", m.Status, m.NextAt, f.clock.Now())
	}
	evs := messageEvents(t, f)
	if len(evs) != 1 || evs[0].Type != twofa.EventMessageRetried || evs[0].Actor != "key:admin" || evs[0].User != "alice" {
		t.Errorf("events = %+v, want one message_retried by key:admin about alice", evs)
	}
}
