package smtp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	gosmtpd "github.com/emersion/go-smtp"

	"github.com/twofa/twofa"
)

const testFrom = `"ACME Security" <security@acme.example>`

func newSender(t *testing.T, c Config) *Sender {
	t.Helper()
	if c.From == "" {
		c.From = testFrom
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// codeMessage is a sign-in code for to, as the outbox hands it over.
func codeMessage(id, to, code string) *twofa.Outgoing {
	m := sampleCode(twofa.PurposeSignIn)
	m.ID, m.Body.To, m.Body.Code = id, to, code
	return m
}

func TestSender_Send(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := newSender(t, Config{URL: ts.url("smtp", "", "tls=none")})
	m := codeMessage("msg_01HZX", "alice@example.com", "48151623")
	for range 2 {
		if err := s.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	mails := ts.received()
	if len(mails) != 2 {
		t.Fatalf("got %d messages, want 2", len(mails))
	}
	want, err := s.t.render(m)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range mails {
		if r.from != "security@acme.example" || r.to != "alice@example.com" {
			t.Errorf("envelope %q → %q, want security@acme.example → alice@example.com", r.from, r.to)
		}
		p := parseMail(t, r.data)
		for h, want := range map[string]string{
			"From":           `"ACME Security" <security@acme.example>`,
			"To":             "<alice@example.com>",
			"Message-Id":     "<msg_01HZX@acme.example>",
			"Date":           sampleTime.Format(time.RFC1123Z),
			"Auto-Submitted": "auto-generated",
		} {
			if got := p.header.Get(h); got != want {
				t.Errorf("message %d: %s %q, want %q", i, h, got, want)
			}
		}
		if got := p.subject(t); got != want.Subject {
			t.Errorf("Subject %q, want %q", got, want.Subject)
		}
		if p.text != want.Text || p.html != want.HTML {
			t.Errorf("parts differ from the rendered ones:\ntext:\n%s\nhtml:\n%s", p.text, p.html)
		}
		if p.header.Get("User-Agent") != "" || p.header.Get("X-Mailer") != "" {
			t.Errorf("the message names its mailer")
		}
	}
}

func TestSender_Auth(t *testing.T) {
	tests := []struct {
		name      string
		mechs     []string
		password  string
		authErr   error
		wantMech  string
		permanent bool // when an error is wanted
		wantErr   bool
	}{
		{name: "PLAIN preferred", mechs: []string{"LOGIN", "PLAIN"}, password: "s3cret", wantMech: "PLAIN"},
		{name: "LOGIN when alone", mechs: []string{"LOGIN"}, password: "s3cret", wantMech: "LOGIN"},
		{name: "neither", mechs: []string{"CRAM-MD5"}, password: "s3cret", wantErr: true, permanent: true},
		{name: "no AUTH at all", password: "s3cret", wantErr: true, permanent: true},
		{name: "wrong password", mechs: []string{"PLAIN"}, password: "wrong", wantMech: "PLAIN", wantErr: true, permanent: true},
		{name: "LOGIN wrong password", mechs: []string{"LOGIN"}, password: "wrong", wantMech: "LOGIN", wantErr: true, permanent: true},
		{name: "temporary failure", mechs: []string{"PLAIN"}, password: "s3cret", wantMech: "PLAIN", wantErr: true,
			authErr: &gosmtpd.SMTPError{Code: 454, EnhancedCode: gosmtpd.EnhancedCode{4, 7, 0}, Message: "try later"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{})
			ts.set(func(ts *testServer) {
				ts.mechs, ts.user, ts.password, ts.authErr = tt.mechs, "alice@acme.example", "s3cret", tt.authErr
			})
			s := newSender(t, Config{URL: ts.url("smtp", "alice%40acme.example", "tls=none"), Password: tt.password})
			err := s.Send(t.Context(), codeMessage("msg_1", "bob@example.com", "11112222"))
			if got := ts.usedAuth(); tt.wantMech != "" && (len(got) != 1 || got[0] != tt.wantMech) {
				t.Errorf("mechanisms used %v, want [%s]", got, tt.wantMech)
			}
			if !tt.wantErr {
				if err != nil || len(ts.received()) != 1 {
					t.Fatalf("got %v and %d messages, want it sent", err, len(ts.received()))
				}
				return
			}
			if err == nil {
				t.Fatal("got no error")
			}
			t.Log(err)
			if got := twofa.IsPermanent(err); got != tt.permanent {
				t.Errorf("%v: permanent %v, want %v", err, got, tt.permanent)
			}
			checkClean(t, err, "s3cret", "wrong", "try later", "11112222", "bob@example.com")
			if len(ts.received()) != 0 {
				t.Errorf("a message got through")
			}
		})
	}
}

// checkClean fails if err says any of the words.
func checkClean(t *testing.T, err error, words ...string) {
	t.Helper()
	for _, w := range words {
		if strings.Contains(err.Error(), w) {
			t.Errorf("error %q holds %q", err, w)
		}
	}
}

func TestSender_TLS(t *testing.T) {
	cert := newTestCert(t)
	tests := []struct {
		name     string
		server   serverOpts
		scheme   string
		query    string
		roots    bool
		wantTLS  bool
		wantTemp bool // an error, temporary
	}{
		{name: "STARTTLS required", server: serverOpts{tls: cert.serverConfig()}, scheme: "smtp", roots: true, wantTLS: true},
		{name: "STARTTLS by default", server: serverOpts{tls: cert.serverConfig()}, scheme: "smtp", query: "tls=required", roots: true, wantTLS: true},
		{name: "STARTTLS required, not offered", server: serverOpts{}, scheme: "smtp", roots: true, wantTemp: true},
		{name: "opportunistic, offered", server: serverOpts{tls: cert.serverConfig()}, scheme: "smtp", query: "tls=opportunistic", roots: true, wantTLS: true},
		{name: "opportunistic, not offered", server: serverOpts{}, scheme: "smtp", query: "tls=opportunistic"},
		{name: "none, though offered", server: serverOpts{tls: cert.serverConfig()}, scheme: "smtp", query: "tls=none"},
		{name: "implicit", server: serverOpts{tls: cert.serverConfig(), implicit: true}, scheme: "smtps", roots: true, wantTLS: true},
		{name: "untrusted certificate", server: serverOpts{tls: cert.serverConfig()}, scheme: "smtp", wantTemp: true},
		{name: "implicit, untrusted", server: serverOpts{tls: cert.serverConfig(), implicit: true}, scheme: "smtps", wantTemp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.server)
			c := Config{URL: ts.url(tt.scheme, "", tt.query)}
			if tt.roots {
				c.RootCAs = cert.pool
			}
			s := newSender(t, c)
			err := s.Send(t.Context(), codeMessage("msg_tls", "alice@example.com", "12121212"))
			if tt.wantTemp {
				if err == nil || twofa.IsPermanent(err) {
					t.Fatalf("got %v, want a temporary error", err)
				}
				t.Log(err)
				if n := len(ts.received()); n != 0 {
					t.Errorf("%d messages got through", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := ts.received(); len(r) != 1 || r[0].tls != tt.wantTLS {
				t.Fatalf("got %+v, want one message, TLS %v", r, tt.wantTLS)
			}
		})
	}
}

// TestSender_NoPasswordInTheClear: where STARTTLS is opportunistic and the
// server offers none, the password is not sent to a host that is not
// loopback, and that is permanent.
func TestSender_NoPasswordInTheClear(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	ln.Close()
	ts := startServer(t, serverOpts{host: "127.0.0.2"})
	ts.set(func(ts *testServer) { ts.mechs, ts.user, ts.password = []string{"PLAIN", "LOGIN"}, "alice", "s3cret" })
	s := newSender(t, Config{URL: ts.url("smtp", "alice", "tls=opportunistic"), Password: "s3cret"})
	err = s.Send(t.Context(), codeMessage("msg_1", "bob@example.com", "11112222"))
	if err == nil || !twofa.IsPermanent(err) || !strings.Contains(err.Error(), "not encrypted") {
		t.Fatalf("got %v, want a permanent error saying the connection is not encrypted", err)
	}
	if got := ts.usedAuth(); len(got) != 0 {
		t.Errorf("the client tried AUTH %v in the clear", got)
	}
}

func TestSender_Errors(t *testing.T) {
	reply := func(code int, words string) error {
		return &gosmtpd.SMTPError{Code: code, EnhancedCode: gosmtpd.EnhancedCode{code / 100, 1, 1}, Message: words + " <bob@example.com>"}
	}
	tests := []struct {
		name      string
		set       func(ts *testServer)
		permanent bool
		wantOp    string
		wantCode  int
	}{
		{"recipient refused", func(ts *testServer) { ts.rcptErr = reply(550, "no such user") }, true, "RCPT TO", 550},
		{"recipient deferred", func(ts *testServer) { ts.rcptErr = reply(451, "greylisted") }, false, "RCPT TO", 451},
		{"sender refused", func(ts *testServer) { ts.mailErr = reply(553, "not yours") }, true, "MAIL FROM", 553},
		{"sender deferred", func(ts *testServer) { ts.mailErr = reply(421, "busy") }, false, "MAIL FROM", 421},
		{"message refused", func(ts *testServer) { ts.dataErr = reply(554, "spam") }, true, "end of DATA", 554},
		{"message deferred", func(ts *testServer) { ts.dataErr = reply(452, "full") }, false, "end of DATA", 452},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{})
			ts.set(tt.set)
			s := newSender(t, Config{URL: ts.url("smtp", "", "tls=none")})
			err := s.Send(t.Context(), codeMessage("msg_1", "bob@example.com", "11112222"))
			if err == nil {
				t.Fatal("got no error")
			}
			t.Log(err)
			if got := twofa.IsPermanent(err); got != tt.permanent {
				t.Errorf("%v: permanent %v, want %v", err, got, tt.permanent)
			}
			var e *Error
			if !errors.As(err, &e) || e.Op != tt.wantOp || e.Code != tt.wantCode || e.Enhanced == "" {
				t.Errorf("got %#v, want op %q, code %d and an enhanced code", e, tt.wantOp, tt.wantCode)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tt.wantCode)) {
				t.Errorf("%q does not give the reply code", err)
			}
			checkClean(t, err, "bob@example.com", "11112222", "no such user", "greylisted", "not yours", "busy", "spam", "full")
		})
	}
}

func TestSender_ConnectionErrors(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		s := newSender(t, Config{URL: "smtp://" + addr + "?tls=none"})
		err = s.Send(t.Context(), codeMessage("msg_1", "bob@example.com", "11112222"))
		if err == nil || twofa.IsPermanent(err) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("got %v, want a temporary error of a refused connection", err)
		}
	})
	// A server that accepts and never speaks.
	silent := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		return ln.Addr().String()
	}
	t.Run("timeout", func(t *testing.T) {
		s := newSender(t, Config{URL: "smtp://" + silent(t) + "?tls=none", Timeout: 200 * time.Millisecond})
		start := time.Now()
		err := s.Send(t.Context(), codeMessage("msg_1", "bob@example.com", "11112222"))
		if err == nil || twofa.IsPermanent(err) {
			t.Fatalf("got %v, want a temporary error", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %s with a timeout of 200ms", d)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		s := newSender(t, Config{URL: "smtp://" + silent(t) + "?tls=none", Timeout: time.Minute})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Send(ctx, codeMessage("msg_1", "bob@example.com", "11112222"))
		if err == nil || twofa.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want a temporary error of the context", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %s after the context ended at 200ms", d)
		}
	})
}

func TestSender_BadMessages(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := newSender(t, Config{URL: ts.url("smtp", "", "tls=none")})
	tests := map[string]func(m *twofa.Outgoing){
		"webhook channel": func(m *twofa.Outgoing) { m.Channel = twofa.ChannelWebhook },
		"ID unfit":        func(m *twofa.Outgoing) { m.ID = "msg 1>\r\nBcc: x@example.com" },
		"empty ID":        func(m *twofa.Outgoing) { m.ID = "" },
		"bad address":     func(m *twofa.Outgoing) { m.Body.To = "not an address" },
		"named address":   func(m *twofa.Outgoing) { m.Body.To = "Bob <bob@example.com>" },
		"two addresses":   func(m *twofa.Outgoing) { m.Body.To = "bob@example.com, eve@example.com" },
		"event kind":      func(m *twofa.Outgoing) { m.Kind = twofa.KindEvent },
		"unknown purpose": func(m *twofa.Outgoing) { m.Body.Purpose = "nope" },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			m := codeMessage("msg_1", "bob@example.com", "11112222")
			f(m)
			err := s.Send(t.Context(), m)
			if err == nil || !twofa.IsPermanent(err) {
				t.Fatalf("got %v, want a permanent error", err)
			}
			checkClean(t, err, "11112222", "bob@example.com")
		})
	}
	if err := s.Send(t.Context(), nil); err == nil || !twofa.IsPermanent(err) {
		t.Errorf("nil message: got %v, want a permanent error", err)
	}
	if n := len(ts.received()); n != 0 {
		t.Errorf("%d messages got through", n)
	}
}

func TestNew_Errors(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"bad URL", Config{URL: "http://mail.example.com", From: testFrom}, "scheme"},
		{"user without password", Config{URL: "smtp://alice@mail.example.com", From: testFrom}, "no password"},
		{"password without user", Config{URL: "smtp://mail.example.com", Password: "pw", From: testFrom}, "no user"},
		{"no from", Config{URL: "smtp://mail.example.com"}, "from address"},
		{"bad from", Config{URL: "smtp://mail.example.com", From: "security at acme"}, "from address"},
		{"from without a domain", Config{URL: "smtp://mail.example.com", From: "security@[10.0.0.1]"}, "domain"},
		{"negative timeout", Config{URL: "smtp://mail.example.com", From: testFrom, Timeout: -1}, "timeout"},
		{"templates missing", Config{URL: "smtp://mail.example.com", From: testFrom, Templates: "/nonexistent/templates"}, "templates directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestSender_StringHidesPassword(t *testing.T) {
	s := newSender(t, Config{URL: "smtps://alice@mail.example.com", Password: "hunter2-secret"})
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if got := fmt.Sprintf(f, s); strings.Contains(got, "hunter2") {
			t.Errorf("%s prints the password: %s", f, got)
		}
	}
	if got, want := s.String(), "smtp.Sender{smtps://alice@mail.example.com:465}"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestSender_Concurrent: one Sender serves many sends at once, each on its
// own connection (run with -race).
func TestSender_Concurrent(t *testing.T) {
	cert := newTestCert(t)
	ts := startServer(t, serverOpts{tls: cert.serverConfig()})
	ts.set(func(ts *testServer) { ts.mechs, ts.user, ts.password = []string{"PLAIN"}, "alice", "s3cret" })
	s := newSender(t, Config{URL: ts.url("smtp", "alice", ""), Password: "s3cret", RootCAs: cert.pool})
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			errs <- s.Send(t.Context(), codeMessage(fmt.Sprintf("msg_c%d", i), fmt.Sprintf("u%d@example.com", i), "10203040"))
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := len(ts.received()); n != 8 {
		t.Errorf("%d messages, want 8", n)
	}
}

// TestSender_UnicodeHeaders: a name or subject beyond ASCII arrives as it
// was written.
func TestSender_UnicodeHeaders(t *testing.T) {
	ts := startServer(t, serverOpts{})
	s := newSender(t, Config{URL: ts.url("smtp", "", "tls=none"), From: "Zürcher Bank Sicherheit <sicherheit@zuercher.example>"})
	m := codeMessage("msg_u1", "jürg@example.com", "10203040")
	m.Issuer = "Zürcher Bank"
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	r := ts.received()
	if len(r) != 1 {
		t.Fatalf("%d messages, want 1", len(r))
	}
	p := parseMail(t, r[0].data)
	if got, want := p.subject(t), "Your Zürcher Bank sign-in code"; got != want {
		t.Errorf("Subject %q, want %q", got, want)
	}
	from, err := p.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Zürcher Bank Sicherheit" {
		t.Errorf("From %v (%v), want the name Zürcher Bank Sicherheit", from, err)
	}
	if !strings.Contains(p.text, "Zürcher Bank will never ask") || !strings.Contains(p.html, "Zürcher Bank") {
		t.Errorf("the parts lack the issuer")
	}
	if r[0].to != "jürg@example.com" {
		t.Errorf("envelope recipient %q, want jürg@example.com", r[0].to)
	}
}

// TestSender_DeliveredThenConnectionLost: once the server has taken the
// message, a connection lost before QUIT is answered is a success; a
// retry would deliver the message twice.
func TestSender_DeliveredThenConnectionLost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	took := make(chan bool, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tp := textproto.NewConn(c)
		tp.PrintfLine("220 test ESMTP")
		for {
			line, err := tp.ReadLine()
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(strings.Fields(line + " x")[0]); cmd {
			case "EHLO", "HELO":
				tp.PrintfLine("250 test")
			case "MAIL", "RCPT":
				tp.PrintfLine("250 ok")
			case "DATA":
				tp.PrintfLine("354 go on")
				if _, err := tp.ReadDotBytes(); err != nil {
					return
				}
				tp.PrintfLine("250 queued")
				took <- true
			default: // QUIT, or anything else: hang up without a word
				return
			}
		}
	}()
	s := newSender(t, Config{URL: "smtp://" + ln.Addr().String() + "?tls=none"})
	if err := s.Send(t.Context(), codeMessage("msg_1", "bob@example.com", "11112222")); err != nil {
		t.Errorf("got %v, want success: the server took the message", err)
	}
	select {
	case <-took:
	default:
		t.Error("the server never took the message")
	}
}
