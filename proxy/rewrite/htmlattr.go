package rewrite

import (
	"bytes"
	"html"
	"strconv"
	"strings"
)

// attrKind says how an attribute value is rewritten.
type attrKind uint8

const (
	attrOther   attrKind = iota
	attrURL              // one URL
	attrSrcset           // srcset / imagesrcset candidate list
	attrURLs             // space-separated URLs (ping)
	attrCSS              // style
	attrJS               // on* event handlers
	attrRefresh          // meta http-equiv=refresh content
	attrSrcdoc           // iframe srcdoc: a whole document
)

// classifyAttr maps a lower-case attribute name to its kind. The list is
// HTML's URL-valued attributes plus the obsolete ones old apps still use,
// and data-* (lazy-loading libraries keep URLs there).
func classifyAttr(name string) attrKind {
	switch name {
	case "href", "src", "action", "formaction", "poster", "data", "cite",
		"background", "manifest", "icon", "longdesc", "usemap", "codebase",
		"lowsrc", "dynsrc", "xlink:href", "profile", "classid":
		return attrURL
	case "srcset", "imagesrcset":
		return attrSrcset
	case "ping":
		return attrURLs
	case "style":
		return attrCSS
	case "srcdoc":
		return attrSrcdoc
	}
	if strings.HasPrefix(name, "data-") {
		return attrURL
	}
	if len(name) > 2 && name[0] == 'o' && name[1] == 'n' {
		return attrJS
	}
	return attrOther
}

// rewriteURLValue rewrites a raw single-URL attribute value: the returned
// edit is relative to v. When character references occur before the end of
// the host (an &#x2F;&#x2F; prefix must not smuggle a URL past the proxy),
// the value is decoded, and the part up to the host end is replaced by its
// rewritten, re-escaped form; the bytes after the host stay as they were.
func rewriteURLValue(v []byte, quote byte, hc *hostCache) (edit, bool) {
	if !mayBeAbsURL(v) {
		return edit{}, false
	}
	hs, he, ok := urlHostSpan(v)
	if ok && bytes.IndexByte(v[:he], '&') < 0 {
		n, ok := hc.lookupBytes(v[hs:he])
		if !ok {
			return edit{}, false
		}
		return edit{hs, he, n}, true
	}
	if bytes.IndexByte(v, '&') < 0 {
		return edit{}, false
	}
	raw := string(v)
	d := unescapeAttr(raw)
	dhs, dhe, ok := urlHostSpan(d)
	if !ok {
		return edit{}, false
	}
	h, ok := normalHost(d[dhs:dhe])
	if !ok {
		return edit{}, false
	}
	n, ok := hc.lookup(h)
	if !ok {
		return edit{}, false
	}
	// The shortest raw prefix that decodes to exactly d[:dhe] and ends on
	// a reference boundary.
	for r := 1; r <= len(raw) && r <= 4096; r++ {
		if unescapeAttr(raw[:r]) == d[:dhe] && unescapeAttr(raw[:r])+unescapeAttr(raw[r:]) == d {
			return edit{0, r, escapeAttrPrefix(d[:dhs]+n, quote)}, true
		}
	}
	return edit{}, false
}

// escapeAttrPrefix escapes text spliced into an attribute value so that
// it neither ends the value nor starts a reference with what follows.
func escapeAttrPrefix(s string, quote byte) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '&':
			b.WriteString("&amp;")
		case c == '"' && quote != '\'':
			b.WriteString("&quot;")
		case c == '\'' && quote != '"':
			b.WriteString("&#39;")
		case quote == 0 && (isSpace(c) || c == '<' || c == '>' || c == '=' || c == '`'):
			b.WriteString("&#" + strconv.Itoa(int(c)) + ";")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeAttr decodes character references as HTML does inside an
// attribute value: a named reference without its ';' is left alone when an
// ASCII alphanumeric or '=' follows it ("&amp0", "&copy=" stay literal),
// which html.UnescapeString alone would decode.
func unescapeAttr(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '&' || i+1 >= len(s) || !isAlpha(s[i+1]) {
			continue
		}
		j := i + 1
		for j < len(s) && (isAlpha(s[j]) || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j < len(s) && s[j] == ';' {
			if d := html.UnescapeString(s[i : j+1]); d[len(d)-1] != ';' {
				continue // a complete reference
			}
		}
		run := s[i:j]
		d := html.UnescapeString(run)
		if d == run {
			continue
		}
		c := d[len(d)-1]
		partial := isAlpha(c) || c >= '0' && c <= '9'
		if partial || (j < len(s) && s[j] == '=') {
			b.WriteString(s[last:i])
			b.WriteString("&amp;")
			last = i + 1
		}
	}
	if last == 0 {
		return html.UnescapeString(s)
	}
	b.WriteString(s[last:])
	return html.UnescapeString(b.String())
}

// mayBeAbsURL is a cheap pre-check that keeps relative URLs (the common
// case) away from string conversion.
func mayBeAbsURL(v []byte) bool {
	i := 0
	for i < len(v) && v[i] <= ' ' {
		i++
	}
	if i >= len(v) {
		return false
	}
	switch v[i] {
	case 'h', 'H', 'w', 'W', '&':
		return true
	case '/', '\\':
		return len(v) > i+1 && (isSlash(v[i+1]) || v[i+1] == '&')
	}
	return false
}

// escapeAttrValue escapes what would end the attribute value or start a
// character reference: '&' and the quote in use. Unquoted values come back
// double-quoted.
func escapeAttrValue(s string, quote byte) string {
	if quote == 0 {
		quote = '"'
		return `"` + escapeAttrValue(s, quote) + `"`
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '&':
			b.WriteString("&amp;")
		case c == quote && c == '"':
			b.WriteString("&quot;")
		case c == quote:
			b.WriteString("&#39;")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// rewriteSrcset rewrites each candidate URL of a srcset list, keeping
// descriptors, commas and spacing.
func rewriteSrcset(v string, f hostFunc) (string, bool) {
	var b strings.Builder
	changed := false
	last := 0
	i := 0
	for i < len(v) {
		for i < len(v) && (isSpace(v[i]) || v[i] == ',') {
			i++
		}
		start := i
		for i < len(v) && !isSpace(v[i]) {
			i++
		}
		end := i
		for end > start && v[end-1] == ',' {
			end--
		}
		if end > start {
			if hs, he, n, ok := mapURLHost(v[start:end], f); ok {
				if !changed {
					b.Grow(len(v) + 64)
				}
				b.WriteString(v[last : start+hs])
				b.WriteString(n)
				last = start + he
				changed = true
			}
		}
		if end < i { // the URL ended with commas: no descriptors
			continue
		}
		depth := 0
		for i < len(v) && (v[i] != ',' || depth > 0) {
			switch v[i] {
			case '(':
				depth++
			case ')':
				depth = max(depth-1, 0)
			}
			i++
		}
	}
	if !changed {
		return "", false
	}
	b.WriteString(v[last:])
	return b.String(), true
}

// rewriteURLList rewrites a space-separated list of URLs.
func rewriteURLList(v string, f hostFunc) (string, bool) {
	var b strings.Builder
	changed := false
	last, i := 0, 0
	for i < len(v) {
		for i < len(v) && isSpace(v[i]) {
			i++
		}
		start := i
		for i < len(v) && !isSpace(v[i]) {
			i++
		}
		if i > start {
			if n, ok := mapURL(v[start:i], f); ok {
				b.WriteString(v[last:start])
				b.WriteString(n)
				last = i
				changed = true
			}
		}
	}
	if !changed {
		return "", false
	}
	b.WriteString(v[last:])
	return b.String(), true
}

// refreshURLSpan finds the URL in a Refresh value ("5; url=https://x/",
// "0;URL='x'", "3, https://x/").
func refreshURLSpan(s string) (start, end int, ok bool) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i < len(s) && (s[i] == ';' || s[i] == ',') {
		i++
	}
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if len(s)-i >= 3 && strings.EqualFold(s[i:i+3], "url") {
		j := i + 3
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		if j < len(s) && s[j] == '=' {
			j++
			for j < len(s) && isSpace(s[j]) {
				j++
			}
			i = j
		}
	}
	end = len(s)
	if i < len(s) && (s[i] == '"' || s[i] == '\'') {
		q := s[i]
		i++
		if k := strings.IndexByte(s[i:], q); k >= 0 {
			end = i + k
		}
	}
	for end > i && isSpace(s[end-1]) {
		end--
	}
	return i, end, end > i
}

// rewriteRefresh rewrites the URL of a Refresh header or meta content.
func rewriteRefresh(v string, f hostFunc) (string, bool) {
	s, e, ok := refreshURLSpan(v)
	if !ok {
		return "", false
	}
	n, ok := mapURL(v[s:e], f)
	if !ok {
		return "", false
	}
	return v[:s] + n + v[e:], true
}

func isSpace(c byte) bool { return byteClass[c]&clSpace != 0 }

// Byte classes of the tag scanner, one table read each: it tests them for
// every byte of every tag.
const (
	clSpace    = 1 << iota // HTML's ASCII whitespace
	clNameEnd              // ends a tag or attribute name: space, '/', '>'
	clAttrEnd              // ends an attribute name: those and '='
	clUnquoted             // ends an unquoted value: space, '>'
)

var byteClass = func() (t [256]uint8) {
	for _, c := range []byte(" \t\n\r\f") {
		t[c] |= clSpace | clNameEnd | clAttrEnd | clUnquoted
	}
	t['/'] |= clNameEnd | clAttrEnd
	t['>'] |= clNameEnd | clAttrEnd | clUnquoted
	t['='] |= clAttrEnd
	return t
}()
