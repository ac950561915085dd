package prompt

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	testKey = []byte("0123456789abcdef0123456789abcdef")
	now     = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
)

func validRequest() Request {
	return Request{Tenant: "acme", User: "alice", ReturnURL: "https://app.example.com/2fa/done", Nonce: "nonce-0123456789abcdef", ExpiresAt: now.Add(5 * time.Minute).Unix()}
}

func TestParseRequest(t *testing.T) {
	good, err := SignRequest(testKey, validRequest())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRequest(testKey, good, now)
	if err != nil || *got != validRequest() {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	otherKey := []byte("fedcba9876543210fedcba9876543210")
	result, _ := SignResult(testKey, Result{Tenant: "acme", User: "alice", Nonce: "nonce-0123456789abcdef", ExpiresAt: now.Add(time.Minute).Unix()})
	mutate := func(f func(*Request)) string {
		r := validRequest()
		f(&r)
		s, _ := sign(testKey, "request", r) // bypass SignRequest's checks
		return s
	}
	tests := []struct {
		name    string
		token   string
		key     []byte
		at      time.Time
		wantErr error
	}{
		{"OtherKey", good, otherKey, now, ErrInvalid},
		{"Expired", good, testKey, now.Add(6 * time.Minute), ErrExpired},
		{"TooFarAhead", mutate(func(r *Request) { r.ExpiresAt = now.Add(time.Hour).Unix() }), testKey, now, ErrInvalid},
		{"ShortNonce", mutate(func(r *Request) { r.Nonce = "short" }), testKey, now, ErrInvalid},
		{"NoUser", mutate(func(r *Request) { r.User = "" }), testKey, now, ErrInvalid},
		{"JavascriptURL", mutate(func(r *Request) { r.ReturnURL = "javascript:alert(1)" }), testKey, now, ErrInvalid},
		{"ResultAsRequest", result, testKey, now, ErrInvalid},
		{"TamperedPayload", strings.Replace(good, "v1.e", "v1.f", 1), testKey, now, ErrInvalid},
		{"TamperedMAC", good[:len(good)-2] + "AA", testKey, now, ErrInvalid},
		{"WrongVersion", "v2" + good[2:], testKey, now, ErrInvalid},
		{"TwoParts", "v1.abc", testKey, now, ErrInvalid},
		{"Empty", "", testKey, now, ErrInvalid},
		{"Huge", "v1." + strings.Repeat("a", 5000) + ".b", testKey, now, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest(tt.key, tt.token, tt.at)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseResult(t *testing.T) {
	r := Result{Tenant: "acme", User: "alice", Nonce: "nonce-0123456789abcdef", Factor: "totp", IssuedAt: now.Unix(), ExpiresAt: now.Add(ResultLife).Unix()}
	tok, err := SignResult(testKey, r)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := SignRequest(testKey, validRequest())
	tests := []struct {
		name    string
		token   string
		tenant  string
		nonce   string
		at      time.Time
		wantErr error
	}{
		{"OK", tok, "acme", r.Nonce, now, nil},
		{"Expired", tok, "acme", r.Nonce, now.Add(ResultLife), ErrExpired},
		{"OtherTenant", tok, "globex", r.Nonce, now, ErrInvalid},
		{"OtherNonce", tok, "acme", "nonce-ffffffffffffffff", now, ErrInvalid},
		{"NoNonce", tok, "acme", "", now, ErrInvalid},
		{"RequestAsResult", req, "acme", r.Nonce, now, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResult(testKey, tt.token, tt.tenant, tt.nonce, tt.at)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err == nil && *got != r {
				t.Errorf("got %+v, want %+v", got, r)
			}
		})
	}
	if _, err := SignResult([]byte("short"), r); err == nil {
		t.Error("a short key signed")
	}
}

func FuzzParseRequest(f *testing.F) {
	good, _ := SignRequest(testKey, validRequest())
	f.Add(good)
	f.Add("v1..")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRequest(testKey, s, now)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		// Anything accepted must have been signed with the key: re-signing
		// gives back a token that parses to the same request.
		again, err := SignRequest(testKey, *r)
		if err != nil {
			t.Fatal(err)
		}
		if r2, err := ParseRequest(testKey, again, now); err != nil || *r2 != *r {
			t.Fatalf("re-signed: %+v, %v", r2, err)
		}
	})
}
