package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

// mailSettings parses args and environment as twofa serve would, and
// builds the Sender.
func mailSettings(t *testing.T, args []string, getenv map[string]string) (twofa.Sender, error) {
	t.Helper()
	e := &env{getenv: testGetenv(getenv), stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	fs := newFlags(e, "serve", "twofa serve [flags]")
	var m mailConfig
	m.register(fs, e)
	if _, err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return m.sender(e)
}

func TestMailConfig_Sender(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pwFile := write("password", "hunter2-secret\n")
	twoLines := write("two-lines", "a\nb\n")
	empty := write("empty", "\n")
	tmplDir := filepath.Join(dir, "templates")
	if err := os.Mkdir(tmplDir, 0o700); err != nil {
		t.Fatal(err)
	}
	badTmpl := filepath.Join(dir, "bad-templates")
	if err := os.Mkdir(badTmpl, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(badTmpl, "notice.txt"), []byte("{{.Title"), 0o600); err != nil {
		t.Fatal(err)
	}
	from := "--mail-from=ACME <security@acme.example>"

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // in the Sender's String; "" for none
		wantErr string // in the error
	}{
		{name: "nothing set: no email", want: ""},
		{name: "flags", args: []string{"--smtp-url", "smtps://alice@mail.acme.example", "--smtp-password-file", pwFile, from},
			want: "smtps://alice@mail.acme.example:465"},
		{name: "environment", env: map[string]string{"TWOFA_SMTP_URL": "smtp://alice@mail.acme.example", "TWOFA_SMTP_PASSWORD": "hunter2-secret", "TWOFA_MAIL_FROM": "security@acme.example"},
			want: "smtp://alice@mail.acme.example:587?tls=required"},
		{name: "no user, no password", args: []string{"--smtp-url", "smtp://127.0.0.1:25?tls=none", from, "--mail-templates", tmplDir},
			want: "smtp://127.0.0.1:25?tls=none"},
		{name: "from without a server", args: []string{from}, wantErr: "--mail-from is set but --smtp-url is not"},
		{name: "password without a server", env: map[string]string{"TWOFA_SMTP_PASSWORD": "x"}, wantErr: "TWOFA_SMTP_PASSWORD is set but --smtp-url is not"},
		{name: "no from", args: []string{"--smtp-url", "smtp://mail.acme.example"}, wantErr: "--smtp-url is set but --mail-from is not"},
		{name: "bad URL", args: []string{"--smtp-url", "http://mail.acme.example", from}, wantErr: "--smtp-url: scheme"},
		{name: "password in the URL", args: []string{"--smtp-url", "smtp://alice:hunter2-secret@mail.acme.example", from}, wantErr: "--smtp-url: the URL holds a password"},
		{name: "user without password", args: []string{"--smtp-url", "smtp://alice@mail.acme.example", from}, wantErr: "--smtp-url names a user but no password is given"},
		{name: "password without user", args: []string{"--smtp-url", "smtp://mail.acme.example", "--smtp-password-file", pwFile, from}, wantErr: "a password is given but --smtp-url names no user"},
		{name: "two passwords", args: []string{"--smtp-url", "smtp://alice@mail.acme.example", "--smtp-password-file", pwFile, from},
			env: map[string]string{"TWOFA_SMTP_PASSWORD": "hunter2-secret"}, wantErr: "TWOFA_SMTP_PASSWORD and --smtp-password-file are both set"},
		{name: "missing password file", args: []string{"--smtp-url", "smtp://alice@mail.acme.example", "--smtp-password-file", filepath.Join(dir, "nope"), from}, wantErr: "--smtp-password-file: open"},
		{name: "empty password file", args: []string{"--smtp-url", "smtp://alice@mail.acme.example", "--smtp-password-file", empty, from}, wantErr: "--smtp-password-file: the file is empty"},
		{name: "two-line password file", args: []string{"--smtp-url", "smtp://alice@mail.acme.example", "--smtp-password-file", twoLines, from}, wantErr: "--smtp-password-file: the file holds more than one line"},
		{name: "bad from", args: []string{"--smtp-url", "smtp://mail.acme.example", "--mail-from", "security at acme"}, wantErr: "--mail-from: \"security at acme\""},
		{name: "bad URL from the environment", env: map[string]string{"TWOFA_SMTP_URL": "http://mail.acme.example", "TWOFA_MAIL_FROM": "security@acme.example"}, wantErr: "TWOFA_SMTP_URL: scheme"},
		{name: "from from the environment without a server", env: map[string]string{"TWOFA_MAIL_FROM": "security@acme.example"}, wantErr: "TWOFA_MAIL_FROM is set but --smtp-url is not"},
		{name: "password file from the environment", args: []string{"--smtp-url", "smtp://alice@mail.acme.example", from},
			env: map[string]string{"TWOFA_SMTP_PASSWORD_FILE": empty}, wantErr: "TWOFA_SMTP_PASSWORD_FILE: the file is empty"},
		{name: "from address literal", args: []string{"--smtp-url", "smtp://mail.acme.example", "--mail-from", "security@[10.0.0.1]"}, wantErr: "--mail-from: \"security@[10.0.0.1]\": want a domain name"},
		{name: "broken template", args: []string{"--smtp-url", "smtp://mail.acme.example", from, "--mail-templates", badTmpl}, wantErr: "--mail-templates: smtp: template notice.txt"},
		{name: "no template directory", args: []string{"--smtp-url", "smtp://mail.acme.example", from, "--mail-templates", filepath.Join(dir, "nope")}, wantErr: "--mail-templates \""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := mailSettings(t, tt.args, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error about %q", err, tt.wantErr)
				}
				if exitCode(err) != 2 || !strings.Contains(err.Error(), "want") {
					t.Errorf("%q: exit code %d; want 2, and a message that says what it wants", err, exitCode(err))
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if s != nil {
					t.Fatalf("got %v, want no Sender", s)
				}
				return
			}
			if got := fmt.Sprint(s); !strings.Contains(got, tt.want) || strings.Contains(got, "hunter2") {
				t.Errorf("got %s, want %s and no password", got, tt.want)
			}
		})
	}
}

// TestStartDemoMail: what the demo sends shows up in its output, code and
// all.
func TestStartDemoMail(t *testing.T) {
	out := &syncBuffer{}
	s, stop, err := startDemoMail(out)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	now := time.Now()
	m := &twofa.Outgoing{
		Message: &twofa.Message{ID: "msg_demo1", Tenant: "demo", User: "demo", Channel: twofa.ChannelEmail, Kind: twofa.KindCode, CreatedAt: now},
		Body:    twofa.MessageBody{To: "demo@example.com", Code: "31415926", CodeExpires: now.Add(10 * time.Minute), Purpose: twofa.PurposeSignIn},
		Issuer:  "twofa",
	}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"email to demo@example.com", "Subject: Your twofa sign-in code", "    31415926\n", "Don't share this code", "end of email"} {
		if !strings.Contains(got, want) {
			t.Errorf("the output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "<html") || strings.Contains(got, "=\n") {
		t.Errorf("the output shows HTML or quoted-printable:\n%s", got)
	}
}
