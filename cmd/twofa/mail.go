package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/smtp"
)

// mailConfig is how twofa sends email: an SMTP server, the password kept
// apart from its URL, the sender, and the operator's templates. With no
// server, twofa sends no email, and email factors are unavailable.
type mailConfig struct {
	url          string
	passwordFile string
	from         string
	templates    string
	fs           *flag.FlagSet // to name each setting as it was given
}

// envSMTPPassword holds the SMTP password, for those who would rather
// not keep it in a file; it has no flag, which would show it in ps.
const envSMTPPassword = "TWOFA_SMTP_PASSWORD"

// register registers the mail flags; each also comes from its TWOFA_*
// variable, and the password from $TWOFA_SMTP_PASSWORD.
func (m *mailConfig) register(fs *flag.FlagSet, e *env) {
	m.fs = fs
	envFlag(fs, e, &m.url, "smtp-url", "", "SMTP server `URL`: smtps://user@host:port (TLS, port 465) or smtp://user@host:port?tls=required|opportunistic|none (STARTTLS, port 587); none: no email")
	envFlag(fs, e, &m.passwordFile, "smtp-password-file", "", "`file` holding the SMTP password; or set $"+envSMTPPassword)
	envFlag(fs, e, &m.from, "mail-from", "", "the `address` email comes from, with a name if wanted: \"ACME Security <security@acme.example>\"")
	envFlag(fs, e, &m.templates, "mail-templates", "", "`dir`ectory of email templates that replace the built-in ones of the same name")
}

// named names a mail setting as it was given: the flag, or its
// environment variable.
func (m *mailConfig) named(name string) string { return settingName(m.fs, name) }

// sender builds the email Sender, or returns nil when no SMTP server is
// configured. A setting that is wrong or incomplete stops the program
// with a message that names it and says what it wants; the password never
// appears in one.
func (m *mailConfig) sender(e *env) (twofa.Sender, error) {
	envPassword := e.getenv(envSMTPPassword)
	if m.url == "" {
		for _, s := range []struct{ name, v string }{
			{m.named("smtp-password-file"), m.passwordFile}, {envSMTPPassword, envPassword},
			{m.named("mail-from"), m.from}, {m.named("mail-templates"), m.templates},
		} {
			if s.v != "" {
				return nil, usageError(s.name + " is set but --smtp-url is not: want the SMTP server too, or no mail settings")
			}
		}
		return nil, nil
	}
	url := m.named("smtp-url")
	ep, err := smtp.ParseURL(m.url)
	if err != nil {
		return nil, usageError(url + ": " + err.Error())
	}
	if m.from == "" {
		return nil, usageError(url + " is set but --mail-from is not: want the address email comes from")
	}
	if _, err := smtp.ParseFrom(m.from); err != nil {
		return nil, usageError(m.named("mail-from") + ": " + err.Error())
	}
	password := envPassword
	if m.passwordFile != "" {
		if envPassword != "" {
			return nil, usageError(envSMTPPassword + " and " + m.named("smtp-password-file") + " are both set: want one")
		}
		if password, err = m.readPassword(); err != nil {
			return nil, err
		}
	}
	switch {
	case ep.User != "" && password == "":
		return nil, usageError(url + " names a user but no password is given: want --smtp-password-file or " + envSMTPPassword)
	case ep.User == "" && password != "":
		return nil, usageError("a password is given but " + url + " names no user: want smtp://USER@host")
	}
	if m.templates != "" {
		if fi, err := os.Stat(m.templates); err != nil || !fi.IsDir() {
			return nil, usageError(fmt.Sprintf("%s %q: want a directory of templates", m.named("mail-templates"), m.templates))
		}
	}
	s, err := smtp.New(smtp.Config{URL: m.url, Password: password, From: m.from, Templates: m.templates})
	if err != nil {
		// All else passed: what is left is the templates.
		return nil, usageError(m.named("mail-templates") + ": " + err.Error() + ": want templates that parse and run (docs/operations.md)")
	}
	return s, nil
}

// readPassword reads the password file: one line, its line ending
// dropped.
func (m *mailConfig) readPassword() (string, error) {
	name := m.named("smtp-password-file")
	b, err := os.ReadFile(m.passwordFile)
	if err != nil {
		return "", usageError(fmt.Sprintf("%s: %v: want a file holding the SMTP password", name, err))
	}
	pw := strings.TrimRight(string(b), "\r\n")
	switch {
	case pw == "":
		return "", usageError(name + ": the file is empty: want the SMTP password in it")
	case strings.ContainsAny(pw, "\r\n"):
		return "", usageError(name + ": the file holds more than one line: want the SMTP password alone")
	}
	return pw, nil
}
