package dlp

import (
	"encoding/binary"
	"math/bits"
)

// Byte classes of the scanner's table. Everything of class 0 (lower-case
// letters, spaces, punctuation, UTF-8 continuation bytes) is skipped in the
// tight loop; only the three anchor classes cost more than a table load.
const (
	clsNone  = 0
	clsDigit = 1
	clsUpper = 2
	clsAt    = 3
)

var anchorClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = clsDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = clsUpper
	}
	t['@'] = clsAt
	return t
}()

var alnum = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
	}
	return t
}()

// anchorSpan marks (high bit of the byte) each of the eight bytes of x
// that lies in '0'..'Z' (0x30–0x5A), the span that holds every anchor class
// (digits, '@', upper-case letters) and only ":;<=>?" besides. It is the
// exact SWAR test for a byte strictly between 0x2F and 0x5B ("Bit
// Twiddling Hacks", hasbetween): no carry crosses a byte, so the marks are
// exact too. Bytes ≥ 0x80 are never marked.
func anchorSpan(x uint64) uint64 {
	const ones, low7, high = 0x0101010101010101, 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	t := x & low7
	return (ones*(127+0x5B) - t) &^ x & (t + ones*(127-0x2F)) & high
}

// nextAnchor returns the first anchor at or after i, or limit: eight bytes
// at a time, jumping straight to the first byte that may be one.
func nextAnchor(buf []byte, i, limit int) int {
	for i+8 <= limit {
		m := anchorSpan(binary.LittleEndian.Uint64(buf[i:]))
		if m == 0 {
			i += 8
			continue
		}
		i += bits.TrailingZeros64(m) >> 3
		if anchorClass[buf[i]] != clsNone {
			return i
		}
		i++
	}
	for i < limit && anchorClass[buf[i]] == clsNone {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c-'0' < 10 }
func isUpper(c byte) bool { return c-'A' < 26 }

// scanBuiltin runs the built-in detectors over the anchors in buf[from:limit]
// and returns where the next scan must start (past the last token, which may
// end beyond limit but always inside buf). base is buf[0]'s stream offset;
// atStart says buf[0] is the first byte of the stream.
func scanBuiltin(buf []byte, from, limit int, base int64, atStart bool, r *Result) int {
	_ = atStart // buf[0] before the stream start or after a carry is a boundary either way
	i := from
	for i < limit {
		// The tight loop: most text is class 0.
		if i = nextAnchor(buf, i, limit); i == limit {
			break
		}
		c := anchorClass[buf[i]]
		if c != clsAt && i > 0 && alnum[buf[i-1]] {
			// Inside a word: nothing starts here. Skip the word.
			i = skipAlnum(buf, i+1)
			continue
		}
		switch c {
		case clsDigit:
			i = scanDigits(buf, i, base, r)
		case clsUpper:
			i = scanUpper(buf, i, base, r)
		case clsAt:
			i = scanEmail(buf, i, base, r)
		}
	}
	return i
}

func skipAlnum(buf []byte, i int) int {
	for i < len(buf) && alnum[buf[i]] {
		i++
	}
	return i
}
