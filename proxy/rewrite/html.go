package rewrite

import (
	"bytes"
	"io"
	"strings"
)

// MaxTagSize bounds the bytes of one start or end tag the HTML writer holds
// while waiting for its '>' (plus at most the Write that brings it past
// the limit). A longer tag (a huge inline data: URI, say) is passed through
// unmodified and counted in HTMLWriter.OversizedTags; the scanner follows
// its quoting to find where it ends, and still honours a <script> or
// <style> it opens.
const MaxTagSize = 128 << 10

type htmlState uint8

const (
	stData htmlState = iota
	stComment
	stBogusComment
	stCDATA
	stRawText
	stSkipTag
	stPlaintext
)

// HTMLWriter rewrites an HTML document streamed through Write into its
// destination. See the package documentation for what it changes.
type HTMLWriter struct {
	dst    io.Writer
	f      hostFunc // hc.lookup
	hc     *hostCache
	inject []byte // full <script> element, nil when nothing is injected
	err    error

	state    htmlState
	pend     []byte // undecided input (an incomplete token) carried to the next Write
	waitGT   bool   // pend holds an incomplete tag: nothing changes before a '>'
	out      []byte
	foreign  int // depth of <svg>/<math>, where <![CDATA[ is real
	rawName  string
	rawSub   *textScanner
	js, css  textScanner
	skipSt   uint8
	skipRaw  string // raw-text element to enter after an oversized tag
	commentJ bool   // just after "<!--": "<!-->" and "<!--->" end a comment
	injected bool

	attrs []tagAttr
	edits []edit

	oversized int
}

var _ io.WriteCloser = (*HTMLWriter)(nil)

// NewHTML returns a writer rewriting HTML into dst (see HTMLWriter). Close
// flushes; it does not close dst. An invalid o.Nonce or o.Inject makes
// every Write fail with ErrBadNonce or ErrBadInject.
func NewHTML(dst io.Writer, m Mapper, o BodyOptions) io.WriteCloser {
	w := &HTMLWriter{dst: dst, out: getStage(), pend: getStage()}
	w.setHosts(newHostCache(suffixFunc(m)))
	w.err = o.validate()
	if o.Inject != nil {
		w.inject = o.scriptElement()
	} else {
		w.injected = true
	}
	return w
}

func (w *HTMLWriter) setHosts(hc *hostCache) {
	w.hc, w.f = hc, hc.lookup
	w.js.hc, w.css.hc, w.css.css = hc, hc, true
}

// OversizedTags reports how many tags exceeded MaxTagSize and were passed
// through unmodified.
func (w *HTMLWriter) OversizedTags() int { return w.oversized }

// Write implements io.Writer.
func (w *HTMLWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.waitGT && bytes.IndexByte(p, '>') < 0 && len(w.pend)+len(p) <= MaxTagSize {
		w.pend = append(w.pend, p...)
		return len(p), nil
	}
	w.waitGT = false
	data := p
	if len(w.pend) > 0 {
		w.pend = append(w.pend, p...)
		data = w.pend
	}
	n := w.run(data, false)
	if len(w.pend) > 0 {
		w.pend = w.pend[:copy(w.pend, data[n:])]
	} else {
		w.pend = append(w.pend, data[n:]...)
	}
	if err := w.flushOut(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close flushes what is pending (an unterminated tag is passed through as
// it is) and injects the script if no place for it came up.
func (w *HTMLWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	w.run(w.pend, true)
	w.pend = w.pend[:0]
	if !w.injected {
		w.out = append(w.out, w.inject...)
		w.injected = true
	}
	if err := w.flushOut(); err != nil {
		return err
	}
	w.err = errClosed
	putStage(w.out)
	putStage(w.pend)
	w.out, w.pend = nil, nil
	return nil
}

func (w *HTMLWriter) flushOut() error {
	if len(w.out) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.out)
	w.out = w.out[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// run tokenizes data and returns how much of it was consumed; the rest is
// an incomplete token to carry (never more than MaxTagSize plus a few
// bytes, except when final).
func (w *HTMLWriter) run(data []byte, final bool) int {
	i := 0
	for i < len(data) {
		switch w.state {
		case stData:
			j := bytes.IndexByte(data[i:], '<')
			if j < 0 {
				w.text(data[i:])
				return len(data)
			}
			w.text(data[i : i+j])
			i += j
			n, done := w.markup(data[i:], final)
			if !done {
				return i
			}
			i += n
		case stComment:
			n, done := w.comment(data[i:], final)
			i += n
			if !done {
				return i
			}
		case stBogusComment:
			k := bytes.IndexByte(data[i:], '>')
			if k < 0 {
				w.out = append(w.out, data[i:]...)
				return len(data)
			}
			w.out = append(w.out, data[i:i+k+1]...)
			i += k + 1
			w.state = stData
		case stCDATA:
			k := bytes.Index(data[i:], []byte("]]>"))
			if k < 0 {
				keep := 0
				if !final {
					keep = min(2, len(data)-i)
				}
				w.out = append(w.out, data[i:len(data)-keep]...)
				return len(data) - keep
			}
			w.out = append(w.out, data[i:i+k+3]...)
			i += k + 3
			w.state = stData
		case stRawText:
			n, done := w.rawText(data[i:], final)
			i += n
			if !done {
				return i
			}
		case stSkipTag:
			end := skipTag(&w.skipSt, data[i:])
			if end < 0 {
				w.out = append(w.out, data[i:]...)
				return len(data)
			}
			w.out = append(w.out, data[i:i+end]...)
			i += end
			w.state = stData
			if w.skipRaw != "" {
				w.enterRaw(w.skipRaw)
				w.skipRaw = ""
			}
		case stPlaintext:
			w.out = append(w.out, data[i:]...)
			return len(data)
		}
	}
	if final && w.state == stRawText && w.rawSub != nil {
		w.out = w.rawSub.flush(w.out)
	}
	return len(data)
}

// text emits character data, injecting the script before the first
// non-whitespace text when no tag took it.
func (w *HTMLWriter) text(b []byte) {
	if !w.injected {
		for k, c := range b {
			if !isSpace(c) {
				w.out = append(w.out, b[:k]...)
				w.out = append(w.out, w.inject...)
				w.injected = true
				b = b[k:]
				break
			}
		}
	}
	w.out = append(w.out, b...)
}

// markup handles b starting at '<'. done=false: more bytes are needed.
func (w *HTMLWriter) markup(b []byte, final bool) (int, bool) {
	if len(b) < 2 {
		if final {
			w.text(b)
			return len(b), true
		}
		return 0, false
	}
	switch c := b[1]; {
	case c == '!':
		if hasPrefixOrShort(b, "<!--") {
			if len(b) < 4 {
				if final {
					w.out = append(w.out, b...)
					return len(b), true
				}
				return 0, false
			}
			w.out = append(w.out, "<!--"...)
			w.state, w.commentJ = stComment, true
			return 4, true
		}
		if w.foreign > 0 && hasPrefixFoldOrShort(b, "<![CDATA[") {
			if len(b) < 9 {
				if final {
					w.out = append(w.out, b...)
					return len(b), true
				}
				return 0, false
			}
			w.out = append(w.out, b[:9]...)
			w.state = stCDATA
			return 9, true
		}
		w.out = append(w.out, "<!"...)
		w.state = stBogusComment
		return 2, true
	case c == '?':
		w.out = append(w.out, '<')
		w.state = stBogusComment
		return 1, true
	case c == '/':
		if len(b) < 3 {
			if final {
				w.text(b)
				return len(b), true
			}
			return 0, false
		}
		if b[2] == '>' {
			w.out = append(w.out, "</>"...)
			return 3, true
		}
		if !isAlpha(b[2]) {
			w.out = append(w.out, "</"...)
			w.state = stBogusComment
			return 2, true
		}
		k := bytes.IndexByte(b, '>')
		if k < 0 {
			return w.incompleteTag(b, final, "")
		}
		name := tagName(b[2:k])
		if (name == "svg" || name == "math") && w.foreign > 0 {
			w.foreign--
		}
		w.out = append(w.out, b[:k+1]...)
		return k + 1, true
	case isAlpha(c):
		n, selfClosing, ok := w.parseTag(b)
		if !ok {
			return w.incompleteTag(b, final, rawTextName(tagName(b[1:])))
		}
		w.startTag(b[:n], selfClosing)
		return n, true
	}
	w.text(b[:1])
	return 1, true
}

// incompleteTag decides about a tag without its '>' yet: wait for more,
// or pass it through when it is too large or the input ended.
func (w *HTMLWriter) incompleteTag(b []byte, final bool, raw string) (int, bool) {
	if final {
		w.out = append(w.out, b...)
		return len(b), true
	}
	if len(b) <= MaxTagSize {
		w.waitGT = true
		return 0, false
	}
	w.oversized++
	w.skipSt = 0
	if end := skipTag(&w.skipSt, b[1:]); end >= 0 {
		// parseTag and skipTag follow the same states, so this is only a
		// guard: treat the tag as ended where skipTag says.
		w.out = append(w.out, b[:1+end]...)
		if raw != "" {
			w.enterRaw(raw)
		}
		return 1 + end, true
	}
	w.out = append(w.out, b...)
	w.state = stSkipTag
	w.skipRaw = raw
	return len(b), true
}

// comment copies a comment's text up to and including its end.
func (w *HTMLWriter) comment(b []byte, final bool) (int, bool) {
	i := 0
	if w.commentJ {
		if len(b) < 2 && !final {
			return 0, false
		}
		w.commentJ = false
		if len(b) >= 1 && b[0] == '>' {
			w.out = append(w.out, '>')
			w.state = stData
			return 1, true
		}
		if len(b) >= 2 && b[0] == '-' && b[1] == '>' {
			w.out = append(w.out, "->"...)
			w.state = stData
			return 2, true
		}
	}
	for {
		k := bytes.Index(b[i:], []byte("--"))
		if k < 0 {
			end := len(b)
			if !final && end > i && b[end-1] == '-' {
				end--
			}
			w.out = append(w.out, b[i:end]...)
			return end, final || end == len(b)
		}
		p := i + k
		if p+2 >= len(b) || (b[p+2] == '!' && p+3 >= len(b)) {
			if final {
				w.out = append(w.out, b[i:]...)
				return len(b), true
			}
			w.out = append(w.out, b[i:p]...)
			return p, false
		}
		if b[p+2] == '>' {
			w.out = append(w.out, b[i:p+3]...)
			w.state = stData
			return p + 3, true
		}
		if b[p+2] == '!' && b[p+3] == '>' {
			w.out = append(w.out, b[i:p+4]...)
			w.state = stData
			return p + 4, true
		}
		w.out = append(w.out, b[i:p+1]...)
		i = p + 1
	}
}

// rawText feeds script/style/etc. content to its rewriter until the
// matching end tag, which is left for the data state.
func (w *HTMLWriter) rawText(b []byte, final bool) (int, bool) {
	s := 0
	for {
		k := bytes.Index(b[s:], []byte("</"))
		if k < 0 {
			end := len(b)
			if !final && end > 0 && b[end-1] == '<' {
				end--
			}
			w.rawFeed(b[:end])
			return end, final || end == len(b)
		}
		p := s + k
		need := p + 2 + len(w.rawName) + 1
		if need > len(b) {
			if final {
				w.rawFeed(b)
				return len(b), true
			}
			w.rawFeed(b[:p])
			return p, false
		}
		nameEnd := p + 2 + len(w.rawName)
		if bytes.EqualFold(b[p+2:nameEnd], []byte(w.rawName)) {
			if c := b[nameEnd]; isSpace(c) || c == '/' || c == '>' {
				w.rawFeed(b[:p])
				if w.rawSub != nil {
					w.out = w.rawSub.flush(w.out)
				}
				w.state = stData
				return p, true
			}
		}
		s = p + 2
	}
}

func (w *HTMLWriter) rawFeed(b []byte) {
	if w.rawSub != nil {
		w.out = w.rawSub.feed(w.out, b)
	} else {
		w.out = append(w.out, b...)
	}
}

// rawTextName returns the element name if its content is raw text (or
// escapable raw text) for the tokenizer, "" otherwise.
func rawTextName(name string) string {
	switch name {
	case "script", "style", "textarea", "title", "xmp", "iframe", "noembed",
		"noframes", "noscript", "plaintext":
		return name
	}
	return ""
}

func (w *HTMLWriter) enterRaw(name string) {
	switch name {
	case "plaintext":
		w.state = stPlaintext
		return
	case "script":
		w.rawSub = &w.js
	case "style":
		w.rawSub = &w.css
	default:
		w.rawSub = nil
	}
	w.rawName = name
	w.state = stRawText
}

func hasPrefixOrShort(b []byte, p string) bool {
	n := min(len(b), len(p))
	return string(b[:n]) == p[:n]
}

func hasPrefixFoldOrShort(b []byte, p string) bool {
	n := min(len(b), len(p))
	return strings.EqualFold(string(b[:n]), p[:n])
}
