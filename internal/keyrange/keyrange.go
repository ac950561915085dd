// Package keyrange turns a prefix search into a range of keys, so that
// both stores find IDs by prefix with a range scan of an index and no LIKE
// pattern to escape.
package keyrange

import "unicode/utf8"

// PrefixEnd returns the least string, in byte order, that is greater than
// every string starting with prefix, a valid UTF-8 string, and false when
// there is none. The strings that start with prefix are then exactly
// those from prefix up to, not including, the end.
//
// The end is valid UTF-8 too, as PostgreSQL's text requires: it is prefix
// with its last rune replaced by the next one, dropping trailing
// U+10FFFF. UTF-8 keeps code point order in byte order and no rune's
// encoding is a prefix of another's, which is why the range is exact.
func PrefixEnd(prefix string) (string, bool) {
	for p := prefix; p != ""; {
		r, n := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-n]
		next := r + 1
		if next >= 0xD800 && next <= 0xDFFF { // surrogates have no encoding
			next = 0xE000
		}
		if next <= utf8.MaxRune {
			return p + string(next), true
		}
	}
	return "", false
}
