package otp

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

func TestURI_Format(t *testing.T) {
	secret, _ := DecodeSecret("HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ")
	tests := []struct {
		name string
		u    URI
		want string
	}{
		{"WikiFull", URI{Type: TypeTOTP, Issuer: "ACME Co", Account: "john.doe@email.com", Secret: secret},
			"otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"},
		{"NoIssuer", URI{Type: TypeTOTP, Account: "alice", Secret: secret},
			"otpauth://totp/alice?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&algorithm=SHA1&digits=6&period=30"},
		{"PlusAndAmpersand", URI{Type: TypeTOTP, Issuer: "A&B", Account: "a+b@x.io", Secret: secret, Params: Params{Algorithm: SHA256, Digits: 8, Period: 60}},
			"otpauth://totp/A%26B:a%2Bb@x.io?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&issuer=A%26B&algorithm=SHA256&digits=8&period=60"},
		{"HOTP", URI{Type: TypeHOTP, Issuer: "X", Account: "y", Secret: secret, Counter: 42},
			"otpauth://hotp/X:y?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&issuer=X&algorithm=SHA1&digits=6&counter=42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.u.Format()
			if err != nil || got != tt.want {
				t.Fatalf("got %s, %v\nwant %s", got, err, tt.want)
			}
			if strings.Contains(got, "+") && !strings.Contains(tt.u.Account+tt.u.Issuer, "+") {
				t.Errorf("space written as +: %s", got)
			}
			back, err := ParseURI(got)
			if err != nil {
				t.Fatalf("ParseURI: %v", err)
			}
			want := tt.u
			want.Params, _ = want.Params.Normalize()
			if want.Type == TypeHOTP {
				want.Params.Period = 0
			}
			if !reflect.DeepEqual(*back, want) {
				t.Errorf("round trip: got %#v, want %#v", *back, want)
			}
		})
	}
}

func TestURI_FormatErrors(t *testing.T) {
	secret := make([]byte, 20)
	tests := []struct {
		name string
		u    URI
	}{
		{"ColonInIssuer", URI{Type: TypeTOTP, Issuer: "a:b", Account: "c", Secret: secret}},
		{"ColonInAccount", URI{Type: TypeTOTP, Issuer: "a", Account: "b:c", Secret: secret}},
		{"EmptyAccount", URI{Type: TypeTOTP, Secret: secret}},
		{"LeadingSpaceAccount", URI{Type: TypeTOTP, Issuer: "I", Account: " a", Secret: secret}},
		{"TrailingSpaceIssuer", URI{Type: TypeTOTP, Issuer: "I ", Account: "a", Secret: secret}},
		{"ShortSecret", URI{Type: TypeTOTP, Account: "a", Secret: secret[:10]}},
		{"BadType", URI{Type: "sotp", Account: "a", Secret: secret}},
		{"BadDigits", URI{Type: TypeTOTP, Account: "a", Secret: secret, Params: Params{Digits: 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.u.Format(); !errors.Is(err, ErrURI) {
				t.Errorf("got %v, want ErrURI", err)
			}
		})
	}
}

func TestParseURI(t *testing.T) {
	const s = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	seed := []byte("12345678901234567890")
	tests := []struct {
		name string
		in   string
		want URI
	}{
		{"EncodedColon", "otpauth://totp/Big%20Corporation%3A%20alice%40bigco.com?secret=" + s,
			URI{Type: TypeTOTP, Issuer: "Big Corporation", Account: "alice@bigco.com", Secret: seed, Params: Params{Digits: 6, Period: 30}}},
		{"LowerAlgorithmPaddedLowerSecret", "otpauth://totp/X:y?secret=" + strings.ToLower(s) + "&algorithm=sha256&issuer=X",
			URI{Type: TypeTOTP, Issuer: "X", Account: "y", Secret: seed, Params: Params{Algorithm: SHA256, Digits: 6, Period: 30}}},
		{"PlusAsSpaceInParameter", "otpauth://totp/ACME%20Co:bob?secret=" + s + "&issuer=ACME+Co",
			URI{Type: TypeTOTP, Issuer: "ACME Co", Account: "bob", Secret: seed, Params: Params{Digits: 6, Period: 30}}},
		{"IssuerOnlyParameter", "otpauth://totp/bob?secret=" + s + "&issuer=Z",
			URI{Type: TypeTOTP, Issuer: "Z", Account: "bob", Secret: seed, Params: Params{Digits: 6, Period: 30}}},
		{"UnknownParameterIgnored", "otpauth://totp/bob?secret=" + s + "&image=https%3A%2F%2Fx",
			URI{Type: TypeTOTP, Account: "bob", Secret: seed, Params: Params{Digits: 6, Period: 30}}},
		{"UpperCaseSchemeAndType", "OTPAUTH://TOTP/bob?secret=" + s,
			URI{Type: TypeTOTP, Account: "bob", Secret: seed, Params: Params{Digits: 6, Period: 30}}},
		{"EncodedSlash", "otpauth://totp/a%2Fb?secret=" + s,
			URI{Type: TypeTOTP, Account: "a/b", Secret: seed, Params: Params{Digits: 6, Period: 30}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURI(tt.in)
			if err != nil {
				t.Fatalf("ParseURI: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got %#v, want %#v", *got, tt.want)
			}
		})
	}
	bad := []struct{ name, in string }{
		{"Empty", ""},
		{"HTTP", "https://totp/a?secret=" + s},
		{"UnknownType", "otpauth://motp/a?secret=" + s},
		{"NoLabel", "otpauth://totp/?secret=" + s},
		{"NoSecret", "otpauth://totp/a"},
		{"EmptySecret", "otpauth://totp/a?secret="},
		{"ShortSecret", "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP"},
		{"BadSecret", "otpauth://totp/a?secret=" + s + "01"},
		{"TwoColons", "otpauth://totp/a:b:c?secret=" + s},
		{"IssuerMismatch", "otpauth://totp/A:b?secret=" + s + "&issuer=B"},
		{"RepeatedSecret", "otpauth://totp/a?secret=" + s + "&secret=" + s},
		{"BadDigits", "otpauth://totp/a?secret=" + s + "&digits=9"},
		{"DigitsNotNumber", "otpauth://totp/a?secret=" + s + "&digits=six"},
		{"BadPeriod", "otpauth://totp/a?secret=" + s + "&period=0"},
		{"BadAlgorithm", "otpauth://totp/a?secret=" + s + "&algorithm=MD5"},
		{"HOTPWithoutCounter", "otpauth://hotp/a?secret=" + s},
		{"TOTPWithCounter", "otpauth://totp/a?secret=" + s + "&counter=1"},
		{"HOTPWithPeriod", "otpauth://hotp/a?secret=" + s + "&counter=1&period=30"},
		{"Semicolon", "otpauth://totp/a?secret=" + s + ";digits=6"},
		{"Fragment", "otpauth://totp/a?secret=" + s + "#x"},
		{"UserInfo", "otpauth://u@totp/a?secret=" + s},
		{"Slash", "otpauth://totp/a/b?secret=" + s},
		{"TooLong", "otpauth://totp/a?secret=" + s + "&x=" + strings.Repeat("a", 5000)},
		{"Opaque", "otpauth:totp/a?secret=" + s},
	}
	for _, tt := range bad {
		t.Run("Err"+tt.name, func(t *testing.T) {
			_, err := ParseURI(tt.in)
			if !errors.Is(err, ErrURI) {
				t.Fatalf("got %v, want ErrURI", err)
			}
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

func TestURI_Redaction(t *testing.T) {
	secret := []byte("12345678901234567890")
	u := URI{Type: TypeTOTP, Issuer: "X", Account: "y", Secret: secret}
	enc := EncodeSecret(secret)
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("enrol", "uri", u)
	for _, s := range []string{u.String(), fmt.Sprintf("%v %+v %#v %s", u, u, u, u), logged.String()} {
		if strings.Contains(s, enc) || strings.Contains(s, string(secret)) {
			t.Errorf("secret leaked in %q", s)
		}
		if !strings.Contains(s, "REDACTED") {
			t.Errorf("%q: want REDACTED", s)
		}
	}
}

func TestURI_Compatibility(t *testing.T) {
	secret := make([]byte, 20)
	tests := []struct {
		name string
		u    URI
		want []string // substrings, one per warning
	}{
		{"Defaults", URI{Type: TypeTOTP, Issuer: "X", Account: "y", Secret: secret}, nil},
		{"SHA256", URI{Type: TypeTOTP, Issuer: "X", Account: "y", Secret: secret, Params: Params{Algorithm: SHA256}}, []string{"algorithm SHA256"}},
		{"EightDigits60s", URI{Type: TypeTOTP, Issuer: "X", Account: "y", Secret: secret, Params: Params{Digits: 8, Period: 60}}, []string{"digits 8", "period 60"}},
		{"SevenDigits", URI{Type: TypeTOTP, Issuer: "X", Account: "y", Secret: secret, Params: Params{Digits: 7}}, []string{"digits 7"}},
		{"NoIssuer", URI{Type: TypeTOTP, Account: "y", Secret: secret}, []string{"no issuer"}},
		{"HOTP", URI{Type: TypeHOTP, Issuer: "X", Account: "y", Secret: secret}, []string{"hotp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.u.Compatibility()
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %d warnings", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want it to mention %q", i, got[i], w)
				}
			}
		})
	}
}
