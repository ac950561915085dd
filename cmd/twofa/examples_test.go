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

	"github.com/twofa/twofa/internal/testenv"
)

// base32Run is what a printed TOTP secret would look like: 20 random bytes
// are 32 base32 characters.
var base32Run = regexp.MustCompile(`[A-Z2-7]{32}`)

// TestExamples runs each program in examples/ against a real server: each
// enrolls its own user, confirms, verifies, sees a replay and a malformed
// code refused, and must exit 0 without ever printing the secret.
func TestExamples(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	key := createKey(t, dir, "examples", false)
	examples := filepath.Join("..", "..", "examples")

	cases := []struct {
		name, user string
		cmd        func(t *testing.T) []string
	}{
		{"python", "example-python", func(t *testing.T) []string {
			return []string{testenv.LookPath(t, "python3"), filepath.Join(examples, "python", "twofa_example.py")}
		}},
		{"javascript", "example-javascript", func(t *testing.T) []string {
			return []string{testenv.LookPath(t, "node"), filepath.Join(examples, "javascript", "twofa_example.mjs")}
		}},
		{"java", "example java", func(t *testing.T) []string {
			// Java 11+ runs a single source file directly, with no javac step.
			return []string{testenv.LookPath(t, "java"), "-XX:TieredStopAtLevel=1", filepath.Join(examples, "java", "TwofaExample.java")}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			argv := c.cmd(t)
			// A guard against a hung program, not a speed limit: on two
			// busy CPUs the Java example alone takes 10 s.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), "TWOFA_URL="+srv.url, "TWOFA_API_KEY="+key, "TWOFA_USER="+c.user)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			out := stdout.String()
			t.Logf("%s took %v:\n%s", c.name, time.Since(start).Round(time.Millisecond), out)
			if err != nil {
				t.Fatalf("%v: %v\nstderr:\n%s", argv, err, stderr.String())
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
			if !strings.HasSuffix(out, "OK\n") {
				t.Errorf("output does not end with OK")
			}
			if m := base32Run.FindString(out + stderr.String()); m != "" {
				t.Errorf("output holds a base32 run that may be the secret: %q", m)
			}
		})
	}
}
