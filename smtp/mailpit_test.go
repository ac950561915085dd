package smtp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/internal/mailpit"
)

// These tests send through a real SMTP server, Mailpit, and read what it
// received through its API.

func mailpitURL(mp *mailpit.Server, scheme, user, query string) string {
	u := scheme + "://"
	if user != "" {
		u += user + "@"
	}
	u += mp.SMTPAddr()
	if query != "" {
		u += "?" + query
	}
	return u
}

// TestMailpit_CodeAndNotice: a code and a notice arrive whole: To, From,
// Subject, Message-ID, and the text and HTML parts as rendered.
func TestMailpit_CodeAndNotice(t *testing.T) {
	mp := mailpit.Start(t, mailpit.Options{})
	s := newSender(t, Config{URL: mailpitURL(mp, "smtp", "", "tls=none")})

	code := codeMessage("msg_code1", "alice@example.test", "73019462")
	notice := sampleNotice(twofa.EventDeviceRevoked, twofa.FactorTOTP)
	notice.ID, notice.Body.To = "msg_notice1", "bob@example.test"
	for _, tt := range []struct {
		m         *twofa.Outgoing
		to        string
		mustHave  string
		messageID string
	}{
		{code, "alice@example.test", "73019462", "msg_code1@acme.example"},
		{notice, "bob@example.test", "203.0.113.7", "msg_notice1@acme.example"},
	} {
		if err := s.Send(t.Context(), tt.m); err != nil {
			t.Fatal(err)
		}
		want, err := s.t.render(tt.m)
		if err != nil {
			t.Fatal(err)
		}
		got := mp.WaitFor(t, "to:"+tt.to, 1, 10*time.Second)
		if len(got) != 1 {
			t.Fatalf("%d messages to %s, want 1", len(got), tt.to)
		}
		m := mp.Message(t, got[0].ID)
		if len(m.To) != 1 || m.To[0].Address != tt.to {
			t.Errorf("To %v, want %s", m.To, tt.to)
		}
		if m.From == nil || m.From.Address != "security@acme.example" || m.From.Name != "ACME Security" {
			t.Errorf("From %v, want ACME Security <security@acme.example>", m.From)
		}
		if m.Subject != want.Subject {
			t.Errorf("Subject %q, want %q", m.Subject, want.Subject)
		}
		if m.MessageID != tt.messageID {
			t.Errorf("Message-ID %q, want %q", m.MessageID, tt.messageID)
		}
		// MIME lines end in CRLF on the wire.
		lf := func(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n")) }
		if lf(m.Text) != lf(want.Text) {
			t.Errorf("text part:\n%s\nwant:\n%s", m.Text, want.Text)
		}
		if lf(m.HTML) != lf(want.HTML) {
			t.Errorf("HTML part:\n%s\nwant:\n%s", m.HTML, want.HTML)
		}
		if !strings.Contains(m.Text, tt.mustHave) || !strings.Contains(m.HTML, tt.mustHave) {
			t.Errorf("a part lacks %q", tt.mustHave)
		}
		if !m.Date.Equal(sampleTime) {
			t.Errorf("Date %s, want the message's creation %s", m.Date, sampleTime)
		}
		if h := mp.Headers(t, m.ID); fmt.Sprint(h["Auto-Submitted"]) != "[auto-generated]" {
			t.Errorf("Auto-Submitted %v, want auto-generated", h["Auto-Submitted"])
		}
	}
}

// TestMailpit_Retry: a 451 on RCPT is a temporary error; once the server
// takes mail again the same message goes through, once, with its
// Message-ID.
func TestMailpit_Retry(t *testing.T) {
	mp := mailpit.Start(t, mailpit.Options{Chaos: true})
	s := newSender(t, Config{URL: mailpitURL(mp, "smtp", "", "tls=none")})
	m := codeMessage("msg_retry1", "carol@example.test", "55501234")

	mp.SetChaos(t, mailpit.Chaos{Recipient: mailpit.Trigger{ErrorCode: 451, Probability: 100}})
	err := s.Send(t.Context(), m)
	var e *Error
	if err == nil || twofa.IsPermanent(err) || !errors.As(err, &e) || e.Op != "RCPT TO" || e.Code != 451 {
		t.Fatalf("under chaos got %v, want a temporary 451 on RCPT TO", err)
	}
	checkClean(t, err, "Chaos", "carol@example.test", "55501234")
	if n := len(mp.Messages(t)); n != 0 {
		t.Fatalf("%d messages under chaos, want none", n)
	}

	mp.SetChaos(t, mailpit.Chaos{})
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("after chaos: %v", err)
	}
	got := mp.WaitFor(t, "to:carol@example.test", 1, 10*time.Second)
	if len(got) != 1 || got[0].MessageID != "msg_retry1@acme.example" {
		t.Fatalf("got %+v, want one message with Message-ID msg_retry1@acme.example", got)
	}
}

// TestMailpit_Auth: PLAIN with the URL's user and the password apart;
// refused credentials are permanent.
func TestMailpit_Auth(t *testing.T) {
	t.Run("accept any", func(t *testing.T) {
		mp := mailpit.Start(t, mailpit.Options{AuthAcceptAny: true, Verbose: true})
		s := newSender(t, Config{URL: mailpitURL(mp, "smtp", "alice", "tls=none"), Password: "any-password"})
		if err := s.Send(t.Context(), codeMessage("msg_auth1", "dave@example.test", "12340987")); err != nil {
			t.Fatal(err)
		}
		got := mp.WaitFor(t, "to:dave@example.test", 1, 10*time.Second)
		if got[0].Username != "alice" {
			t.Errorf("sent as user %q, want alice", got[0].Username)
		}
		if log := mp.Log(); !strings.Contains(log, `allow PLAIN login \"alice\"`) {
			t.Errorf("mailpit did not log a PLAIN login by alice:\n%s", log)
		}
	})
	t.Run("password file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "passwords")
		if err := os.WriteFile(file, []byte("alice:right-password\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		mp := mailpit.Start(t, mailpit.Options{AuthFile: file})
		wrong := newSender(t, Config{URL: mailpitURL(mp, "smtp", "alice", "tls=none"), Password: "wrong-password"})
		err := wrong.Send(t.Context(), codeMessage("msg_auth2", "erin@example.test", "12340987"))
		var e *Error
		if err == nil || !twofa.IsPermanent(err) || !errors.As(err, &e) || e.Op != "AUTH" || e.Code/100 != 5 {
			t.Fatalf("wrong password: got %v, want a permanent 5xx on AUTH", err)
		}
		checkClean(t, err, "wrong-password", "erin@example.test", "12340987")
		right := newSender(t, Config{URL: mailpitURL(mp, "smtp", "alice", "tls=none"), Password: "right-password"})
		if err := right.Send(t.Context(), codeMessage("msg_auth3", "erin@example.test", "12340987")); err != nil {
			t.Fatalf("right password: %v", err)
		}
		mp.WaitFor(t, "to:erin@example.test", 1, 10*time.Second)
	})
}

// TestMailpit_TLS: STARTTLS and implicit TLS against a throwaway
// certificate that the sender trusts through Config.RootCAs.
func TestMailpit_TLS(t *testing.T) {
	cert := newTestCert(t)
	t.Run("STARTTLS", func(t *testing.T) {
		mp := mailpit.Start(t, mailpit.Options{TLSCert: cert.certFile, TLSKey: cert.keyFile, RequireSTARTTLS: true, AuthAcceptAny: true})
		s := newSender(t, Config{URL: mailpitURL(mp, "smtp", "alice", ""), Password: "pw", RootCAs: cert.pool})
		if err := s.Send(t.Context(), codeMessage("msg_tls1", "frank@example.test", "24681357")); err != nil {
			t.Fatal(err)
		}
		if got := mp.WaitFor(t, "to:frank@example.test", 1, 10*time.Second); got[0].Username != "alice" {
			t.Errorf("sent as user %q, want alice", got[0].Username)
		}
		// Without TLS the server refuses the mail: that is the
		// operator's to fix, not a retry's.
		clear := newSender(t, Config{URL: mailpitURL(mp, "smtp", "", "tls=none")})
		if err := clear.Send(t.Context(), codeMessage("msg_tls2", "frank@example.test", "24681357")); err == nil || !twofa.IsPermanent(err) {
			t.Errorf("without STARTTLS got %v, want a permanent error", err)
		}
		// A certificate the sender does not trust: temporary, nothing sent.
		untrusted := newSender(t, Config{URL: mailpitURL(mp, "smtp", "", "")})
		err := untrusted.Send(t.Context(), codeMessage("msg_tls3", "frank@example.test", "24681357"))
		if err == nil || twofa.IsPermanent(err) || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("untrusted: got %v, want a temporary certificate error", err)
		}
		if n := len(mp.Messages(t)); n != 1 {
			t.Errorf("%d messages, want 1", n)
		}
	})
	t.Run("implicit", func(t *testing.T) {
		mp := mailpit.Start(t, mailpit.Options{TLSCert: cert.certFile, TLSKey: cert.keyFile, ImplicitTLS: true, AuthAcceptAny: true})
		s := newSender(t, Config{URL: mailpitURL(mp, "smtps", "alice", ""), Password: "pw", RootCAs: cert.pool})
		if err := s.Send(t.Context(), codeMessage("msg_tls4", "grace@example.test", "97531864")); err != nil {
			t.Fatal(err)
		}
		if got := mp.WaitFor(t, "to:grace@example.test", 1, 10*time.Second); got[0].MessageID != "msg_tls4@acme.example" {
			t.Errorf("Message-ID %q, want msg_tls4@acme.example", got[0].MessageID)
		}
	})
}

// TestMailpit_BadAddress: a recipient the server refuses (550) is a
// permanent error.
func TestMailpit_BadAddress(t *testing.T) {
	mp := mailpit.Start(t, mailpit.Options{AllowedRecipients: `@example\.test$`})
	s := newSender(t, Config{URL: mailpitURL(mp, "smtp", "", "tls=none")})
	err := s.Send(t.Context(), codeMessage("msg_bad1", "nobody@elsewhere.example", "11223344"))
	var e *Error
	if err == nil || !twofa.IsPermanent(err) || !errors.As(err, &e) || e.Op != "RCPT TO" || e.Code != 550 {
		t.Fatalf("got %v, want a permanent 550 on RCPT TO", err)
	}
	checkClean(t, err, "nobody@elsewhere.example", "11223344", "mailbox unavailable")
	if n := len(mp.Messages(t)); n != 0 {
		t.Errorf("%d messages, want none", n)
	}
}
