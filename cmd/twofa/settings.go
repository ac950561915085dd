package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Settings fail loudly: every flag's value type checks what it is given
// and says what it wants, and a value from the environment goes through
// the same check as one from the command line. A value that does not
// parse or is out of range stops the program, naming the flag or the
// environment variable it came from; nothing falls back to a default.

// envName is the environment variable of a flag: --lock-base is
// TWOFA_LOCK_BASE.
func envName(flagName string) string {
	return "TWOFA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envValue is a flag that may also come from the environment. The
// environment's value is set when the flag is registered, so that the
// command line, parsed later, wins; if it does not parse, parseFlags
// reports it.
type envValue struct {
	flag.Value
	env     string
	fromEnv bool  // the value came from the environment
	err     error // the environment's value did not parse
}

func (v *envValue) String() string {
	if v == nil || v.Value == nil {
		return "" // the zero value, which flag.PrintDefaults compares defaults with
	}
	return v.Value.String()
}

func (v *envValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// envVar registers v as the flag name, first setting it from the
// environment variable envName(name) if that is not empty.
func envVar(fs *flag.FlagSet, e *env, v flag.Value, name, usage string) {
	ev := &envValue{Value: v, env: envName(name)}
	if s := e.getenv(ev.env); s != "" {
		if err := v.Set(s); err != nil {
			// The value itself stays out of the message: it may be a URL
			// with a password.
			ev.err = fmt.Errorf("%s: %w", ev.env, err)
		} else {
			ev.fromEnv = true
		}
	}
	fs.Var(ev, name, usage+" ($"+ev.env+")")
}

// envFlag registers a string flag whose default comes from the
// environment; check, if not nil, says whether a value is acceptable.
func envFlag(fs *flag.FlagSet, e *env, p *string, name, def, usage string, check ...func(string) error) {
	*p = def
	envVar(fs, e, &stringValue{p: p, checks: check}, name, usage)
}

// envErrors returns the errors of the environment's values for the flags
// of fs, one a line.
func envErrors(fs *flag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if ev, ok := f.Value.(*envValue); ok && ev.err != nil {
			errs = append(errs, ev.err)
		}
	})
	return errors.Join(errs...)
}

// settingName names where a flag's value came from, for messages about
// settings that do not go together: the flag, or its environment
// variable.
func settingName(fs *flag.FlagSet, name string) string {
	if fs != nil && !flagSet(fs, name) {
		if f := fs.Lookup(name); f != nil {
			if ev, ok := f.Value.(*envValue); ok && ev.fromEnv {
				return ev.env
			}
		}
	}
	return "--" + name
}

// intValue is a whole number from min to max.
type intValue struct {
	p        *int
	min, max int
}

func intVar(p *int, def, min, max int) *intValue { *p = def; return &intValue{p, min, max} }

func (v *intValue) String() string {
	if v == nil || v.p == nil {
		return "0" // so that flag.PrintDefaults leaves out a default of 0
	}
	return strconv.Itoa(*v.p)
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < v.min || n > v.max {
		return errors.New(v.want())
	}
	*v.p = n
	return nil
}

func (v *intValue) want() string {
	if v.max == maxInt {
		return fmt.Sprintf("want a whole number, %d or more", v.min)
	}
	return fmt.Sprintf("want a whole number from %d to %d", v.min, v.max)
}

const maxInt = int(^uint(0) >> 1)

// int64Value is a whole number from min to max, 64 bits wide.
type int64Value struct {
	p        *int64
	min, max int64
}

func (v *int64Value) String() string {
	if v == nil || v.p == nil {
		return "0" // so that flag.PrintDefaults leaves out a default of 0
	}
	return strconv.FormatInt(*v.p, 10)
}

func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < v.min || n > v.max {
		return fmt.Errorf("want a whole number from %d to %d", v.min, v.max)
	}
	*v.p = n
	return nil
}

// uint64Value is a whole number, 0 or more.
type uint64Value struct{ p *uint64 }

func (v *uint64Value) String() string {
	if v == nil || v.p == nil {
		return "0" // so that flag.PrintDefaults leaves out a default of 0
	}
	return strconv.FormatUint(*v.p, 10)
}

func (v *uint64Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return errors.New("want a whole number, 0 or more")
	}
	*v.p = n
	return nil
}

// durValue is a duration from min to max (max 0: no upper bound).
type durValue struct {
	p        *time.Duration
	min, max time.Duration
}

func durVar(p *time.Duration, def, min, max time.Duration) *durValue {
	*p = def
	return &durValue{p, min, max}
}

func (v *durValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v *durValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < v.min || v.max > 0 && d > v.max {
		return errors.New(v.want())
	}
	*v.p = d
	return nil
}

func (v *durValue) want() string {
	if v.max > 0 {
		return fmt.Sprintf("want a duration such as 30s or 15m, from %s to %s", v.min, v.max)
	}
	return fmt.Sprintf("want a duration such as 30s or 15m, at least %s", v.min)
}

// boolValue is true or false; as a flag alone, true.
type boolValue struct{ p *bool }

func (v *boolValue) String() string {
	if v == nil || v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*v.p = b
	return nil
}

func (v *boolValue) IsBoolFlag() bool { return true }

// boolFlag registers a boolean flag that says what it accepts.
func boolFlag(fs *flag.FlagSet, name string, def bool, usage string) *bool {
	p := new(bool)
	*p = def
	fs.Var(&boolValue{p}, name, usage)
	return p
}

// stringValue is a string that passes its checks.
type stringValue struct {
	p      *string
	checks []func(string) error
}

func (v *stringValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *stringValue) Set(s string) error {
	for _, check := range v.checks {
		if err := check(s); err != nil {
			return err
		}
	}
	*v.p = s
	return nil
}

// stringVar registers a string flag with checks, from the command line
// only.
func stringVar(fs *flag.FlagSet, p *string, name, def, usage string, check ...func(string) error) {
	*p = def
	fs.Var(&stringValue{p: p, checks: check}, name, usage)
}

// Checks of string settings.

func nonEmpty(what string) func(string) error {
	return func(s string) error {
		if s == "" {
			return errors.New("want " + what)
		}
		return nil
	}
}

// checkLogLevel accepts slog's four level names.
func checkLogLevel(s string) error {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return nil
	}
	return errors.New("want debug, info, warn or error")
}

func parseLogLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(s)) // checked by checkLogLevel
	return l
}

// checkAddr accepts a listen address: host:port, the host optional.
func checkAddr(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			err = errors.New("bad port")
		}
	}
	if err != nil {
		return errors.New("want host:port, such as 127.0.0.1:8080, [::1]:8080 or :8080")
	}
	return nil
}

// optional lets a check accept the empty string too.
func optional(check func(string) error) func(string) error {
	return func(s string) error {
		if s == "" {
			return nil
		}
		return check(s)
	}
}

// checkPublicURL accepts where users reach twofa: an http or https URL
// with a host, and at most a path.
func checkPublicURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return errors.New("want an http:// or https:// URL with a host and no query, such as https://2fa.example.com")
	}
	return nil
}

// checkDB accepts a PostgreSQL URL or the path of a SQLite file.
func checkDB(s string) error {
	const want = "want a postgres:// URL or the path of a SQLite file"
	if s == "" {
		return nil
	}
	if isPostgres(s) {
		if _, err := url.Parse(s); err != nil {
			return errors.New(want + "; this URL does not parse")
		}
		return nil
	}
	if strings.Contains(s, "://") || strings.HasPrefix(s, "file:") || s == ":memory:" {
		return errors.New(want)
	}
	for _, k := range []string{"host=", "hostaddr=", "dbname=", "user=", "port=", "sslmode="} {
		if strings.HasPrefix(strings.TrimSpace(s), k) {
			return errors.New(want + "; key=value connection strings are not read, give the URL form")
		}
	}
	return nil
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// checkIssuer accepts what authenticator apps can show and otpauth URIs
// can carry: 1 to 64 bytes of UTF-8 text, no colon, no control
// character, no space at either end.
func checkIssuer(s string) error {
	ok := s != "" && len(s) <= 64 && utf8.ValidString(s) && !strings.Contains(s, ":") && strings.TrimSpace(s) == s
	for _, r := range s {
		ok = ok && !unicode.IsControl(r)
	}
	if !ok {
		return errors.New("want 1 to 64 bytes of text without a colon, a control character or a space at either end")
	}
	return nil
}

// oneOf accepts the given words, in any case.
func oneOf(words ...string) func(string) error {
	return func(s string) error {
		for _, w := range words {
			if strings.EqualFold(s, w) {
				return nil
			}
		}
		return fmt.Errorf("want %s or %s", strings.Join(words[:len(words)-1], ", "), words[len(words)-1])
	}
}

// prefixesValue is a comma-separated list of CIDR prefixes; a bare
// address is a prefix of one address.
type prefixesValue struct{ p *[]netip.Prefix }

func (v *prefixesValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	s := make([]string, len(*v.p))
	for i, p := range *v.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (v *prefixesValue) Set(s string) error {
	ps, err := parsePrefixes(s)
	if err != nil {
		return err
	}
	*v.p = ps
	return nil
}

// parsePrefixes parses "10.0.0.0/8, 2001:db8::/32, 192.0.2.1". An
// IPv4-mapped IPv6 prefix becomes the IPv4 one, as the addresses it is
// matched against are unmapped.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	const want = "want comma-separated CIDR prefixes or addresses, such as 10.0.0.0/8,2001:db8::/32,192.0.2.1"
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q: %s", f, want)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("%q: an IPv4-mapped prefix must be /96 or longer; %s", f, want)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
