// Package client calls twofa's HTTP API.
//
// A Client holds the server's URL and an API key. Each method mirrors one
// route and returns the route's answer, or an *Error for an error
// response. A wrong code is not an error: Verify returns a VerifyResult
// with Valid false.
//
// Pass the end user's IP address and user agent with WithEndUser on the
// context of each call, so that twofa limits verifications per end user
// and records them in its audit log.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one twofa server with one API key. It is safe for
// concurrent use.
type Client struct {
	base string
	key  string
	hc   *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send requests with hc instead of a
// client with a 30-second timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// New returns a Client of the server at baseURL (such as
// "https://twofa.internal:8080", or with a path prefix when twofa is behind
// a proxy) that authenticates with apiKey.
func New(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), key: apiKey, hc: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// String hides the API key, should a Client be printed.
func (c *Client) String() string { return "client.Client{" + c.base + "}" }

// GoString hides the API key under %#v too.
func (c *Client) GoString() string { return c.String() }

type endUserKey struct{}

type endUser struct{ ip, userAgent string }

// WithEndUser returns a context that makes every call with it report the
// end user your application is serving: their IP address (IPv4 or IPv6)
// and browser user agent. Either may be empty.
func WithEndUser(ctx context.Context, ip, userAgent string) context.Context {
	return context.WithValue(ctx, endUserKey{}, endUser{ip: ip, userAgent: userAgent})
}

// maxResponse bounds the response bodies read.
const maxResponse = 8 << 20

// do sends a request and decodes a 2xx JSON answer into out, if not nil.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("twofa: %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("twofa: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "twofa-go-client")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if u, ok := ctx.Value(endUserKey{}).(endUser); ok {
		if u.ip != "" {
			req.Header.Set("X-End-User-IP", u.ip)
		}
		if u.userAgent != "" {
			req.Header.Set("X-End-User-Agent", u.userAgent)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// *url.Error names the URL, which holds IDs but never a key or code.
		return fmt.Errorf("twofa: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("twofa: %s %s: reading the response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return parseError(resp, raw)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("twofa: %s %s: decoding the response: %w", method, path, err)
	}
	return nil
}

// userPath returns /v1/users/{userID} and further segments, escaped. Dot
// segments are escaped too, so that no client or proxy resolves them and
// the server sees, and refuses, the ID itself.
func userPath(userID string, rest ...string) (string, error) {
	if userID == "" {
		return "", &Error{Code: CodeInvalid, Message: "user ID is empty"}
	}
	var b strings.Builder
	b.WriteString("/v1/users/")
	b.WriteString(segment(userID))
	for _, s := range rest {
		b.WriteByte('/')
		b.WriteString(s)
	}
	return b.String(), nil
}

func deviceSegment(deviceID string) (string, error) {
	if deviceID == "" {
		return "", &Error{Code: CodeInvalid, Message: "device ID is empty"}
	}
	return segment(deviceID), nil
}

func segment(s string) string {
	switch s {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(s)
}

// Health reports whether the server process answers (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, "GET", "/healthz", nil, nil)
}

// Ready reports whether the server can serve, its database reachable
// (GET /readyz): an *Error with Status 503 when not.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, "GET", "/readyz", nil, nil)
}

// errorsAs is errors.As for *Error.
func errorsAs(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
