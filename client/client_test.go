package client_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/twofa/twofa/prompt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/client"
	"github.com/twofa/twofa/internal/twofatest"
	"github.com/twofa/twofa/otp"
	"github.com/twofa/twofa/seal"
	"github.com/twofa/twofa/web"
)

type clock = twofatest.Clock

// server is a twofa HTTP API over a real Service on SQLite, with clients
// holding an app and an admin key of tenant "acme".
type server struct {
	url          string
	svc          *twofa.Service
	store        twofa.OutboxStore
	keys         *seal.Keyring // the Service's, to read the codes it sends
	clock        *clock
	app, admin   *client.Client
	appKey, admK string
}

func newServer(t *testing.T) *server {
	t.Helper()
	ctx := context.Background()
	svc, st, c, keys := twofatest.NewServiceKeys(t)
	hs := httptest.NewServer(web.NewHandler(svc, web.Options{Now: c.Now, Ready: st.Ping}))
	t.Cleanup(hs.Close)
	s := &server{url: hs.URL, svc: svc, store: st, keys: keys, clock: c}
	var err error
	if s.appKey, _, err = svc.CreateAPIKey(ctx, "acme", "app", twofa.ScopeApp); err != nil {
		t.Fatal(err)
	}
	if s.admK, _, err = svc.CreateAPIKey(ctx, "acme", "admin", twofa.ScopeAdmin); err != nil {
		t.Fatal(err)
	}
	s.app = client.New(hs.URL+"/", s.appKey, client.WithHTTPClient(hs.Client()))
	s.admin = client.New(hs.URL, s.admK)
	return s
}

// enroll enrolls and confirms a device for user, returning its ID, key
// and backup codes, and moves the clock a step on.
func (s *server) enroll(t *testing.T, user string) (string, *otp.Key, []string) {
	t.Helper()
	ctx := context.Background()
	en, err := s.app.Enroll(ctx, user, client.EnrollRequest{Name: "Phone", Issuer: "ACME", AccountName: user + "@example.com"})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	secret, err := otp.DecodeSecret(en.Secret)
	if err != nil {
		t.Fatal(err)
	}
	k, err := otp.NewKey(secret, otp.Params{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.app.Confirm(ctx, user, en.DeviceID, k.TOTP(s.clock.Now()))
	if err != nil || !res.Valid {
		t.Fatalf("Confirm: %+v, %v", res, err)
	}
	s.clock.Add(30 * time.Second)
	return en.DeviceID, k, res.BackupCodes
}

func wrongCode(k *otp.Key, now time.Time) string {
	for n := 1; ; n++ {
		c := strconv.Itoa(100000 + n*7919%900000)
		if m, _ := k.Verify(c, now, otp.Window{Behind: 25, Ahead: 25}); !m.Valid {
			return c
		}
	}
}

func TestClient_Enroll(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	en, err := s.app.Enroll(ctx, "alice", client.EnrollRequest{Name: "Phone", Issuer: "ACME Co", AccountName: "alice@example.com", Digits: 8, Algorithm: "SHA256"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(en.OTPAuthURI, "otpauth://totp/ACME%20Co:alice@example.com?") || en.Secret == "" || en.DeviceID == "" ||
		!strings.HasPrefix(en.QRSVG, "<svg") || !en.ExpiresAt.Equal(s.clock.Now().Add(10*time.Minute)) || len(en.Warnings) == 0 {
		t.Errorf("Enroll = %+v", en)
	}
	if _, err := png.Decode(bytes.NewReader(en.QRPNG)); err != nil {
		t.Errorf("QRPNG is not a PNG: %v", err)
	}
	if _, err := s.app.Enroll(ctx, "alice", client.EnrollRequest{}); err != nil {
		t.Errorf("Enroll with defaults: %v", err)
	}

	t.Run("Invalid", func(t *testing.T) {
		_, err := s.app.Enroll(ctx, "alice", client.EnrollRequest{Digits: 9})
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 400 || e.Code != client.CodeInvalid || !client.IsInvalid(err) {
			t.Errorf("got %#v", err)
		}
	})
	t.Run("DeviceLimit", func(t *testing.T) {
		for range 3 {
			s.app.Enroll(ctx, "alice", client.EnrollRequest{})
		}
		_, err := s.app.Enroll(ctx, "alice", client.EnrollRequest{})
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 409 || e.Code != client.CodeConflict || e.Reason != client.ReasonDeviceLimit {
			t.Errorf("got %v", err)
		}
	})
	t.Run("BadUserID", func(t *testing.T) {
		for _, id := range []string{"..", ".", strings.Repeat("x", 200), "a\x00b"} {
			if _, err := s.app.Enroll(ctx, id, client.EnrollRequest{}); !client.IsInvalid(err) {
				t.Errorf("Enroll(%q): got %v, want invalid", id, err)
			}
		}
		if _, err := s.app.Enroll(ctx, "", client.EnrollRequest{}); !client.IsInvalid(err) {
			t.Errorf("Enroll(\"\"): got %v, want invalid", err)
		}
	})
	t.Run("SlashInUserID", func(t *testing.T) {
		if _, err := s.app.Enroll(ctx, "team/bob", client.EnrollRequest{}); err != nil {
			t.Fatal(err)
		}
		u, err := s.app.User(ctx, "team/bob")
		if err != nil || u.UserID != "team/bob" || len(u.Devices) != 1 {
			t.Errorf("User(team/bob) = %+v, %v", u, err)
		}
	})
}

func TestClient_ConfirmVerify(t *testing.T) {
	s := newServer(t)
	ctx := client.WithEndUser(context.Background(), "203.0.113.9", "Firefox/140")
	en, err := s.app.Enroll(ctx, "alice", client.EnrollRequest{})
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := otp.DecodeSecret(en.Secret)
	k, _ := otp.NewKey(secret, otp.Params{})

	t.Run("ConfirmWrong", func(t *testing.T) {
		res, err := s.app.Confirm(ctx, "alice", en.DeviceID, k.TOTP(s.clock.Now().Add(-5*time.Minute)))
		if err != nil || res.Valid || res.Reason != "invalid_code" || res.ClockSkew != -5*time.Minute {
			t.Errorf("Confirm = %+v, %v", res, err)
		}
	})
	t.Run("ConfirmMalformed", func(t *testing.T) {
		if _, err := s.app.Confirm(ctx, "alice", en.DeviceID, "12"); !client.IsMalformedCode(err) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("ConfirmUnknown", func(t *testing.T) {
		if _, err := s.app.Confirm(ctx, "alice", "dev_nope", "123456"); !client.IsNotFound(err) {
			t.Errorf("got %v", err)
		}
		if _, err := s.app.Confirm(ctx, "alice", "", "123456"); !client.IsInvalid(err) {
			t.Errorf("empty device ID: got %v", err)
		}
	})
	res, err := s.app.Confirm(ctx, "alice", en.DeviceID, k.TOTP(s.clock.Now()))
	if err != nil || !res.Valid || len(res.BackupCodes) != 10 || res.Device == nil || res.Device.Status != "active" || res.Device.ConfirmedAt.IsZero() {
		t.Fatalf("Confirm = %+v, %v", res, err)
	}
	s.clock.Add(30 * time.Second)

	code := k.TOTP(s.clock.Now())
	tests := []struct {
		name, code string
		want       client.VerifyResult
	}{
		{"Valid", code, client.VerifyResult{Valid: true, Factor: "totp", DeviceID: en.DeviceID, BackupCodesRemaining: 10}},
		{"Replayed", code, client.VerifyResult{Reason: "replayed"}},
		{"Wrong", wrongCode(k, s.clock.Now()), client.VerifyResult{Reason: "invalid_code"}},
		{"BackupCode", res.BackupCodes[0], client.VerifyResult{Valid: true, Factor: "backup_code", BackupCodesRemaining: 9}},
		{"BackupCodeAgain", res.BackupCodes[0], client.VerifyResult{Reason: "invalid_code"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.app.Verify(ctx, "alice", tt.code)
			if err != nil || *got != tt.want {
				t.Errorf("Verify = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	t.Run("Malformed", func(t *testing.T) {
		_, err := s.app.Verify(ctx, "alice", "12345")
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 400 || e.Code != client.CodeInvalid || !client.IsMalformedCode(err) || client.IsLocked(err) {
			t.Errorf("got %#v", err)
		}
		if strings.Contains(err.Error(), "12345") || strings.Contains(err.Error(), s.appKey) {
			t.Errorf("the error quotes the code or key: %v", err)
		}
	})
	t.Run("NotEnrolled", func(t *testing.T) {
		if _, err := s.app.Verify(ctx, "nobody", "123456"); !client.IsNotEnrolled(err) || !client.IsNotFound(err) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("EndUserAudited", func(t *testing.T) {
		page, err := s.admin.AuditEvents(context.Background(), client.AuditQuery{UserID: "alice", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range page.Events {
			found = found || e.Type == "verify_succeeded" && e.IP == "203.0.113.9" && e.UserAgent == "Firefox/140"
		}
		if !found {
			t.Errorf("no verify_succeeded event with the end user's IP and agent in %+v", page.Events)
		}
	})
	t.Run("BadEndUserIP", func(t *testing.T) {
		ctx := client.WithEndUser(context.Background(), "not-an-ip", "")
		if _, err := s.app.Verify(ctx, "alice", "123456"); !client.IsInvalid(err) {
			t.Errorf("got %v", err)
		}
	})
}

func TestClient_Locked(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	_, k, _ := s.enroll(t, "alice")
	for range 5 {
		if res, err := s.app.Verify(ctx, "alice", wrongCode(k, s.clock.Now())); err != nil || res.Valid {
			t.Fatalf("wrong code: %+v, %v", res, err)
		}
	}
	right := k.TOTP(s.clock.Now())
	_, err := s.app.Verify(ctx, "alice", right)
	var e *client.Error
	if !client.IsLocked(err) || !client.IsRateLimited(err) || !errors.As(err, &e) {
		t.Fatalf("got %v, want locked", err)
	}
	if e.Status != 429 || e.RetryAfter != 30*time.Second || !e.Until.Equal(s.clock.Now().Add(30*time.Second)) {
		t.Errorf("got %+v, want 429 with RetryAfter 30s", e)
	}
	if strings.Contains(err.Error(), right) || strings.Contains(err.Error(), s.appKey) {
		t.Errorf("the error quotes the code or key: %v", err)
	}
	u, err := s.app.User(ctx, "alice")
	if err != nil || !u.LockedUntil.Equal(e.Until) {
		t.Errorf("User = %+v, %v", u, err)
	}

	t.Run("UnlockNeedsAdmin", func(t *testing.T) {
		err := s.app.Unlock(ctx, "alice")
		var e *client.Error
		if !client.IsForbidden(err) || !errors.As(err, &e) || e.Status != 403 {
			t.Errorf("got %v", err)
		}
	})
	if err := s.admin.Unlock(ctx, "alice"); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if res, err := s.app.Verify(ctx, "alice", right); err != nil || !res.Valid {
		t.Errorf("after Unlock: %+v, %v", res, err)
	}
	if err := s.admin.Unlock(ctx, "nobody"); !client.IsNotFound(err) {
		t.Errorf("Unlock(nobody): %v", err)
	}
}

func TestClient_Users(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	dev, k, _ := s.enroll(t, "alice")

	u, err := s.app.User(ctx, "alice")
	if err != nil || !u.Enrolled || len(u.Devices) != 1 || u.Devices[0].ID != dev || u.BackupCodesRemaining != 10 || !u.LockedUntil.IsZero() {
		t.Fatalf("User = %+v, %v", u, err)
	}
	if u, err := s.app.User(ctx, "nobody"); err != nil || u.Enrolled || u.Devices == nil {
		t.Errorf("User(nobody) = %+v, %v", u, err)
	}

	res, err := s.app.Resync(ctx, "alice", dev, k.TOTP(s.clock.Now().Add(4*time.Minute)), k.TOTP(s.clock.Now().Add(4*time.Minute+30*time.Second)))
	if err != nil || *res != (client.ResyncResult{}) {
		t.Errorf("Resync too far = %+v, %v", res, err)
	}
	res, err = s.app.Resync(ctx, "alice", dev, k.TOTP(s.clock.Now().Add(60*time.Second)), k.TOTP(s.clock.Now().Add(90*time.Second)))
	if err != nil || !res.Valid || res.DriftSteps != 2 {
		t.Errorf("Resync = %+v, %v", res, err)
	}
	if _, err = s.app.Resync(ctx, "alice", dev, k.TOTP(s.clock.Now().Add(5*time.Minute)), ""); !client.IsInvalid(err) {
		t.Errorf("Resync with one code: %v; want invalid", err)
	}
	if _, err := s.app.Resync(ctx, "alice", "dev_nope", "123456", "654321"); !client.IsNotFound(err) {
		t.Errorf("Resync unknown device: %v", err)
	}

	codes, err := s.app.RegenerateBackupCodes(ctx, "alice")
	if err != nil || len(codes) != 10 {
		t.Errorf("RegenerateBackupCodes = %q, %v", codes, err)
	}
	if _, err := s.app.RegenerateBackupCodes(ctx, "nobody"); !client.IsNotEnrolled(err) {
		t.Errorf("RegenerateBackupCodes(nobody): %v", err)
	}

	if err := s.app.RevokeDevice(ctx, "alice", "dev_nope"); !client.IsNotFound(err) {
		t.Errorf("RevokeDevice unknown: %v", err)
	}
	if err := s.app.RevokeDevice(ctx, "alice", dev); err != nil {
		t.Errorf("RevokeDevice: %v", err)
	}
	if err := s.app.Disable(ctx, "alice"); err != nil {
		t.Errorf("Disable: %v", err)
	}
	if _, err := s.app.Verify(ctx, "alice", codes[0]); !client.IsNotEnrolled(err) {
		t.Errorf("Verify after Disable: %v", err)
	}
	if err := s.app.Disable(ctx, "nobody"); err != nil { // idempotent
		t.Errorf("Disable(nobody): %v", err)
	}
}

func TestClient_Audit(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	s.enroll(t, "alice")
	s.enroll(t, "bob")

	var all []client.AuditEvent
	q := client.AuditQuery{Limit: 2}
	for pages := 0; ; pages++ {
		page, err := s.admin.AuditEvents(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Events...)
		if page.NextAfter == 0 {
			break
		}
		if pages > 50 {
			t.Fatal("endless paging")
		}
		q.After = page.NextAfter
	}
	for i, e := range all {
		if e.Seq <= 0 || e.Hash == "" || e.Time.IsZero() || e.Type == "" || i > 0 && e.Seq <= all[i-1].Seq {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	if len(all) < 6 {
		t.Errorf("got %d events, want the key creations and two enrollments", len(all))
	}
	page, err := s.admin.AuditEvents(ctx, client.AuditQuery{UserID: "bob"})
	if err != nil || len(page.Events) == 0 || page.NextAfter != 0 {
		t.Fatalf("AuditEvents(bob) = %+v, %v", page, err)
	}
	for _, e := range page.Events {
		if e.UserID != "bob" {
			t.Errorf("AuditEvents(bob) has %+v", e)
		}
	}
	if _, err := s.admin.AuditEvents(ctx, client.AuditQuery{Limit: 5000}); !client.IsInvalid(err) {
		t.Errorf("Limit 5000: %v", err)
	}

	chain, err := s.admin.VerifyAudit(ctx)
	if err != nil || !chain.OK || chain.TenantEvents < int64(len(all)) || chain.BadSeq != 0 {
		t.Errorf("VerifyAudit = %+v, %v", chain, err)
	}
	for name, call := range map[string]func() error{
		"AuditEvents": func() error { _, err := s.app.AuditEvents(ctx, client.AuditQuery{}); return err },
		"VerifyAudit": func() error { _, err := s.app.VerifyAudit(ctx); return err },
	} {
		if err := call(); !client.IsForbidden(err) {
			t.Errorf("%s with an app key: %v", name, err)
		}
	}
}

func TestClient_Auth(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	for _, key := range []string{"", "tfa_wrong", "hunter2"} {
		c := client.New(s.url, key)
		_, err := c.User(ctx, "alice")
		var e *client.Error
		if !client.IsUnauthorized(err) || !errors.As(err, &e) || e.Status != 401 {
			t.Errorf("key %q: got %v, want 401", key, err)
		}
		if key != "" && strings.Contains(err.Error(), key) {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
	if s := client.New(s.url, s.appKey).String(); strings.Contains(s, "tfa_") {
		t.Errorf("String() = %q shows the key", s)
	}
}

func TestClient_HealthReady(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	anon := client.New(s.url, "")
	if err := anon.Health(ctx); err != nil {
		t.Errorf("Health: %v", err)
	}
	if err := anon.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
	down := client.New("http://127.0.0.1:1", s.appKey)
	err := down.Health(ctx)
	if err == nil || strings.Contains(err.Error(), s.appKey) {
		t.Errorf("Health of nothing: %v", err)
	}
	var e *client.Error
	if errors.As(err, &e) {
		t.Errorf("a transport error is an *Error: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := anon.Health(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// TestClient_ForeignErrors: error responses that are not twofa's, such as
// a proxy's, still give an *Error by status, and Retry-After as a date.
func TestClient_ForeignErrors(t *testing.T) {
	var status int
	var retry string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		w.Write([]byte("<html>upstream said " + r.Header.Get("Authorization") + "</html>"))
	}))
	defer hs.Close()
	c := client.New(hs.URL, "tfa_secret")
	tests := []struct {
		status int
		retry  string
		code   string
		after  time.Duration
	}{
		{502, "", client.CodeInternal, 0},
		{503, "120", client.CodeInternal, 2 * time.Minute},
		{429, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), client.CodeRateLimited, time.Hour},
		{429, "soon", client.CodeRateLimited, 0},
		{404, "", client.CodeNotFound, 0},
		{405, "", client.CodeInternal, 0},
	}
	for _, tt := range tests {
		status, retry = tt.status, tt.retry
		_, err := c.Verify(context.Background(), "alice", "123456")
		var e *client.Error
		// An HTTP date counts down from when the table was made, however
		// slow the machine: a minute's slack, an hour's date.
		if !errors.As(err, &e) || e.Status != tt.status || e.Code != tt.code || e.RetryAfter > tt.after || e.RetryAfter < tt.after-time.Minute {
			t.Errorf("%d %q: got %#v", tt.status, tt.retry, err)
			continue
		}
		if strings.Contains(err.Error(), "tfa_secret") || strings.Contains(err.Error(), "123456") {
			t.Errorf("the error quotes the key or code: %v", err)
		}
	}
	// A 200 that is not JSON is an error, not a zero result.
	status = 200
	if res, err := c.Verify(context.Background(), "alice", "123456"); err == nil {
		t.Errorf("non-JSON 200: %+v", res)
	}
}

func TestClient_Links(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	for name, get := range map[string]func(context.Context, string) (*client.Link, error){
		"EnrollmentLink": s.app.EnrollmentLink,
		"ManageLink":     s.app.ManageLink,
	} {
		l, err := get(ctx, "alice")
		if err != nil || !strings.Contains(l.URL, "/l/tfl_") || !l.ExpiresAt.After(s.clock.Now()) {
			t.Errorf("%s = %+v, %v", name, l, err)
		}
		if _, err := get(ctx, ""); err == nil {
			t.Errorf("%s(\"\"): no error", name)
		}
	}
}

func TestPromptURLAndResult(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	nonce := prompt.NewNonce()
	u, err := client.PromptURL("https://twofa.example/", key, "acme", "alice", "https://app.example/2fa", nonce, 5*time.Minute)
	if err != nil || !strings.HasPrefix(u, "https://twofa.example/prompt?request=v1.") || !strings.Contains(u, "tenant=acme") {
		t.Fatalf("PromptURL = %q, %v", u, err)
	}
	pu, _ := url.Parse(u)
	req, err := prompt.ParseRequest(key, pu.Query().Get("request"), time.Now())
	if err != nil || req.User != "alice" || req.Nonce != nonce {
		t.Fatalf("the request: %+v, %v", req, err)
	}
	res, _ := prompt.SignResult(key, prompt.Result{Tenant: "acme", User: "alice", Nonce: nonce, Factor: "totp", IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Minute).Unix()})
	if r, err := client.CheckPromptResult(key, "acme", nonce, res); err != nil || r.User != "alice" {
		t.Errorf("CheckPromptResult = %+v, %v", r, err)
	}
	if _, err := client.CheckPromptResult(key, "acme", prompt.NewNonce(), res); err == nil {
		t.Error("a result for another nonce passed")
	}
}
