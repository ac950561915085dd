// Package mailpit runs Mailpit (github.com/axllent/mailpit), a real SMTP
// server with an HTTP API, for tests: Start picks two free ports, starts
// the binary, waits until it is ready and stops it when the test ends; the
// methods read what it received and make it fail on purpose (chaos).
//
// The binary is $TWOFA_MAILPIT, else .tools/bin/mailpit at the module's
// root (scripts/install-test-deps.sh builds it there), else mailpit on the
// PATH. Without one, tests skip, or fail under TWOFA_TEST_REQUIRE_ALL=1.
package mailpit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofa/twofa/internal/testenv"
)

// Version is the Mailpit the tests are written against.
const Version = "v1.33.1"

// Options choose how Mailpit's SMTP side behaves.
type Options struct {
	// AuthAcceptAny accepts any user and password (PLAIN or LOGIN), and
	// none at all; without TLS too unless TLS is required.
	AuthAcceptAny bool
	// AuthFile is an htpasswd file ("user:password" lines); AUTH is then
	// required and checked against it, without TLS too unless TLS is
	// required.
	AuthFile string
	// TLSCert and TLSKey are PEM files: with them Mailpit offers STARTTLS.
	TLSCert, TLSKey string
	// RequireSTARTTLS refuses mail until the client starts TLS.
	RequireSTARTTLS bool
	// ImplicitTLS speaks TLS from the first byte (smtps).
	ImplicitTLS bool
	// AllowedRecipients is a regular expression; other recipients are
	// refused with 550.
	AllowedRecipients string
	// Chaos enables SetChaos.
	Chaos bool
	// Verbose logs at debug level (each AUTH with its mechanism, each
	// message), for Log; otherwise Mailpit logs only errors.
	Verbose bool
}

// Server is a running Mailpit.
type Server struct {
	// SMTPHost and SMTPPort are where it takes mail.
	SMTPHost string
	SMTPPort int
	// API is the base URL of its HTTP API.
	API string

	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// SMTPAddr is host:port of the SMTP side.
func (s *Server) SMTPAddr() string {
	return net.JoinHostPort(s.SMTPHost, fmt.Sprint(s.SMTPPort))
}

// Log is what Mailpit printed so far.
func (s *Server) Log() string { return s.log.String() }

// Binary returns the path of the Mailpit binary, or calls testenv.Missing.
func Binary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("TWOFA_MAILPIT"); p != "" {
		return p
	}
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", "mailpit")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	testenv.Missing(tb, "mailpit %s not found in .tools/bin, $TWOFA_MAILPIT or the PATH (scripts/install-test-deps.sh builds it)", Version)
	return ""
}

// moduleRoot is the nearest directory up from here with a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start starts Mailpit for the test and stops it when the test ends.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	bin := Binary(tb)
	var lastErr error
	// Two free ports, found by listening and closing, may be taken by
	// someone else before Mailpit binds them: try a few times.
	for range 3 {
		s, err := start(tb, bin, o)
		if err == nil {
			return s
		}
		lastErr = err
	}
	tb.Fatalf("mailpit did not start: %v", lastErr)
	return nil
}

func start(tb testing.TB, bin string, o Options) (*Server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &Server{
		SMTPHost: "127.0.0.1", SMTPPort: ports[1],
		API: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		log: &syncBuffer{}, done: make(chan struct{}),
	}
	args := []string{
		"--listen", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--smtp", s.SMTPAddr(),
		"--database", filepath.Join(tb.TempDir(), "mailpit.db"),
		"--smtp-disable-rdns", "--disable-version-check",
		// Keep every message: tests count what arrived, and Mailpit
		// would otherwise delete all but the newest 500.
		"--max", "0",
	}
	if o.Verbose {
		args = append(args, "--verbose")
	} else {
		args = append(args, "--quiet")
	}
	if o.AuthAcceptAny {
		args = append(args, "--smtp-auth-accept-any")
	}
	if o.AuthFile != "" {
		args = append(args, "--smtp-auth-file", o.AuthFile)
	}
	// AUTH without TLS, unless TLS is required (Mailpit refuses both).
	if (o.AuthAcceptAny || o.AuthFile != "") && !o.RequireSTARTTLS && !o.ImplicitTLS {
		args = append(args, "--smtp-auth-allow-insecure")
	}
	if o.TLSCert != "" {
		args = append(args, "--smtp-tls-cert", o.TLSCert, "--smtp-tls-key", o.TLSKey)
	}
	if o.RequireSTARTTLS {
		args = append(args, "--smtp-require-starttls")
	}
	if o.ImplicitTLS {
		args = append(args, "--smtp-require-tls")
	}
	if o.AllowedRecipients != "" {
		args = append(args, "--smtp-allowed-recipients", o.AllowedRecipients)
	}
	if o.Chaos {
		args = append(args, "--enable-chaos")
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(30 * time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("%w; it printed:\n%s", err, s.log)
	}
	tb.Cleanup(s.stop)
	return s, nil
}

// waitReady polls /readyz until it answers 200.
func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("mailpit exited")
		default:
		}
		resp, err := c.Get(s.API + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("/readyz did not answer 200 within %s", timeout)
}

// stop ends this Mailpit, by its process alone: politely, then for good.
func (s *Server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// freePorts returns n ports that were free on 127.0.0.1 a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Summary is a message in a list or a search.
type Summary struct {
	ID        string
	MessageID string
	From      *mail.Address
	To        []*mail.Address
	Subject   string
	Username  string // the SMTP user that sent it, if any
	Created   time.Time
	Snippet   string
}

// Message is one message, whole.
type Message struct {
	ID        string
	MessageID string // without the angle brackets
	From      *mail.Address
	To        []*mail.Address
	Subject   string
	Date      time.Time
	Username  string
	Text      string
	HTML      string
}

// Search returns the messages matching a Mailpit search query
// ("to:alice@example.test", "subject:code"), newest first.
func (s *Server) Search(tb testing.TB, query string) []Summary {
	tb.Helper()
	var r struct {
		Messages []Summary `json:"messages"`
	}
	s.call(tb, http.MethodGet, "/api/v1/search?query="+url.QueryEscape(query), nil, &r)
	return r.Messages
}

// Messages returns every message, newest first.
func (s *Server) Messages(tb testing.TB) []Summary {
	tb.Helper()
	var r struct {
		Messages []Summary `json:"messages"`
	}
	s.call(tb, http.MethodGet, "/api/v1/messages", nil, &r)
	return r.Messages
}

// WaitFor polls Search until at least n messages match, and returns them;
// it fails the test after timeout.
func (s *Server) WaitFor(tb testing.TB, query string, n int, timeout time.Duration) []Summary {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.Search(tb, query)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			tb.Fatalf("mailpit: %d messages match %q after %s, want %d", len(got), query, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Message reads one message ("latest" for the newest).
func (s *Server) Message(tb testing.TB, id string) *Message {
	tb.Helper()
	var m Message
	s.call(tb, http.MethodGet, "/api/v1/message/"+url.PathEscape(id), nil, &m)
	return &m
}

// Headers reads the headers of one message.
func (s *Server) Headers(tb testing.TB, id string) map[string][]string {
	tb.Helper()
	var h map[string][]string
	s.call(tb, http.MethodGet, "/api/v1/message/"+url.PathEscape(id)+"/headers", nil, &h)
	return h
}

// DeleteAll deletes every message.
func (s *Server) DeleteAll(tb testing.TB) {
	tb.Helper()
	s.call(tb, http.MethodDelete, "/api/v1/messages", struct{}{}, nil)
}

// Trigger makes one SMTP step fail: with ErrorCode (400 to 599) in
// Probability percent of the cases.
type Trigger struct {
	ErrorCode   int
	Probability int
}

// Chaos is what to make fail; the zero Chaos fails nothing.
type Chaos struct {
	Sender, Recipient, Authentication Trigger
}

// SetChaos sets the failures (Options.Chaos must be set).
func (s *Server) SetChaos(tb testing.TB, c Chaos) {
	tb.Helper()
	s.call(tb, http.MethodPut, "/api/v1/chaos", c, nil)
}

// call calls the API, sending in as JSON if not nil and decoding the
// answer into out if not nil.
func (s *Server) call(tb testing.TB, method, path string, in, out any) {
	tb.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			tb.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.API+path, body)
	if err != nil {
		tb.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("mailpit: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("mailpit: %s %s: %v", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("mailpit: %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("mailpit: %s %s: %v in %s", method, path, err, b)
		}
	}
}

// syncBuffer is a buffer that Mailpit's output and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
