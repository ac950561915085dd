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
}

// register registers the mail flags; each also comes from its TWOFA_*
// variable, and the password from $TWOFA_SMTP_PASSWORD.
func (m *mailConfig) register(fs *flag.FlagSet, e *env) {
	envFlag(fs, e, &m.url, "smtp-url", "", "SMTP server `URL`: smtps://user@host:port (TLS, port 465) or smtp://user@host:port?tls=required|opportunistic|none (STARTTLS, port 587); none: no email")
	envFlag(fs, e, &m.passwordFile, "smtp-password-file", "", "`file` holding the SMTP password; or set $TWOFA_SMTP_PASSWORD")
	envFlag(fs, e, &m.from, "mail-from", "", "the `address` email comes from, with a name if wanted: \"ACME Security <security@acme.example>\"")
	envFlag(fs, e, &m.templates, "mail-templates", "", "`dir`ectory of email templates that replace the built-in ones of the same name")
}

// sender builds the email Sender, or returns nil when no SMTP server is
// configured. A setting that is wrong or incomplete stops the program.
func (m *mailConfig) sender(e *env) (twofa.Sender, error) {
	envPassword := e.getenv("TWOFA_SMTP_PASSWORD")
	if m.url == "" {
		var set []string
		for _, s := range []struct{ name, v string }{
			{"--smtp-password-file", m.passwordFile}, {"$TWOFA_SMTP_PASSWORD", envPassword},
			{"--mail-from", m.from}, {"--mail-templates", m.templates},
		} {
			if s.v != "" {
				set = append(set, s.name)
			}
		}
		if len(set) > 0 {
			return nil, usageError(strings.Join(set, ", ") + " set without --smtp-url: give the SMTP server, or leave out the mail settings")
		}
		return nil, nil
	}
	ep, err := smtp.ParseURL(m.url)
	if err != nil {
		return nil, usageError("--smtp-url: " + err.Error())
	}
	if m.from == "" {
		return nil, usageError("--smtp-url needs --mail-from, the address email comes from")
	}
	password := envPassword
	if m.passwordFile != "" {
		if envPassword != "" {
			return nil, usageError("both --smtp-password-file and $TWOFA_SMTP_PASSWORD are set: give one")
		}
		if password, err = readPasswordFile(m.passwordFile); err != nil {
			return nil, err
		}
	}
	switch {
	case ep.User != "" && password == "":
		return nil, usageError("--smtp-url names a user but no password is given: set --smtp-password-file or $TWOFA_SMTP_PASSWORD")
	case ep.User == "" && password != "":
		return nil, usageError("an SMTP password is given but --smtp-url names no user (smtp://USER@host)")
	}
	s, err := smtp.New(smtp.Config{URL: m.url, Password: password, From: m.from, Templates: m.templates})
	if err != nil {
		return nil, usageError(err.Error())
	}
	return s, nil
}

// readPasswordFile reads a password file: one line, its line ending
// dropped.
func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--smtp-password-file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	switch {
	case pw == "":
		return "", usageError("--smtp-password-file: the file is empty")
	case strings.ContainsAny(pw, "\r\n"):
		return "", usageError("--smtp-password-file: the file holds more than one line")
	}
	return pw, nil
}
