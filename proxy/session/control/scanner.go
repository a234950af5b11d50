package control

// scanner finds where the control elements go in an HTML document: right
// after the <head> start tag or, without one, before the first token that
// is neither whitespace, a comment, a doctype nor the <html> start tag. It
// follows the HTML tokenizer's states for exactly those tokens (comments,
// bogus comments, doctypes, the attributes of a start tag with their
// quoting) and decides at the first other token, so it never needs to
// know more of the document than its first tokens.
//
// With lookahead (the response header names no charset) it also keeps a
// <meta charset> inside the first 1024 bytes, where browsers look for it:
// it steps over <meta>, <link> and <base> tags in the head and puts the
// elements right after a meta that declares a charset, before a
// Content-Security-Policy meta (whose policy would otherwise apply to
// them), or at the first token boundary past 1024 bytes.
type scanner struct {
	lookahead bool
	phase     scanPhase
	attr      attrState
	inHead    bool
	seen      int // document bytes before the current buffer
	start     int // buffer index of the current tag's '<' while it is held, -1 when none
	tag       tagKind
	name      [5]byte
	nameLen   int
	endTag    bool
	skipName  bool

	// The meta tag being read (lookahead only).
	attrName, attrVal         []byte
	charset, ctEquiv, cspMeta bool
	contentCharset            bool
}

type scanPhase uint8

const (
	phStart scanPhase = iota // document start: byte order mark
	phData
	phTagOpen    // after '<'
	phMarkup     // after "<!"
	phMarkupDash // after "<!-"
	phCommentStart
	phCommentStartDash
	phComment
	phCommentEndDash
	phCommentEnd
	phCommentEndBang
	phBogus // bogus comment, doctype, processing instruction: up to '>'
	phEndTagOpen
	phTagName
	phTag // attributes of a start tag we step over
)

type attrState uint8

const (
	atBeforeName attrState = iota
	atName
	atAfterName
	atBeforeValue
	atValueDQ
	atValueSQ
	atValueUnquoted
	atAfterValueQuoted
	atSelfClosing
)

type tagKind uint8

const (
	tagSkip tagKind = iota // <html>, <link>, <base>
	tagHead
	tagMeta
)

// Results of scan besides an insertion offset.
const (
	scanMore    = -1 // undecided: feed more bytes
	scanSkip    = -2 // no insertion: pass the document through as it is
	scanNothing = -3 // no insertion: the document has nothing to protect
)

// lookaheadLimit is where browsers stop looking for a meta charset.
const lookaheadLimit = 1024

// maxHeldMeta bounds a meta tag held in lookahead; a longer one gets the
// elements in front of it.
const maxHeldMeta = 2048

func newScanner(lookahead bool) *scanner { return &scanner{lookahead: lookahead, start: -1} }

// scan continues over buf[from:] (buf[:from] was seen by the previous call
// and held). It returns the insertion offset into buf, scanMore with keep,
// the number of bytes at the end of buf to hold and pass in front of the
// next ones (the rest may be emitted), or scanSkip. With final (the end of
// the document) it never returns scanMore.
func (s *scanner) scan(buf []byte, from int, final bool) (at, keep int) {
	i := from
	if s.phase == phStart {
		i = 0 // held whole until the byte order mark is known
	}
	for i < len(buf) {
		c := buf[i]
		switch s.phase {
		case phStart:
			if len(buf) < 3 && !final {
				return s.more(buf, 0)
			}
			switch {
			case len(buf) >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf:
				s.lookahead = false // the byte order mark declares UTF-8
				i = 3
			case len(buf) >= 2 && (buf[0] == 0xfe && buf[1] == 0xff || buf[0] == 0xff && buf[1] == 0xfe):
				return scanSkip, 0
			}
			s.phase = phData
		case phData:
			switch {
			case isSpace(c):
				i++
			case s.lookahead && s.seen+i >= lookaheadLimit:
				return i, 0
			case c == '<':
				s.start = i
				s.phase = phTagOpen
				i++
			default:
				return i, 0 // text
			}
		case phTagOpen:
			switch {
			case c == '!':
				s.phase, s.start = phMarkup, -1
				i++
			case c == '/':
				s.phase = phEndTagOpen
				i++
			case c == '?':
				s.phase, s.start = phBogus, -1
			case isAlpha(c):
				s.phase, s.nameLen, s.endTag, s.skipName = phTagName, 0, false, false
			default:
				return s.start, 0 // a lone '<' is text
			}
		case phMarkup:
			if c == '-' {
				s.phase = phMarkupDash
				i++
			} else {
				s.phase = phBogus
			}
		case phMarkupDash:
			if c == '-' {
				s.phase = phCommentStart
				i++
			} else {
				s.phase = phBogus
			}
		case phCommentStart, phCommentStartDash, phComment, phCommentEndDash, phCommentEnd, phCommentEndBang:
			s.comment(c)
			i++
		case phBogus:
			k := indexByteFrom(buf, i, '>')
			if k < 0 {
				i = len(buf)
				continue
			}
			i = k + 1
			s.phase = phData
		case phEndTagOpen:
			switch {
			case isAlpha(c):
				s.phase, s.nameLen, s.endTag, s.skipName = phTagName, 0, true, false
			case c == '>': // "</>" is dropped by the tokenizer
				s.phase, s.start = phData, -1
				i++
			default:
				s.phase, s.start = phBogus, -1
			}
		case phTagName:
			if isSpace(c) || c == '/' || c == '>' {
				name := string(s.name[:s.nameLen])
				if s.skipName {
					name = "" // longer than any name that matters
				}
				if !s.decideTag(name) {
					return s.start, 0
				}
				s.phase, s.attr = phTag, atBeforeName
				continue
			}
			if s.nameLen == len(s.name) {
				if !s.endTag {
					return s.start, 0 // no start tag we step over has a name that long
				}
				s.skipName = true
			}
			if !s.skipName {
				s.name[s.nameLen] = lower(c)
				s.nameLen++
			}
			i++
		case phTag:
			if s.tag == tagMeta && i-s.start > maxHeldMeta {
				return s.start, 0
			}
			if s.attribute(c) {
				i++
				continue
			}
			i++ // the tag's '>'
			switch s.tag {
			case tagHead:
				s.inHead = true
				if !s.lookahead {
					return i, 0
				}
			case tagMeta:
				s.inHead = true
				s.endAttr()
				if s.cspMeta {
					return s.start, 0
				}
				if s.charset || s.ctEquiv && s.contentCharset {
					return i, 0
				}
			}
			s.phase, s.start = phData, -1
		}
	}
	if final {
		switch {
		case s.start >= 0:
			return s.start, 0 // an unfinished tag the tokenizer drops
		case s.seen+len(buf) == 0, s.phase != phData && s.phase != phStart:
			// An empty body stays empty, and one that ends inside a
			// comment, doctype or tag renders nothing: the elements would
			// land inside that markup.
			return scanNothing, 0
		}
		return len(buf), 0
	}
	if s.start >= 0 {
		return s.more(buf, s.start)
	}
	return s.more(buf, len(buf))
}

// more asks for more input, holding buf[hold:]: later offsets are
// relative to the held bytes, which start the next buffer.
func (s *scanner) more(buf []byte, hold int) (int, int) {
	s.seen += hold
	if s.start >= 0 {
		s.start -= hold
	}
	return scanMore, len(buf) - hold
}

// decideTag decides about a tag by its name: true to step over it. End
// tags are ignored by the tree builder before and in the head, except
// those that end it.
func (s *scanner) decideTag(name string) bool {
	if s.endTag {
		switch name {
		case "head", "body", "html", "br":
			return false
		}
		s.tag, s.start = tagSkip, -1
		return true
	}
	switch {
	case name == "html" && !s.inHead:
		s.tag = tagSkip
	case name == "head" && !s.inHead:
		s.tag = tagHead
	case s.lookahead && name == "meta":
		s.tag = tagMeta
		s.charset, s.ctEquiv, s.cspMeta, s.contentCharset = false, false, false, false
		s.attrName, s.attrVal = s.attrName[:0], s.attrVal[:0]
		return true // held until its '>'
	case s.lookahead && (name == "link" || name == "base"):
		s.tag = tagSkip
		s.inHead = true
	default:
		return false
	}
	s.start = -1
	return true
}

// comment follows the tokenizer's comment states for one byte.
func (s *scanner) comment(c byte) {
	switch s.phase {
	case phCommentStart:
		switch c {
		case '-':
			s.phase = phCommentStartDash
		case '>':
			s.phase = phData
		default:
			s.phase = phComment
		}
	case phCommentStartDash:
		switch c {
		case '-':
			s.phase = phCommentEnd
		case '>':
			s.phase = phData
		default:
			s.phase = phComment
		}
	case phComment:
		if c == '-' {
			s.phase = phCommentEndDash
		}
	case phCommentEndDash:
		if c == '-' {
			s.phase = phCommentEnd
		} else {
			s.phase = phComment
		}
	case phCommentEnd:
		switch c {
		case '>':
			s.phase = phData
		case '!':
			s.phase = phCommentEndBang
		case '-':
		default:
			s.phase = phComment
		}
	case phCommentEndBang:
		switch c {
		case '-':
			s.phase = phCommentEndDash
		case '>':
			s.phase = phData
		default:
			s.phase = phComment
		}
	}
}

// attribute follows the tokenizer's attribute states for one byte of a
// start tag; false when c is the '>' that ends the tag.
func (s *scanner) attribute(c byte) bool {
	switch s.attr {
	case atBeforeName:
		switch {
		case isSpace(c):
		case c == '/':
			s.attr = atSelfClosing
		case c == '>':
			return false
		default:
			s.newAttr(c)
		}
	case atName:
		switch {
		case isSpace(c):
			s.attr = atAfterName
		case c == '/':
			s.attr = atSelfClosing
		case c == '=':
			s.attr = atBeforeValue
		case c == '>':
			return false
		default:
			s.attrName = appendCapped(s.attrName, lower(c), 32)
		}
	case atAfterName:
		switch {
		case isSpace(c):
		case c == '/':
			s.attr = atSelfClosing
		case c == '=':
			s.attr = atBeforeValue
		case c == '>':
			return false
		default:
			s.newAttr(c)
		}
	case atBeforeValue:
		switch {
		case isSpace(c):
		case c == '"':
			s.attr = atValueDQ
		case c == '\'':
			s.attr = atValueSQ
		case c == '>':
			return false
		default:
			s.attr = atValueUnquoted
			s.attrVal = appendCapped(s.attrVal, lower(c), 256)
		}
	case atValueDQ, atValueSQ:
		if c == '"' && s.attr == atValueDQ || c == '\'' && s.attr == atValueSQ {
			s.attr = atAfterValueQuoted
		} else {
			s.attrVal = appendCapped(s.attrVal, lower(c), 256)
		}
	case atValueUnquoted:
		switch {
		case isSpace(c):
			s.attr = atBeforeName
		case c == '>':
			return false
		default:
			s.attrVal = appendCapped(s.attrVal, lower(c), 256)
		}
	case atAfterValueQuoted:
		switch {
		case isSpace(c):
			s.attr = atBeforeName
		case c == '/':
			s.attr = atSelfClosing
		case c == '>':
			return false
		default:
			s.newAttr(c)
		}
	case atSelfClosing:
		if c == '>' {
			return false
		}
		s.attr = atBeforeName
		s.newAttr(c) // the byte starts an attribute name
	}
	return true
}

// newAttr ends the previous attribute and starts one with c.
func (s *scanner) newAttr(c byte) {
	s.endAttr()
	s.attr = atName
	s.attrName = appendCapped(s.attrName[:0], lower(c), 32)
	s.attrVal = s.attrVal[:0]
}

// endAttr records what a meta attribute declares.
func (s *scanner) endAttr() {
	if s.tag != tagMeta || len(s.attrName) == 0 {
		return
	}
	v := trimSpace(s.attrVal)
	switch string(s.attrName) {
	case "charset":
		s.charset = true
	case "http-equiv":
		switch string(v) {
		case "content-type":
			s.ctEquiv = true
		case "content-security-policy":
			s.cspMeta = true
		}
	case "content":
		s.contentCharset = containsString(v, "charset")
	}
	s.attrName, s.attrVal = s.attrName[:0], s.attrVal[:0]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func appendCapped(b []byte, c byte, max int) []byte {
	if len(b) < max {
		b = append(b, c)
	}
	return b
}

func indexByteFrom(b []byte, from int, c byte) int {
	for k := from; k < len(b); k++ {
		if b[k] == c {
			return k
		}
	}
	return -1
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func containsString(b []byte, sub string) bool {
	for k := 0; k+len(sub) <= len(b); k++ {
		if string(b[k:k+len(sub)]) == sub {
			return true
		}
	}
	return false
}
