package smtp

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtpd "github.com/emersion/go-smtp"
)

// testServer is an SMTP server in the test's process (emersion/go-smtp)
// that keeps what it receives and answers as the test says.
type testServer struct {
	addr string
	host string

	mu       sync.Mutex
	mails    []received
	mechs    []string // AUTH mechanisms offered; none: no AUTH
	user     string   // the credentials it accepts
	password string
	authErr  error // the reply to any AUTH, when set
	mailErr  error
	rcptErr  error
	dataErr  error
	auths    []string // the mechanisms clients used
	sessions int
}

// received is one message as the server got it.
type received struct {
	from, to string
	tls      bool
	data     []byte
}

type serverOpts struct {
	host     string      // to listen on; default 127.0.0.1
	tls      *tls.Config // for STARTTLS, or implicit TLS with implicit
	implicit bool
}

func startServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	if o.host == "" {
		o.host = "127.0.0.1"
	}
	ts := &testServer{host: o.host}
	s := gosmtpd.NewServer(gosmtpd.BackendFunc(func(c *gosmtpd.Conn) (gosmtpd.Session, error) {
		ts.mu.Lock()
		ts.sessions++
		ts.mu.Unlock()
		_, isTLS := c.TLSConnectionState()
		return &session{ts: ts, tls: isTLS}, nil
	}))
	s.Domain = "test.example"
	s.AllowInsecureAuth = true
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.TLSConfig = o.tls
	var ln net.Listener
	var err error
	if o.implicit {
		ln, err = tls.Listen("tcp", net.JoinHostPort(o.host, "0"), o.tls)
	} else {
		ln, err = net.Listen("tcp", net.JoinHostPort(o.host, "0"))
	}
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ts
}

// url is the server's URL with the given scheme, user and query.
func (ts *testServer) url(scheme, user, query string) string {
	u := scheme + "://"
	if user != "" {
		u += user + "@"
	}
	u += ts.addr
	if query != "" {
		u += "?" + query
	}
	return u
}

func (ts *testServer) set(f func(ts *testServer)) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	f(ts)
}

func (ts *testServer) received() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.mails...)
}

func (ts *testServer) usedAuth() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.auths...)
}

type session struct {
	ts       *testServer
	tls      bool
	from, to string
}

func (s *session) AuthMechanisms() []string {
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	return s.ts.mechs
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	s.ts.auths = append(s.ts.auths, mech)
	authErr, user, password := s.ts.authErr, s.ts.user, s.ts.password
	check := func(u, p string) error {
		if authErr != nil {
			return authErr
		}
		if u != user || p != password {
			return gosmtpd.ErrAuthFailed
		}
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, u, p string) error { return check(u, p) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtpd.ErrAuthUnknownMechanism
}

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	check func(user, password string) error
	step  int
	user  string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // an initial response is the user name
			l.user, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(response))
	}
}

func (s *session) Mail(from string, _ *gosmtpd.MailOptions) error {
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	s.from = from
	return s.ts.mailErr
}

func (s *session) Rcpt(to string, _ *gosmtpd.RcptOptions) error {
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	s.to = to
	return s.ts.rcptErr
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	if s.ts.dataErr != nil {
		return s.ts.dataErr
	}
	s.ts.mails = append(s.ts.mails, received{from: s.from, to: s.to, tls: s.tls, data: b})
	return nil
}

func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

// testCert is a throwaway certificate for 127.0.0.1 and localhost, and a
// pool that trusts it.
type testCert struct {
	cert              tls.Certificate
	pool              *x509.CertPool
	certFile, keyFile string
}

func newTestCert(t *testing.T) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "twofa test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCert{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool: x509.NewCertPool()}
	tc.pool.AddCert(leaf)
	dir := t.TempDir()
	tc.certFile, tc.keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(tc.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tc.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tc
}

func (tc *testCert) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{tc.cert}, MinVersion: tls.VersionTLS12}
}

// parsed is a received message, decoded.
type parsed struct {
	header     mail.Header
	text, html string
}

// parseMail decodes a multipart/alternative message of a text and an HTML
// part.
func parseMail(t *testing.T, data []byte) *parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	p := &parsed{header: m.Header}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = part
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(part)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			p.text = strings.ReplaceAll(string(b), "\r\n", "\n")
		case "text/html":
			p.html = strings.ReplaceAll(string(b), "\r\n", "\n")
		default:
			t.Errorf("a part of type %q", ct)
		}
	}
	return p
}

func (p *parsed) subject(t *testing.T) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(p.header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
