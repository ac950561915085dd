package main

import (
	"strings"
	"testing"

	"github.com/twofa/twofa/webhook"
)

// TestRun_TenantWebhook sets, shows and removes a tenant's webhook as an
// operator would, with no server running.
func TestRun_TenantWebhook(t *testing.T) {
	dir := t.TempDir()
	data := func(args ...string) []string {
		return append(append([]string{"tenant", "webhook"}, args...), "--data", dir)
	}

	out, errOut, status := runCLI(t, "", data("set", "--tenant", "acme", "--url", "https://hooks.acme.example/twofa", "--events", "user_locked, 2fa_disabled")...)
	secret := strings.TrimSpace(out)
	if status != 0 || !strings.Contains(errOut, "shown once") {
		t.Fatalf("set: status %d, %q %q", status, out, errOut)
	}
	if key, err := webhook.DecodeSecret(secret); err != nil || !strings.HasPrefix(secret, "whsec_") || len(key) != 32 {
		t.Errorf("set printed %q: %v; want the secret alone, whsec_ and 32 bytes", out, err)
	}

	tests := []struct {
		name       string
		args       []string
		wantOut    string
		wantErr    string
		wantStatus int
	}{
		{"Show", data("show", "--tenant", "acme"), "tenant acme: webhook to https://hooks.acme.example/twofa, events user_locked,2fa_disabled (updated ", "", 0},
		{"ShowOtherTenant", data("show", "--tenant", "globex"), "", "has no webhook", 1},
		{"SetNoURL", data("set", "--tenant", "acme"), "", "--url", 2},
		{"SetHTTP", data("set", "--tenant", "acme", "--url", "http://hooks.acme.example/"), "", "https", 1},
		{"SetUnknownEvent", data("set", "--tenant", "acme", "--url", "https://hooks.acme.example/", "--events", "verify_faild"), "", "unknown event type", 1},
		{"SetExtraArgument", data("set", "--tenant", "acme", "--url", "https://hooks.acme.example/", "more"), "", "--url", 2},
		{"ShowAfterRefusals", data("show", "--tenant", "acme"), "events user_locked,2fa_disabled", "", 0},
		{"SetEveryEvent", data("set", "--tenant", "acme", "--url", "https://hooks.acme.example/v2"), "whsec_", "every event", 0},
		{"ShowEveryEvent", data("show", "--tenant", "acme"), "webhook to https://hooks.acme.example/v2, every event", "", 0},
		{"Remove", data("remove", "--tenant", "acme"), "tenant acme: webhook removed", "", 0},
		{"ShowRemoved", data("show", "--tenant", "acme"), "", "has no webhook", 1},
		{"RemoveAgain", data("remove", "--tenant", "acme"), "", "has no webhook", 1},
		{"Unknown", data("frobnicate"), "", "unknown tenant webhook command", 2},
		{"Help", data("help"), "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, status := runCLI(t, "", tt.args...)
			if status != tt.wantStatus || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, %q and %q", status, out, errOut, tt.wantStatus, tt.wantOut, tt.wantErr)
			}
			if strings.Contains(out+errOut, secret) {
				t.Error("output holds the first secret again")
			}
		})
	}
}

// TestRun_TenantRestricted lets email be a user's only factor in one
// tenant, and then not, as an operator would.
func TestRun_TenantRestricted(t *testing.T) {
	dir := t.TempDir()
	data := func(args ...string) []string {
		return append(append([]string{"tenant", "restricted"}, args...), "--data", dir)
	}
	for _, tt := range []struct {
		name       string
		args       []string
		wantOut    string
		wantErr    string
		wantStatus int
	}{
		{"Allow", data("--tenant", "acme", "--allow", "true"), "tenant acme: email may be a user's only factor", "", 0},
		{"Deny", data("--tenant", "acme", "--allow=false"), "email needs an authenticator app or backup codes beside it", "", 0},
		{"Missing", data("--tenant", "acme"), "", "--allow true or --allow false", 2},
		{"Bad", data("--tenant", "acme", "--allow", "maybe"), "", "want true or false", 2},
		{"Extra", data("--tenant", "acme", "--allow", "true", "more"), "", "nothing else", 2},
		{"BadTenant", data("--tenant", "", "--allow", "true"), "", "tenant ID is empty", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, status := runCLI(t, "", tt.args...)
			if status != tt.wantStatus || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, %q and %q", status, out, errOut, tt.wantStatus, tt.wantOut, tt.wantErr)
			}
		})
	}
}
