package mailpit

import (
	"net/smtp"
	"strings"
	"testing"
	"time"
)

func TestServer(t *testing.T) {
	s := Start(t, Options{Chaos: true})
	send := func(to, subject string) error {
		return smtp.SendMail(s.SMTPAddr(), nil, "sender@example.test", []string{to},
			[]byte("To: "+to+"\r\nSubject: "+subject+"\r\nMessage-ID: <m1@example.test>\r\n\r\nhello\r\n"))
	}
	if err := send("alice@example.test", "first"); err != nil {
		t.Fatal(err)
	}
	got := s.WaitFor(t, "to:alice@example.test", 1, 5*time.Second)
	if len(got) != 1 || got[0].Subject != "first" || got[0].To[0].Address != "alice@example.test" {
		t.Fatalf("got %+v, want the one message to alice", got)
	}
	m := s.Message(t, got[0].ID)
	if m.MessageID != "m1@example.test" || strings.TrimSpace(m.Text) != "hello" {
		t.Errorf("got Message-ID %q and text %q, want m1@example.test and hello", m.MessageID, m.Text)
	}
	if h := s.Headers(t, "latest"); len(h["Subject"]) != 1 || h["Subject"][0] != "first" {
		t.Errorf("headers %v, want the subject", h)
	}

	s.SetChaos(t, Chaos{Recipient: Trigger{ErrorCode: 451, Probability: 100}})
	if err := send("alice@example.test", "refused"); err == nil || !strings.HasPrefix(err.Error(), "451") {
		t.Errorf("under chaos got %v, want a 451 reply", err)
	}
	s.SetChaos(t, Chaos{})
	if err := send("bob@example.test", "second"); err != nil {
		t.Errorf("after chaos: %v", err)
	}
	if n := len(s.Messages(t)); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
	s.DeleteAll(t)
	if n := len(s.Messages(t)); n != 0 {
		t.Errorf("%d messages after DeleteAll, want none", n)
	}
}
