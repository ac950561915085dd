package twofa

import "testing"

// TestNormalizeBackupCode: input ignores case, spaces and hyphens, and
// reads o as 0 and i or l as 1, as Crockford's base32 intends, so a code
// read aloud or copied by hand still works.
func TestNormalizeBackupCode(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"k7m2q-xp4d9-3hn8w", "k7m2qxp4d93hn8w", true},
		{"K7M2Q XP4D9 3HN8W", "k7m2qxp4d93hn8w", true},
		{"k7m2qxp4d93hn8w", "k7m2qxp4d93hn8w", true},
		{"01010-01010-01010", "010100101001010", true},
		{"o1o1o-O1O1O-01010", "010100101001010", true},
		{"0i0l0-0I0L0-01010", "010100101001010", true},
		{"oooooooooolllll", "000000000011111", true},
		{"IiLlO-oIiLl-OoIiL", "111100111100111", true},
		{"k7m2q-xp4d9-3hn8u", "", false}, // u is not in the alphabet
		{"k7m2q-xp4d9-3hn8", "", false},
		{"k7m2q-xp4d9-3hn8ww", "", false},
		{"k7m2q_xp4d9_3hn8w", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := normalizeBackupCode(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalizeBackupCode(%q) = %q, %t; want %q, %t", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
