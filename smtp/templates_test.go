package smtp

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa"
)

var update = flag.Bool("update", false, "rewrite the golden files of rendered templates")

// goldenCases are every template rendered with fixed data.
func goldenCases() map[string]*twofa.Outgoing {
	cases := map[string]*twofa.Outgoing{
		"code_sign_in":       sampleCode(twofa.PurposeSignIn),
		"code_confirm_email": sampleCode(twofa.PurposeConfirm),
	}
	for _, typ := range noticeTypes {
		cases["notice_"+string(typ)] = sampleNotice(typ, twofa.FactorTOTP)
	}
	cases["notice_enrollment_confirmed_email"] = sampleNotice(twofa.EventEnrollConfirmed, twofa.FactorEmail)
	cases["notice_device_revoked_email"] = sampleNotice(twofa.EventDeviceRevoked, twofa.FactorEmail)
	cases["notice_device_revoked_unknown_factor"] = sampleNotice(twofa.EventDeviceRevoked, "")
	cases["notice_other_event"] = sampleNotice("some_new_event", "")
	bare := sampleNotice(twofa.EventLocked, "")
	bare.Body.Event.IP, bare.Body.Event.UserAgent = "", ""
	cases["notice_without_ip_or_agent"] = bare
	return cases
}

func golden(r *rendered) string {
	return "Subject: " + r.Subject + "\n\n----- text/plain -----\n" + r.Text + "----- text/html -----\n" + r.HTML
}

func mustLoad(t *testing.T, dir string) *templates {
	t.Helper()
	tt, err := loadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func TestTemplates_Golden(t *testing.T) {
	tt := mustLoad(t, "")
	for name, m := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			r, err := tt.render(m)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", name+".golden")
			got := golden(r)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./smtp -run TestTemplates_Golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from %s (run with -update if the change is meant):\ngot:\n%s", name, path, got)
			}
		})
	}
}

// TestTemplates_EveryNoticeHasItsWords: a notice of each event it is sent
// for says what happened in its own words, not the catch-all's.
func TestTemplates_EveryNoticeHasItsWords(t *testing.T) {
	tt := mustLoad(t, "")
	def, err := tt.render(sampleNotice("some_new_event", ""))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]twofa.EventType{}
	for _, typ := range noticeTypes {
		r, err := tt.render(sampleNotice(typ, ""))
		if err != nil {
			t.Fatal(err)
		}
		if r.Subject == def.Subject {
			t.Errorf("%s: subject %q is the catch-all's", typ, r.Subject)
		}
		if other, ok := seen[r.Subject]; ok {
			t.Errorf("%s and %s have the same subject %q", typ, other, r.Subject)
		}
		seen[r.Subject] = typ
		for _, want := range []string{"15:04 UTC on Friday, 2 January 2026", "203.0.113.7", "Firefox/140.0", "If this was not you"} {
			if !strings.Contains(r.Text, want) || !strings.Contains(r.HTML, want) {
				t.Errorf("%s: a part lacks %q", typ, want)
			}
		}
	}
}

// TestTemplates_CodeInBothParts: the code is in the text and the HTML,
// with its expiry and the issuer, and never in the subject, which lock
// screens and relays' logs show.
func TestTemplates_CodeInBothParts(t *testing.T) {
	tt := mustLoad(t, "")
	for _, p := range []string{twofa.PurposeSignIn, twofa.PurposeConfirm} {
		m := sampleCode(p)
		m.Body.Code, m.Issuer = "90817263", "Example & Co"
		r, err := tt.render(m)
		if err != nil {
			t.Fatal(err)
		}
		for part, body := range map[string]string{"text": r.Text, "html": r.HTML} {
			for _, want := range []string{"90817263", "10 minutes", "15:14 UTC on Friday, 2 January 2026", "share this code"} {
				if !strings.Contains(body, want) {
					t.Errorf("%s %s part lacks %q:\n%s", p, part, want, body)
				}
			}
		}
		if !strings.Contains(r.Text, "Example & Co") || !strings.Contains(r.HTML, "Example &amp; Co") {
			t.Errorf("%s: the issuer is not in both parts, escaped in HTML", p)
		}
		if strings.Contains(r.Subject, "90817263") {
			t.Errorf("%s: subject %q holds the code", p, r.Subject)
		}
		if i, j := strings.Index(r.Text, "90817263"), strings.Index(r.Text, "valid for"); i > j {
			t.Errorf("%s: the code comes after its validity in the text part", p)
		}
	}
}

// TestTemplates_NoLeak: the templates see the words meant for the reader,
// never the raw body: no tenant, user ID, device ID, actor, detail,
// reason, message ID or address reaches a message.
func TestTemplates_NoLeak(t *testing.T) {
	tt := mustLoad(t, "")
	secrets := []string{"TENANTLEAK", "USERLEAK", "DEVICELEAK", "ACTORLEAK", "DETAILLEAK", "REASONLEAK", "MSGIDLEAK", "to-leak@example.com"}
	for name, m := range goldenCases() {
		m.ID, m.Tenant, m.User = "MSGIDLEAK", "TENANTLEAK", "USERLEAK"
		m.Body.To = "to-leak@example.com"
		if e := m.Body.Event; e != nil {
			e.ID, e.Tenant, e.User, e.Device, e.Actor, e.Detail, e.Reason = "MSGIDLEAK", "TENANTLEAK", "USERLEAK", "DEVICELEAK", "ACTORLEAK", "DETAILLEAK", "REASONLEAK"
		}
		r, err := tt.render(m)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(m.Body)
		all := golden(r)
		for _, s := range append(secrets, string(raw), fmt.Sprintf("%v", m.Body), fmt.Sprintf("%+v", m.Body)) {
			if strings.Contains(all, s) {
				t.Errorf("%s: the message holds %q", name, s)
			}
		}
	}
}

// TestTemplates_Accessible: plain HTML that stands without CSS or the
// network, with its language, and no notice that says to ignore it.
func TestTemplates_Accessible(t *testing.T) {
	tt := mustLoad(t, "")
	remote := regexp.MustCompile(`(?i)<img|<script|<link|<iframe|<object|\bsrc=|url\(|@import|https?:`)
	for name, m := range goldenCases() {
		r, err := tt.render(m)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.HTML, `<html lang="en">`) {
			t.Errorf("%s: no lang attribute", name)
		}
		if !strings.Contains(r.HTML, "<title>"+strings.ReplaceAll(r.Subject, "&", "&amp;")+"</title>") {
			t.Errorf("%s: the title is not the subject", name)
		}
		if loc := remote.FindString(r.HTML); loc != "" {
			t.Errorf("%s: the HTML has %q", name, loc)
		}
		for _, bad := range []string{"ignore this", "ignore the", "safely ignore"} {
			if strings.Contains(strings.ToLower(r.Text+r.HTML), bad) {
				t.Errorf("%s: says %q", name, bad)
			}
		}
		if strings.Contains(r.Text, "&amp;") || strings.Contains(r.Text, "&#") {
			t.Errorf("%s: the text part is HTML-escaped", name)
		}
		for i, line := range strings.Split(r.Text, "\n") {
			if len([]rune(line)) > 78 {
				t.Errorf("%s: text line %d is %d wide: %q", name, i+1, len([]rune(line)), line)
			}
		}
	}
}

// TestTemplates_UserAgentKeptToALine: what an application reports as the
// end user's agent cannot add lines or headers to a notice.
func TestTemplates_UserAgentKeptToALine(t *testing.T) {
	tt := mustLoad(t, "")
	m := sampleNotice(twofa.EventLocked, "")
	m.Body.Event.UserAgent = "Evil\r\nBcc: x@example.com\n\nCall +1 555 0100 " + strings.Repeat("x", 500)
	m.Body.Event.IP = "203.0.113.7\nextra"
	r, err := tt.render(m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.Text, "\nBcc:") || strings.Contains(r.Text, "\nextra") {
		t.Errorf("a line break from the user agent or IP reached the text:\n%s", r.Text)
	}
	if strings.Contains(r.Text, strings.Repeat("x", 200)) {
		t.Errorf("the user agent was not shortened")
	}
}

func TestTemplates_RenderErrors(t *testing.T) {
	tt := mustLoad(t, "")
	noPurpose := sampleCode("recovery")
	noCode := sampleCode(twofa.PurposeSignIn)
	noCode.Body.Code = ""
	noExpiry := sampleCode(twofa.PurposeSignIn)
	noExpiry.Body.CodeExpires = time.Time{}
	noEvent := sampleNotice(twofa.EventLocked, "")
	noEvent.Body.Event = nil
	event := sampleNotice(twofa.EventLocked, "")
	event.Kind = twofa.KindEvent
	for name, m := range map[string]*twofa.Outgoing{
		"unknown purpose": noPurpose, "no code": noCode, "no expiry": noExpiry, "no event": noEvent, "webhook kind": event,
	} {
		if r, err := tt.render(m); err == nil {
			t.Errorf("%s: got %q, want an error", name, r.Subject)
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, s := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadTemplates_Override(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"code_sign_in.subject.txt": "{{.Code}} est votre code {{.Issuer}}",
		"notice.html":              `<!DOCTYPE html><html lang="fr"><title>{{.Subject}}</title><p>{{.What}}</p></html>`,
	})
	tt := mustLoad(t, dir)
	r, err := tt.render(sampleCode(twofa.PurposeSignIn))
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "12345678 est votre code ACME" {
		t.Errorf("subject %q, want the override's", r.Subject)
	}
	if !strings.Contains(r.Text, "Your ACME sign-in code") {
		t.Errorf("the text part is not the default:\n%s", r.Text)
	}
	n, err := tt.render(sampleNotice(twofa.EventLocked, ""))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(n.HTML, `<!DOCTYPE html><html lang="fr">`) || !strings.Contains(n.Text, "When:") {
		t.Errorf("notice: html %q, text %q: want the override's HTML and the default text", n.HTML, n.Text)
	}
}

func TestLoadTemplates_Errors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // in the error
	}{
		{"does not parse", map[string]string{"notice.txt": "{{.Title"}, []string{"notice.txt", "does not parse"}},
		{"html does not parse", map[string]string{"code_sign_in.html": "<p>{{if .Code}}</p>"}, []string{"code_sign_in.html", "does not parse"}},
		{"unknown field", map[string]string{"code_confirm_email.txt": "{{.Nope}}"}, []string{"code_confirm_email.txt", "Nope"}},
		{"unknown function", map[string]string{"notice.subject.txt": "{{shout .Title}}"}, []string{"notice.subject.txt", "shout"}},
		{"empty subject", map[string]string{"notice.subject.txt": "  {{/* nothing */}} "}, []string{"notice.subject.txt", "empty subject"}},
		{"misspelt name", map[string]string{"code_signin.txt": "{{.Code}}"}, []string{"code_signin.txt", "replaces no template"}},
		{"events without defaults", map[string]string{"notice_events.txt": `{{define "title:user_locked"}}locked{{end}}`}, []string{"notice_events.txt", "title:default"}},
		{"events that fail", map[string]string{"notice_events.txt": `{{define "title:default"}}{{.Nope}}{{end}}{{define "what:default"}}{{end}}{{define "ifyou:default"}}{{end}}{{define "ifnotyou:default"}}{{end}}`}, []string{"notice_events.txt", "Nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			_, err := loadTemplates(dir)
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to name %q", err, w)
				}
			}
		})
	}
	t.Run("no directory", func(t *testing.T) {
		if _, err := loadTemplates(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Error("got no error for a directory that does not exist")
		}
	})
}

func TestWrap(t *testing.T) {
	tests := []struct {
		width int
		in    string
		want  string
	}{
		{10, "", ""},
		{10, "one two three four", "one two\nthree four"},
		{5, "abcdefgh ij", "abcdefgh\nij"},
		{72, "  spaced\n\tout  ", "spaced out"},
	}
	for _, tt := range tests {
		if got := wrap(tt.width, tt.in); got != tt.want {
			t.Errorf("wrap(%d, %q) = %q, want %q", tt.width, tt.in, got, tt.want)
		}
	}
}
