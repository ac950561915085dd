package webhook_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa/internal/testenv"
	"github.com/twofa/twofa/webhook"
)

// The example of the Standard Webhooks project: its libraries' signing
// test (libraries/go/webhook_test.go, TestWebhookSign, and the same
// values in the other languages' tests).
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func specKey(t *testing.T) []byte {
	t.Helper()
	key, err := webhook.DecodeSecret(specSecret)
	if err != nil {
		t.Fatalf("DecodeSecret(%q) = %v", specSecret, err)
	}
	return key
}

// TestSign_SpecExample: the specification's published example.
func TestSign_SpecExample(t *testing.T) {
	got := webhook.Sign(specKey(t), specID, time.Unix(specTimestamp, 0), []byte(specBody))
	if got != specSignature {
		t.Errorf("Sign(spec example) = %q, want %q", got, specSignature)
	}
	h := http.Header{}
	webhook.SetHeaders(h, specID, time.Unix(specTimestamp, 0), []byte(specBody), specKey(t))
	if err := webhook.Verify(h, []byte(specBody), time.Unix(specTimestamp+60, 0), specKey(t)); err != nil {
		t.Errorf("Verify(spec example) = %v, want nil", err)
	}
}

// pythonSign computes a webhook's signature with Python's hmac, a second
// implementation that shares no code with Sign, from the secret in its
// "whsec_" form. It skips (or fails under TWOFA_TEST_REQUIRE_ALL=1)
// without python3.
func pythonSign(t *testing.T, secret, id string, ts int64, body []byte) string {
	t.Helper()
	py := testenv.LookPath(t, "python3")
	const script = `
import base64, hashlib, hmac, json, sys
a = json.load(sys.stdin)
key = base64.b64decode(a["secret"].split("_", 1)[1])
msg = a["id"].encode() + b"." + str(a["ts"]).encode() + b"." + base64.b64decode(a["body"])
print("v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode())
`
	in, _ := json.Marshal(map[string]any{"secret": secret, "id": id, "ts": ts, "body": base64.StdEncoding.EncodeToString(body)})
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestSign_Python: Sign agrees with Python's hmac on the spec's example
// and on new secrets with bodies of every byte.
func TestSign_Python(t *testing.T) {
	if got := pythonSign(t, specSecret, specID, specTimestamp, []byte(specBody)); got != specSignature {
		t.Fatalf("python3 on the spec example = %q, want %q: the independent check is wrong", got, specSignature)
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, body := range [][]byte{nil, []byte(`{"type":"verify_failed","data":{"user":"ünïcode"}}`), all} {
		key, err := webhook.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		got := webhook.Sign(key, "msg_abc", ts, body)
		if want := pythonSign(t, webhook.EncodeSecret(key), "msg_abc", ts.Unix(), body); got != want {
			t.Errorf("Sign(%d-byte body) = %q, python3 says %q", len(body), got, want)
		}
	}
}

func TestSecret(t *testing.T) {
	key, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	s := webhook.EncodeSecret(key)
	if !strings.HasPrefix(s, "whsec_") || len(key) != 32 {
		t.Errorf("EncodeSecret(NewSecret()) = %q (%d bytes); want whsec_ and 32 bytes", s, len(key))
	}
	if back, err := webhook.DecodeSecret(s); err != nil || !bytes.Equal(back, key) {
		t.Errorf("DecodeSecret(EncodeSecret(k)) = %x, %v; want k", back, err)
	}
	if other, _ := webhook.NewSecret(); bytes.Equal(other, key) {
		t.Error("two NewSecret calls gave the same secret")
	}
	for _, tt := range []struct {
		name, in string
		ok       bool
	}{
		{"NoPrefix", strings.TrimPrefix(specSecret, "whsec_"), true},
		{"24Bytes", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 24)), true},
		{"64Bytes", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 64)), true},
		{"23Bytes", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23)), false},
		{"65Bytes", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), false},
		{"NotBase64", "whsec_not*base64*at*all*not*base64*at*all", false},
		{"Empty", "", false},
		{"PrefixOnly", "whsec_", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhook.DecodeSecret(tt.in)
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, webhook.ErrSecret) {
				t.Errorf("DecodeSecret(%q) = %v, want ok %t", tt.in, err, tt.ok)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	key := specKey(t)
	other, _ := webhook.NewSecret()
	sent := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"type":"user_locked"}`)
	signed := func() http.Header {
		h := http.Header{}
		webhook.SetHeaders(h, "msg_1", sent, body, key)
		return h
	}
	sig := webhook.Sign(key, "msg_1", sent, body)
	tests := []struct {
		name string
		edit func(h http.Header)
		body []byte
		now  time.Time
		keys [][]byte
		want error
	}{
		{name: "Valid"},
		{name: "FiveMinutesLate", now: sent.Add(webhook.Tolerance)},
		{name: "FiveMinutesEarly", now: sent.Add(-webhook.Tolerance)},
		{name: "TooLate", now: sent.Add(webhook.Tolerance + time.Second), want: webhook.ErrTimestamp},
		{name: "TooEarly", now: sent.Add(-webhook.Tolerance - time.Second), want: webhook.ErrTimestamp},
		{name: "NoID", edit: func(h http.Header) { h.Del(webhook.HeaderID) }, want: webhook.ErrMissingHeader},
		{name: "NoTimestamp", edit: func(h http.Header) { h.Del(webhook.HeaderTimestamp) }, want: webhook.ErrMissingHeader},
		{name: "NoSignature", edit: func(h http.Header) { h.Del(webhook.HeaderSignature) }, want: webhook.ErrMissingHeader},
		{name: "TimestampNotANumber", edit: func(h http.Header) { h.Set(webhook.HeaderTimestamp, "2026-03-01T12:00:00Z") }, want: webhook.ErrTimestamp},
		{name: "TamperedBody", body: []byte(`{"type":"user_unlocked"}`), want: webhook.ErrSignature},
		{name: "OtherID", edit: func(h http.Header) { h.Set(webhook.HeaderID, "msg_2") }, want: webhook.ErrSignature},
		{name: "TimestampMoved", edit: func(h http.Header) { h.Set(webhook.HeaderTimestamp, strconv.FormatInt(sent.Unix()+1, 10)) }, want: webhook.ErrSignature},
		{name: "WrongKey", keys: [][]byte{other}, want: webhook.ErrSignature},
		{name: "OneOfTwoKeys", keys: [][]byte{other, key}},
		{name: "NoKeys", keys: [][]byte{}, want: webhook.ErrSignature},
		{name: "OneOfSeveralSignatures", edit: func(h http.Header) {
			h.Set(webhook.HeaderSignature, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,xyz "+sig+" v2,abc")
		}},
		{name: "OtherVersion", edit: func(h http.Header) { h.Set(webhook.HeaderSignature, "v2,"+strings.TrimPrefix(sig, "v1,")) }, want: webhook.ErrSignature},
		{name: "BadBase64", edit: func(h http.Header) { h.Set(webhook.HeaderSignature, "v1,!!!! v1") }, want: webhook.ErrSignature},
		{name: "TruncatedSignature", edit: func(h http.Header) { h.Set(webhook.HeaderSignature, sig[:len(sig)-8]) }, want: webhook.ErrSignature},
		{name: "LowerCaseHeaderNames", edit: func(h http.Header) {
			for k, v := range h {
				delete(h, k)
				h[strings.ToLower(k)] = v
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := signed()
			if tt.edit != nil {
				tt.edit(h)
			}
			b, now, keys := body, sent, [][]byte{key}
			if tt.body != nil {
				b = tt.body
			}
			if !tt.now.IsZero() {
				now = tt.now
			}
			if tt.keys != nil {
				keys = tt.keys
			}
			if err := webhook.Verify(h, b, now, keys...); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSetHeaders: one signature per key, space-separated, each verifying
// with its key alone.
func TestSetHeaders(t *testing.T) {
	k1, _ := webhook.NewSecret()
	k2, _ := webhook.NewSecret()
	ts := time.Unix(1700000000, 0)
	h := http.Header{}
	webhook.SetHeaders(h, "msg_x", ts, []byte("{}"), k1, k2)
	for _, name := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		if got := h.Values(name); len(got) != 1 {
			t.Errorf("header %q = %q, want one value", name, got)
		}
	}
	if got := h.Get("webhook-id"); got != "msg_x" {
		t.Errorf("webhook-id = %q, want msg_x", got)
	}
	if got := h.Get("webhook-timestamp"); got != "1700000000" {
		t.Errorf("webhook-timestamp = %q, want 1700000000", got)
	}
	sigs := strings.Fields(h.Get("webhook-signature"))
	if len(sigs) != 2 || sigs[0] != webhook.Sign(k1, "msg_x", ts, []byte("{}")) || sigs[1] != webhook.Sign(k2, "msg_x", ts, []byte("{}")) {
		t.Errorf("webhook-signature = %q, want the signatures under k1 and k2", sigs)
	}
	for i, k := range [][]byte{k1, k2} {
		if err := webhook.Verify(h, []byte("{}"), ts, k); err != nil {
			t.Errorf("Verify with key %d alone = %v", i+1, err)
		}
	}
}
