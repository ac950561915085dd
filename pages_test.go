package twofa_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/prompt"
)

// userEvents returns the user's audit events of type typ.
func userEvents(t *testing.T, svc *twofa.Service, ref twofa.UserRef, typ twofa.EventType) []*twofa.AuditEvent {
	t.Helper()
	evs, err := svc.AuditEvents(context.Background(), twofa.AuditFilter{Tenant: ref.Tenant, User: ref.User, Limit: 1000})
	if err != nil {
		t.Fatalf("AuditEvents(%s) = %v", ref, err)
	}
	var out []*twofa.AuditEvent
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestService_LinkUsedAudit checks that link_used names the link and its
// user, which only the store knows when the token is spent.
func TestService_LinkUsedAudit(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		ref := twofa.UserRef{Tenant: "acme", User: "grace"}
		token, l, err := f.svc.CreateLink(ctx, ref, twofa.LinkManage)
		if err != nil {
			t.Fatalf("CreateLink = %v", err)
		}
		if _, err := f.svc.OpenLink(ctx, token); err != nil {
			t.Fatalf("OpenLink = %v", err)
		}
		evs := userEvents(t, f.svc, ref, twofa.EventLinkUsed)
		if len(evs) != 1 {
			t.Fatalf("%d link_used events of %s, want 1", len(evs), ref)
		}
		if want := "manage link " + l.ID; evs[0].Detail != want {
			t.Errorf("link_used Detail = %q, want %q", evs[0].Detail, want)
		}
		if strings.Contains(evs[0].Detail, token) {
			t.Errorf("link_used Detail %q holds the token", evs[0].Detail)
		}
	})
}

// TestService_APIKeyRevokedAudit checks that api_key_revoked is the key's
// tenant's, so that the tenant's administrators see it.
func TestService_APIKeyRevokedAudit(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		_, k, err := f.svc.CreateAPIKey(ctx, "acme", "app", twofa.ScopeApp)
		if err != nil {
			t.Fatalf("CreateAPIKey = %v", err)
		}
		if err := f.svc.RevokeAPIKey(ctx, k.ID); err != nil {
			t.Fatalf("RevokeAPIKey = %v", err)
		}
		evs := userEvents(t, f.svc, twofa.UserRef{Tenant: "acme"}, twofa.EventAPIKeyRevoked)
		if len(evs) != 1 || evs[0].Tenant != "acme" || evs[0].Detail != "key "+k.ID {
			t.Fatalf("api_key_revoked events of tenant acme = %+v, want one about key %s", evs, k.ID)
		}
	})
}

// TestService_SweepExpiredLinks checks that the sweeper deletes expired
// links: one opened after the sweep is unknown, not expired.
func TestService_SweepExpiredLinks(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(t testing.TB) (twofa.Store, string)) {
		store, _ := open(t)
		f := newFixture(t, store, nil)
		ctx := context.Background()
		ref := twofa.UserRef{Tenant: "acme", User: "heidi"}
		expired, _, err := f.svc.CreateLink(ctx, ref, twofa.LinkEnroll)
		if err != nil {
			t.Fatalf("CreateLink = %v", err)
		}
		f.clock.Add(twofa.LinkTTL)
		live, _, err := f.svc.CreateLink(ctx, ref, twofa.LinkEnroll)
		if err != nil {
			t.Fatalf("CreateLink = %v", err)
		}
		if _, err := f.svc.OpenLink(ctx, expired); !errors.Is(err, twofa.ErrExpired) {
			t.Fatalf("OpenLink(an expired link) before the sweep = %v, want ErrExpired", err)
		}
		if n, err := f.svc.SweepExpired(ctx); n != 0 || err != nil {
			t.Errorf("SweepExpired = %d, %v; want 0 enrollments, nil", n, err)
		}
		if _, err := f.svc.OpenLink(ctx, expired); !errors.Is(err, twofa.ErrNotFound) {
			t.Errorf("OpenLink(an expired link) after the sweep = %v, want ErrNotFound", err)
		}
		if _, err := f.svc.OpenLink(ctx, live); err != nil {
			t.Errorf("OpenLink(a live link) after the sweep = %v, want nil", err)
		}
	})
}

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
