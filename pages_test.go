package twofa_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/prompt"
)

// TestService_EnrollColonUser follows the hosted enrollment page of a user
// whose ID has colons: the account name is derived, not refused.
func TestService_EnrollColonUser(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	token, _, err := f.svc.CreateLink(ctx, twofa.UserRef{Tenant: "acme", User: "urn:acme:42"}, twofa.LinkEnroll)
	if err != nil {
		t.Fatalf("CreateLink = %v", err)
	}
	l, err := f.svc.OpenLink(ctx, token)
	if err != nil {
		t.Fatalf("OpenLink = %v", err)
	}
	en, err := f.svc.BeginEnrollment(ctx, l.Ref(), twofa.EnrollRequest{}) // what the enrollment page asks
	if err != nil {
		t.Fatalf("BeginEnrollment(urn:acme:42) = %v, want nil", err)
	}
	if want := "otpauth://totp/twofa:urn.acme.42?"; !strings.HasPrefix(en.URI, want) {
		t.Errorf("URI = %q, want it to start %q", en.URI, want)
	}
	// An account name given explicitly is checked as before.
	_, err = f.svc.BeginEnrollment(ctx, l.Ref(), twofa.EnrollRequest{AccountName: "urn:acme:42"})
	if twofa.ErrorCode(err) != twofa.EINVALID {
		t.Errorf("BeginEnrollment(AccountName with a colon) = %v, want EINVALID", err)
	}
}

// TestService_PromptReturnURL checks return URLs end to end: registered
// ones are clean, and a request's must stay under one of them.
func TestService_PromptReturnURL(t *testing.T) {
	store, _ := openSQLite(t)
	f := newFixture(t, store, nil)
	ctx := context.Background()
	key, err := f.svc.NewPromptKey(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"https://app.example.com/2fa/../admin", "https://app.example.com/2fa%2f..", "https://app.example.com/%2e%2e/2fa"} {
		if err := f.svc.SetReturnURLs(ctx, "acme", []string{u}); twofa.ErrorCode(err) != twofa.EINVALID {
			t.Errorf("SetReturnURLs(%q) = %v, want EINVALID", u, err)
		}
	}
	if err := f.svc.SetReturnURLs(ctx, "acme", []string{"https://app.example.com/2fa"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://app.example.com/2fa/done?step=2", true},
		{"https://app.example.com/2fa/../logout?next=//evil.com", false},
		{"https://app.example.com/2fa/%2e%2e/logout", false},
		{"https://app.example.com/2fa%2f..%2flogout", false},
		{"https://app.example.com/2fa-evil", false},
	} {
		tok, err := prompt.SignRequest(key, prompt.Request{Tenant: "acme", User: "ivan", ReturnURL: tt.url,
			Nonce: prompt.NewNonce(), ExpiresAt: f.clock.Now().Add(5 * time.Minute).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.PromptRequest(ctx, "acme", tok)
		if (err == nil) != tt.ok || err != nil && twofa.ErrorCode(err) != twofa.EINVALID {
			t.Errorf("PromptRequest(return URL %q) = %v, want ok %t", tt.url, err, tt.ok)
		}
	}
}
