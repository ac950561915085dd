package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/sqlite"
	"github.com/twofa/twofa/web"
)

// What no outbox response may show: the payloads hold them.
const (
	outboxAddress = "secret-address@example.com"
	outboxCode    = "73918264"
)

// outboxEnv is env with an outbox: acme's msg_failed (alice's, failed),
// msg_waiting (bob's, queued for a retry in an hour) and msg_sent (sent),
// and globex's msg_globex (failed), all created at the clock's start.
type outboxEnv struct {
	*env
	store       *sqlite.Store
	sends       *web.SendCounter
	globexAdmin string
}

func newOutboxEnv(t *testing.T) *outboxEnv {
	t.Helper()
	ctx := context.Background()
	svc, st, c, _ := twofatest.NewService(t)
	sends := web.NewSendCounter()
	e := &outboxEnv{env: &env{tb: t, svc: svc, clock: c, h: web.NewHandler(svc, web.Options{Now: c.Now, Sends: sends})}, store: st, sends: sends}
	var err error
	for key, k := range map[*string][2]string{
		&e.appKey: {"acme", string(twofa.ScopeApp)}, &e.adminKey: {"acme", string(twofa.ScopeAdmin)}, &e.globexAdmin: {"globex", string(twofa.ScopeAdmin)},
	} {
		if *key, _, err = svc.CreateAPIKey(ctx, k[0], "key", twofa.Scope(k[1])); err != nil {
			t.Fatal(err)
		}
	}
	now := c.Now()
	// No Service method queues a bare message; the events are linked with
	// a chain of the test's own, which no test here verifies.
	chain := twofa.NewAuditChain(make([]byte, 32))
	for _, m := range []struct {
		id     string
		ref    twofa.UserRef
		status twofa.MessageStatus
	}{
		{"msg_failed", twofa.UserRef{Tenant: "acme", User: "alice"}, twofa.MessageFailed},
		{"msg_waiting", twofa.UserRef{Tenant: "acme", User: "bob"}, twofa.MessageQueued},
		{"msg_sent", twofa.UserRef{Tenant: "acme"}, twofa.MessageSent},
		{"msg_globex", twofa.UserRef{Tenant: "globex", User: "alice"}, twofa.MessageFailed},
	} {
		msg := twofa.NewMessage(m.ref, twofa.ChannelEmail, twofa.KindCode, now)
		msg.ID = m.id
		if m.status == twofa.MessageQueued {
			msg.NextAt = now.Add(time.Hour)
		}
		if err := svc.SealMessage(msg, twofa.MessageBody{To: outboxAddress, Code: outboxCode}); err != nil {
			t.Fatal(err)
		}
		ev := chain.Prepare(&twofa.AuditEvent{Time: now, Type: "test", Tenant: m.ref.Tenant, User: m.ref.User, Messages: []*twofa.Message{msg}})
		if err := st.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if m.status == twofa.MessageQueued {
			continue
		}
		if _, err := st.ClaimMessages(ctx, []twofa.Channel{twofa.ChannelEmail}, now, time.Minute, "lease_"+m.id, 1); err != nil {
			t.Fatal(err)
		}
		lastError := "550 5.1.1 mailbox unavailable"
		if m.status == twofa.MessageSent {
			lastError = ""
		}
		if ok, err := st.FinishMessage(ctx, m.id, "lease_"+m.id, m.status, time.Time{}, lastError, now, nil); !ok || err != nil {
			t.Fatalf("FinishMessage(%s) = %t, %v", m.id, ok, err)
		}
	}
	return e
}

// admin calls the API with acme's admin key.
func (e *outboxEnv) admin(method, target, body string) result {
	e.tb.Helper()
	return e.req(method, target, e.adminKey, body)
}

// messageIDs returns the IDs of a GET /v1/outbox page.
func messageIDs(r result) []string {
	var ids []string
	ms, _ := r.body["messages"].([]any)
	for _, m := range ms {
		ids = append(ids, m.(map[string]any)["id"].(string))
	}
	return ids
}

// noPayload fails if a response shows what a message says or where it
// goes.
func noPayload(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{outboxAddress, outboxCode, "payload", "key_id"} {
		if strings.Contains(r.raw, s) {
			t.Errorf("response holds %q: %s", s, r.raw)
		}
	}
}

func TestOutbox_List(t *testing.T) {
	e := newOutboxEnv(t)
	for _, tt := range []struct {
		name, query string
		want        []string
		next        string // next_before, "" for null
	}{
		{"All", "", []string{"msg_sent", "msg_waiting", "msg_failed"}, ""},
		{"Failed", "?status=failed", []string{"msg_failed"}, ""},
		{"Queued", "?status=queued", []string{"msg_waiting"}, ""},
		{"Limit", "?limit=2", []string{"msg_sent", "msg_waiting"}, "msg_waiting"},
		{"Before", "?limit=2&before=msg_waiting", []string{"msg_failed"}, ""},
		{"BeforeUnknown", "?before=msg_nope", nil, ""},
		{"BeforeAnotherTenants", "?before=msg_globex", []string{"msg_sent", "msg_waiting", "msg_failed"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.admin("GET", "/v1/outbox"+tt.query, "")
			if r.status != 200 {
				t.Fatalf("GET /v1/outbox%s: %d %s", tt.query, r.status, r.raw)
			}
			if got := messageIDs(r); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("messages = %q, want %q (the key's tenant's only, newest first)", got, tt.want)
			}
			if next, _ := r.body["next_before"].(string); next != tt.next {
				t.Errorf("next_before = %v, want %q", r.body["next_before"], tt.next)
			}
			noPayload(t, r)
		})
	}

	t.Run("Fields", func(t *testing.T) {
		r := e.admin("GET", "/v1/outbox", "")
		got := map[string]map[string]any{}
		for _, m := range r.body["messages"].([]any) {
			got[m.(map[string]any)["id"].(string)] = m.(map[string]any)
		}
		now := e.clock.Now().UTC().Format(time.RFC3339)
		for id, want := range map[string]map[string]any{
			"msg_failed": {"user_id": "alice", "channel": "email", "kind": "code", "status": "failed", "attempts": 1.0,
				"next_at": nil, "last_error": "550 5.1.1 mailbox unavailable", "created_at": now, "done_at": now},
			"msg_waiting": {"user_id": "bob", "channel": "email", "kind": "code", "status": "queued", "attempts": 0.0,
				"next_at": e.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339), "created_at": now, "done_at": nil},
			"msg_sent": {"channel": "email", "kind": "code", "status": "sent", "attempts": 1.0,
				"next_at": nil, "created_at": now, "done_at": now},
		} {
			m := got[id]
			for k, w := range want {
				if v, ok := m[k]; !ok || v != w {
					t.Errorf("%s: %s = %v (present %t), want %v", id, k, v, ok, w)
				}
			}
			for k := range m {
				if _, ok := want[k]; !ok && k != "id" {
					t.Errorf("%s: unexpected field %s = %v", id, k, m[k])
				}
			}
		}
	})

	t.Run("OtherTenant", func(t *testing.T) {
		r := e.req("GET", "/v1/outbox", e.globexAdmin, "")
		if got := messageIDs(r); r.status != 200 || strings.Join(got, ",") != "msg_globex" {
			t.Errorf("globex's outbox: %d %q, want msg_globex alone", r.status, got)
		}
	})

	for _, tt := range []struct {
		name, key, query string
		status           int
	}{
		{"AppKey", "app", "", 403},
		{"NoKey", "", "", 401},
		{"BadStatus", "admin", "?status=delivered", 400},
		{"LimitZero", "admin", "?limit=0", 400},
		{"LimitTooBig", "admin", "?limit=1001", 400},
		{"LimitNotANumber", "admin", "?limit=ten", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := map[string]string{"app": e.appKey, "admin": e.adminKey}[tt.key]
			r := e.req("GET", "/v1/outbox"+tt.query, key, "")
			if r.status != tt.status || r.errCode() == "" {
				t.Errorf("GET /v1/outbox%s: %d %s, want %d with a JSON error", tt.query, r.status, r.raw, tt.status)
			}
		})
	}
}

func TestOutbox_Retry(t *testing.T) {
	e := newOutboxEnv(t)
	status := func(id string) twofa.MessageStatus {
		t.Helper()
		ms, err := e.store.Messages(context.Background(), twofa.MessageFilter{ID: id})
		if err != nil || len(ms) != 1 {
			t.Fatalf("Messages(%s) = %d, %v", id, len(ms), err)
		}
		return ms[0].Status
	}
	for _, tt := range []struct {
		name, key, id, body string
		status              int
		reason              string
	}{
		{"AppKey", "app", "msg_failed", "", 403, ""},
		{"NoKey", "", "msg_failed", "", 401, ""},
		{"Body", "admin", "msg_failed", `{"now":true}`, 400, ""},
		{"AnotherTenants", "admin", "msg_globex", "", 404, "not_found"},
		{"Unknown", "admin", "msg_nope", "", 404, "not_found"},
		{"Sent", "admin", "msg_sent", "", 409, "already_sent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := map[string]string{"app": e.appKey, "admin": e.adminKey}[tt.key]
			r := e.req("POST", "/v1/outbox/"+tt.id+"/retry", key, tt.body)
			if r.status != tt.status || r.errCode() == "" || (tt.reason != "" && r.reason() != tt.reason) {
				t.Errorf("POST retry %s: %d %s, want %d with reason %q", tt.id, r.status, r.raw, tt.status, tt.reason)
			}
		})
	}
	if status("msg_failed") != twofa.MessageFailed || status("msg_globex") != twofa.MessageFailed || status("msg_sent") != twofa.MessageSent {
		t.Fatalf("a refused retry changed a message")
	}

	e.clock.Add(time.Minute)
	for _, body := range []string{"", "{}"} {
		if r := e.admin("POST", "/v1/outbox/msg_failed/retry", body); r.status != 204 {
			t.Fatalf("POST /v1/outbox/msg_failed/retry %q: %d %s, want 204", body, r.status, r.raw)
		}
	}
	r := e.admin("GET", "/v1/outbox?status=queued", "")
	if got := messageIDs(r); strings.Join(got, ",") != "msg_waiting,msg_failed" {
		t.Errorf("queued after the retry: %q, want msg_waiting and msg_failed", got)
	}
	ms, err := e.store.ClaimMessages(context.Background(), []twofa.Channel{twofa.ChannelEmail}, e.clock.Now(), time.Minute, "lease_test", 10)
	if err != nil || len(ms) != 1 || ms[0].ID != "msg_failed" {
		t.Errorf("due after the retry: %d messages, %v; want msg_failed, due at once", len(ms), err)
	}
	a := e.admin("GET", "/v1/audit", "")
	var retried int
	for _, ev := range a.body["events"].([]any) {
		ev := ev.(map[string]any)
		if ev["type"] == string(twofa.EventMessageRetried) {
			retried++
			if !strings.HasPrefix(ev["actor"].(string), "key:") || ev["user_id"] != "alice" || !strings.Contains(ev["detail"].(string), "msg_failed") {
				t.Errorf("message_retried event %v: want the admin key as actor, alice, the message named", ev)
			}
		}
	}
	if retried != 2 {
		t.Errorf("message_retried events = %d, want 2", retried)
	}
}

func TestOutbox_Metrics(t *testing.T) {
	e := newOutboxEnv(t)
	e.clock.Add(90 * time.Second)
	e.sends.Observe(twofa.ChannelEmail, twofa.SendSent)
	e.sends.Observe(twofa.ChannelEmail, twofa.SendSent)
	e.sends.Observe(twofa.ChannelWebhook, twofa.SendRetry)
	r := e.req("GET", "/metrics", "", "")
	for _, want := range []string{
		// Every tenant's: the operator's view.
		`twofa_outbox_messages{status="queued"} 1`,
		`twofa_outbox_messages{status="sent"} 1`,
		`twofa_outbox_messages{status="failed"} 2`,
		`twofa_outbox_oldest_queued_age_seconds 90`,
		`twofa_outbox_sends_total{channel="email",outcome="sent"} 2`,
		`twofa_outbox_sends_total{channel="webhook",outcome="retry"} 1`,
		`twofa_outbox_sends_total{channel="email",outcome="failed"} 0`,
	} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A store that does not answer leaves the gauges out; the scrape
	// still succeeds.
	e.store.Close()
	r = e.req("GET", "/metrics", "", "")
	if r.status != 200 || strings.Contains(r.raw, "twofa_outbox_messages") || !strings.Contains(r.raw, "twofa_outbox_sends_total") {
		t.Errorf("/metrics with the store closed: %d, outbox gauges present %t; want 200 without them",
			r.status, strings.Contains(r.raw, "twofa_outbox_messages"))
	}
}

func TestOutbox_MetricsWithoutSends(t *testing.T) {
	// A handler given no SendCounter still reports the outbox's state.
	svc, _, c, _ := twofatest.NewService(t)
	e := &env{tb: t, svc: svc, clock: c, h: web.NewHandler(svc, web.Options{Now: c.Now})}
	r := e.req("GET", "/metrics", "", "")
	if !strings.Contains(r.raw, `twofa_outbox_messages{status="queued"} 0`) || !strings.Contains(r.raw, "twofa_outbox_oldest_queued_age_seconds 0") ||
		strings.Contains(r.raw, "twofa_outbox_sends_total") {
		t.Errorf("/metrics of an empty outbox, no SendCounter: want zero gauges and no send counters")
	}
}
