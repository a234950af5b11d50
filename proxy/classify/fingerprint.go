package classify

import (
	"strconv"
	"strings"

	"github.com/portcullis-gw/portcullis/policy"
)

// JA4 layout: JA4_a (10 characters) "_" JA4_b (12 hex) "_" JA4_c (12 hex).
const (
	ja4Len      = 36
	ja4ALen     = 10
	ja4ABLen    = 23 // JA4_a + "_" + JA4_b
	ja4BStart   = 11
	ja4CStart   = 24
	ja4HashLen  = 12
	anyHash     = "*"
	anyCharMark = '?'
)

// Match says how the JA4 was found in the data file.
type Match uint8

const (
	MatchNone      Match = iota // not in the data file: ALPN and User-Agent decided
	MatchExact                  // the whole JA4
	MatchCipherSet              // JA4_a + JA4_b, any extensions (JA4_c "*")
	MatchPattern                // a pattern with "?" in JA4_a
)

func (m Match) String() string {
	switch m {
	case MatchExact:
		return "exact"
	case MatchCipherSet:
		return "cipher set"
	case MatchPattern:
		return "pattern"
	}
	return "none"
}

// family is a TLS stack the data file names, and which kind of client it
// makes.
type family struct {
	name   string
	client policy.ClientApp
}

// fingerprint is one entry of the data file.
type fingerprint struct {
	ja4    string // as written: whole, cipher set or pattern
	family *family
	source string
	kind   Match
}

// matches reports whether a well-formed JA4 fits a pattern entry, whose
// JA4_b was already matched by the index.
func (f *fingerprint) matches(ja4 string) bool {
	for i := range ja4ALen {
		if p := f.ja4[i]; p != anyCharMark && p != ja4[i] {
			return false
		}
	}
	c := f.ja4[ja4CStart:]
	return c == anyHash || c == ja4[ja4CStart:]
}

// wellFormedJA4 checks the shape the lookups index by (the separators at
// their places); the characters themselves need no checking, a fingerprint
// that is not in the tables simply does not match.
func wellFormedJA4(ja4 string) bool {
	return len(ja4) == ja4Len && ja4[ja4ALen] == '_' && ja4[ja4ABLen] == '_'
}

// parseEntryJA4 validates a data file JA4 and says which kind of entry it
// is. JA4_a: a protocol (t, q, d), a version (13, 12, 11, 10, s3, s2, d1,
// d2, d3, 00), d or i, two cipher digits, two extension digits, two ALPN
// characters; "?" may stand for any character. JA4_b: 12 lowercase hex
// digits, always. JA4_c: 12 hex digits or "*".
func parseEntryJA4(s string) (Match, string) {
	a, rest, ok1 := cut(s, '_')
	b, c, ok2 := cut(rest, '_')
	if !ok1 || !ok2 {
		return MatchNone, "want JA4_a_JA4_b_JA4_c, e.g. t13d1516h2_8daaf6152771_02713d6af862"
	}
	if len(a) != ja4ALen {
		return MatchNone, "JA4_a must have 10 characters (e.g. t13d1516h2)"
	}
	if !isHash(b) {
		if b == anyHash {
			return MatchNone, "JA4_b (the cipher set) must be given: it is what identifies a TLS stack"
		}
		return MatchNone, "JA4_b must be 12 lowercase hex digits"
	}
	if c != anyHash && !isHash(c) {
		return MatchNone, `JA4_c must be 12 lowercase hex digits or "*"`
	}
	wild := false
	for i := range ja4ALen {
		ch := a[i]
		if ch == anyCharMark {
			wild = true
			continue
		}
		var ok bool
		switch i {
		case 0:
			ok = ch == 't' || ch == 'q' || ch == 'd'
		case 1, 2:
			ok = isDigit(ch) || ch == 's' || ch == 'd'
		case 3:
			ok = ch == 'd' || ch == 'i'
		case 4, 5, 6, 7:
			ok = isDigit(ch)
		default:
			ok = isDigit(ch) || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z'
		}
		if !ok {
			return MatchNone, "JA4_a character " + strconv.Itoa(i+1) + " (" + strconv.QuoteRune(rune(ch)) + ") is not valid there"
		}
	}
	switch {
	case wild:
		return MatchPattern, ""
	case c == anyHash:
		return MatchCipherSet, ""
	}
	return MatchExact, ""
}

// cut is strings.Cut for a one-byte separator, without the general
// substring search (the User-Agent parser's hot path).
func cut(s string, sep byte) (before, after string, found bool) {
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func isHash(s string) bool {
	if len(s) != ja4HashLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
