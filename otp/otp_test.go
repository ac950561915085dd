package otp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	seedSHA1   = []byte("12345678901234567890")
	seedSHA256 = []byte("12345678901234567890123456789012")
	seedSHA512 = []byte("1234567890123456789012345678901234567890123456789012345678901234")
)

func mustKey(tb testing.TB, secret []byte, p Params) *Key {
	tb.Helper()
	k, err := NewKey(secret, p)
	if err != nil {
		tb.Fatalf("NewKey: %v", err)
	}
	return k
}

// RFC 4226 Appendix D.
func TestKey_HOTP_RFC4226(t *testing.T) {
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	k := mustKey(t, seedSHA1, Params{})
	for c, w := range want {
		if got := k.HOTP(uint64(c)); got != w {
			t.Errorf("HOTP(%d) = %s, want %s", c, got, w)
		}
	}
}

// RFC 6238 Appendix B, with the 32- and 64-byte seeds for SHA256 and SHA512.
func TestKey_TOTP_RFC6238(t *testing.T) {
	tests := []struct {
		unix int64
		step uint64
		alg  Algorithm
		code string
	}{
		{59, 0x1, SHA1, "94287082"},
		{59, 0x1, SHA256, "46119246"},
		{59, 0x1, SHA512, "90693936"},
		{1111111109, 0x23523EC, SHA1, "07081804"},
		{1111111109, 0x23523EC, SHA256, "68084774"},
		{1111111109, 0x23523EC, SHA512, "25091201"},
		{1111111111, 0x23523ED, SHA1, "14050471"},
		{1111111111, 0x23523ED, SHA256, "67062674"},
		{1111111111, 0x23523ED, SHA512, "99943326"},
		{1234567890, 0x273EF07, SHA1, "89005924"},
		{1234567890, 0x273EF07, SHA256, "91819424"},
		{1234567890, 0x273EF07, SHA512, "93441116"},
		{2000000000, 0x3F940AA, SHA1, "69279037"},
		{2000000000, 0x3F940AA, SHA256, "90698825"},
		{2000000000, 0x3F940AA, SHA512, "38618901"},
		{20000000000, 0x27BC86AA, SHA1, "65353130"},
		{20000000000, 0x27BC86AA, SHA256, "77737706"},
		{20000000000, 0x27BC86AA, SHA512, "47863826"},
	}
	seeds := map[Algorithm][]byte{SHA1: seedSHA1, SHA256: seedSHA256, SHA512: seedSHA512}
	for _, tt := range tests {
		t.Run(tt.alg.String()+"/"+time.Unix(tt.unix, 0).UTC().Format(time.RFC3339), func(t *testing.T) {
			p := Params{Algorithm: tt.alg, Digits: 8}
			k := mustKey(t, seeds[tt.alg], p)
			at := time.Unix(tt.unix, 0)
			if got := p.Step(at); got != tt.step {
				t.Errorf("Step = %#x, want %#x", got, tt.step)
			}
			if got := k.TOTP(at); got != tt.code {
				t.Errorf("TOTP = %s, want %s", got, tt.code)
			}
			m, err := k.Verify(tt.code, at, Window{})
			if err != nil || !m.Valid || m.Step != tt.step || m.Offset != 0 {
				t.Errorf("Verify = %+v, %v; want valid at step %#x", m, err, tt.step)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	k, _ := NewKey(seedSHA1, Params{})
	now := time.Unix(1234567890, 0)
	valid := k.TOTP(now)
	invalid := "000000"
	if valid == invalid {
		invalid = "000001"
	}
	for _, bc := range []struct{ name, code string }{{"Valid", valid}, {"Invalid", invalid}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := k.Verify(bc.code, now, DefaultWindow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("RawHMACSHA1", func(b *testing.B) {
		b.ReportAllocs()
		mac := hmac.New(sha1.New, seedSHA1)
		var msg [8]byte
		var sum [20]byte
		for i := 0; i < b.N; i++ {
			binary.BigEndian.PutUint64(msg[:], uint64(i))
			mac.Reset()
			mac.Write(msg[:])
			mac.Sum(sum[:0])
		}
	})
}

func TestKey_Verify(t *testing.T) {
	p := Params{}
	k := mustKey(t, seedSHA1, p)
	now := time.Unix(1_700_000_000, 0)
	cur := p.Step(now)
	code := func(step uint64) string { return k.HOTP(step) }
	tests := []struct {
		name      string
		code      string
		w         Window
		wantValid bool
		wantStep  uint64
		wantOff   int
	}{
		{"Current", code(cur), DefaultWindow, true, cur, 0},
		{"Previous", code(cur - 1), DefaultWindow, true, cur - 1, -1},
		{"Next", code(cur + 1), DefaultWindow, true, cur + 1, 1},
		{"TwoBehindOutside", code(cur - 2), DefaultWindow, false, 0, 0},
		{"TwoAheadOutside", code(cur + 2), DefaultWindow, false, 0, 0},
		{"AsymmetricPastOnly", code(cur + 1), Window{Behind: 1, Ahead: 0}, false, 0, 0},
		{"AsymmetricPastOnlyPrevious", code(cur - 1), Window{Behind: 1, Ahead: 0}, true, cur - 1, -1},
		{"ShiftedByDrift", code(cur + 3), DefaultWindow.Shift(2), true, cur + 3, 3},
		{"ShiftedExcludesCurrent", code(cur - 1), DefaultWindow.Shift(3), false, 0, 0},
		{"WithSpaces", code(cur)[:3] + " " + code(cur)[3:], DefaultWindow, true, cur, 0},
		{"Wide", code(cur - 20), Window{Behind: 20, Ahead: 20}, true, cur - 20, -20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := k.Verify(tt.code, now, tt.w)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if m.Valid != tt.wantValid || m.Step != tt.wantStep || m.Offset != tt.wantOff {
				t.Errorf("got %+v, want valid=%v step=%d offset=%d", m, tt.wantValid, tt.wantStep, tt.wantOff)
			}
		})
	}
	t.Run("ErrWindow", func(t *testing.T) {
		for _, w := range []Window{{Behind: -1, Ahead: -1}, {Behind: 60, Ahead: 60}} {
			if _, err := k.Verify(code(cur), now, w); !errors.Is(err, ErrWindow) {
				t.Errorf("window %+v: got %v, want ErrWindow", w, err)
			}
		}
	})
	t.Run("BeforeT0", func(t *testing.T) {
		k := mustKey(t, seedSHA1, Params{T0: 1000})
		m, err := k.Verify(k.HOTP(0), time.Unix(10, 0), DefaultWindow)
		if err != nil || !m.Valid || m.Step != 0 {
			t.Errorf("got %+v, %v; want step 0 valid", m, err)
		}
	})
	t.Run("LatestMatchWins", func(t *testing.T) {
		// Steps 153567 and 153569 of the RFC 4226 seed share a code: when
		// both are in the window, the later must win, since replay
		// protection keeps the last accepted step.
		const early, late, code = 153567, 153569, "468457"
		if k.HOTP(early) != code || k.HOTP(late) != code {
			t.Fatalf("HOTP(%d), HOTP(%d) = %s, %s; want both %s", early, late, k.HOTP(early), k.HOTP(late), code)
		}
		at := func(step int64) time.Time { return time.Unix(step*30+7, 0) }
		for _, tt := range []struct {
			name string
			t    time.Time
			w    Window
			want Match
		}{
			{"BothAroundCurrent", at(early + 1), DefaultWindow, Match{Valid: true, Step: late, Offset: 1}},
			{"BothAhead", at(early), Window{Ahead: 2}, Match{Valid: true, Step: late, Offset: 2}},
			{"BothBehind", at(late), Window{Behind: 2}, Match{Valid: true, Step: late, Offset: 0}},
			{"BothInWideWindow", at(late + 40), Window{Behind: 50, Ahead: 50}, Match{Valid: true, Step: late, Offset: -40}},
			{"OnlyEarly", at(early + 1), Window{Behind: 1}, Match{Valid: true, Step: early, Offset: -1}},
		} {
			if got, err := k.Verify(code, tt.t, tt.w); err != nil || got != tt.want {
				t.Errorf("%s: Verify = %+v, %v; want %+v", tt.name, got, err, tt.want)
			}
		}
	})
}

func TestKey_VerifyHOTP(t *testing.T) {
	k := mustKey(t, seedSHA1, Params{})
	tests := []struct {
		name      string
		code      string
		start     uint64
		ahead     int
		wantValid bool
		wantStep  uint64
	}{
		{"AtStart", "755224", 0, 0, true, 0},
		{"LookAhead", "969429", 0, 5, true, 3},
		{"BeyondLookAhead", "520489", 0, 5, false, 0},
		{"BeforeStart", "755224", 1, 5, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := k.VerifyHOTP(tt.code, tt.start, tt.ahead)
			if err != nil || m.Valid != tt.wantValid || m.Step != tt.wantStep {
				t.Errorf("got %+v, %v; want valid=%v step=%d", m, err, tt.wantValid, tt.wantStep)
			}
		})
	}
	if _, err := k.VerifyHOTP("755224", ^uint64(0), 1); !errors.Is(err, ErrWindow) {
		t.Errorf("counter overflow: got %v, want ErrWindow", err)
	}
}

func TestParseCode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		digits  int
		want    uint32
		wantErr error
	}{
		{"Six", "123456", 6, 123456, nil},
		{"LeadingZeros", "000042", 6, 42, nil},
		{"Eight", "12345678", 8, 12345678, nil},
		{"Spaces", " 123 456 ", 6, 123456, nil},
		{"TooShort", "12345", 6, 0, ErrCodeLength},
		{"TooLong", "1234567", 6, 0, ErrCodeLength},
		{"Empty", "", 6, 0, ErrCodeLength},
		{"OnlySpaces", "      ", 6, 0, ErrCodeLength},
		{"Huge", strings.Repeat("1", 10000), 6, 0, ErrCodeLength},
		{"Letter", "12345a", 6, 0, ErrCodeNotDigits},
		{"Hyphen", "123-456", 6, 0, ErrCodeNotDigits},
		{"Tab", "123\t456", 6, 0, ErrCodeNotDigits},
		{"ArabicIndic", "١٢٣٤٥٦", 6, 0, ErrCodeNotDigits},
		{"FullWidth", "１２３４５６", 6, 0, ErrCodeNotDigits},
		{"Devanagari", "१२३४५६", 6, 0, ErrCodeNotDigits},
		{"NUL", "123\x00456", 6, 0, ErrCodeNotDigits},
		{"Sign", "+12345", 6, 0, ErrCodeNotDigits},
		{"InvalidUTF8", "12\xff3456", 6, 0, ErrCodeNotDigits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCode(tt.in, tt.digits)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrMalformedCode) {
					t.Fatalf("got err %v, want %v (and ErrMalformedCode)", err, tt.wantErr)
				}
				if len(tt.in) > 2 && strings.Contains(err.Error(), tt.in) {
					t.Errorf("error %q echoes the input", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
	// Malformed input is told apart from a wrong code by Verify too.
	k := mustKey(t, seedSHA1, Params{})
	if _, err := k.Verify("12345", time.Now(), DefaultWindow); !errors.Is(err, ErrMalformedCode) {
		t.Errorf("Verify(short): got %v, want ErrMalformedCode", err)
	}
}

func TestParams_Normalize(t *testing.T) {
	tests := []struct {
		name    string
		in      Params
		want    Params
		wantErr bool
	}{
		{"Zero", Params{}, Params{Algorithm: SHA1, Digits: 6, Period: 30}, false},
		{"Custom", Params{Algorithm: SHA512, Digits: 8, Period: 60, T0: 5}, Params{Algorithm: SHA512, Digits: 8, Period: 60, T0: 5}, false},
		{"FiveDigits", Params{Digits: 5}, Params{}, true},
		{"NineDigits", Params{Digits: 9}, Params{}, true},
		{"NegativePeriod", Params{Period: -30}, Params{}, true},
		{"HugePeriod", Params{Period: MaxPeriod + 1}, Params{}, true},
		{"UnknownAlgorithm", Params{Algorithm: 7}, Params{}, true},
		{"NegativeT0", Params{T0: -1}, Params{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Normalize()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	if _, err := NewKey(make([]byte, 15), Params{}); !errors.Is(err, ErrSecretTooShort) {
		t.Errorf("15 bytes: got %v, want ErrSecretTooShort", err)
	}
	k := mustKey(t, seedSHA1, Params{})
	for _, s := range []string{k.String(), k.GoString()} {
		if strings.Contains(s, string(seedSHA1)) || strings.Contains(s, EncodeSecret(seedSHA1)) {
			t.Errorf("String leaks the secret: %s", s)
		}
	}
}

func TestParseAlgorithm(t *testing.T) {
	for in, want := range map[string]Algorithm{"SHA1": SHA1, "sha1": SHA1, "SHA-256": SHA256, "sha512": SHA512} {
		if got, err := ParseAlgorithm(in); err != nil || got != want {
			t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MD5", "SHA3", "sha 1"} {
		if _, err := ParseAlgorithm(in); err == nil {
			t.Errorf("ParseAlgorithm(%q): got nil error", in)
		}
	}
}

// The same key used from many goroutines gives the same codes.
func TestKey_Concurrent(t *testing.T) {
	k := mustKey(t, seedSHA1, Params{})
	done := make(chan bool)
	for g := 0; g < 8; g++ {
		go func() {
			ok := true
			for c := uint64(0); c < 200; c++ {
				m, err := k.VerifyHOTP(k.HOTP(c), c, 0)
				ok = ok && err == nil && m.Valid
			}
			done <- ok
		}()
	}
	for g := 0; g < 8; g++ {
		if !<-done {
			t.Error("a goroutine saw a wrong result")
		}
	}
}

var _ = bytes.Equal
