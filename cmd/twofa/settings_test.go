package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// settingCommands are the commands with flags, and what each needs
// besides to run: flags and arguments. $DIR is a fresh directory of the
// test; a command that opens the database is given $DIR/data, which must
// still not exist after a refused setting.
var settingCommands = map[string]string{
	"serve":              "--addr 127.0.0.1:0 --data $DIR/data",
	"demo":               "--addr 127.0.0.1:0 --demo-addr 127.0.0.1:0 --data $DIR/data",
	"apikey create":      "--name test --data $DIR/data",
	"apikey list":        "--data $DIR/data",
	"apikey revoke":      "key_nope --data $DIR/data",
	"users show":         "alice --data $DIR/data",
	"users unlock":       "alice --data $DIR/data",
	"users disable":      "alice --data $DIR/data",
	"enroll":             "carol --data $DIR/data",
	"import":             "- --data $DIR/data",
	"tenant prompt-key":  "--data $DIR/data",
	"tenant return-urls": "https://app.example.com/2fa --data $DIR/data",
	"keys rotate":        "--data $DIR/data",
	"keys status":        "--data $DIR/data",
	"audit verify":       "--data $DIR/data",
	"audit tail":         "--data $DIR/data",
	"migrate":            "--data $DIR/data",
	"otp code":           "--secret " + rfcSecret,
	"otp verify":         "--secret " + rfcSecret + " 287082",
	"otp uri":            "--secret " + rfcSecret + " --issuer X --account y",
	"otp qr":             "--secret " + rfcSecret + " --issuer X --account y",
	"otp secret":         "",
}

// dbCommands open the database: they share its settings.
var dbCommands = []string{"serve", "apikey create", "apikey list", "apikey revoke", "users show", "users unlock", "users disable",
	"enroll", "import", "tenant prompt-key", "tenant return-urls", "keys rotate", "keys status", "audit verify", "audit tail", "migrate"}

var (
	otpKeyCommands = []string{"otp code", "otp verify", "otp uri", "otp qr"}
	tenantCommands = []string{"apikey create", "apikey list", "users show", "users unlock", "users disable", "enroll", "import", "tenant prompt-key", "tenant return-urls", "audit tail"}
)

func cmds(c ...string) []string { return c }

// settingCases: every setting of every command, one a line, with values
// it must refuse and the accepted form its message gives. env: the
// setting is also read from the environment (envName). A setting that
// takes any text has no bad values, and is listed all the same, so that
// TestSettings_Complete knows it was thought of.
var settingCases = []struct {
	cmds []string
	name string
	env  bool
	bad  []string
	want string
}{
	// Every command that opens the database.
	{dbCommands, "data", true, []string{"", "$DIR/afile"}, "want a directory"},
	{dbCommands, "db", true, []string{"mysql://db.example.com/twofa", "file:twofa.db", ":memory:", "postgres://%zz", "host=db.example.com dbname=twofa"}, "want a postgres:// URL or the path of a SQLite file"},
	{dbCommands, "master-key-file", true, []string{"$DIR/none.key", "$DIR/bad.key"}, "want ID:BASE64"},
	{dbCommands, "master-key-file", true, []string{"$DIR/loose.key"}, "want 0600 or 0400"},
	{dbCommands, "log-level", true, []string{"verbose", "INFO+2", "0"}, "want debug, info, warn or error"},

	// twofa serve.
	{cmds("serve"), "addr", true, []string{"8080", "localhost", ":99999", "[::1"}, "want host:port"},
	{cmds("serve"), "public-url", true, []string{"2fa.example.com", "ftp://2fa.example.com", "https://", "https://2fa.example.com/?a=1", "https://u:p@2fa.example.com", "https://2fa.example.com/#x"}, "want an http:// or https:// URL"},
	{cmds("serve"), "tls-cert", true, []string{"$DIR/cert.pem"}, "want both or neither"},
	{cmds("serve"), "tls-key", true, []string{"$DIR/key.pem"}, "want both or neither"},
	{cmds("serve"), "debug-addr", true, []string{"6060", "localhost"}, "want host:port"},
	{cmds("serve"), "trusted-proxies", true, []string{"garbage", "10.0.0.0/33", "10.0.0.0/8,", "10.0.0.0/8;192.168.0.0/16", "fe80::1%eth0", "::ffff:10.0.0.0/8"}, "want comma-separated CIDR prefixes"},
	{cmds("serve"), "window-behind", true, []string{"abc", "-1", "101", "1.5", "0x1"}, "want a whole number from 0 to 100"},
	{cmds("serve"), "window-ahead", true, []string{"abc", "-1", "101"}, "want a whole number from 0 to 100"},
	{cmds("serve"), "max-drift", true, []string{"abc", "-1", "51"}, "want a whole number from 0 to 50"},
	{cmds("serve"), "max-devices", true, []string{"abc", "0", "101"}, "want a whole number from 1 to 100"},
	{cmds("serve"), "lock-after", true, []string{"abc", "0", "101"}, "want a whole number from 1 to 100"},
	{cmds("serve"), "lock-base", true, []string{"garbage", "30", "-1s", "0s", "500ms"}, "want a duration such as 30s or 15m, at least 1s"},
	{cmds("serve"), "lock-max", true, []string{"garbage", "15", "0s"}, "want a duration such as 30s or 15m, at least 1s"},
	{cmds("serve"), "hard-lock-after", true, []string{"abc", "0", "101"}, "want a whole number from 1 to 100"},
	{cmds("serve"), "enroll-ttl", true, []string{"abc", "10", "30s", "25h"}, "want a duration such as 30s or 15m, from 1m0s to 24h0m0s"},
	{cmds("serve"), "verify-per-ip", true, []string{"abc", "-1", "1e3", "2147483648"}, "want a whole number from 0 to 2147483647"},
	{cmds("serve"), "verify-per-tenant", true, []string{"abc", "-1", "2147483648"}, "want a whole number from 0 to 2147483647"},
	{cmds("serve"), "max-failures-per-day", true, []string{"abc", "-1", "2147483648"}, "want a whole number from 0 to 2147483647"},
	{cmds("serve"), "smtp-url", true, []string{"mail.example.com", "http://mail.example.com", "smtp://", "smtp://mail.example.com:0"}, "want"},
	{cmds("serve"), "smtp-url", true, []string{"smtp://u:pw@mail.example.com"}, "want it apart"},
	{cmds("serve"), "smtp-url", true, []string{"smtp://mail.example.com?tls=maybe"}, "want required, opportunistic or none"},
	{cmds("serve"), "smtp-url", true, []string{"smtp://mail.example.com"}, "is set but --mail-from is not: want"},
	{cmds("serve"), "smtp-password-file", true, []string{"$DIR/none"}, "is set but --smtp-url is not: want"},
	{cmds("serve"), "mail-from", true, []string{"security@acme.example"}, "is set but --smtp-url is not: want"},
	{cmds("serve"), "mail-templates", true, []string{"$DIR"}, "is set but --smtp-url is not: want"},
	{cmds("serve"), "outbox-lease", true, []string{"abc", "10", "1s", "2h"}, "want a duration such as 30s or 15m, from 2s to 1h0m0s"},
	{cmds("serve"), "webhook-allow-private", true, []string{"maybe", "2"}, "want true or false"},
	{cmds("serve"), "issuer", true, []string{"", "ACME:Co", " ACME", "ACME\x01", strings.Repeat("x", 65), "\xff"}, "want 1 to 64 bytes of text"},

	// twofa demo.
	{cmds("demo"), "addr", false, []string{"8080"}, "want host:port"},
	{cmds("demo"), "demo-addr", false, []string{"8081", "[::1"}, "want host:port"},
	{cmds("demo"), "data", false, nil, ""}, // any directory; empty: a temporary one
	{cmds("demo"), "trusted-proxies", false, []string{"garbage", "10.0.0.0/33"}, "want comma-separated CIDR prefixes"},

	// The administration commands.
	{tenantCommands, "tenant", false, nil, ""}, // the Service checks names
	{cmds("apikey create", "enroll"), "name", false, nil, ""},
	{cmds("apikey create"), "admin", false, []string{"maybe", "2"}, "want true or false"},
	{cmds("audit verify"), "heads", false, []string{"garbage", "0:1:zz"}, "want chain:seq:hash"},
	{cmds("audit verify"), "full", false, []string{"maybe", "2"}, "want true or false"},
	{cmds("audit tail"), "n", false, []string{"0", "-5", "x"}, "want a whole number, 1 or more"},
	{cmds("audit tail"), "user", false, nil, ""},

	// twofa otp.
	{otpKeyCommands, "secret", false, []string{"ABC1DEFG", "JBSWY3DPEHPK3PXP"}, "base32 secret of at least 16 bytes"},
	{append(otpKeyCommands, "otp secret"), "algorithm", false, []string{"MD5", ""}, "want SHA1, SHA256 or SHA512"},
	{otpKeyCommands, "digits", false, []string{"5", "9", "x"}, "want a whole number from 6 to 8"},
	{otpKeyCommands, "period", false, []string{"0", "3601", "x"}, "want a whole number from 1 to 3600"},
	{otpKeyCommands, "t0", false, []string{"-1", "x"}, "want a whole number from 0 to"},
	{cmds("otp code", "otp verify"), "time", false, []string{"yesterday", "1.5"}, "want Unix seconds"},
	{cmds("otp code", "otp verify", "otp uri", "otp qr"), "counter", false, []string{"-1", "x"}, "want a whole number, 0 or more"},
	{cmds("otp verify"), "window", false, []string{"-1", "51", "x"}, "want a whole number from 0 to 50"},
	{cmds("otp verify"), "behind", false, []string{"-1", "101", "x"}, "want a whole number from 0 to 100"},
	{cmds("otp verify"), "ahead", false, []string{"-1", "101", "x"}, "want a whole number from 0 to 100"},
	{cmds("otp uri", "otp qr"), "issuer", false, nil, ""}, // the URI's rules, checked when it is made
	{cmds("otp uri", "otp qr"), "account", false, nil, ""},
	{cmds("otp uri", "otp qr"), "hotp", false, []string{"maybe"}, "want true or false"},
	{cmds("otp qr"), "uri", false, []string{"https://example.com", "otpauth://totp/a"}, "want an otpauth:// key URI"},
	{cmds("otp qr"), "png", false, nil, ""},
	{cmds("otp qr"), "svg", false, nil, ""},
	{cmds("otp qr"), "size", false, []string{"20", "4097", "x"}, "want a whole number from 21 to 4096"},
	{cmds("otp qr"), "quiet", false, []string{"-1", "17", "x"}, "want a whole number from 0 to 16"},
	{cmds("otp qr"), "recovery", false, []string{"Z", ""}, "want L, M, Q or H"},
	{cmds("otp qr"), "invert", false, []string{"maybe"}, "want true or false"},
	{cmds("otp secret"), "bytes", false, []string{"10", "1025", "x"}, "want a whole number from 16 to 1024"},
}

// settingsDir makes the files the bad values name.
func settingsDir(t *testing.T) string {
	dir := t.TempDir()
	for name, f := range map[string]struct {
		mode os.FileMode
		body string
	}{
		"afile":     {0o600, "not a directory"},
		"loose.key": {0o644, "1:" + encodeKey(bytes.Repeat([]byte{7}, 32))},
		"bad.key":   {0o600, "not a keyring"},
		"cert.pem":  {0o600, "not a certificate"},
		"key.pem":   {0o600, "not a key"},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runSetting runs the command as main would, with a context already
// cancelled, so that a server that starts stops at once.
func runSetting(args []string, env map[string]string) (out string, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	err = run(ctx, append([]string{"twofa"}, args...), func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
	out = stderr.String()
	if err != nil {
		out += "\n" + err.Error()
	}
	return out, err
}

// messageNames reports whether a line of out names the setting and says
// what it wants.
func messageNames(out, name, want string) bool {
	for line := range strings.Lines(out) {
		if strings.Contains(line, name) && strings.Contains(line, want) {
			return true
		}
	}
	return false
}

// TestSettings_Refused: each bad value of each setting, given as a flag
// and, for those read from it, in the environment, stops the program
// with a non-zero status and a message that names the flag or the
// variable and the form it wants; and nothing is created.
func TestSettings_Refused(t *testing.T) {
	dir := settingsDir(t)
	expand := func(s string) string { return strings.ReplaceAll(s, "$DIR", dir) }
	for _, tt := range settingCases {
		for _, cmd := range tt.cmds {
			base := strings.Fields(expand(settingCommands[cmd]))
			for i, bad := range tt.bad {
				bad = expand(bad)
				t.Run(strings.ReplaceAll(cmd, " ", "_")+"/"+tt.name+"/"+string(rune('a'+i))+"/flag", func(t *testing.T) {
					args := append(append(strings.Fields(cmd), base...), "--"+tt.name+"="+bad)
					out, err := runSetting(args, nil)
					if err == nil || exitCode(err) == 0 {
						t.Fatalf("%q: got success, want a refusal\n%s", args, out)
					}
					if !messageNames(out, "-"+tt.name, tt.want) {
						t.Errorf("%q: got %q, want a line naming -%s with %q", args, out, tt.name, tt.want)
					}
					if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
						os.RemoveAll(filepath.Join(dir, "data"))
						t.Errorf("%q: the data directory was created", args)
					}
				})
				if !tt.env || bad == "" { // an empty variable is an unset one
					continue
				}
				t.Run(strings.ReplaceAll(cmd, " ", "_")+"/"+tt.name+"/"+string(rune('a'+i))+"/env", func(t *testing.T) {
					args := append(strings.Fields(cmd), withoutFlag(base, tt.name)...)
					env := envName(tt.name)
					out, err := runSetting(args, map[string]string{env: bad})
					if err == nil || exitCode(err) == 0 {
						t.Fatalf("%s=%q %q: got success, want a refusal\n%s", env, bad, args, out)
					}
					if !messageNames(out, env, tt.want) {
						t.Errorf("%s=%q %q: got %q, want a line naming %s with %q", env, bad, args, out, env, tt.want)
					}
					if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
						os.RemoveAll(filepath.Join(dir, "data"))
						t.Errorf("%s=%q %q: the data directory was created", env, bad, args)
					}
					if strings.Contains(out, bad) && tt.name == "db" {
						t.Errorf("the message repeats the database URL, which may hold a password: %q", out)
					}
				})
			}
		}
	}
}

// withoutFlag drops --name and its value from args, so that the
// environment's value is the one used.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--"+name {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// TestSettings_Complete: every flag of every command (as its --help
// lists it) has a line in settingCases, and a flag is read from the
// environment exactly when its line says so. A new setting without one
// fails here.
func TestSettings_Complete(t *testing.T) {
	flagRe := regexp.MustCompile(`(?m)^  -(\S+).*\n\s+(.*)$`)
	for cmd := range settingCommands {
		out, err := runSetting(append(strings.Fields(cmd), "--help"), nil)
		if err != nil {
			t.Fatalf("%s --help: %v", cmd, err)
		}
		ms := flagRe.FindAllStringSubmatch(out, -1)
		if len(ms) == 0 {
			t.Errorf("%s --help lists no flags: %q", cmd, out)
		}
		for _, m := range ms {
			name, usage := m[1], m[2]
			found := false
			for _, tt := range settingCases {
				if tt.name != name || !slices.Contains(tt.cmds, cmd) {
					continue
				}
				found = true
				if fromEnv := strings.Contains(usage, "$"+envName(name)+")"); fromEnv != tt.env {
					t.Errorf("%s --%s: read from %s %v, but its line in settingCases says env %v", cmd, name, envName(name), fromEnv, tt.env)
				}
			}
			if !found {
				t.Errorf("%s --%s has no line in settingCases", cmd, name)
			}
		}
	}
	// And no line names a flag its commands do not have.
	for _, tt := range settingCases {
		for _, cmd := range tt.cmds {
			if _, ok := settingCommands[cmd]; !ok {
				t.Errorf("settingCases: unknown command %q", cmd)
				continue
			}
			out, _ := runSetting(append(strings.Fields(cmd), "--help"), nil)
			if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(tt.name) + `\b`).MatchString(out) {
				t.Errorf("settingCases: %s has no flag --%s", cmd, tt.name)
			}
		}
	}
}

// TestSettings_Together: settings that bound each other, and the master
// key, which is read from the environment alone, are refused with a
// message naming each setting as it was given.
func TestSettings_Together(t *testing.T) {
	dir := settingsDir(t)
	key := "1:" + encodeKey(bytes.Repeat([]byte{7}, 32))
	keyFile := filepath.Join(dir, "master.key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := []string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data")}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want []string // on one line
	}{
		{"WindowAndDrift", []string{"--window-behind", "50", "--window-ahead", "50", "--max-drift", "1"}, nil,
			[]string{"--window-behind (50)", "--window-ahead (50)", "--max-drift (1)", "103 steps: want at most 101"}},
		{"WindowFromEnv", []string{"--max-drift", "50"}, map[string]string{"TWOFA_WINDOW_AHEAD": "2"},
			[]string{"TWOFA_WINDOW_AHEAD (2)", "--max-drift (50)", "want at most 101"}},
		{"LockMaxBelowBase", nil, map[string]string{"TWOFA_LOCK_BASE": "1h"},
			[]string{"--lock-max (15m0s) is shorter than TWOFA_LOCK_BASE (1h0m0s)", "want"}},
		{"HardLockBeforeLock", []string{"--hard-lock-after", "3"}, nil,
			[]string{"--hard-lock-after (3) is less than --lock-after (5)", "want"}},
		{"TLSCertAlone", []string{"--tls-cert", filepath.Join(dir, "cert.pem")}, nil, []string{"--tls-cert and --tls-key", "want both or neither"}},
		{"TLSBadPair", []string{"--tls-cert", filepath.Join(dir, "cert.pem")}, map[string]string{"TWOFA_TLS_KEY": filepath.Join(dir, "key.pem")},
			[]string{"--tls-cert and TWOFA_TLS_KEY", "want a PEM certificate and its private key"}},
		{"MasterKeyGarbage", nil, map[string]string{"TWOFA_MASTER_KEY": "garbage"}, []string{"TWOFA_MASTER_KEY", "want ID:BASE64"}},
		{"MasterKeyShort", nil, map[string]string{"TWOFA_MASTER_KEY": "1:AAAA"}, []string{"TWOFA_MASTER_KEY", "want ID:BASE64"}},
		{"MasterKeyID0", nil, map[string]string{"TWOFA_MASTER_KEY": "0:" + encodeKey(bytes.Repeat([]byte{7}, 32))}, []string{"TWOFA_MASTER_KEY", "want ID:BASE64"}},
		{"MasterKeyTwice", []string{"--master-key-file", keyFile}, map[string]string{"TWOFA_MASTER_KEY": key}, []string{"TWOFA_MASTER_KEY and --master-key-file", "want one"}},
		{"EnvBadFlagGood", []string{"--lock-base", "1m"}, map[string]string{"TWOFA_LOCK_BASE": "garbage"}, []string{"TWOFA_LOCK_BASE", "want a duration"}},
		{"SeveralBad", nil, map[string]string{"TWOFA_LOCK_BASE": "garbage", "TWOFA_VERIFY_PER_IP": "abc"}, []string{"TWOFA_VERIFY_PER_IP", "want a whole number"}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runSetting(append(slices.Clone(serve), tt.args...), tt.env)
			if err == nil || exitCode(err) == 0 {
				t.Fatalf("got success, want a refusal\n%s", out)
			}
			found := false
			for line := range strings.Lines(out) {
				all := true
				for _, w := range tt.want {
					all = all && strings.Contains(line, w)
				}
				found = found || all
			}
			if !found {
				t.Errorf("got %q, want a line with %q", out, tt.want)
			}
			if strings.Contains(out, key[2:]) {
				t.Errorf("the message shows the master key: %q", out)
			}
		})
	}
}
