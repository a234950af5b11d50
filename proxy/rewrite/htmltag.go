package rewrite

import (
	"bytes"
	"strings"
)

// tagAttr holds offsets, within the tag's bytes, of one attribute.
type tagAttr struct {
	start              int // before the whitespace preceding the name
	nameStart, nameEnd int
	valStart, valEnd   int
	quote              byte
	hasVal             bool
}

func (a *tagAttr) end() int {
	switch {
	case !a.hasVal:
		return a.nameEnd
	case a.quote != 0:
		return a.valEnd + 1
	}
	return a.valEnd
}

// edit replaces tag[start:end] with repl.
type edit struct {
	start, end int
	repl       string
}

// skipTag follows an oversized tag, from its name on, through the same
// states as parseTag to its '>': the offset just past it, or -1 with *st
// updated for the next call.
func skipTag(st *uint8, b []byte) int {
	const (
		sName = iota
		sBefore
		sAttrName
		sAfterName
		sBeforeVal
		sDQ
		sSQ
		sUnquoted
	)
	s := *st
	for i, c := range b {
		if c == '>' && s != sDQ && s != sSQ {
			*st = sName
			return i + 1
		}
		switch s {
		case sName:
			if isSpace(c) || c == '/' {
				s = sBefore
			}
		case sBefore:
			if !isSpace(c) && c != '/' {
				s = sAttrName
			}
		case sAttrName:
			switch {
			case isSpace(c):
				s = sAfterName
			case c == '/':
				s = sBefore
			case c == '=':
				s = sBeforeVal
			}
		case sAfterName:
			switch {
			case c == '=':
				s = sBeforeVal
			case c == '/':
				s = sBefore
			case !isSpace(c):
				s = sAttrName
			}
		case sBeforeVal:
			switch {
			case c == '"':
				s = sDQ
			case c == '\'':
				s = sSQ
			case !isSpace(c):
				s = sUnquoted
			}
		case sDQ:
			if c == '"' {
				s = sBefore
			}
		case sSQ:
			if c == '\'' {
				s = sBefore
			}
		case sUnquoted:
			if isSpace(c) {
				s = sBefore
			}
		}
	}
	*st = s
	return -1
}

// tagName returns the lower-case element name at the start of b if it is
// one the writer acts on, "" otherwise.
func tagName(b []byte) string {
	i := 0
	for i < len(b) && !isSpace(b[i]) && b[i] != '/' && b[i] != '>' {
		i++
	}
	return lowerString(b[:i])
}

// lowerString returns b lower-cased if it is one of the element or
// attribute names the writer acts on, "" otherwise. A switch (the compiler
// makes it a search by length and bytes) costs no hashing and no
// allocation; it runs for every tag and attribute of a page.
func lowerString(b []byte) string {
	var buf [16]byte
	if len(b) > len(buf) || len(b) < 3 {
		return ""
	}
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(b)]) {
	case "html":
		return "html"
	case "head":
		return "head"
	case "body":
		return "body"
	case "meta":
		return "meta"
	case "link":
		return "link"
	case "script":
		return "script"
	case "style":
		return "style"
	case "textarea":
		return "textarea"
	case "title":
		return "title"
	case "xmp":
		return "xmp"
	case "iframe":
		return "iframe"
	case "noembed":
		return "noembed"
	case "noframes":
		return "noframes"
	case "noscript":
		return "noscript"
	case "plaintext":
		return "plaintext"
	case "svg":
		return "svg"
	case "math":
		return "math"
	case "href":
		return "href"
	case "src":
		return "src"
	case "action":
		return "action"
	case "formaction":
		return "formaction"
	case "poster":
		return "poster"
	case "data":
		return "data"
	case "cite":
		return "cite"
	case "background":
		return "background"
	case "manifest":
		return "manifest"
	case "icon":
		return "icon"
	case "longdesc":
		return "longdesc"
	case "usemap":
		return "usemap"
	case "codebase":
		return "codebase"
	case "lowsrc":
		return "lowsrc"
	case "dynsrc":
		return "dynsrc"
	case "xlink:href":
		return "xlink:href"
	case "profile":
		return "profile"
	case "classid":
		return "classid"
	case "srcset":
		return "srcset"
	case "imagesrcset":
		return "imagesrcset"
	case "ping":
		return "ping"
	case "srcdoc":
		return "srcdoc"
	case "http-equiv":
		return "http-equiv"
	case "rel":
		return "rel"
	case "integrity":
		return "integrity"
	case "content":
		return "content"
	}
	return ""
}

// attrKindOf classifies a raw attribute name (see classifyAttr).
func attrKindOf(name []byte) (attrKind, string) {
	if n := lowerString(name); n != "" {
		return classifyAttr(n), n
	}
	if len(name) > 5 && bytes.EqualFold(name[:5], []byte("data-")) {
		return attrURL, ""
	}
	if len(name) > 2 && name[0]|0x20 == 'o' && name[1]|0x20 == 'n' {
		return attrJS, ""
	}
	return attrOther, ""
}

// parseTag parses a start tag at b[0]=='<' following HTML's tokenizer
// states; ok=false when b ends before the tag does.
func (w *HTMLWriter) parseTag(b []byte) (n int, selfClosing, ok bool) {
	w.attrs = w.attrs[:0]
	i := 1
	for i < len(b) && byteClass[b[i]]&clNameEnd == 0 {
		i++
	}
	for {
		a := tagAttr{start: i}
		slash := false
		for i < len(b) && (isSpace(b[i]) || b[i] == '/') {
			slash = b[i] == '/'
			i++
		}
		if i >= len(b) {
			return 0, false, false
		}
		if b[i] == '>' {
			return i + 1, slash, true
		}
		a.nameStart = i
		i++
		for i < len(b) && byteClass[b[i]]&clAttrEnd == 0 {
			i++
		}
		a.nameEnd = i
		j := i
		for j < len(b) && isSpace(b[j]) {
			j++
		}
		if j >= len(b) {
			return 0, false, false
		}
		if b[j] == '=' {
			i = j + 1
			for i < len(b) && isSpace(b[i]) {
				i++
			}
			if i >= len(b) {
				return 0, false, false
			}
			a.hasVal = true
			switch b[i] {
			case '"', '\'':
				k := bytes.IndexByte(b[i+1:], b[i])
				if k < 0 {
					return 0, false, false
				}
				a.quote = b[i]
				a.valStart, a.valEnd = i+1, i+1+k
				i = a.valEnd + 1
			case '>':
				a.valStart, a.valEnd = i, i
			default:
				a.valStart = i
				for i < len(b) && byteClass[b[i]]&clUnquoted == 0 {
					i++
				}
				if i >= len(b) {
					return 0, false, false
				}
				a.valEnd = i
			}
		}
		w.attrs = append(w.attrs, a)
	}
}

// startTag rewrites and emits one complete start tag.
func (w *HTMLWriter) startTag(tag []byte, selfClosing bool) {
	name := tagName(tag[1:])
	if !w.injected && name != "html" && name != "head" && name != "body" {
		w.out = append(w.out, w.inject...)
		w.injected = true
	}
	w.edits = w.edits[:0]
	refresh, rel := false, ""
	integrity, seenEquiv, seenRel := -1, false, false
	if name == "meta" || name == "link" || name == "script" {
		// as in browsers, the first of duplicated attributes counts
		for k := range w.attrs {
			a := &w.attrs[k]
			switch lowerString(tag[a.nameStart:a.nameEnd]) {
			case "http-equiv":
				if !seenEquiv {
					refresh = a.hasVal && strings.EqualFold(strings.TrimSpace(string(tag[a.valStart:a.valEnd])), "refresh")
				}
				seenEquiv = true
			case "rel":
				if a.hasVal && !seenRel {
					rel = strings.ToLower(string(tag[a.valStart:a.valEnd]))
				}
				seenRel = true
			case "integrity":
				if integrity < 0 {
					integrity = k
				}
			}
		}
	}
	sriURL := false
	for k := range w.attrs {
		a := &w.attrs[k]
		if !a.hasVal || a.valEnd == a.valStart {
			continue
		}
		kind, an := attrKindOf(tag[a.nameStart:a.nameEnd])
		if kind == attrOther && refresh && an == "content" {
			kind = attrRefresh
		}
		v := tag[a.valStart:a.valEnd]
		var repl string
		var ok bool
		switch kind {
		case attrOther:
			continue
		case attrURL:
			var e edit
			if e, ok = rewriteURLValue(v, a.quote, w.hc); ok {
				w.edits = append(w.edits, edit{a.valStart + e.start, a.valStart + e.end, e.repl})
				if (name == "script" && an == "src") || (name == "link" && an == "href") {
					sriURL = true
				}
			}
			continue
		case attrSrcset:
			repl, ok = rewriteSrcset(string(v), w.f)
		case attrURLs:
			repl, ok = rewriteURLList(string(v), w.f)
		case attrRefresh:
			repl, ok = rewriteRefresh(string(v), w.f)
		case attrCSS, attrJS:
			repl, ok = w.rewriteInline(v, kind == attrCSS)
		case attrSrcdoc:
			repl, ok = w.rewriteSrcdoc(v, a.quote)
		}
		if !ok {
			continue
		}
		w.edits = append(w.edits, edit{a.valStart, a.valEnd, repl})
	}
	if integrity >= 0 && sriURL && (name == "script" || relNeedsSRIDrop(rel)) {
		a := &w.attrs[integrity]
		// Keep one separator unless whitespace or '>' follows: the next
		// byte must not join the previous (perhaps unquoted) value.
		sep := " "
		if end := a.end(); end < len(tag) && (isSpace(tag[end]) || tag[end] == '>') {
			sep = ""
		}
		w.edits = append(w.edits, edit{a.start, a.end(), sep})
		sortEdits(w.edits)
	}
	last := 0
	for _, e := range w.edits {
		w.out = append(w.out, tag[last:e.start]...)
		w.out = append(w.out, e.repl...)
		last = e.end
	}
	w.out = append(w.out, tag[last:]...)
	if !w.injected && (name == "head" || name == "body") {
		w.out = append(w.out, w.inject...)
		w.injected = true
	}
	switch name {
	case "svg", "math":
		if !selfClosing {
			w.foreign++
		}
	}
	if raw := rawTextName(name); raw != "" && !(selfClosing && w.foreign > 0) {
		w.enterRaw(raw)
	}
}

// relNeedsSRIDrop: link types whose fetched body the proxy may rewrite.
func relNeedsSRIDrop(rel string) bool {
	for _, t := range strings.Fields(rel) {
		switch t {
		case "stylesheet", "modulepreload", "preload":
			return true
		}
	}
	return false
}

// sortEdits orders the few edits of a tag by position (insertion sort).
func sortEdits(e []edit) {
	for i := 1; i < len(e); i++ {
		for j := i; j > 0 && e[j].start < e[j-1].start; j-- {
			e[j], e[j-1] = e[j-1], e[j]
		}
	}
}

// rewriteInline runs a raw style or event-handler value through a text
// scanner. Character references are not decoded: a URL whose scheme or
// slashes are written as references (url(&quot;//host/x&quot;)) stays.
func (w *HTMLWriter) rewriteInline(v []byte, css bool) (string, bool) {
	if bytes.IndexByte(v, '/') < 0 && bytes.IndexByte(v, '\\') < 0 {
		return "", false
	}
	s := textScanner{hc: w.hc, css: css}
	out := s.flush(s.feed(nil, v))
	if bytes.Equal(out, v) {
		return "", false
	}
	return string(out), true
}

// rewriteSrcdoc rewrites the document held in an iframe srcdoc attribute
// with a nested writer (no script is injected there).
func (w *HTMLWriter) rewriteSrcdoc(v []byte, quote byte) (string, bool) {
	in := unescapeAttr(string(v))
	var out bytes.Buffer
	nested := &HTMLWriter{dst: &out, injected: true}
	nested.setHosts(w.hc)
	if _, err := nested.Write([]byte(in)); err != nil || nested.Close() != nil || out.String() == in {
		return "", false
	}
	return escapeAttrValue(out.String(), quote), true
}
