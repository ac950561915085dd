package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/webhook"
)

// The Service is what gives the Sender tenants' secrets.
var _ webhook.Secrets = (*twofa.Service)(nil)

// TestSender_Service: a webhook set through the Service is delivered by
// the Sender, signed with the secret the Service handed out; once the
// webhook is removed, nothing is sent.
func TestSender_Service(t *testing.T) {
	svc, _, clock, _ := twofatest.NewService(t)
	ctx := context.Background()
	r := newReceiver(t)
	secret, err := svc.SetWebhook(ctx, "acme", r.URL+"/hook", []twofa.EventType{twofa.EventLocked})
	if err != nil {
		t.Fatalf("SetWebhook = %v", err)
	}
	key, err := webhook.DecodeSecret(secret)
	if err != nil {
		t.Fatalf("DecodeSecret(the Service's secret) = %v", err)
	}
	s := webhook.NewSender(svc, webhook.Options{AllowPrivate: true, Now: clock.Now})
	m := outgoing(r.URL + "/hook")
	if err := s.Send(ctx, m); err != nil {
		t.Fatalf("Send = %v", err)
	}
	got := r.requests()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(got))
	}
	if err := webhook.Verify(got[0].header, got[0].body, clock.Now().Add(time.Second), key); err != nil {
		t.Errorf("Verify with the secret the Service handed out = %v", err)
	}

	if err := svc.RemoveWebhook(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, m); !twofa.IsPermanent(err) {
		t.Errorf("Send after RemoveWebhook = %v, want a permanent error", err)
	}
	if n := len(r.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want still 1", n)
	}
}
