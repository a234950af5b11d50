package dlp

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
		c := anchorClass[buf[i]]
		if c == clsNone {
			i++
			// The tight loop: most text is class 0.
			for i < limit && anchorClass[buf[i]] == clsNone {
				i++
			}
			continue
		}
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
