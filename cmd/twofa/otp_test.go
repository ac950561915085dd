package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const rfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

// runCLI runs the program as main would and returns its output and exit status.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(string) string { return "" }
	err := run(context.Background(), append([]string{"twofa"}, args...), getenv, strings.NewReader(stdin), &out, &errb)
	if err != nil {
		code = exitCode(err)
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

func TestRun_OTP(t *testing.T) {
	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantOut    string // exact stdout, or "" to skip
		wantErr    string // substring of stderr
		wantStatus int
	}{
		{"CodeRFC", "", []string{"otp", "code", "--secret", rfcSecret, "--time", "59", "--digits", "8"}, "94287082\n", "", 0},
		{"CodeAtSign", "", []string{"otp", "code", "--secret", rfcSecret, "--time", "@1111111109"}, "081804\n", "", 0},
		{"CodeSHA256", "", []string{"otp", "code", "--secret", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA", "--time", "59", "--digits", "8", "--algorithm", "sha256"}, "46119246\n", "", 0},
		{"CodeHOTP", "", []string{"otp", "code", "--secret", rfcSecret, "--counter", "3"}, "969429\n", "", 0},
		{"CodeSecretFromStdin", rfcSecret + "\n", []string{"otp", "code", "--secret", "-", "--time", "59"}, "287082\n", "", 0},
		{"CodeNoSecret", "", []string{"otp", "code"}, "", "--secret is required", 2},
		{"CodeBadSecret", "", []string{"otp", "code", "--secret", "ABC1DEFG"}, "", "not valid base32", 1},
		{"CodeShortSecret", "", []string{"otp", "code", "--secret", "JBSWY3DPEHPK3PXP"}, "", "at least 16 bytes", 1},
		{"CodeBadDigits", "", []string{"otp", "code", "--secret", rfcSecret, "--digits", "9"}, "", "-digits: want a whole number from 6 to 8", 2},
		{"CodeBadTime", "", []string{"otp", "code", "--secret", rfcSecret, "--time", "yesterday"}, "", "Unix seconds", 2},
		{"VerifyValid", "", []string{"otp", "verify", "--secret", rfcSecret, "--time", "59", "287082"}, "valid: step 1, offset +0\n", "", 0},
		{"VerifyPrevious", "", []string{"otp", "verify", "--secret", rfcSecret, "--time", "89", "287082"}, "valid: step 1, offset -1\n", "", 0},
		{"VerifyOutsideWindow", "", []string{"otp", "verify", "--secret", rfcSecret, "--time", "89", "--behind", "0", "287082"}, "invalid\n", "", 1},
		{"VerifyWrong", "", []string{"otp", "verify", "--secret", rfcSecret, "--time", "59", "000000"}, "invalid\n", "", 1},
		{"VerifyMalformed", "", []string{"otp", "verify", "--secret", rfcSecret, "12345"}, "", "must be 6 digits, got 5", 2},
		{"VerifyNonASCIIDigits", "", []string{"otp", "verify", "--secret", rfcSecret, "２８７０８２"}, "", "ASCII digits", 2},
		{"VerifyHOTP", "", []string{"otp", "verify", "--secret", rfcSecret, "--counter", "0", "--ahead", "5", "254676"}, "valid: step 5, offset +5\n", "", 0},
		{"VerifyNoCode", "", []string{"otp", "verify", "--secret", rfcSecret}, "", "exactly one argument", 2},
		{"URI", "", []string{"otp", "uri", "--secret", rfcSecret, "--issuer", "ACME Co", "--account", "jane@example.com"},
			"otpauth://totp/ACME%20Co:jane@example.com?secret=" + rfcSecret + "&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30\n", "", 0},
		{"URIWarns", "", []string{"otp", "uri", "--secret", rfcSecret, "--issuer", "X", "--account", "y", "--period", "60"}, "", "warning: period 60", 0},
		{"URIHOTP", "", []string{"otp", "uri", "--secret", rfcSecret, "--issuer", "X", "--account", "y", "--hotp", "--counter", "9"},
			"otpauth://hotp/X:y?secret=" + rfcSecret + "&issuer=X&algorithm=SHA1&digits=6&counter=9\n", "", 0},
		{"URIColon", "", []string{"otp", "uri", "--secret", rfcSecret, "--issuer", "a:b", "--account", "y"}, "", "colon", 1},
		{"QRBadURI", "", []string{"otp", "qr", "--uri", "https://example.com"}, "", "scheme must be otpauth", 1},
		{"QRBadRecovery", "", []string{"otp", "qr", "--uri", "otpauth://totp/a?secret=" + rfcSecret, "--recovery", "Z"}, "", "-recovery: want L, M, Q or H", 2},
		{"Unknown", "", []string{"otp", "nope"}, "", "unknown otp command", 2},
		{"NoCommand", "", []string{}, "", "Commands:", 2},
		{"Help", "", []string{"otp", "code", "--help"}, "", "--secret", 0},
		{"Version", "", []string{"version"}, "twofa dev\n", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, status := runCLI(t, tt.stdin, tt.args...)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d (stderr %q)", status, tt.wantStatus, errOut)
			}
			if tt.wantOut != "" && out != tt.wantOut {
				t.Errorf("stdout %q, want %q", out, tt.wantOut)
			}
			if tt.wantErr != "" && !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", errOut, tt.wantErr)
			}
			if strings.Contains(errOut, rfcSecret) {
				t.Errorf("stderr shows the secret: %q", errOut)
			}
		})
	}
}

func TestRun_OTPSecret(t *testing.T) {
	for args, want := range map[string]int{"": 32, "--algorithm SHA256": 52, "--algorithm sha512": 103, "--bytes 16": 26} {
		out, errOut, status := runCLI(t, "", append([]string{"otp", "secret"}, strings.Fields(args)...)...)
		if status != 0 || len(strings.TrimSpace(out)) != want {
			t.Errorf("%q: got %q (status %d, %s), want %d characters", args, out, status, errOut, want)
		}
	}
	if _, _, status := runCLI(t, "", "otp", "secret", "--bytes", "10"); status == 0 {
		t.Error("--bytes 10: want failure")
	}
}

func TestRun_OTPQR(t *testing.T) {
	dir := t.TempDir()
	pngPath, svgPath := filepath.Join(dir, "k.png"), filepath.Join(dir, "k.svg")
	_, errOut, status := runCLI(t, "", "otp", "qr", "--secret", rfcSecret, "--issuer", "X", "--account", "y", "--png", pngPath, "--svg", svgPath, "--size", "200")
	if status != 0 {
		t.Fatalf("status %d: %s", status, errOut)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() != 200 {
		t.Errorf("PNG: %v, %v; want 200 pixels wide", img.Bounds(), err)
	}
	for _, p := range []string{pngPath, svgPath} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", p, fi.Mode(), err)
		}
	}
	out, _, status := runCLI(t, "", "otp", "qr", "--uri", "otpauth://totp/a?secret="+rfcSecret)
	if status != 0 || !strings.Contains(out, "█") {
		t.Errorf("terminal QR: status %d, output %q", status, out[:min(len(out), 40)])
	}
}
