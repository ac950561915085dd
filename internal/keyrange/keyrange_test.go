package keyrange

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPrefixEnd(t *testing.T) {
	for _, tt := range []struct {
		prefix, end string
		ok          bool
	}{
		{"", "", false},
		{"a", "b", true},
		{"al%", "al&", true},
		{"a\u007f", "a\u0080", true},
		{"a\ud7ff", "a\ue000", true},
		{"a\U0010FFFF", "b", true},
		{"\U0010FFFF\U0010FFFF", "", false},
	} {
		end, ok := PrefixEnd(tt.prefix)
		if end != tt.end || ok != tt.ok {
			t.Errorf("PrefixEnd(%q) = %q, %t; want %q, %t", tt.prefix, end, ok, tt.end, tt.ok)
		}
	}

	// Against the definition: s starts with p exactly when p <= s < end.
	runes := []rune{'a', 'b', 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xffff, 0x10000, utf8.MaxRune}
	str := func(r *rand.Rand) string {
		var b strings.Builder
		for range r.IntN(4) {
			b.WriteRune(runes[r.IntN(len(runes))])
		}
		return b.String()
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		p, s := str(r), str(r)
		end, ok := PrefixEnd(p)
		if ok && !utf8.ValidString(end) {
			t.Fatalf("PrefixEnd(%q) = %q, not valid UTF-8", p, end)
		}
		in := p <= s && (!ok || s < end)
		if in != strings.HasPrefix(s, p) {
			t.Fatalf("prefix %q, end %q, %t: %q in range = %t, HasPrefix = %t", p, end, ok, s, in, !in)
		}
	}
}
