package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twofa/twofa/otp"
)

func otpCommands() []command {
	return []command{
		{"code", "print the code for a secret at a time (or HOTP counter)", runOTPCode},
		{"verify", "check a code; exit status 0 valid, 1 invalid, 2 malformed", runOTPVerify},
		{"uri", "print an otpauth:// key URI", runOTPURI},
		{"qr", "draw a key URI as a QR code (terminal, --png, --svg)", runOTPQR},
		{"secret", "print a new random base32 secret", runOTPSecret},
	}
}

func runOTP(ctx context.Context, e *env, args []string) error {
	cmds := otpCommands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stderr, "twofa otp", "One-time passwords (RFC 4226 HOTP, RFC 6238 TOTP), shaped like oathtool.", cmds)
		if len(args) == 0 {
			return usageError("no otp command given")
		}
		return nil
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	return usageError(fmt.Sprintf("unknown otp command %q (see twofa otp help)", args[0]))
}

// keyFlags are the flags that describe a key.
type keyFlags struct {
	secret    string
	algorithm string
	digits    int
	period    int
	t0        int64
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.secret, "secret", "", "the base32 `secret`; - reads it from standard input (keeps it out of ps and shell history)")
	stringVar(fs, &k.algorithm, "algorithm", "SHA1", "HMAC `hash`: SHA1, SHA256 or SHA512", checkAlgorithm)
	fs.Var(intVar(&k.digits, otp.DefaultDigits, otp.MinDigits, otp.MaxDigits), "digits", "code `length`, 6 to 8")
	fs.Var(intVar(&k.period, otp.DefaultPeriod, 1, otp.MaxPeriod), "period", "TOTP time step in `seconds`")
	fs.Var(&int64Value{&k.t0, 0, math.MaxInt64}, "t0", "TOTP start time, Unix `seconds`")
}

// checkAlgorithm accepts what otp.ParseAlgorithm does.
func checkAlgorithm(s string) error {
	if _, err := otp.ParseAlgorithm(s); err != nil {
		return errors.New("want SHA1, SHA256 or SHA512")
	}
	return nil
}

func (k *keyFlags) params() (otp.Params, error) {
	alg, err := otp.ParseAlgorithm(k.algorithm)
	if err != nil {
		return otp.Params{}, err
	}
	return otp.Params{Algorithm: alg, Digits: k.digits, Period: k.period, T0: k.t0}.Normalize()
}

// secretBytes decodes --secret, reading it from stdin when it is "-".
func (k *keyFlags) secretBytes(e *env) ([]byte, error) {
	s := k.secret
	if s == "" {
		return nil, usageError("--secret is required")
	}
	if s == "-" {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && line == "" {
			return nil, errors.New("reading the secret from standard input: nothing there")
		}
		s = trimNewline(line)
	}
	b, err := otp.DecodeSecret(s)
	if err == nil && len(b) < otp.MinSecretSize {
		err = otp.ErrSecretTooShort
	}
	if err != nil {
		return nil, fmt.Errorf("--secret: %w (want a base32 secret of at least %d bytes)", err, otp.MinSecretSize)
	}
	return b, nil
}

// parsed returns the key's parameters and secret.
func (k *keyFlags) parsed(e *env) (otp.Params, []byte, error) {
	p, err := k.params()
	if err != nil {
		return p, nil, err
	}
	secret, err := k.secretBytes(e)
	return p, secret, err
}

func (k *keyFlags) key(e *env) (*otp.Key, error) {
	p, secret, err := k.parsed(e)
	if err != nil {
		return nil, err
	}
	return otp.NewKey(secret, p)
}

// timeFlag is --time, in Unix seconds; unset means now.
type timeFlag struct {
	unix int64
	set  bool
}

func (t *timeFlag) String() string { return "" }
func (t *timeFlag) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "@"), 10, 64)
	if err != nil {
		return errors.New("want Unix seconds")
	}
	t.unix, t.set = n, true
	return nil
}
func (t *timeFlag) time() time.Time {
	if t.set {
		return time.Unix(t.unix, 0)
	}
	return time.Now()
}

func runOTPCode(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "code", "twofa otp code --secret S [--time UNIX_SECONDS | --counter N] [--algorithm A] [--digits N] [--period S]")
	var kf keyFlags
	var at timeFlag
	kf.register(fs)
	fs.Var(&at, "time", "compute at this Unix `time` instead of now")
	counter := new(uint64)
	fs.Var(&uint64Value{counter}, "counter", "compute the HOTP code for this `counter` instead of a TOTP code")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("code takes no arguments")
	}
	k, err := kf.key(e)
	if err != nil {
		return err
	}
	if flagSet(fs, "counter") {
		fmt.Fprintln(e.stdout, k.HOTP(*counter))
		return nil
	}
	fmt.Fprintln(e.stdout, k.TOTP(at.time()))
	return nil
}

func runOTPVerify(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "verify", "twofa otp verify --secret S [--time UNIX_SECONDS] [--window N | --behind N --ahead N] [--counter N] CODE")
	var kf keyFlags
	var at timeFlag
	kf.register(fs)
	fs.Var(&at, "time", "verify at this Unix `time` instead of now")
	var window, behind, ahead int
	var counter uint64
	maxSide := otp.MaxWindow - 1
	fs.Var(intVar(&window, 1, 0, maxSide/2), "window", "accept this many `steps` before and after the current one")
	fs.Var(intVar(&behind, -1, 0, maxSide), "behind", "accept this many `steps` before the current one (overrides --window)")
	fs.Var(intVar(&ahead, -1, 0, maxSide), "ahead", "accept this many `steps` after the current one (overrides --window)")
	fs.Var(&uint64Value{&counter}, "counter", "verify an HOTP code from this `counter` on, looking --ahead (default 0) counters further")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("verify takes exactly one argument, the code")
	}
	w := otp.Window{Behind: window, Ahead: window}
	if behind >= 0 {
		w.Behind = behind
	}
	if ahead >= 0 {
		w.Ahead = ahead
	}
	if w.Size() > otp.MaxWindow {
		return usageError(fmt.Sprintf("--behind and --ahead: want at most %d steps in all", otp.MaxWindow))
	}
	k, err := kf.key(e)
	if err != nil {
		return err
	}
	var m otp.Match
	if flagSet(fs, "counter") {
		m, err = k.VerifyHOTP(fs.Arg(0), counter, max(ahead, 0))
	} else {
		m, err = k.Verify(fs.Arg(0), at.time(), w)
	}
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	if !m.Valid {
		fmt.Fprintln(e.stdout, "invalid")
		return exitError{code: 1}
	}
	fmt.Fprintf(e.stdout, "valid: step %d, offset %+d\n", m.Step, m.Offset)
	return nil
}

// uriFlags describe a key URI: a key and its labels.
type uriFlags struct {
	keyFlags
	issuer, account string
	hotp            bool
	counter         uint64
}

func (u *uriFlags) register(fs *flag.FlagSet) {
	u.keyFlags.register(fs)
	fs.StringVar(&u.issuer, "issuer", "", "the service the key is for, shown by the app")
	fs.StringVar(&u.account, "account", "", "the account name, shown by the app (such as an email address)")
	fs.Var(&boolValue{&u.hotp}, "hotp", "make an HOTP (counter) URI instead of TOTP")
	fs.Var(&uint64Value{&u.counter}, "counter", "initial HOTP `counter`")
}

func (u *uriFlags) uri(e *env) (*otp.URI, error) {
	p, secret, err := u.parsed(e)
	if err != nil {
		return nil, err
	}
	r := &otp.URI{Type: otp.TypeTOTP, Issuer: u.issuer, Account: u.account, Secret: secret, Params: p}
	if u.hotp {
		r.Type, r.Counter, r.Params.Period = otp.TypeHOTP, u.counter, 0
	}
	return r, nil
}

func runOTPURI(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "uri", "twofa otp uri --secret S --issuer I --account A [--algorithm A] [--digits N] [--period S] [--hotp --counter N]")
	var uf uriFlags
	uf.register(fs)
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	u, err := uf.uri(e)
	if err != nil {
		return err
	}
	s, err := u.Format()
	if err != nil {
		return err
	}
	for _, w := range u.Compatibility() {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	fmt.Fprintln(e.stdout, s)
	return nil
}

func runOTPQR(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "qr", "twofa otp qr (--uri URI | --secret S --issuer I --account A ...) [--png FILE] [--svg FILE] [--size PIXELS]")
	var uf uriFlags
	uf.register(fs)
	var uriText, recovery string
	var size, quiet int
	// Checked after parsing: the flag package would print a bad value,
	// secret and all.
	fs.StringVar(&uriText, "uri", "", "an otpauth:// `URI` to draw, instead of building one from the flags")
	pngFile := fs.String("png", "", "write a PNG to `file` (mode 0600: it holds the secret)")
	svgFile := fs.String("svg", "", "write an SVG to `file` (mode 0600)")
	fs.Var(intVar(&size, 256, 21, 4096), "size", "PNG width and height in `pixels`")
	fs.Var(intVar(&quiet, otp.DefaultQuietZone, 0, 16), "quiet", "quiet zone around the code, in `modules`")
	stringVar(fs, &recovery, "recovery", "M", "error-correction `level`: L, M, Q or H", oneOf("L", "M", "Q", "H"))
	invert := boolFlag(fs, "invert", false, "for terminals with a light background")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	content := uriText
	if content == "" {
		u, err := uf.uri(e)
		if err != nil {
			return err
		}
		if content, err = u.Format(); err != nil {
			return err
		}
	} else if _, err := otp.ParseURI(content); err != nil {
		return fmt.Errorf("--uri: %w (want an otpauth:// key URI)", err)
	}
	level := map[string]otp.Recovery{"L": otp.RecoveryL, "M": otp.RecoveryM, "Q": otp.RecoveryQ, "H": otp.RecoveryH}[strings.ToUpper(recovery)]
	q, err := otp.NewQR(content, level)
	if err != nil {
		return err
	}
	if *pngFile == "" && *svgFile == "" {
		fmt.Fprint(e.stdout, q.Terminal(quiet, *invert))
		return nil
	}
	if *pngFile != "" {
		b, err := q.PNG(size, quiet)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*pngFile, b, 0o600); err != nil {
			return err
		}
	}
	if *svgFile != "" {
		if err := os.WriteFile(*svgFile, []byte(q.SVG(quiet)), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func runOTPSecret(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "secret", "twofa otp secret [--algorithm A] [--bytes N]")
	var algorithm string
	var n int
	stringVar(fs, &algorithm, "algorithm", "SHA1", "size the secret for this `hash`: 20 bytes for SHA1, 32 for SHA256, 64 for SHA512", checkAlgorithm)
	fs.Var(intVar(&n, 0, otp.MinSecretSize, 1024), "bytes", "secret length in `bytes` (at least 16); overrides --algorithm")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	alg, err := otp.ParseAlgorithm(algorithm)
	if err != nil {
		return err
	}
	size := alg.SecretSize()
	if n != 0 {
		size = n
	}
	secret, err := otp.GenerateSecretSize(size)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, otp.EncodeSecret(secret))
	return nil
}

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
