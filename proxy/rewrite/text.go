package rewrite

import "io"

// textContext is how many already emitted bytes a text scanner keeps in
// front of its carry: enough to see "https:" and a boundary byte before a
// "//" that arrives in the next Write.
const textContext = 8

// textScanner rewrites the hosts of absolute URLs found anywhere in text
// (JavaScript, JSON, XML, CSS). It carries at most textContext + 12 + 253
// bytes between feeds, so memory stays bounded whatever the input.
type textScanner struct {
	hc  *hostCache
	css bool   // "(" also opens a protocol-relative URL: url(//host/x)
	buf []byte // buf[:ctx] was emitted already and is kept as look-behind
	ctx int
}

// feed appends the rewritten form of everything it can decide in p to out.
func (s *textScanner) feed(out, p []byte) []byte {
	var data []byte
	if len(s.buf) == 0 {
		data = p
	} else {
		s.buf = append(s.buf, p...)
		data = s.buf
	}
	out, n := scanText(out, data, s.ctx, false, s.hc, s.css)
	keep := max(n-textContext, 0)
	if len(s.buf) == 0 {
		s.buf = append(s.buf, data[keep:]...)
	} else {
		s.buf = s.buf[:copy(s.buf, data[keep:])]
	}
	s.ctx = n - keep
	return out
}

// flush emits the carry; the scanner is then ready for a new stream.
func (s *textScanner) flush(out []byte) []byte {
	out, _ = scanText(out, s.buf, s.ctx, true, s.hc, s.css)
	s.buf = s.buf[:0]
	s.ctx = 0
	return out
}

var slashOrBackslash = [256]bool{'/': true, '\\': true}

// scanText copies data[from:] to out, replacing mapped URL hosts. It
// returns how far it got: bytes from there on need more input to decide.
// Bytes before from are look-behind only.
func scanText(out, data []byte, from int, final bool, hc *hostCache, css bool) ([]byte, int) {
	emitted := from
	i := from
	for {
		for i < len(data) && !slashOrBackslash[data[i]] {
			i++
		}
		if i >= len(data) {
			break
		}
		sep := separatorLen(data[i:])
		if sep < 0 { // could be a separator; need more bytes
			if !final {
				return append(out, data[emitted:i]...), i
			}
			sep = 0
		}
		if sep == 0 || !urlOpensAt(data, i, css) {
			i++
			continue
		}
		h0 := i + sep
		he := h0
		for he < len(data) && isHostByte(data[he]) {
			he++
		}
		if he == len(data) && !final && he-h0 <= 253 {
			return append(out, data[emitted:i]...), i
		}
		hostEnd := he
		for hostEnd > h0 && data[hostEnd-1] == '.' {
			hostEnd--
		}
		if hostEnd == h0 || hostEnd-h0 > 253 || (he < len(data) && data[he] == '@') {
			i = max(he, i+1)
			continue
		}
		if n, ok := hc.lookupBytes(data[h0:hostEnd]); ok {
			out = append(out, data[emitted:h0]...)
			out = append(out, n...)
			emitted = hostEnd
		}
		i = max(he, i+1)
	}
	return append(out, data[emitted:]...), len(data)
}

// separatorLen recognises "//", JSON's "\/\/" and "\u002F\u002F" at the
// start of b: its length, 0 when it is none, -1 when b is too short to
// tell.
func separatorLen(b []byte) int {
	if b[0] == '/' {
		if len(b) < 2 {
			return -1
		}
		if b[1] == '/' {
			return 2
		}
		return 0
	}
	for _, form := range [...]string{`\/\/`, `\u002f\u002f`} {
		n := min(len(b), len(form))
		match := true
		for k := 0; k < n; k++ {
			if b[k]|lowerBit(b[k]) != form[k] {
				match = false
				break
			}
		}
		if match {
			if n < len(form) {
				return -1
			}
			return len(form)
		}
	}
	return 0
}

// lowerBit folds 'A'..'Z' to lower case with an OR.
func lowerBit(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return 0x20
	}
	return 0
}

// urlOpensAt reports whether the separator at data[i] belongs to an
// absolute URL of a web scheme, or to a protocol-relative URL that opens a
// quoted string (or a CSS url( )).
func urlOpensAt(data []byte, i int, css bool) bool {
	if i == 0 {
		return false
	}
	switch data[i-1] {
	case '"', '\'', '`':
		return true
	case '(':
		return css
	case ':':
	default:
		return false
	}
	k := i - 1
	for k > 0 && i-1-k < 5 && isAlpha(data[k-1]) {
		k--
	}
	if !isWebScheme(string(data[k : i-1])) {
		return false
	}
	if k > 0 {
		c := data[k-1]
		if isAlpha(c) || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.' {
			return false
		}
	}
	return true
}

// textWriter adapts a textScanner to io.WriteCloser.
type textWriter struct {
	dst io.Writer
	s   textScanner
	out []byte
	err error
}

// NewText returns a writer rewriting JavaScript, JSON or XML text into dst:
// string URLs of mapped hosts, including the JSON-escaped forms
// https:\/\/host and https:\u002F\u002Fhost, and protocol-relative URLs that
// open a quoted string. Close flushes; it does not close dst.
func NewText(dst io.Writer, m Mapper) io.WriteCloser {
	return &textWriter{dst: dst, out: getStage(), s: textScanner{hc: newHostCache(suffixFunc(m))}}
}

// NewCSS returns a writer rewriting CSS (url(), @import and any other
// absolute URL) into dst. Close flushes; it does not close dst.
func NewCSS(dst io.Writer, m Mapper) io.WriteCloser {
	return &textWriter{dst: dst, out: getStage(), s: textScanner{hc: newHostCache(suffixFunc(m)), css: true}}
}

func (w *textWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.out = w.s.feed(w.out[:0], p)
	if _, err := w.dst.Write(w.out); err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

func (w *textWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	w.out = w.s.flush(w.out[:0])
	if _, err := w.dst.Write(w.out); err != nil {
		w.err = err
		return err
	}
	w.err = errClosed
	putStage(w.out)
	w.out = nil
	return nil
}
