package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twofa/twofa/otp"
)

// importLines are the lines of an import file that TestRun_Admin imports
// more than once.
const importLines = "dave otpauth://totp/Old:dave?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Old\n" +
	"erin,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA,SHA256,8,30,Token\n"

// TestRun_Admin drives the administration commands against one data
// directory, as an operator would, with no server running.
func TestRun_Admin(t *testing.T) {
	dir := t.TempDir()
	data := func(args ...string) []string { return append(args, "--data", dir) }

	// enroll: a terminal QR code, then a code typed on stdin.
	secretRe := regexp.MustCompile(`(?m)^  ((?:[A-Z2-7]{4} ?){8})$`)
	out, errOut, status := runCLI(t, "000000\n", data("enroll", "--tenant", "acme", "--name", "Laptop", "carol")...)
	if status == 0 || !strings.Contains(out, "not right") {
		t.Fatalf("enroll with a wrong code: status %d, %q %q", status, out, errOut)
	}
	// A second try, with the right code this time: read the secret shown.
	out, errOut, status = runCLIWithCode(t, data("enroll", "--tenant", "acme", "--name", "Laptop", "carol"), secretRe)
	if status != 0 || !strings.Contains(out, "Enrolled device") || strings.Count(out, "\n  ") < 10 {
		t.Fatalf("enroll: status %d, %q %q", status, out, errOut)
	}
	if !strings.Contains(out, "█") {
		t.Error("enroll drew no QR code")
	}

	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantOut    string
		wantStatus int
	}{
		{"UsersShow", data("users", "show", "--tenant", "acme", "carol"), "", "enrolled true, 10 backup codes left", 0},
		{"UsersShowUnknown", data("users", "show", "--tenant", "acme", "nobody"), "", "enrolled false", 0},
		{"UsersShowNoUser", data("users", "show"), "", "", 2},
		{"UsersUnlock", data("users", "unlock", "--tenant", "acme", "carol"), "", "unlocked acme/carol", 0},
		{"KeysStatus", data("keys", "status"), "", "active key 1: ", 0},
		{"KeysRotateNothingToDo", data("keys", "rotate"), "", "re-sealed 0 values", 0},
		{"KeysGenerate", []string{"keys", "generate"}, "", "=", 0},
		{"AuditVerify", data("audit", "verify"), "", "checked since the last check", 0},
		{"AuditVerifyFull", data("audit", "verify", "--full"), "", "checked from the beginning", 0},
		{"AuditTail", data("audit", "tail", "-n", "3"), "", "SEQ", 0},
		{"Migrate", data("migrate"), "", "up to date", 0},
		{"APIKeyList", data("apikey", "list"), "", "ID", 0},
		{"APIKeyRevokeUnknown", data("apikey", "revoke", "key_nope"), "", "", 1},
		{"ImportURIs", data("import", "--tenant", "acme", "-"), importLines, "imported 2 devices, skipped 0 already there, 0 lines failed", 0},
		// Run again, the import changes nothing: every line is skipped.
		{"ImportAgain", data("import", "--tenant", "acme", "-"), importLines, "line 2: skipped: the user already has this secret, in device dev_", 0},
		{"ImportAgainSummary", data("import", "--tenant", "acme", "-"), importLines, "imported 0 devices, skipped 2 already there, 0 lines failed", 0},
		{"ImportOneNew", data("import", "--tenant", "acme", "-"),
			importLines + "dave,JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n", "imported 1 devices, skipped 2 already there, 0 lines failed", 0},
		{"ImportBad", data("import", "--tenant", "acme", "-"),
			"frank,JBSWY3DPEHPK3PXP\ngina,not-base32!\nhank otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=1\n", "imported 0 devices, skipped 0 already there, 3 lines failed", 1},
		{"UsersDisable", data("users", "disable", "--tenant", "acme", "dave"), "", "2FA disabled for acme/dave", 0},
		{"UnknownSubcommand", data("users", "frobnicate"), "", "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, status := runCLI(t, tt.stdin, tt.args...)
			if status != tt.wantStatus || !strings.Contains(out, tt.wantOut) {
				t.Errorf("status %d, stdout %q, stderr %q; want %d and %q", status, out, errOut, tt.wantStatus, tt.wantOut)
			}
			if strings.Contains(out+errOut, "GEZDGNBVGY3TQOJQ") {
				t.Error("output holds an imported secret")
			}
		})
	}

	// audit verify prints the heads to record; given back, they verify,
	// and heads the log never reached do not.
	out, _, _ = runCLI(t, "", data("audit", "verify")...)
	m := regexp.MustCompile(`(?m)^heads (0:\d+:[0-9a-f]{64})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("audit verify printed no heads: %q", out)
	}
	if out, errOut, status := runCLI(t, "", data("audit", "verify", "--heads", m[1])...); status != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Errorf("audit verify --heads %s: status %d, %q %q", m[1], status, out, errOut)
	}
	ahead := "0:999999:" + strings.Repeat("ab", 32)
	if out, _, status := runCLI(t, "", data("audit", "verify", "--heads", ahead)...); status != 1 || !strings.Contains(out, "truncated") {
		t.Errorf("audit verify --heads %s: status %d, %q; want 1 and a truncated chain", ahead, status, out)
	}
	if _, errOut, status := runCLI(t, "", data("audit", "verify", "--heads", "0:1")...); status != 2 || !strings.Contains(errOut, "--heads") {
		t.Errorf("audit verify --heads 0:1: status %d, %q; want a usage error", status, errOut)
	}

	// An imported secret verifies through the real service.
	out, _, _ = runCLI(t, "", data("users", "show", "--tenant", "acme", "erin")...)
	if !strings.Contains(out, "SHA256/8/30s") {
		t.Errorf("imported device parameters: %q", out)
	}
	// Imported three times, added once.
	if n := len(regexp.MustCompile(`(?m)^dev_`).FindAllString(out, -1)); n != 1 {
		t.Errorf("erin has %d devices after importing her line three times, want 1:\n%s", n, out)
	}

	// Rotation: add key 2 in front, rotate, then retire key 1.
	oldKey, err := os.ReadFile(filepath.Join(dir, devKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	newKey, _, _ := runCLI(t, "", "keys", "generate")
	ring := "2:" + strings.TrimSpace(newKey) + "," + strings.TrimSpace(string(oldKey))
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte(ring), 0o600); err != nil {
		t.Fatal(err)
	}
	withKeys := func(args ...string) []string { return append(data(args...), "--master-key-file", keyFile) }
	_, errOut, status = runCLI(t, "", withKeys("keys", "rotate")...)
	// A progress bar on stderr ending at 100 %: two TOTP devices, one
	// imported SHA256 device, and three settings.
	if status != 0 || !strings.Contains(errOut, "100%") {
		t.Fatalf("rotate: status %d, stderr %q", status, errOut)
	}
	if out, _, _ := runCLI(t, "", withKeys("keys", "status")...); !strings.Contains(out, "active key 2: ") || !strings.Contains(out, ", 0 under older keys") {
		t.Errorf("after rotation: %q", out)
	}
	onlyNew := filepath.Join(t.TempDir(), "new")
	os.WriteFile(onlyNew, []byte("2:"+strings.TrimSpace(newKey)), 0o600)
	if out, errOut, status := runCLI(t, "", data("users", "show", "--tenant", "acme", "carol", "--master-key-file", onlyNew)...); status != 0 {
		t.Errorf("with the old key retired: status %d %q %q", status, out, errOut)
	}
	// A key file others can read is refused.
	os.Chmod(onlyNew, 0o644)
	if _, errOut, status := runCLI(t, "", data("keys", "status", "--master-key-file", onlyNew)...); status == 0 || !strings.Contains(errOut, "0644") && !strings.Contains(errOut, "permission") && !strings.Contains(errOut, "mode") {
		t.Errorf("world-readable key file: status %d %q", status, errOut)
	}
}

// runCLIWithCode runs an interactive enroll, answering its prompt with the
// code for the secret it prints.
func runCLIWithCode(t *testing.T, args []string, secretRe *regexp.Regexp) (string, string, int) {
	t.Helper()
	r := &codeReader{t: t, secretRe: secretRe}
	var out strings.Builder
	r.out = &out
	stdout, errOut, status := runCLIio(t, r, &out, args...)
	return stdout, errOut, status
}

// codeReader is stdin for enroll: it reads the secret from what enroll
// has printed so far and answers with the current code.
type codeReader struct {
	t        *testing.T
	secretRe *regexp.Regexp
	out      *strings.Builder
	done     bool
}

func (c *codeReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, os.ErrClosed
	}
	m := c.secretRe.FindStringSubmatch(c.out.String())
	if m == nil {
		c.t.Fatalf("enroll printed no secret before asking for a code: %q", c.out.String())
	}
	secret, err := otp.DecodeSecret(m[1])
	if err != nil {
		c.t.Fatal(err)
	}
	k, _ := otp.NewKey(secret, otp.Params{})
	c.done = true
	return copy(p, k.TOTP(time.Now())+"\n"), nil
}

// runCLIio is runCLI with a given stdin and stdout.
func runCLIio(t *testing.T, stdin io.Reader, stdout *strings.Builder, args ...string) (string, string, int) {
	t.Helper()
	var errb strings.Builder
	err := run(context.Background(), append([]string{"twofa"}, args...), func(string) string { return "" }, stdin, stdout, &errb)
	code := 0
	if err != nil {
		code = exitCode(err)
		errb.WriteString(err.Error())
	}
	return stdout.String(), errb.String(), code
}
