package otp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
)

// Type is the kind of one-time password a key URI provisions.
type Type string

// The two types of the key URI format.
const (
	TypeTOTP Type = "totp"
	TypeHOTP Type = "hotp"
)

// URI is an otpauth:// key URI, as in Google Authenticator's Key URI Format:
//
//	otpauth://totp/Issuer:account?secret=BASE32&issuer=Issuer&algorithm=SHA1&digits=6&period=30
//
// It holds a secret: Format gives the URI itself, while String and LogValue
// redact the secret so that printing or logging a URI is safe.
type URI struct {
	Type    Type
	Issuer  string // optional; written both as label prefix and as parameter
	Account string
	Secret  []byte
	Params  Params
	Counter uint64 // initial counter, HOTP only
}

// maxURIInput bounds the text ParseURI reads.
const maxURIInput = 4096

// ErrURI is wrapped by every error of ParseURI and URI.Validate.
var ErrURI = errors.New("otp: invalid key URI")

func uriErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrURI}, args...)...)
}

// Validate checks the fields Format writes.
func (u *URI) Validate() error {
	if u.Type != TypeTOTP && u.Type != TypeHOTP {
		return uriErr("type must be totp or hotp")
	}
	if u.Account == "" {
		return uriErr("account name is empty")
	}
	if strings.Contains(u.Account, ":") || strings.Contains(u.Issuer, ":") {
		return uriErr("issuer and account name must not contain a colon")
	}
	// Apps trim these, and the label format allows spaces after the colon,
	// so they would not survive a round trip.
	if strings.TrimSpace(u.Account) != u.Account || strings.TrimSpace(u.Issuer) != u.Issuer {
		return uriErr("issuer and account name must not begin or end with a space")
	}
	if len(u.Secret) < MinSecretSize {
		return uriErr("secret must be at least %d bytes", MinSecretSize)
	}
	if _, err := u.Params.Normalize(); err != nil {
		return fmt.Errorf("%w: %w", ErrURI, err)
	}
	return nil
}

// Format returns the key URI. Spaces are written %20, never +, which some
// Android apps show literally; the algorithm name is upper case, since
// some apps ignore a lower-case one and compute SHA1 codes.
func (u *URI) Format() (string, error) {
	if err := u.Validate(); err != nil {
		return "", err
	}
	p, _ := u.Params.Normalize()
	var b strings.Builder
	b.WriteString("otpauth://")
	b.WriteString(string(u.Type))
	b.WriteByte('/')
	if u.Issuer != "" {
		b.WriteString(escape(u.Issuer))
		b.WriteByte(':')
	}
	b.WriteString(escape(u.Account))
	b.WriteString("?secret=")
	b.WriteString(EncodeSecret(u.Secret))
	if u.Issuer != "" {
		b.WriteString("&issuer=")
		b.WriteString(escape(u.Issuer))
	}
	b.WriteString("&algorithm=")
	b.WriteString(p.Algorithm.String())
	b.WriteString("&digits=")
	b.WriteString(strconv.Itoa(p.Digits))
	if u.Type == TypeHOTP {
		b.WriteString("&counter=")
		b.WriteString(strconv.FormatUint(u.Counter, 10))
	} else {
		b.WriteString("&period=")
		b.WriteString(strconv.Itoa(p.Period))
	}
	if p.T0 != 0 {
		// Not in the key URI format; apps ignore it, and twofa reads it back.
		b.WriteString("&t0=")
		b.WriteString(strconv.FormatInt(p.T0, 10))
	}
	return b.String(), nil
}

// String returns the URI with its secret redacted.
func (u URI) String() string {
	r := u
	r.Secret = nil
	s, err := r.formatRedacted()
	if err != nil {
		return "otpauth://invalid"
	}
	return s
}

// GoString redacts the secret under %#v as well.
func (u URI) GoString() string { return u.String() }

// LogValue redacts the secret in structured logs.
func (u URI) LogValue() slog.Value { return slog.StringValue(u.String()) }

func (u URI) formatRedacted() (string, error) {
	u.Secret = make([]byte, MinSecretSize)
	s, err := u.Format()
	if err != nil {
		return "", err
	}
	i := strings.Index(s, "secret=") + len("secret=")
	j := strings.IndexByte(s[i:], '&')
	return s[:i] + "REDACTED" + s[i+j:], nil
}

// escape percent-encodes everything but RFC 3986 unreserved characters and
// '@', which account names are full of and every app reads literally.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '@' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// ParseURI parses an otpauth:// key URI. It accepts what other generators
// write (a lower-case algorithm, a padded or lower-case secret, '+' for a
// space in parameters) and rejects, with an error wrapping ErrURI that never
// contains the secret, anything it cannot read unambiguously: another scheme
// or type, a missing or short secret, repeated parameters, a colon in the
// issuer or account, or an issuer parameter that differs from the label's.
func ParseURI(s string) (*URI, error) {
	if len(s) > maxURIInput {
		return nil, uriErr("longer than %d bytes", maxURIInput)
	}
	pu, err := url.Parse(s)
	if err != nil {
		return nil, uriErr("not a URI") // url's error would quote the input
	}
	if !strings.EqualFold(pu.Scheme, "otpauth") {
		return nil, uriErr("scheme must be otpauth")
	}
	if pu.Opaque != "" || pu.User != nil || pu.Port() != "" || pu.Fragment != "" {
		return nil, uriErr("want otpauth://TYPE/LABEL?PARAMETERS")
	}
	u := &URI{Type: Type(strings.ToLower(pu.Host))}
	if u.Type != TypeTOTP && u.Type != TypeHOTP {
		return nil, uriErr("type must be totp or hotp")
	}
	rawLabel := strings.TrimPrefix(pu.EscapedPath(), "/")
	if strings.Contains(rawLabel, "/") {
		return nil, uriErr("label must not contain an unescaped slash")
	}
	label, err := url.PathUnescape(rawLabel)
	if err != nil {
		return nil, uriErr("malformed label")
	}
	// Spaces around the issuer and account are trimmed, as apps do (and
	// the label format allows spaces after the colon).
	switch parts := strings.Split(label, ":"); len(parts) {
	case 1:
		u.Account = strings.TrimSpace(parts[0])
	case 2:
		u.Issuer = strings.TrimSpace(parts[0])
		u.Account = strings.TrimSpace(parts[1])
	default:
		return nil, uriErr("issuer and account name must not contain a colon")
	}
	if u.Account == "" {
		return nil, uriErr("account name is empty")
	}

	q, err := url.ParseQuery(pu.RawQuery)
	if err != nil {
		return nil, uriErr("malformed parameters")
	}
	get := func(name string) (string, bool, error) {
		v, ok := q[name]
		if len(v) > 1 {
			return "", false, uriErr("parameter %s is repeated", name)
		}
		if !ok {
			return "", false, nil
		}
		return v[0], true, nil
	}
	secret, ok, err := get("secret")
	if err != nil {
		return nil, err
	}
	if !ok || secret == "" {
		return nil, uriErr("secret is missing")
	}
	if u.Secret, err = DecodeSecret(secret); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrURI, err)
	}
	if len(u.Secret) < MinSecretSize {
		return nil, uriErr("secret must be at least %d bytes, got %d", MinSecretSize, len(u.Secret))
	}
	issuer, ok, err := get("issuer")
	if err != nil {
		return nil, err
	}
	if ok {
		issuer = strings.TrimSpace(issuer)
		if u.Issuer != "" && issuer != u.Issuer {
			return nil, uriErr("issuer parameter %q differs from label prefix %q", truncate(issuer, 64), truncate(u.Issuer, 64))
		}
		if strings.Contains(issuer, ":") {
			return nil, uriErr("issuer and account name must not contain a colon")
		}
		u.Issuer = issuer
	}
	if v, ok, err := get("algorithm"); err != nil {
		return nil, err
	} else if ok {
		if u.Params.Algorithm, err = ParseAlgorithm(v); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrURI, err)
		}
	}
	ints := []struct {
		name string
		dst  *int
	}{{"digits", &u.Params.Digits}, {"period", &u.Params.Period}}
	for _, f := range ints {
		v, ok, err := get(f.name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, uriErr("%s must be a positive number", f.name)
		}
		*f.dst = n
	}
	if v, ok, err := get("t0"); err != nil {
		return nil, err
	} else if ok {
		if u.Params.T0, err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, uriErr("t0 must be a number")
		}
	}
	counter, ok, err := get("counter")
	if err != nil {
		return nil, err
	}
	switch {
	case u.Type == TypeHOTP && !ok:
		return nil, uriErr("counter is required for hotp")
	case u.Type == TypeHOTP:
		if u.Counter, err = strconv.ParseUint(counter, 10, 64); err != nil {
			return nil, uriErr("counter must be a number")
		}
	case ok:
		return nil, uriErr("counter is only for hotp")
	}
	if u.Type == TypeHOTP && u.Params.Period != 0 {
		return nil, uriErr("period is only for totp")
	}
	if u.Params, err = u.Params.Normalize(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrURI, err)
	}
	if u.Type == TypeHOTP {
		u.Params.Period = 0 // meaningless for HOTP; keeps round trips exact
	}
	return u, nil
}

// Compatibility lists the URI's parameters that popular authenticator apps
// ignore or mishandle. An app that ignores one still scans the code and then
// shows wrong codes, so a non-empty list is a reason to insist on a
// confirmation code at enrollment, or to keep the defaults.
func (u *URI) Compatibility() []string {
	p, _ := u.Params.Normalize()
	var w []string
	if p.Algorithm != SHA1 {
		w = append(w, fmt.Sprintf("algorithm %s: Microsoft Authenticator, Authy, Duo and older Google Authenticator versions ignore it and show SHA1 codes", p.Algorithm))
	}
	if p.Digits != 6 {
		w = append(w, fmt.Sprintf("digits %d: Google Authenticator on Android (before 2024), Authy and some others ignore it and show 6 digits", p.Digits))
	}
	if u.Type == TypeTOTP && p.Period != DefaultPeriod {
		w = append(w, fmt.Sprintf("period %d: Google Authenticator (before 2024) and Microsoft Authenticator ignore it and use 30 seconds", p.Period))
	}
	if p.T0 != 0 {
		w = append(w, "t0: not part of the key URI format; every authenticator app ignores it")
	}
	if u.Type == TypeHOTP {
		w = append(w, "hotp: Microsoft Authenticator and Authy do not support counter-based codes")
	}
	if u.Issuer == "" {
		w = append(w, "no issuer: apps list the account without saying which service it is for")
	}
	return w
}
