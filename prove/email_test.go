package prove

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twofa/twofa/internal/mailpit"
)

// Issue #12, item 6: the email factor and the outbox under kill -9 and
// over three replicas, with a real Mailpit receiving the mail. The code
// mails are read back from Mailpit, as a user reads them; the outbox's
// rows are read through the admin API (GET /v1/outbox) and, for the
// sealed payloads, straight from the database.

// mailDomain ends every Message-ID: it is --mail-from's domain.
const mailDomain = "prove.example"

// mailFlags points `twofa serve` at Mailpit.
func mailFlags(mp *mailpit.Server, extra ...string) []string {
	return append([]string{
		"--smtp-url", "smtp://" + mp.SMTPAddr() + "?tls=none",
		"--mail-from", "twofa prove <twofa@" + mailDomain + ">",
	}, extra...)
}

// addressOf is the user's email address: one each, so a mail's recipient
// names its user.
func addressOf(user string) string { return strings.ToLower(user) + "@users." + mailDomain }

// Code mails, told apart from notices by their subjects (the default
// templates', with the default issuer).
const (
	subjectSignIn  = "Your twofa sign-in code"
	subjectConfirm = "Confirm your email address for twofa"
)

var eightDigits = regexp.MustCompile(`\b\d{8}\b`)

// mailSummary is a message in Mailpit's lists.
type mailSummary struct {
	ID        string
	MessageID string
	Subject   string
	Snippet   string
	To        []struct{ Address string }
	Created   time.Time
}

func (m mailSummary) to() string {
	if len(m.To) == 0 {
		return ""
	}
	return m.To[0].Address
}

// mailpitGet calls Mailpit's API and decodes the answer into out.
func mailpitGet(ctx context.Context, mp *mailpit.Server, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", mp.API+path, nil)
	if err != nil {
		return err
	}
	resp, err := mailpitClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("mailpit: GET %s: %s: %.200s", path, resp.Status, b)
	}
	return json.Unmarshal(b, out)
}

var mailpitClient = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}

// mailPage is one page of GET /api/v1/messages (newest first).
type mailPage struct {
	Total    int
	Messages []mailSummary
}

func mailpitPage(ctx context.Context, mp *mailpit.Server, start, limit int) (mailPage, error) {
	var p mailPage
	err := mailpitGet(ctx, mp, fmt.Sprintf("/api/v1/messages?start=%d&limit=%d", start, limit), &p)
	return p, err
}

// mailpitCount is how many messages Mailpit holds.
func mailpitCount(t testing.TB, mp *mailpit.Server) int {
	t.Helper()
	p, err := mailpitPage(context.Background(), mp, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p.Total
}

// mailpitAll lists every message Mailpit holds.
func mailpitAll(t testing.TB, mp *mailpit.Server) []mailSummary {
	t.Helper()
	const limit = 1000
	var all []mailSummary
	total := -1
	for start := 0; ; start += limit {
		p, err := mailpitPage(context.Background(), mp, start, limit)
		if err != nil {
			t.Fatal(err)
		}
		if total < 0 {
			total = p.Total
		}
		all = append(all, p.Messages...)
		if len(p.Messages) < limit {
			break
		}
	}
	if len(all) != total {
		t.Fatalf("mailpit: listed %d messages, its total says %d (still receiving?)", len(all), total)
	}
	return all
}

// codeMail is a code as it arrived: its message and what it is for.
type codeMail struct {
	messageID, subject, code string
}

// inbox follows a Mailpit: a poller reads the messages that arrive and
// files each code mail under its recipient, once per Message-ID (a
// repeated send is the same mail), in the order they came. A user's
// codes come one at a time (each is waited for before the next is asked
// for), so the k-th code mail of an address answers its k-th request.
type inbox struct {
	mp *mailpit.Server

	mu      sync.Mutex
	seen    map[string]bool // Mailpit IDs read
	filed   map[string]bool // Message-IDs of code mails filed
	codes   map[string][]codeMail
	changed chan struct{} // closed and replaced when codes change
	polls   int64
	err     error
}

func newInbox(t testing.TB, mp *mailpit.Server) *inbox {
	b := &inbox{mp: mp, seen: map[string]bool{}, filed: map[string]bool{}, codes: map[string][]codeMail{}, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := b.poll(ctx); err != nil && ctx.Err() == nil {
				b.mu.Lock()
				b.err = err
				b.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

// poll reads the newest messages until a page holds only messages read
// before, and files the new code mails.
func (b *inbox) poll(ctx context.Context) error {
	var fresh []mailSummary
	limit := 20
	for start := 0; ; {
		p, err := mailpitPage(ctx, b.mp, start, limit)
		if err != nil {
			return err
		}
		b.mu.Lock()
		n := 0
		for _, m := range p.Messages {
			if !b.seen[m.ID] {
				fresh = append(fresh, m)
				n++
			}
		}
		b.mu.Unlock()
		if n == 0 || len(p.Messages) < limit {
			break
		}
		start += limit
		limit = 200
	}
	atomic.AddInt64(&b.polls, 1)
	// Oldest first.
	slices.SortStableFunc(fresh, func(x, y mailSummary) int { return x.Created.Compare(y.Created) })
	var filed []codeMail
	var to []string
	for _, m := range fresh {
		if m.Subject != subjectSignIn && m.Subject != subjectConfirm {
			continue
		}
		code := eightDigits.FindString(m.Snippet)
		if code == "" {
			// Not in the snippet: read the whole text.
			var full struct{ Text string }
			if err := mailpitGet(ctx, b.mp, "/api/v1/message/"+url.PathEscape(m.ID), &full); err != nil {
				return err
			}
			code = eightDigits.FindString(full.Text)
		}
		filed = append(filed, codeMail{messageID: m.MessageID, subject: m.Subject, code: code})
		to = append(to, m.to())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range fresh {
		b.seen[m.ID] = true
	}
	changed := false
	for i, c := range filed {
		if b.filed[c.messageID] {
			continue // a repeat of a mail filed already
		}
		b.filed[c.messageID] = true
		b.codes[to[i]] = append(b.codes[to[i]], c)
		changed = true
	}
	if changed {
		close(b.changed)
		b.changed = make(chan struct{})
	}
	return nil
}

// code waits for the k-th (from 0) code mail with subject to addr, and
// returns its code; "" if stop reports true first, or after timeout.
func (b *inbox) code(addr, subject string, k int, timeout time.Duration, stop func() bool) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		b.mu.Lock()
		i := 0
		for _, c := range b.codes[addr] {
			if c.subject != subject {
				continue
			}
			if i == k {
				b.mu.Unlock()
				if c.code == "" {
					return "", fmt.Errorf("mail %s to %s holds no 8-digit code", c.messageID, addr)
				}
				return c.code, nil
			}
			i++
		}
		changed, err := b.changed, b.err
		b.mu.Unlock()
		if stop() {
			return "", nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no %q mail #%d to %s after %v (%d such mails; last poll error: %v)", subject, k+1, addr, timeout, i, err)
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// emailUser is a user with a TOTP device and a confirmed email address,
// as a test holds them.
type emailUser struct {
	*device
	addr    string
	emailID string // the email device
	signIns int    // sign-in codes asked for
}

// acceptedCode is a challenge code the server answered valid.
type acceptedCode struct {
	user, device, challenge, code, purpose string
}

// enrollEmail adds addr to the user as an email device, reads the code
// from the mail and confirms it. It returns the answers (for a caller
// that counts them), the device ID and the code accepted; an error means
// a request went unanswered or the mail did not come.
func enrollEmail(ctx context.Context, a *api, base string, box *inbox, user, addr string, stop func() bool) (dev string, accepted *acceptedCode, err error) {
	r, err := a.do(ctx, "POST", userPath(base, user)+"/email", map[string]string{"address": addr, "name": "Mail"})
	if err != nil {
		return "", nil, err
	}
	if r.status != 201 {
		return "", nil, fmt.Errorf("POST email: %v", r)
	}
	d, _ := r.body["device"].(map[string]any)
	c, _ := r.body["challenge"].(map[string]any)
	dev, _ = d["id"].(string)
	chl, _ := c["challenge_id"].(string)
	code, err := box.code(addr, subjectConfirm, 0, 30*time.Second, stop)
	if err != nil || code == "" {
		return "", nil, err
	}
	r, err = a.do(ctx, "POST", userPath(base, user)+"/email/"+url.PathEscape(dev)+"/confirm", map[string]string{"challenge_id": chl, "code": code})
	if err != nil {
		return "", nil, err
	}
	if !r.valid() {
		return "", nil, fmt.Errorf("confirming %s with the mailed code: %v", addr, r)
	}
	return dev, &acceptedCode{user: user, device: dev, challenge: chl, code: code, purpose: "confirm_email"}, nil
}

// resendAccepted sends an accepted code again: it must be refused.
func resendAccepted(ctx context.Context, a *api, base string, c acceptedCode) (reply, error) {
	if c.purpose == "confirm_email" {
		return a.do(ctx, "POST", userPath(base, c.user)+"/email/"+url.PathEscape(c.device)+"/confirm", map[string]string{"challenge_id": c.challenge, "code": c.code})
	}
	return a.do(ctx, "POST", userPath(base, c.user)+"/challenges/"+url.PathEscape(c.challenge)+"/verify", map[string]string{"code": c.code})
}

// renameDevice renames a device through the hosted manage page, as the
// user would: a manage link, the page's form, its CSRF token.
func renameDevice(ctx context.Context, a *api, base, user, dev, name string) error {
	r, err := a.do(ctx, "POST", userPath(base, user)+"/manage-links", nil)
	if err != nil {
		return err
	}
	if r.status != 201 {
		return fmt.Errorf("POST manage-links: %v", r)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: a.client.Transport}
	page, err := pageGet(ctx, c, r.str("url"))
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		return fmt.Errorf("the manage page has no CSRF token: %.300s", page)
	}
	form := url.Values{"csrf": {m[1]}, "device_id": {dev}, "name": {name}}
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/manage/rename", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(resp.Request.URL.RawQuery, "notice=renamed") {
		return fmt.Errorf("POST /manage/rename: %s, at %s", resp.Status, resp.Request.URL)
	}
	return nil
}

func pageGet(ctx context.Context, c *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(b), nil
}

// outboxRow is a row of GET /v1/outbox.
type outboxRow struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Channel   string    `json:"channel"`
	Kind      string    `json:"kind"`
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	CreatedAt time.Time `json:"created_at"`
	DoneAt    time.Time `json:"done_at"`
}

// outboxRows lists the tenant's outbox rows (status "" for all).
func outboxRows(t testing.TB, admin *api, base, status string) []outboxRow {
	t.Helper()
	var all []outboxRow
	before := ""
	for {
		q := url.Values{"limit": {"1000"}}
		if status != "" {
			q.Set("status", status)
		}
		if before != "" {
			q.Set("before", before)
		}
		r := admin.must(t, "GET", base+"/v1/outbox?"+q.Encode(), nil)
		if r.status != 200 {
			t.Fatalf("GET /v1/outbox: %v", r)
		}
		var page struct {
			Messages   []outboxRow `json:"messages"`
			NextBefore *string     `json:"next_before"`
		}
		if err := json.Unmarshal([]byte(r.raw), &page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Messages...)
		if page.NextBefore == nil {
			return all
		}
		before = *page.NextBefore
	}
}

// queuedCount is how many of the tenant's messages are queued (due, or
// under way).
func queuedCount(ctx context.Context, admin *api, base string) (int, error) {
	r, err := admin.do(ctx, "GET", base+"/v1/outbox?status=queued&limit=1000", nil)
	if err != nil {
		return 0, err
	}
	if r.status != 200 {
		return 0, fmt.Errorf("GET /v1/outbox: %v", r)
	}
	ms, _ := r.body["messages"].([]any)
	return len(ms), nil
}

// waitDrained waits until no message is queued and Mailpit holds at least
// want messages, and returns when that was seen.
func waitDrained(t testing.TB, admin *api, base string, mp *mailpit.Server, want int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		q, err := queuedCount(context.Background(), admin, base)
		if err == nil && q == 0 && mailpitCount(t, mp) >= want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox did not drain in %v: %d queued (%v), Mailpit holds %d of %d", timeout, q, err, mailpitCount(t, mp), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// delivery compares the outbox's rows with what Mailpit received.
type delivery struct {
	rows, codes, notices int // outbox rows, by kind
	mails                int // messages in Mailpit
	repeated             int // rows whose mail came more than once
	extra                int // copies beyond the first
	lost                 int // rows with no mail
	strays               int // mails of no row
	unsent               int // rows not sent
}

// reconcile checks that Mailpit holds one message per outbox row, by
// Message-ID, besides repeats of the same Message-ID, and that every row
// was sent. maxRepeats bounds the repeats (0: none allowed).
func reconcile(t testing.TB, rows []outboxRow, mails []mailSummary, maxRepeats int) delivery {
	t.Helper()
	d := delivery{rows: len(rows), mails: len(mails)}
	byID := map[string]int{}
	for _, m := range mails {
		byID[m.MessageID]++
	}
	ids := map[string]bool{}
	for _, r := range rows {
		ids[r.ID+"@"+mailDomain] = true
		switch r.Kind {
		case "code":
			d.codes++
		case "notice":
			d.notices++
		}
		if r.Status != "sent" {
			d.unsent++
			if d.unsent <= 10 {
				t.Errorf("outbox row %s (%s %s, user %s) is %s after %d tries: %s", r.ID, r.Channel, r.Kind, r.UserID, r.Status, r.Attempts, r.LastError)
			}
		}
		switch n := byID[r.ID+"@"+mailDomain]; {
		case n == 0:
			d.lost++
			if d.lost <= 10 {
				t.Errorf("LOST: outbox row %s (%s, user %s, %s) has no message in Mailpit", r.ID, r.Kind, r.UserID, r.Status)
			}
		case n > 1:
			d.repeated++
			d.extra += n - 1
		}
	}
	for id, n := range byID {
		if !ids[id] {
			d.strays += n
			if d.strays <= 10 {
				t.Errorf("Mailpit holds %d message(s) with Message-ID %q, of no outbox row", n, id)
			}
		}
	}
	if d.extra > maxRepeats {
		t.Errorf("%d extra copies of %d messages, want at most %d", d.extra, d.repeated, maxRepeats)
	}
	return d
}

// payloads counts the sent rows, and those of them that still hold a
// payload or its key, straight from the database.
func payloads(t testing.TB, where db) (sent, kept int) {
	t.Helper()
	const q = `SELECT count(*), coalesce(sum(CASE WHEN payload IS NOT NULL OR key_id <> 0 THEN 1 ELSE 0 END), 0) FROM outbox WHERE status = 'sent'`
	ctx := context.Background()
	if where[0] == "--data" {
		conn, err := sql.Open("sqlite", "file:"+filepath.Join(where[1], "twofa.db")+"?mode=ro&_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.QueryRowContext(ctx, q).Scan(&sent, &kept); err != nil {
			t.Fatal(err)
		}
		return sent, kept
	}
	conn, err := pgx.Connect(ctx, where[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, q).Scan(&sent, &kept); err != nil {
		t.Fatal(err)
	}
	return sent, kept
}
