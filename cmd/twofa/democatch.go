package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/twofa/twofa"
	"github.com/twofa/twofa/smtp"
)

// The demo has no mail server, so it brings one: an SMTP server on a free
// loopback port that takes every message and prints its subject and text,
// so that a newcomer sees the codes twofa sends.

// demoFrom is the demo's sender.
const demoFrom = "twofa demo <demo@twofa.localhost>"

// startDemoMail starts the demo's catch-all SMTP server, printing each
// message it receives to w, and returns a Sender pointed at it and a
// function that stops the server.
func startDemoMail(w io.Writer) (twofa.Sender, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	c := &catchAll{w: w}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &catchSession{c: c}, nil
	}))
	srv.Domain = "twofa.localhost"
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.MaxMessageBytes = 1 << 20
	go srv.Serve(ln)
	s, err := smtp.New(smtp.Config{URL: "smtp://" + ln.Addr().String() + "?tls=none", From: demoFrom})
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return s, func() { srv.Close() }, nil
}

// catchAll prints messages, one whole message at a time.
type catchAll struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *catchAll) print(to string, data []byte) {
	subject, text, err := mailText(data)
	var b strings.Builder
	fmt.Fprintf(&b, "\n----- email to %s -----\n", to)
	if err != nil {
		fmt.Fprintf(&b, "(unreadable: %v)\n", err)
	} else {
		fmt.Fprintf(&b, "Subject: %s\n\n%s", subject, text)
		if !strings.HasSuffix(text, "\n") {
			b.WriteByte('\n')
		}
	}
	b.WriteString("----- end of email -----\n\n")
	c.mu.Lock()
	defer c.mu.Unlock()
	io.WriteString(c.w, b.String())
}

// catchSession takes any sender and recipients, and prints the message.
type catchSession struct {
	c  *catchAll
	to []string
}

func (s *catchSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (s *catchSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *catchSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.c.print(strings.Join(s.to, ", "), b)
	return nil
}

func (s *catchSession) Reset()        { s.to = nil }
func (s *catchSession) Logout() error { return nil }

// mailText returns a message's subject and its text part (or its body, if
// it is not multipart), decoded.
func mailText(data []byte) (subject, text string, err error) {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return "", "", err
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		subject = m.Header.Get("Subject")
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		b, err := decodePart(m.Body, m.Header.Get("Content-Transfer-Encoding"))
		return subject, b, err
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return subject, "", errors.New("no text part")
		}
		if err != nil {
			return subject, "", err
		}
		if ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct == "text/plain" {
			b, err := decodePart(p, p.Header.Get("Content-Transfer-Encoding"))
			return subject, b, err
		}
	}
}

func decodePart(r io.Reader, encoding string) (string, error) {
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	b, err := io.ReadAll(r)
	return strings.ReplaceAll(string(b), "\r\n", "\n"), err
}
