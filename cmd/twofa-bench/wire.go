package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// wire is one load worker's keep-alive HTTP/1.1 connection, spoken
// directly. On this 2-core machine the load tool shares the CPU with the
// server, and net/http's client spends about as much CPU on a request as
// a small server does (two goroutine hand-offs, header maps, a body
// reader): it would be measuring itself. wire writes the few bytes a
// verify request needs and reads a reply with a Content-Length or a
// chunked body; any error closes the connection and the next request
// dials again. A request is never retried: a verify is not idempotent.
type wire struct {
	addr    string      // host:port
	prefix  string      // the base URL's path, before every request's
	tls     *tls.Config // for https, else nil
	head    []byte      // "Host: ...\r\nAuthorization: ...\r\n..." for every request
	timeout time.Duration

	mu          sync.Mutex // guards conn's changes, for interrupt
	interrupted atomic.Bool
	conn        net.Conn
	r           *bufio.Reader
	req         []byte // the request being written
	body        []byte // the last reply's body
}

// newWire returns a wire to the server at base (http or https) that sends
// key as its bearer token. It dials on first use.
func newWire(base, key string) (*wire, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	w := &wire{timeout: 30 * time.Second}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		w.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
	default:
		return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	w.addr = net.JoinHostPort(u.Hostname(), port)
	w.prefix = strings.TrimRight(u.EscapedPath(), "/")
	w.head = fmt.Appendf(nil, "Host: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n", u.Host, key)
	return w, nil
}

// Close closes the connection, if any.
func (w *wire) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn, w.r = nil, nil
	return err
}

// interrupt ends the request in flight, if any, from another goroutine.
func (w *wire) interrupt() {
	w.interrupted.Store(true)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil {
		w.conn.SetDeadline(time.Unix(1, 0))
	}
}

// post sends body to path and returns the reply's status and body. The
// body is valid until the next call. header, if not empty, is sent as
// more header lines ("Name: value\r\n" each).
func (w *wire) post(ctx context.Context, path string, body []byte, header ...byte) (int, []byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if w.conn == nil {
		if err := w.dial(ctx); err != nil {
			return 0, nil, err
		}
	}
	w.req = append(w.req[:0], "POST "...)
	w.req = append(w.req, w.prefix...)
	w.req = append(w.req, path...)
	w.req = append(w.req, " HTTP/1.1\r\n"...)
	w.req = append(w.req, w.head...)
	w.req = append(w.req, header...)
	w.req = append(w.req, "Content-Length: "...)
	w.req = strconv.AppendInt(w.req, int64(len(body)), 10)
	w.req = append(w.req, "\r\n\r\n"...)
	w.req = append(w.req, body...)
	w.conn.SetDeadline(time.Now().Add(w.timeout))
	if w.interrupted.Load() { // after SetDeadline, which would undo it
		w.Close()
		return 0, nil, errInterrupted
	}
	if _, err := w.conn.Write(w.req); err != nil {
		w.Close()
		return 0, nil, err
	}
	status, keep, err := w.read()
	if err != nil || !keep {
		w.Close()
	}
	if err != nil {
		return 0, nil, err
	}
	return status, w.body, nil
}

func (w *wire) dial(ctx context.Context) error {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	var c net.Conn
	var err error
	if w.tls != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: w.tls}).DialContext(ctx, "tcp", w.addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", w.addr)
	}
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.conn, w.r = c, bufio.NewReaderSize(c, 8<<10)
	w.mu.Unlock()
	if ctx.Err() != nil { // interrupted while dialing
		w.Close()
		return ctx.Err()
	}
	return nil
}

// errInterrupted is the error of a request on an interrupted wire.
var errInterrupted = errors.New("interrupted")

// errReply is a reply wire cannot read.
var errReply = errors.New("malformed HTTP reply")

// read reads one reply into w.body and says whether the connection may
// carry another request.
func (w *wire) read() (status int, keep bool, err error) {
	for {
		status, keep, err = w.readOne()
		// An interim reply (100 Continue, 103 Early Hints) comes before
		// the real one.
		if err != nil || status/100 != 1 || status == 101 {
			return status, keep, err
		}
	}
}

// readOne reads one reply, interim or final.
func (w *wire) readOne() (status int, keep bool, err error) {
	line, err := w.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("%w: status line %.40q", errReply, line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("%w: status line %.40q", errReply, line)
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err := w.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("%w: header %.40q", errReply, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 || length > 16<<20 {
				return 0, false, fmt.Errorf("%w: Content-Length %.40q", errReply, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
			if !chunked {
				return 0, false, fmt.Errorf("%w: Transfer-Encoding %.40q", errReply, value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			keep = keep && !bytes.EqualFold(value, []byte("close"))
		}
	}
	w.body = w.body[:0]
	switch {
	case status == 204 || status == 304 || status/100 == 1:
	case chunked:
		err = w.readChunked()
	case length >= 0:
		w.body = grow(w.body, length)
		_, err = io.ReadFull(w.r, w.body)
	default: // to the end of the connection
		w.body, err = io.ReadAll(w.r)
		keep = false
	}
	return status, keep, err
}

// readChunked reads a chunked body into w.body.
func (w *wire) readChunked() error {
	for {
		line, err := w.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseUint(string(size), 16, 32)
		if err != nil || len(w.body)+int(n) > 16<<20 {
			return fmt.Errorf("%w: chunk size %.40q", errReply, line)
		}
		if n == 0 {
			for { // trailers, to the blank line
				line, err := w.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		start := len(w.body)
		w.body = grow(w.body, start+int(n))
		if _, err := io.ReadFull(w.r, w.body[start:]); err != nil {
			return err
		}
		if crlf, err := w.r.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return fmt.Errorf("%w: chunk not followed by CRLF", errReply)
		}
	}
}

// grow returns b resized to n bytes, keeping its content.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		nb := make([]byte, n, max(n, 2*cap(b)))
		copy(nb, b)
		return nb
	}
	return b[:n]
}
