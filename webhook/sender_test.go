package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/webhook"
)

// secrets is a tenant's webhook as the Service would give it.
type secrets struct {
	url    string
	secret []byte
	err    error
	calls  atomic.Int32
}

func (s *secrets) WebhookSecret(_ context.Context, tenant string) (string, []byte, error) {
	s.calls.Add(1)
	if s.err != nil {
		return "", nil, s.err
	}
	if tenant != "acme" {
		return "", nil, fmt.Errorf("tenant %s: %w", tenant, twofa.ErrNotFound)
	}
	return s.url, append([]byte(nil), s.secret...), nil
}

// received is one request a receiver got.
type received struct {
	method string
	header http.Header
	body   []byte
}

// receiver is a real HTTP server on 127.0.0.1 that answers each webhook
// with status (200 when 0) and records what it got.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status atomic.Int32
	delay  time.Duration
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Method, req.Header.Clone(), b})
		r.mu.Unlock()
		if r.delay > 0 {
			select {
			case <-time.After(r.delay):
			case <-req.Context().Done():
			}
		}
		if s := r.status.Load(); s != 0 {
			if s >= 300 && s < 400 {
				w.Header().Set("Location", "/elsewhere")
			}
			w.WriteHeader(int(s))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

var sentAt = time.Date(2026, 3, 1, 12, 0, 7, 0, time.UTC)

// outgoing is a webhook message of tenant acme for the URL to.
func outgoing(to string) *twofa.Outgoing {
	return &twofa.Outgoing{
		Message: &twofa.Message{ID: "msg_abcdefghijklmnop", Tenant: "acme", User: "alice",
			Channel: twofa.ChannelWebhook, Kind: twofa.KindEvent, Status: twofa.MessageQueued},
		Body: twofa.MessageBody{To: to, Event: &twofa.NoticeEvent{
			ID: "msg_abcdefghijklmnop", Type: twofa.EventVerifyFailed, Time: time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC),
			Tenant: "acme", User: "alice", Device: "dev_1", Factor: "totp", Reason: "invalid_code",
			Actor: "key_1", IP: "198.51.100.7", UserAgent: "Firefox", Detail: "1 consecutive failure",
		}},
	}
}

func newSender(sec *secrets, allowPrivate bool, timeout time.Duration) *webhook.Sender {
	return webhook.NewSender(sec, webhook.Options{AllowPrivate: allowPrivate, Timeout: timeout, Now: func() time.Time { return sentAt }})
}

// TestSender_Delivers: one POST with the exact headers and body, whose
// signature verifies with Verify and with an independent HMAC computed
// here, and with Python's hmac.
func TestSender_Delivers(t *testing.T) {
	r := newReceiver(t)
	key, _ := webhook.NewSecret()
	sec := &secrets{url: r.URL + "/hooks/twofa?token=abc", secret: key}
	m := outgoing(sec.url)
	if err := newSender(sec, true, 0).Send(t.Context(), m); err != nil {
		t.Fatalf("Send = %v, want nil", err)
	}
	got := r.requests()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(got))
	}
	req := got[0]
	if req.method != "POST" {
		t.Errorf("method %s, want POST", req.method)
	}
	for name, want := range map[string]string{
		"Content-Type":      "application/json",
		"User-Agent":        "twofa-webhooks/1",
		"webhook-id":        "msg_abcdefghijklmnop",
		"webhook-timestamp": strconv.FormatInt(sentAt.Unix(), 10),
	} {
		if v := req.header.Values(name); len(v) != 1 || v[0] != want {
			t.Errorf("header %s = %q, want %q", name, v, want)
		}
	}

	// The body: the Standard Webhooks shape, the event as data.
	var p struct {
		Type      string            `json:"type"`
		Timestamp string            `json:"timestamp"`
		Data      map[string]string `json:"data"`
	}
	if err := json.Unmarshal(req.body, &p); err != nil {
		t.Fatalf("body %s: %v", req.body, err)
	}
	wantData := map[string]string{"id": "msg_abcdefghijklmnop", "type": "verify_failed", "time": "2026-03-01T12:00:00.123456Z",
		"tenant": "acme", "user": "alice", "device": "dev_1", "factor": "totp", "reason": "invalid_code",
		"actor": "key_1", "ip": "198.51.100.7", "user_agent": "Firefox", "detail": "1 consecutive failure"}
	if p.Type != "verify_failed" || p.Timestamp != "2026-03-01T12:00:00.123456Z" || fmt.Sprint(p.Data) != fmt.Sprint(wantData) {
		t.Errorf("body = %s;\nwant type verify_failed, timestamp 2026-03-01T12:00:00.123456Z, data %v", req.body, wantData)
	}

	// The signature, three ways.
	if err := webhook.Verify(req.header, req.body, sentAt.Add(time.Minute), key); err != nil {
		t.Errorf("Verify = %v", err)
	}
	m2 := hmac.New(sha256.New, key)
	fmt.Fprintf(m2, "%s.%d.%s", "msg_abcdefghijklmnop", sentAt.Unix(), req.body)
	want := "v1," + base64.StdEncoding.EncodeToString(m2.Sum(nil))
	if sig := req.header.Get("webhook-signature"); sig != want {
		t.Errorf("webhook-signature = %q, want %q (computed here)", sig, want)
	}
	if py := pythonSign(t, webhook.EncodeSecret(key), "msg_abcdefghijklmnop", sentAt.Unix(), req.body); req.header.Get("webhook-signature") != py {
		t.Errorf("webhook-signature = %q, python3 says %q", req.header.Get("webhook-signature"), py)
	}
}

// TestSender_CurrentURL: a message queued before the tenant changed its
// URL goes to the URL the tenant has now.
func TestSender_CurrentURL(t *testing.T) {
	old, now := newReceiver(t), newReceiver(t)
	key, _ := webhook.NewSecret()
	sec := &secrets{url: now.URL, secret: key}
	if err := newSender(sec, true, 0).Send(t.Context(), outgoing(old.URL)); err != nil {
		t.Fatalf("Send = %v", err)
	}
	if n, m := len(old.requests()), len(now.requests()); n != 0 || m != 1 {
		t.Errorf("old URL got %d, current URL got %d; want 0 and 1", n, m)
	}
}

// TestSender_Errors: each class of failure, and what the receiver saw.
func TestSender_Errors(t *testing.T) {
	key, _ := webhook.NewSecret()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name      string
		status    int           // the receiver's answer
		delay     time.Duration // before it answers
		url       func(r *receiver) string
		err       error // of the secrets
		private   bool  // AllowPrivate
		permanent bool
		ok        bool
		requests  int // the receiver got
	}{
		{name: "200", status: 200, ok: true, requests: 1},
		{name: "202", status: 202, ok: true, requests: 1},
		{name: "299", status: 299, ok: true, requests: 1},
		{name: "400", status: 400, permanent: true, requests: 1},
		{name: "401", status: 401, permanent: true, requests: 1},
		{name: "403", status: 403, permanent: true, requests: 1},
		{name: "404", status: 404, permanent: true, requests: 1},
		{name: "410Gone", status: 410, permanent: true, requests: 1},
		{name: "413", status: 413, permanent: true, requests: 1},
		{name: "422", status: 422, permanent: true, requests: 1},
		{name: "405", status: 405, permanent: true, requests: 1},
		{name: "408", status: 408, requests: 1},
		{name: "409", status: 409, requests: 1},
		{name: "425", status: 425, requests: 1},
		{name: "429", status: 429, requests: 1},
		{name: "500", status: 500, requests: 1},
		{name: "502", status: 502, requests: 1},
		{name: "503", status: 503, requests: 1},
		{name: "504", status: 504, requests: 1},
		// A redirect is not followed, to the same host or any other.
		{name: "301", status: 301, permanent: true, requests: 1},
		{name: "302", status: 302, permanent: true, requests: 1},
		{name: "307", status: 307, permanent: true, requests: 1},
		{name: "308", status: 308, permanent: true, requests: 1},
		{name: "Timeout", delay: 2 * time.Second, requests: 1},
		{name: "ConnectionRefused", url: func(*receiver) string { return closedURL }},
		{name: "NoWebhook", err: fmt.Errorf("tenant acme: %w", twofa.ErrNotFound), permanent: true},
		{name: "SecretsFail", err: errors.New("database is down")},
		{name: "NotHTTP", url: func(*receiver) string { return "ftp://127.0.0.1/x" }, permanent: true},
		{name: "NotAURL", url: func(*receiver) string { return "::not a url" }, permanent: true},
		// Private addresses are refused before connecting, unless allowed.
		{name: "Loopback", private: true, permanent: true},
		{name: "LoopbackByName", private: true, permanent: true, url: func(r *receiver) string {
			return strings.Replace(r.URL, "127.0.0.1", "localhost", 1)
		}},
		{name: "IPv4MappedLoopback", private: true, permanent: true, url: func(r *receiver) string {
			_, port, _ := net.SplitHostPort(r.Listener.Addr().String())
			return "http://[::ffff:127.0.0.1]:" + port + "/"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newReceiver(t)
			r.status.Store(int32(tt.status))
			r.delay = tt.delay
			to := r.URL + "/hook?token=s3cr3t-token"
			if tt.url != nil {
				to = tt.url(r)
			}
			sec := &secrets{url: to, secret: key, err: tt.err}
			err := newSender(sec, !tt.private, 500*time.Millisecond).Send(t.Context(), outgoing(to))
			t.Logf("Send = %v", err)
			switch {
			case tt.ok && err != nil:
				t.Errorf("Send = %v, want nil", err)
			case !tt.ok && err == nil:
				t.Errorf("Send = nil, want an error")
			case !tt.ok && twofa.IsPermanent(err) != tt.permanent:
				t.Errorf("Send = %v; permanent %t, want %t", err, twofa.IsPermanent(err), tt.permanent)
			}
			if err != nil && (strings.Contains(err.Error(), "s3cr3t-token") || strings.Contains(err.Error(), "/hook")) {
				t.Errorf("error %q quotes the URL", err)
			}
			if got := len(r.requests()); got != tt.requests {
				t.Errorf("receiver got %d requests, want %d", got, tt.requests)
			}
		})
	}
}

// TestSender_NotAWebhook: a message of another channel, or without an
// event, is refused for good without asking for the tenant's secret.
func TestSender_NotAWebhook(t *testing.T) {
	sec := &secrets{url: "https://hooks.example/", secret: make([]byte, 32)}
	s := newSender(sec, false, 0)
	email := outgoing("a@example.com")
	email.Channel = twofa.ChannelEmail
	noEvent := outgoing("https://hooks.example/")
	noEvent.Body.Event = nil
	for name, m := range map[string]*twofa.Outgoing{"Email": email, "NoEvent": noEvent} {
		if err := s.Send(t.Context(), m); !twofa.IsPermanent(err) {
			t.Errorf("%s: Send = %v, want a permanent error", name, err)
		}
	}
	if n := sec.calls.Load(); n != 0 {
		t.Errorf("WebhookSecret called %d times, want 0", n)
	}
}

func TestPublic(t *testing.T) {
	for _, tt := range []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700:4700::1111", true},
		{"::ffff:8.8.8.8", true},
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", true},  // 6to4 of 8.8.8.8
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"0.1.2.3", false},
		{"10.0.0.1", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"fd00:ec2::254", false},   // AWS metadata over IPv6
		{"fe80::1", false},
		{"fc00::1", false},
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"192.0.0.8", false},
		{"192.0.2.1", false},
		{"198.18.0.1", false},
		{"198.51.100.1", false},
		{"203.0.113.1", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"ff02::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"64:ff9b::7f00:1", false},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false}, // NAT64 of 169.254.169.254
		{"64:ff9b:1::1", false},
		{"2002:7f00:1::1", false}, // 6to4 of 127.0.0.1
		{"2002:a00:1::1", false},  // 6to4 of 10.0.0.1
		{"2001::1", false},        // Teredo
		{"2001:db8::1", false},
		{"fec0::1", false},
		{"100::1", false},
		{"172.32.0.1", true},
		{"100.128.0.1", true},
		{"192.0.3.1", true},
	} {
		if got := webhook.Public(netip.MustParseAddr(tt.addr)); got != tt.public {
			t.Errorf("Public(%s) = %t, want %t", tt.addr, got, tt.public)
		}
	}
}
