package smtp

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twofa/twofa"
)

// The templates of a message are files named by what they render:
// code_PURPOSE.subject.txt, code_PURPOSE.txt and code_PURPOSE.html for a
// code (one set per twofa purpose), notice.subject.txt, notice.txt and
// notice.html for a notice, and notice_events.txt for the words of each
// kind of notice. Files ending in .txt are text/template, files ending in
// .html are html/template; each set may call the templates of the other
// files of its own kind.

//go:embed templates
var defaultFS embed.FS

// noticeTypes are the audit events that notices are sent for (see the
// root's attachNotices); start-up renders a notice of each, so that a
// broken override stops it.
var noticeTypes = []twofa.EventType{
	twofa.EventEnrollConfirmed,
	twofa.EventDeviceRevoked,
	twofa.EventDeviceRenamed,
	twofa.EventBackupCodesIssued,
	twofa.EventBackupCodeUsed, // when few are left
	twofa.EventDisabled,
	twofa.EventLocked,
	twofa.EventUnlocked,
}

// templates renders messages: the defaults, each replaced by the file of
// the same name in the operator's directory.
type templates struct {
	text     *texttemplate.Template
	html     *htmltemplate.Template
	purposes []string // the purposes that have code templates
	source   map[string]string
}

// rendered is a message ready to be sent.
type rendered struct {
	Subject, Text, HTML string
}

// codeData is what a code's templates see: never the message body
// itself, so a template cannot print the address or the audit fields.
type codeData struct {
	Issuer   string
	Purpose  string
	Code     string
	Expires  string // "15:04 UTC on Monday, 2 January 2006"
	ValidFor string // "10 minutes"
	Subject  string // for the HTML title; empty while the subject renders
}

// noticeData is what a notice's templates see.
type noticeData struct {
	Issuer    string
	Type      string
	Factor    string
	Method    string // the factor in words, from "method:FACTOR"
	Time      string
	IP        string
	UserAgent string
	Title     string // from "title:TYPE"
	What      string // from "what:TYPE"
	IfYou     string // from "ifyou:TYPE"
	IfNotYou  string // from "ifnotyou:TYPE"
	Subject   string
}

var funcs = map[string]any{
	"capitalize": capitalize,
	"wrap":       wrap,
}

// loadTemplates parses the default templates, each replaced by a file of
// the same name in dir if dir is not empty, and renders every message of
// every kind once with sample data, so that a template that does not
// parse or run stops start-up rather than a send.
func loadTemplates(dir string) (*templates, error) {
	def, err := fs.Sub(defaultFS, "templates")
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(def, ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t := &templates{
		text:   texttemplate.New("").Funcs(funcs).Option("missingkey=error"),
		html:   htmltemplate.New("").Funcs(funcs).Option("missingkey=error"),
		source: make(map[string]string),
	}
	if dir != "" {
		if err := checkOverrides(dir, names); err != nil {
			return nil, err
		}
	}
	for _, name := range names {
		src, from := []byte(nil), "built in"
		if dir != "" {
			path := filepath.Join(dir, name)
			b, err := os.ReadFile(path)
			switch {
			case err == nil:
				src, from = b, path
			case !errors.Is(err, fs.ErrNotExist):
				return nil, fmt.Errorf("smtp: reading template: %w", err)
			}
		}
		if src == nil {
			if src, err = fs.ReadFile(def, name); err != nil {
				return nil, err
			}
		}
		t.source[name] = from
		if strings.HasSuffix(name, ".html") {
			_, err = t.html.New(name).Parse(string(src))
		} else {
			_, err = t.text.New(name).Parse(string(src))
		}
		if err != nil {
			return nil, fmt.Errorf("smtp: template %s (%s) does not parse: %w", name, from, err)
		}
		if p, ok := strings.CutPrefix(name, "code_"); ok && strings.HasSuffix(p, ".subject.txt") {
			t.purposes = append(t.purposes, strings.TrimSuffix(p, ".subject.txt"))
		}
	}
	for _, name := range []string{"title:default", "what:default", "ifyou:default", "ifnotyou:default"} {
		if t.text.Lookup(name) == nil {
			return nil, fmt.Errorf("smtp: template notice_events.txt (%s) does not define %q, which notices of other events need", t.source["notice_events.txt"], name)
		}
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}

// checkOverrides refuses files in the override directory that replace no
// default: most likely a misspelt name, which would otherwise be ignored
// in silence.
func checkOverrides(dir string, names []string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("smtp: the templates directory: %w", err)
	}
	for _, e := range entries {
		if !slices.Contains(names, e.Name()) {
			return fmt.Errorf("smtp: %s replaces no template (the templates are %s)",
				filepath.Join(dir, e.Name()), strings.Join(names, ", "))
		}
	}
	return nil
}

// sampleTime is when sample messages happen.
var sampleTime = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// check renders a message of every kind with sample data.
func (t *templates) check() error {
	for _, p := range t.purposes {
		m := sampleCode(p)
		if _, err := t.render(m); err != nil {
			return err
		}
	}
	for _, typ := range noticeTypes {
		for _, factor := range []string{"", twofa.FactorTOTP, twofa.FactorEmail, twofa.FactorBackupCode} {
			if _, err := t.render(sampleNotice(typ, factor)); err != nil {
				return err
			}
		}
	}
	return nil
}

func sampleCode(purpose string) *twofa.Outgoing {
	return &twofa.Outgoing{
		Message: &twofa.Message{ID: "msg_sample", Tenant: "acme", User: "alice", Channel: twofa.ChannelEmail,
			Kind: twofa.KindCode, CreatedAt: sampleTime},
		Body:   twofa.MessageBody{To: "alice@example.com", Code: "12345678", CodeExpires: sampleTime.Add(10 * time.Minute), Purpose: purpose},
		Issuer: "ACME",
	}
}

func sampleNotice(typ twofa.EventType, factor string) *twofa.Outgoing {
	return &twofa.Outgoing{
		Message: &twofa.Message{ID: "msg_sample", Tenant: "acme", User: "alice", Channel: twofa.ChannelEmail,
			Kind: twofa.KindNotice, CreatedAt: sampleTime},
		Body: twofa.MessageBody{To: "alice@example.com", Event: &twofa.NoticeEvent{
			ID: "msg_sample", Type: typ, Time: sampleTime, Tenant: "acme", User: "alice", Factor: factor,
			IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
		}},
		Issuer: "ACME",
	}
}

// render renders a message. Its errors are the operator's to fix, never
// the message's: they name the template, not the data.
func (t *templates) render(m *twofa.Outgoing) (*rendered, error) {
	issuer := m.Issuer
	if issuer == "" {
		issuer = twofa.DefaultPolicy().Issuer
	}
	switch m.Kind {
	case twofa.KindCode:
		b := m.Body
		if b.Code == "" {
			return nil, errors.New("smtp: a code message without a code")
		}
		if !slices.Contains(t.purposes, b.Purpose) {
			return nil, fmt.Errorf("smtp: no template for codes for %q (there are: %s)", b.Purpose, strings.Join(t.purposes, ", "))
		}
		if m.CreatedAt.IsZero() || !b.CodeExpires.After(m.CreatedAt) {
			return nil, errors.New("smtp: a code message without its creation time and a later expiry")
		}
		d := &codeData{Issuer: issuer, Purpose: b.Purpose, Code: b.Code, Expires: formatTime(b.CodeExpires),
			ValidFor: formatDuration(b.CodeExpires.Sub(m.CreatedAt))}
		return t.execute("code_"+b.Purpose, d, &d.Subject)
	case twofa.KindNotice:
		e := m.Body.Event
		if e == nil {
			return nil, errors.New("smtp: a notice without its event")
		}
		d := &noticeData{Issuer: issuer, Type: string(e.Type), Factor: e.Factor, Time: formatTime(e.Time),
			IP: clean(e.IP, 64), UserAgent: clean(e.UserAgent, 200)}
		var err error
		if d.Method, err = t.words("method:"+e.Factor, "", d); err != nil {
			return nil, err
		}
		for _, w := range []struct {
			prefix string
			dst    *string
		}{{"title:", &d.Title}, {"what:", &d.What}, {"ifyou:", &d.IfYou}, {"ifnotyou:", &d.IfNotYou}} {
			if *w.dst, err = t.words(w.prefix+string(e.Type), w.prefix+"default", d); err != nil {
				return nil, err
			}
		}
		return t.execute("notice", d, &d.Subject)
	default:
		return nil, fmt.Errorf("smtp: no template for %q messages", m.Kind)
	}
}

// words renders the named template of notice_events.txt, or fallback if
// there is no such template; with no fallback either, it is empty.
func (t *templates) words(name, fallback string, d *noticeData) (string, error) {
	tt := t.text.Lookup(name)
	if tt == nil && fallback != "" {
		name, tt = fallback, t.text.Lookup(fallback)
	}
	if tt == nil {
		return "", nil
	}
	var b strings.Builder
	if err := tt.Execute(&b, d); err != nil {
		return "", fmt.Errorf("smtp: template %q of notice_events.txt (%s): %w", name, t.source["notice_events.txt"], err)
	}
	return oneLine(b.String()), nil
}

// execute renders base.subject.txt, then (with the subject in *subject)
// base.txt and base.html.
func (t *templates) execute(base string, data any, subject *string) (*rendered, error) {
	var r rendered
	var b bytes.Buffer
	run := func(name string, exec func() error) error {
		b.Reset()
		if err := exec(); err != nil {
			return fmt.Errorf("smtp: template %s (%s): %w", name, t.source[name], err)
		}
		return nil
	}
	name := base + ".subject.txt"
	if err := run(name, func() error { return t.text.ExecuteTemplate(&b, name, data) }); err != nil {
		return nil, err
	}
	r.Subject = oneLine(b.String())
	if r.Subject == "" {
		return nil, fmt.Errorf("smtp: template %s (%s) renders an empty subject", name, t.source[name])
	}
	*subject = r.Subject
	name = base + ".txt"
	if err := run(name, func() error { return t.text.ExecuteTemplate(&b, name, data) }); err != nil {
		return nil, err
	}
	r.Text = strings.TrimSpace(b.String()) + "\n"
	name = base + ".html"
	if err := run(name, func() error { return t.html.ExecuteTemplate(&b, name, data) }); err != nil {
		return nil, err
	}
	r.HTML = strings.TrimSpace(b.String()) + "\n"
	return &r, nil
}

// formatTime is a time as the messages show it: in UTC, as the reader's
// zone is unknown.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format("15:04 UTC on Monday, 2 January 2006")
}

// formatDuration is how long a code lasts, in words.
func formatDuration(d time.Duration) string {
	switch m := int((d + 30*time.Second) / time.Minute); {
	case d < time.Minute:
		return fmt.Sprintf("%d seconds", int(d/time.Second))
	case m == 1:
		return "1 minute"
	case m < 120:
		return fmt.Sprintf("%d minutes", m)
	default:
		return fmt.Sprintf("%d hours", m/60)
	}
}

// oneLine joins the words of s with single spaces, for a subject header
// or a sentence: no line break can reach a header.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// clean keeps an end user's IP or user agent, as the calling application
// reports it, to one line of printable characters and at most max runes.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	s = oneLine(s)
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	return s
}

// capitalize makes the first letter of s a capital.
func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// wrap breaks s into lines of at most width columns, at spaces.
func wrap(width int, s string) string {
	var b strings.Builder
	col := 0
	for i, w := range strings.Fields(s) {
		n := utf8.RuneCountInString(w)
		if i > 0 {
			if col+1+n > width {
				b.WriteByte('\n')
				col = 0
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += n
	}
	return b.String()
}
