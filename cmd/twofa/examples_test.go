package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa/internal/mailpit"
	"github.com/twofa/twofa/internal/testenv"
)

// base32Run is what a printed TOTP secret would look like: 20 random bytes
// are 32 base32 characters.
var base32Run = regexp.MustCompile(`[A-Z2-7]{32}`)

// emailLines are what each example prints of its email part, with
// Mailpit to read the codes from.
var emailLines = []string{
	"7. POST /v1/users/",
	"(pending); a code was sent (challenge chl_",
	"8. confirm the address with the code from the email: valid (factor email)",
	"(sign_in), 8-digit code sent, resend after ",
	"10. resend after waiting ",
	"another code sent, next resend after ",
	"11. verify a wrong code: refused, reason 'invalid_code'; challenge pending, 4 attempts left",
	"12. verify the code from the newest email: valid (factor email)",
}

// eightDigits is what an emailed code looks like.
var eightDigits = regexp.MustCompile(`(?m)^\s*(\d{8})\s*$`)

// TestExamples runs each program in examples/ against a real server that
// sends its mail to Mailpit: each enrolls its own user, confirms,
// verifies, sees a replay and a malformed code refused; adds an email
// address, confirms it and signs in by email with the codes it reads
// from Mailpit, resending once and seeing a wrong code refused; and must
// exit 0 without ever printing the secret or a code.
func TestExamples(t *testing.T) {
	mp := mailpit.Start(t, mailpit.Options{})
	dir := t.TempDir()
	srv := startServer(t, dir, "--smtp-url", "smtp://"+mp.SMTPAddr()+"?tls=none", "--mail-from", "Examples <twofa@example.test>")
	key := createKey(t, dir, "examples", false)
	// And a server with no SMTP server, where email is unavailable.
	plainDir := t.TempDir()
	plain := startServer(t, plainDir)
	plainKey := createKey(t, plainDir, "examples", false)
	examples := filepath.Join("..", "..", "examples")

	cases := []struct {
		name, user string
		tool       string
		args       []string
		mailpit    bool // read the codes from Mailpit
		noSMTP     bool // on the server without email
	}{
		{"python", "example-python", "python3", []string{filepath.Join(examples, "python", "twofa_example.py")}, true, false},
		// Without Mailpit, as in real life: the email part stops once a
		// code is sent, for the user to type.
		{"python-no-mailpit", "example-python-2", "python3", []string{filepath.Join(examples, "python", "twofa_example.py")}, false, false},
		{"python-no-smtp", "example-python-3", "python3", []string{filepath.Join(examples, "python", "twofa_example.py")}, false, true},
		{"javascript", "example-javascript", "node", []string{filepath.Join(examples, "javascript", "twofa_example.mjs")}, true, false},
		// Java 11+ runs a single source file directly, with no javac step.
		{"java", "example java", "java", []string{"-XX:TieredStopAtLevel=1", filepath.Join(examples, "java", "TwofaExample.java")}, true, false},
		{"javascript-no-smtp", "example-javascript-2", "node", []string{filepath.Join(examples, "javascript", "twofa_example.mjs")}, false, true},
		{"java-no-smtp", "example java 2", "java", []string{"-XX:TieredStopAtLevel=1", filepath.Join(examples, "java", "TwofaExample.java")}, false, true},
	}
	// The programs run at once, not as parallel subtests, which go test
	// runs only as many at a time as there are CPUs: each spends most of
	// its time waiting 30 s before it asks for another code.
	type result struct {
		argv           []string
		stdout, stderr bytes.Buffer
		err            error
		took           time.Duration
		done           chan struct{}
	}
	results := make([]*result, len(cases))
	for i, c := range cases {
		path, err := exec.LookPath(c.tool)
		if err != nil {
			continue // the subtest skips, or fails under TWOFA_TEST_REQUIRE_ALL=1
		}
		r := &result{argv: append([]string{path}, c.args...), done: make(chan struct{})}
		results[i] = r
		// A guard against a hung program, not a speed limit: on two busy
		// CPUs the Java example alone takes 10 s before its 30 s wait.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, r.argv[0], r.argv[1:]...)
		url, key := srv.url, key
		if c.noSMTP {
			url, key = plain.url, plainKey
		}
		cmd.Env = append(os.Environ(), "TWOFA_URL="+url, "TWOFA_API_KEY="+key, "TWOFA_USER="+c.user, "TWOFA_EXAMPLE_MAILPIT=")
		if c.mailpit {
			cmd.Env = append(cmd.Env, "TWOFA_EXAMPLE_MAILPIT="+mp.API)
		}
		cmd.Stdout, cmd.Stderr = &r.stdout, &r.stderr
		go func() {
			defer close(r.done)
			defer cancel()
			start := time.Now()
			r.err = cmd.Run()
			r.took = time.Since(start)
		}()
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := results[i]
			if r == nil {
				testenv.LookPath(t, c.tool)
				return
			}
			<-r.done
			out := r.stdout.String()
			t.Logf("%s took %v:\n%s", c.name, r.took.Round(time.Millisecond), out)
			if r.err != nil {
				t.Fatalf("%v: %v\nstderr:\n%s", r.argv, r.err, r.stderr.String())
			}
			for _, want := range []string{
				"secret=REDACTED",
				"qr_png",
				"10 backup codes received",
				"verify current code: valid",
				"reason 'replayed'",
				"HTTP 400",
				`"malformed_code"`,
				"6. GET /v1/users/",
				`"enrolled"`,
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			want := []string{"a code was sent (challenge chl_", "Set TWOFA_EXAMPLE_MAILPIT to read it from Mailpit"}
			switch {
			case c.mailpit:
				want = emailLines
			case c.noSMTP:
				want = []string{"/email: HTTP 409 factor_unavailable: email is not available on this server"}
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if !strings.HasSuffix(out, "OK\n") {
				t.Errorf("output does not end with OK")
			}
			if m := base32Run.FindString(out + r.stderr.String()); m != "" {
				t.Errorf("output holds a base32 run that may be the secret: %q", m)
			}
			// Every code sent to the example's address stays out of its output.
			address := regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(c.user, "-") + "@example.com"
			sent := mp.Search(t, "to:"+address)
			if c.mailpit && len(sent) < 4 {
				t.Errorf("%d emails to %s, want at least 4 (confirmation, notice, code, another code)", len(sent), address)
			}
			for _, m := range sent {
				for _, code := range eightDigits.FindAllStringSubmatch(mp.Message(t, m.ID).Text, -1) {
					if strings.Contains(out+r.stderr.String(), code[1]) {
						t.Errorf("output holds the code %s emailed to %s", code[1], address)
					}
				}
			}
		})
	}
}
