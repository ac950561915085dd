package otp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestDecodeSecret(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantHex string
	}{
		{"WikiExample", "JBSWY3DPEHPK3PXP", "48656c6c6f21deadbeef"},
		{"LowerWithSpaces", "jbsw y3dp ehpk 3pxp", "48656c6c6f21deadbeef"},
		{"Hyphens", "JBSW-Y3DP-EHPK-3PXP", "48656c6c6f21deadbeef"},
		{"RFCSeed", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "3132333435363738393031323334353637383930"},
		{"Unpadded32", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA", "3132333435363738393031323334353637383930313233343536373839303132"},
		{"Padded32", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA====", "3132333435363738393031323334353637383930313233343536373839303132"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSecret(tt.in)
			if err != nil {
				t.Fatalf("DecodeSecret: %v", err)
			}
			if hex.EncodeToString(got) != tt.wantHex {
				t.Errorf("got %x, want %s", got, tt.wantHex)
			}
		})
	}
	bad := []struct{ name, in string }{
		{"Empty", ""},
		{"OnlySeparators", " - -"},
		{"DigitZero", "JBSWY3DPEHPK3PX0"},
		{"DigitOne", "JBSWY3DPEHPK3PX1"},
		{"DigitEight", "JBSWY3DPEHPK3PX8"},
		{"Punctuation", "JBSWY3DP.EHPK3PXP"},
		{"Unicode", "JBSWY3DPÉHPK3PXP"},
		{"PaddingInside", "JBSW=Y3DP"},
		{"WrongPadding", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA=="},
		{"ImpossibleLength", "ABC"},
		{"Huge", strings.Repeat("A", 2000)},
	}
	for _, tt := range bad {
		t.Run("Err"+tt.name, func(t *testing.T) {
			_, err := DecodeSecret(tt.in)
			if !errors.Is(err, ErrSecretEncoding) {
				t.Fatalf("got %v, want ErrSecretEncoding", err)
			}
			if len(tt.in) > 3 && strings.Contains(err.Error(), tt.in) {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
}

func TestGenerateSecret(t *testing.T) {
	for _, a := range []Algorithm{SHA1, SHA256, SHA512} {
		s1, err := GenerateSecret(a)
		if err != nil {
			t.Fatal(err)
		}
		s2, _ := GenerateSecret(a)
		if len(s1) != a.SecretSize() || bytes.Equal(s1, s2) {
			t.Errorf("%v: got %d bytes (want %d), two equal secrets=%v", a, len(s1), a.SecretSize(), bytes.Equal(s1, s2))
		}
		enc := EncodeSecret(s1)
		if strings.ContainsAny(enc, "=abcdefghijklmnopqrstuvwxyz") {
			t.Errorf("EncodeSecret = %s, want unpadded upper case", enc)
		}
		back, err := DecodeSecret(enc)
		if err != nil || !bytes.Equal(back, s1) {
			t.Errorf("round trip: got %x, %v; want %x", back, err, s1)
		}
	}
	if _, err := GenerateSecretSize(15); !errors.Is(err, ErrSecretTooShort) {
		t.Errorf("15 bytes: got %v, want ErrSecretTooShort", err)
	}
	// The lengths of the table in the standards: 16, 20, 32, 64 bytes.
	for n, want := range map[int]int{16: 26, 20: 32, 32: 52, 64: 103} {
		s, _ := GenerateSecretSize(n)
		if got := len(EncodeSecret(s)); got != want {
			t.Errorf("%d bytes: %d base32 characters, want %d", n, got, want)
		}
	}
}
