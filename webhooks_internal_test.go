package twofa

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWebhookEvents_Classified: every event type of the package either
// may go to webhooks (webhookEvents) or never does (noWebhookEvents), so
// a new one is a decision, not an accident: an event that records a
// delivery must never go, or each webhook would make another.
func TestWebhookEvents_Classified(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\s*(\w+)\s+EventType\s*=\s*"([^"]*)"`)
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			found++
			typ := EventType(m[2])
			_, never := noWebhookEvents[typ]
			sent := slices.Contains(webhookEvents, typ)
			if sent == never {
				t.Errorf("%s (%s, %s): in webhookEvents %t, in noWebhookEvents %t; want exactly one (webhooks.go)", m[1], typ, f, sent, never)
			}
		}
	}
	if found < 20 {
		t.Fatalf("found only %d event types; has their declaration changed shape?", found)
	}
	for i, typ := range webhookEvents {
		if slices.Index(webhookEvents, typ) != i {
			t.Errorf("webhookEvents lists %s twice", typ)
		}
	}
}

// TestLinkIn_Webhook: linking makes the webhook message once, however
// often a store links the event (a retried transaction), from the fields
// the event has then.
func TestLinkIn_Webhook(t *testing.T) {
	chain := NewAuditChain(make([]byte, 32))
	seals := 0
	var sealedBody MessageBody
	e := chain.Prepare(&AuditEvent{Time: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600)), Type: EventUnlocked, Tenant: "acme", User: "alice"})
	e.webhook = &pendingWebhook{id: "msg_x", url: "https://hooks.example/", seal: func(m *Message, b MessageBody) error {
		seals++
		sealedBody = b
		m.Payload = []byte("sealed")
		return nil
	}}
	e.Detail = "set after the event was made"
	for seq := int64(1); seq <= 2; seq++ {
		if err := e.Link(seq, nil); err != nil {
			t.Fatalf("Link #%d = %v", seq, err)
		}
	}
	if seals != 1 || len(e.Messages) != 1 || e.Messages[0].ID != "msg_x" {
		t.Fatalf("after two links: %d seals, messages %+v; want one message msg_x", seals, e.Messages)
	}
	wantTime := time.Date(2026, 3, 1, 11, 0, 0, 123456000, time.UTC)
	if n := sealedBody.Event; n.Detail != e.Detail || !n.Time.Equal(wantTime) || n.Time.Location() != time.UTC || sealedBody.To != "https://hooks.example/" {
		t.Errorf("sealed body: To %q, event %+v; want the detail set late and the time as linked (%v)", sealedBody.To, n, wantTime)
	}

	// A seal that fails fails the link, and so the store's write.
	f := chain.Prepare(&AuditEvent{Time: wantTime, Type: EventUnlocked, Tenant: "acme"})
	boom := errors.New("boom")
	f.webhook = &pendingWebhook{id: "msg_y", url: "https://hooks.example/", seal: func(*Message, MessageBody) error { return boom }}
	if err := f.Link(1, nil); !errors.Is(err, boom) {
		t.Errorf("Link with a failing seal = %v, want it", err)
	}
	if len(f.Messages) != 0 {
		t.Errorf("a failed seal left %d messages", len(f.Messages))
	}
}
