package otp

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseURI checks that parsing never panics, that every error wraps
// ErrURI, and that whatever parses formats to a URI that parses back to the
// same value.
func FuzzParseURI(f *testing.F) {
	f.Add("otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30")
	f.Add("otpauth://hotp/X:y?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=7")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			if !errors.Is(err, ErrURI) {
				t.Fatalf("error does not wrap ErrURI: %v", err)
			}
			return
		}
		out, err := u.Format()
		if err != nil {
			t.Fatalf("parsed URI does not format: %v", err)
		}
		back, err := ParseURI(out)
		if err != nil {
			t.Fatalf("formatted URI does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(u, back) {
			t.Fatalf("round trip differs:\n%#v\n%#v", u, back)
		}
	})
}

// FuzzDecodeSecret checks that decoding never panics, that errors wrap
// ErrSecretEncoding and never hold the input, and that what decodes encodes
// to the same bytes.
func FuzzDecodeSecret(f *testing.F) {
	f.Add("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
	f.Add("jbsw y3dp-ehpk 3pxp")
	f.Add("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA====")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeSecret(s)
		if err != nil {
			if !errors.Is(err, ErrSecretEncoding) {
				t.Fatalf("error does not wrap ErrSecretEncoding: %v", err)
			}
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error echoes input: %v", err)
			}
			return
		}
		back, err := DecodeSecret(EncodeSecret(b))
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("re-decoding: %x, %v; want %x", back, err, b)
		}
	})
}

// FuzzParseCode checks that code input is accepted exactly when it is the
// configured number of ASCII digits, spaces aside.
func FuzzParseCode(f *testing.F) {
	f.Add("123456", 6)
	f.Add("123 456", 6)
	f.Add("١٢٣٤٥٦", 6)
	f.Add("12345678", 8)
	f.Fuzz(func(t *testing.T, s string, digits int) {
		if digits < MinDigits || digits > MaxDigits {
			return
		}
		v, err := ParseCode(s, digits)
		clean := strings.ReplaceAll(s, " ", "")
		wantOK := len(s) <= maxCodeInput && len(clean) == digits && strings.Trim(clean, "0123456789") == ""
		if (err == nil) != wantOK {
			t.Fatalf("ParseCode(%q, %d) err = %v, want ok=%v", s, digits, err, wantOK)
		}
		if err != nil && !errors.Is(err, ErrMalformedCode) {
			t.Fatalf("error does not wrap ErrMalformedCode: %v", err)
		}
		if err == nil && v >= pow10[digits] {
			t.Fatalf("value %d has more than %d digits", v, digits)
		}
	})
}
