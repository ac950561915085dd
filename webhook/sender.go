package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/twofa/twofa"
)

// Secrets gives the Sender a tenant's webhook as it is now: its URL and
// its secret (the HMAC key itself, not its "whsec_" form). It returns an
// error that wraps twofa.ErrNotFound when the tenant has no webhook. The
// Service implements it, opening the sealed secret: outbox messages never
// carry it.
type Secrets interface {
	WebhookSecret(ctx context.Context, tenant string) (url string, secret []byte, err error)
}

// Options configure a Sender. The zero value takes the defaults.
type Options struct {
	// Timeout bounds one delivery, from dialling to the end of the
	// answer's headers. 0: 15 s, the low end of what the specification
	// recommends.
	Timeout time.Duration
	// AllowPrivate lets webhooks reach loopback, private, link-local and
	// other non-public addresses. Tenant administrators choose the URL,
	// so by default twofa refuses to connect anywhere a public webhook
	// cannot be (its own host, the cloud's metadata service, the
	// internal network), checking the address it actually connects to,
	// after DNS. Allow them only when every tenant administrator is
	// trusted with the network twofa runs in, or in tests.
	AllowPrivate bool
	// UserAgent is sent with each webhook. "": "twofa-webhooks/1".
	UserAgent string
	// Now is the clock of the webhook-timestamp header. nil: time.Now.
	Now func() time.Time
	// TLS, if set, is the client's TLS configuration (tests give their
	// own roots). nil: the system's roots, TLS 1.2 or later.
	TLS *tls.Config
}

// Sender delivers outbox messages of twofa.ChannelWebhook: it POSTs the
// event to the tenant's webhook URL, signed with the tenant's secret,
// with the message's ID as webhook-id, so a receiver drops a repeated
// delivery. It never follows a redirect (a 3xx is a permanent failure:
// the specification asks senders to have the URL updated instead), and
// ignores proxy settings of the environment, whose address the
// private-address rule would refuse.
type Sender struct {
	secrets   Secrets
	client    *http.Client
	timeout   time.Duration
	userAgent string
	now       func() time.Time
}

// NewSender returns a Sender that finds tenants' webhooks with secrets.
func NewSender(secrets Secrets, opts Options) *Sender {
	s := &Sender{secrets: secrets, timeout: opts.Timeout, userAgent: opts.UserAgent, now: opts.Now}
	if s.timeout <= 0 {
		s.timeout = 15 * time.Second
	}
	if s.userAgent == "" {
		s.userAgent = "twofa-webhooks/1"
	}
	if s.now == nil {
		s.now = time.Now
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !opts.AllowPrivate {
		dialer.Control = refusePrivate
	}
	tlsConf := opts.TLS
	if tlsConf == nil {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	s.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSClientConfig:       tlsConf,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: s.timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s
}

// Payload is the body of a webhook, shaped as the specification suggests:
// the event's type, when it happened, and the event.
type Payload struct {
	Type      twofa.EventType    `json:"type"`
	Timestamp time.Time          `json:"timestamp"`
	Data      *twofa.NoticeEvent `json:"data"`
}

// Body returns the JSON body of a webhook of the event.
func Body(e *twofa.NoticeEvent) ([]byte, error) {
	return json.Marshal(Payload{Type: e.Type, Timestamp: e.Time.UTC(), Data: e})
}

// Send delivers one webhook. It returns nil on a 2xx answer; a
// twofa.Permanent error when a retry would not help: the tenant has no
// webhook any more, the URL is refused (not http or https, or a private
// address), or the receiver answered 3xx, 410 Gone (it wants no more),
// 400, 401, 403, 404, 413, 422 or another 4xx but 408, 409, 425 and 429;
// and any other error when a retry may help: a network error, a timeout,
// 408, 409, 425, 429 or 5xx.
//
// The URL is the tenant's current one: a message queued before the
// tenant changed its URL goes to the new URL, signed with the new secret,
// and none goes to a URL the tenant has given up. Errors never hold the
// URL, whose path or query may hold a token of the receiver's.
func (s *Sender) Send(ctx context.Context, m *twofa.Outgoing) error {
	if m.Channel != twofa.ChannelWebhook || m.Body.Event == nil {
		return twofa.Permanent(fmt.Errorf("webhook: message %s is not a webhook event (channel %s, kind %s)", m.ID, m.Channel, m.Kind))
	}
	to, secret, err := s.secrets.WebhookSecret(ctx, m.Tenant)
	if errors.Is(err, twofa.ErrNotFound) {
		return twofa.Permanent(fmt.Errorf("webhook: tenant %s has no webhook any more", m.Tenant))
	}
	if err != nil {
		return fmt.Errorf("webhook: the tenant's secret: %w", err)
	}
	defer clear(secret)
	u, err := url.Parse(to)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return twofa.Permanent(errors.New("webhook: the tenant's URL is not an http or https URL"))
	}
	body, err := Body(m.Body.Event)
	if err != nil {
		return twofa.Permanent(fmt.Errorf("webhook: encoding the event: %w", err))
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to, bytes.NewReader(body))
	if err != nil {
		return twofa.Permanent(errors.New("webhook: the tenant's URL does not make a request"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	SetHeaders(req.Header, m.ID, s.now(), body, secret)
	resp, err := s.client.Do(req)
	if err != nil {
		return sendError(err, s.timeout)
	}
	// Read a little of the answer, so the connection can serve the next
	// webhook, and no more: a receiver cannot make twofa read forever.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return statusError(resp)
}

// statusError classifies an answer.
func statusError(resp *http.Response) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code >= 300 && code < 400:
		return twofa.Permanent(fmt.Errorf("webhook: HTTP %s: redirects are not followed; set the URL it redirects to", resp.Status))
	case code == http.StatusRequestTimeout, code == http.StatusConflict, code == http.StatusTooEarly,
		code == http.StatusTooManyRequests, code >= 500:
		return fmt.Errorf("webhook: HTTP %s", resp.Status)
	case code == http.StatusGone:
		return twofa.Permanent(fmt.Errorf("webhook: HTTP %s: the receiver wants no more webhooks; remove or change the tenant's webhook", resp.Status))
	}
	return twofa.Permanent(fmt.Errorf("webhook: HTTP %s", resp.Status))
}

// sendError classifies a failure to get an answer, without the URL that
// url.Error would quote.
func sendError(err error, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, errPrivate):
		return twofa.Permanent(fmt.Errorf("webhook: %w", err))
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("webhook: no answer within %s", timeout)
	}
	return fmt.Errorf("webhook: %w", err)
}

// errPrivate is the dialer's refusal of an address that is not public.
var errPrivate = errors.New("refusing a loopback, private or otherwise non-public address (the operator may allow them)")

// refusePrivate is the dialer's Control: it sees the address about to be
// connected to, after DNS, so a name that resolves, or later rebinds, to
// an internal address is refused all the same.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	// The dial's error names the address already.
	if ap, err := netip.ParseAddrPort(address); err != nil || !Public(ap.Addr()) {
		return errPrivate
	}
	return nil
}

// Public reports whether a webhook may be sent to addr when private
// addresses are not allowed: a global unicast address outside the
// ranges that reach the sender's own host or network, or no host at all:
// loopback, private (RFC 1918, and fc00::/7 with the cloud metadata
// service at fd00:ec2::254), link-local (169.254.169.254 among them), shared
// (100.64.0.0/10), unspecified, multicast, broadcast, reserved, and
// IPv4 addresses written as IPv6 (mapped, NAT64 64:ff9b::/96, 6to4) when
// the IPv4 address is one of those.
func Public(addr netip.Addr) bool {
	addr = addr.Unmap()
	if addr.Is6() {
		b := addr.As16()
		switch {
		case nat64.Contains(addr):
			return Public(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(addr):
			return Public(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	if !addr.IsGlobalUnicast() || addr.IsPrivate() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	// notPublic are ranges IsGlobalUnicast and IsPrivate let through.
	notPublic = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),       // this network
		netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier-grade NAT)
		netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
		netip.MustParsePrefix("192.0.2.0/24"),    // documentation
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // documentation
		netip.MustParsePrefix("203.0.113.0/24"),  // documentation
		netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
		netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
		netip.MustParsePrefix("100::/64"),        // discard-only
		netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (Teredo among them)
		netip.MustParsePrefix("2001:db8::/32"),   // documentation
		netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	}
)
