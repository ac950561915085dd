// Package smtp sends twofa's email (codes and notices) to an SMTP server,
// with wneessen/go-mail: implicit TLS or STARTTLS, PLAIN or LOGIN
// authentication, timeouts. Each message is rendered from templates (text
// and HTML) that an operator may replace, and carries a Message-ID made
// from its outbox ID, so that a repeated send can be recognised as such.
package smtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/twofa/twofa"
)

// Config configures a Sender.
type Config struct {
	// URL says where and how to connect; see ParseURL.
	URL string
	// Password authenticates the URL's user; unused without a user.
	Password string
	// From is the sender, with a display name if wanted:
	// "ACME Security <security@acme.example>". Its domain ends every
	// Message-ID.
	From string
	// Templates is a directory whose files replace the default templates
	// of the same name; empty for the defaults alone.
	Templates string
	// Timeout bounds the connection and each command (default 30s).
	Timeout time.Duration
	// RootCAs verifies the server's certificate; nil for the system's.
	RootCAs *x509.CertPool
}

// DefaultTimeout bounds the connection and each SMTP command.
const DefaultTimeout = 30 * time.Second

// Sender sends twofa.ChannelEmail messages. It is safe for concurrent
// use: each Send has its own connection.
type Sender struct {
	ep       Endpoint
	password string
	from     *mail.Address
	domain   string
	timeout  time.Duration
	tls      *tls.Config
	t        *templates
}

var _ twofa.Sender = (*Sender)(nil)

// New checks the configuration and the templates, and returns a Sender.
// It does not connect: a server that is down delays mail, not start-up.
func New(c Config) (*Sender, error) {
	ep, err := ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("smtp: the server URL: %w", err)
	}
	if ep.User != "" && c.Password == "" {
		return nil, errors.New("smtp: the URL names a user but no password is given")
	}
	if ep.User == "" && c.Password != "" {
		return nil, errors.New("smtp: a password is given but the URL names no user (smtp://USER@host)")
	}
	from, err := ParseFrom(c.From)
	if err != nil {
		return nil, fmt.Errorf("smtp: the from address: %w", err)
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	if c.Timeout < 0 {
		return nil, errors.New("smtp: a negative timeout")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	t, err := loadTemplates(c.Templates)
	if err != nil {
		return nil, err
	}
	return &Sender{
		ep: ep, password: c.Password, from: from, domain: domain, timeout: c.Timeout, t: t,
		tls: &tls.Config{ServerName: ep.Host, RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12},
	}, nil
}

// ParseFrom reads a sender: name@domain, or "Name <name@domain>". The
// domain must be a name (not an address literal): it ends every
// Message-ID.
func ParseFrom(s string) (*mail.Address, error) {
	from, err := mail.ParseAddress(s)
	if err != nil || s == "" {
		return nil, fmt.Errorf("%q: want name@domain or \"Name <name@domain>\"", s)
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	if !dotAtom(domain) {
		return nil, fmt.Errorf("%q: want a domain name after the @, for the Message-ID", s)
	}
	return from, nil
}

// String names the server, never the password.
func (s *Sender) String() string { return "smtp.Sender{" + s.ep.String() + "}" }

// GoString hides the password under %#v too.
func (s *Sender) GoString() string { return s.String() }

// Send renders m and sends it. A failure that a retry would not fix (a
// refused address or sender, refused credentials, a message that does not
// render) is twofa.Permanent; any other (a 4xx reply, a timeout, a refused
// connection) is not. Errors are *Error or name the template: they never
// hold the code, the body, the address or the server's words.
func (s *Sender) Send(ctx context.Context, m *twofa.Outgoing) error {
	msg, err := s.message(m)
	if err != nil {
		return twofa.Permanent(err)
	}
	return s.deliver(ctx, msg)
}

// message renders m into a mail message.
func (s *Sender) message(m *twofa.Outgoing) (*gomail.Msg, error) {
	if m == nil || m.Message == nil {
		return nil, errors.New("smtp: no message")
	}
	if m.Channel != twofa.ChannelEmail {
		return nil, fmt.Errorf("smtp: a %q message is not email", m.Channel)
	}
	if !dotAtom(m.ID) {
		return nil, errors.New("smtp: the message ID is not fit for a Message-ID")
	}
	to, err := mail.ParseAddress(m.Body.To)
	if err != nil || to.Name != "" || m.Body.To != to.Address {
		return nil, errors.New("smtp: the recipient is not an email address")
	}
	r, err := s.t.render(m)
	if err != nil {
		return nil, err
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	msg.ToMailAddress(to)
	msg.Subject(r.Subject)
	msg.SetMessageIDWithValue(m.ID + "@" + s.domain)
	date := m.CreatedAt
	if date.IsZero() {
		date = time.Now()
	}
	msg.SetDateWithValue(date)
	// Automatic mail: no out-of-office replies to it (RFC 3834, and
	// Exchange's own header).
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	msg.SetBodyString(gomail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, r.HTML)
	return msg, nil
}

// deliver sends msg over a connection of its own.
func (s *Sender) deliver(ctx context.Context, msg *gomail.Msg) error {
	var stop func() bool
	a := &auth{user: s.ep.User, password: s.password, host: s.ep.Host}
	opts := []gomail.Option{
		gomail.WithPort(s.ep.Port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tls),
		gomail.WithoutNoop(),
		gomail.WithoutRset(), // one message a connection: QUIT follows
		gomail.WithDialContextFunc(s.dial(ctx, &stop)),
	}
	switch s.ep.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL()) // the dialer speaks TLS; no STARTTLS on top
	case TLSRequired:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if a.user != "" {
		opts = append(opts, gomail.WithSMTPAuthCustom(a))
	}
	c, err := gomail.NewClient(s.ep.Host, opts...)
	if err != nil {
		return twofa.Permanent(fmt.Errorf("smtp: configuring the client: %w", err))
	}
	conn, err := c.DialToSMTPClientWithContext(ctx)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	if err != nil {
		return dialError(ctx, err, a)
	}
	err = c.SendWithSMTPClient(conn, msg)
	closeErr := c.CloseWithSMTPClient(conn)
	switch {
	case msg.IsDelivered():
		// The server took it; what failed after (RSET, QUIT) must not
		// send it again.
		return nil
	case err != nil:
		return sendError(ctx, err)
	case closeErr != nil:
		return classify(ctx, &Error{Op: "QUIT", Temporary: true, err: closeErr})
	}
	return nil
}

// dial connects, in TLS from the start for smtps, and closes the
// connection if ctx ends before the send does: go-mail heeds a context
// only while it dials.
func (s *Sender) dial(ctx context.Context, stop *func() bool) gomail.DialContextFunc {
	return func(dctx context.Context, network, addr string) (net.Conn, error) {
		d := &net.Dialer{}
		var conn net.Conn
		var err error
		if s.ep.TLS == TLSImplicit {
			conn, err = (&tls.Dialer{NetDialer: d, Config: s.tls}).DialContext(dctx, network, addr)
		} else {
			conn, err = d.DialContext(dctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		*stop = context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}
}

// dotAtom reports whether s is RFC 5322 dot-atom text, as the two halves
// of a Message-ID must be.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
		default:
			return false
		}
	}
	return true
}
