package protect

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// The parts this package edits (OOXML's [Content_Types].xml, _rels/.rels,
// custom properties, LabelInfo.xml and PDF XMP packets) are edited by
// inserting and removing whole elements at byte offsets found with the
// tokenizer: nothing is parsed and re-rendered, so every byte the author
// wrote stays as it was.

const (
	maxXMLDepth = 64       // no part we edit nests deeper than a handful
	maxText     = 4 << 10  // character data kept per element
	maxPart     = 16 << 20 // bytes of one XML part held in memory
)

// element is one element of a part, reported when it ends.
type element struct {
	name        xml.Name // as written: Space is the prefix
	attr        []xml.Attr
	depth       int    // the root is 0
	start, end  int    // byte range of the whole element
	tagEnd      int    // offset just past its start tag
	closeAt     int    // offset of its end tag, or of "/>" when selfClosing
	selfClosing bool   // <name .../>
	text        string // character data inside it, descendants included (capped)
}

// attrValue returns the value of the attribute with this local name (any
// prefix), "" when absent.
func (e *element) attrValue(local string) string {
	for _, a := range e.attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// nsPrefix returns the prefix e declares for namespace ns, and whether it
// declares one ("" is the default namespace).
func (e *element) nsPrefix(ns string) (string, bool) {
	for _, a := range e.attr {
		switch {
		case a.Name.Space == "xmlns" && a.Value == ns:
			return a.Name.Local, true
		case a.Name.Space == "" && a.Name.Local == "xmlns" && a.Value == ns:
			return "", true
		}
	}
	return "", false
}

// qualified writes prefix:local, or local for the default namespace.
func qualified(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}

// walkXML tokenizes a well-formed part and calls visit for every element
// as it ends (children before their parent, the root last). It fails with
// filetype.ErrFormat on malformed XML or more than one root.
func walkXML(b []byte, visit func(*element)) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var stack []*element
	roots := 0
	for {
		at := int(d.InputOffset())
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: xml: %v", filetype.ErrFormat, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxXMLDepth {
				return fmt.Errorf("%w: xml nested deeper than %d", filetype.ErrFormat, maxXMLDepth)
			}
			if len(stack) == 0 {
				if roots++; roots > 1 {
					return fmt.Errorf("%w: xml has more than one root element", filetype.ErrFormat)
				}
			}
			e := &element{name: t.Name, attr: slices.Clone(t.Attr), depth: len(stack), start: at}
			e.tagEnd = int(d.InputOffset())
			stack = append(stack, e)
		case xml.EndElement:
			if len(stack) == 0 {
				return fmt.Errorf("%w: xml: unexpected end tag", filetype.ErrFormat)
			}
			e := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if t.Name != e.name {
				return fmt.Errorf("%w: xml: <%s> closed by </%s>", filetype.ErrFormat, qualified(e.name.Space, e.name.Local), qualified(t.Name.Space, t.Name.Local))
			}
			if at == e.tagEnd && at >= 2 && string(b[at-2:at]) == "/>" {
				e.selfClosing, e.closeAt = true, at-2
			} else {
				e.closeAt = at
			}
			e.end = int(d.InputOffset())
			visit(e)
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				if len(p.text) < maxText {
					p.text += e.text[:min(len(e.text), maxText-len(p.text))]
				}
			}
		case xml.CharData:
			if len(stack) > 0 {
				e := stack[len(stack)-1]
				if len(e.text) < maxText {
					e.text += string(t[:min(len(t), maxText-len(e.text))])
				}
			}
		}
	}
	if len(stack) > 0 || roots == 0 {
		return fmt.Errorf("%w: xml has no complete root element", filetype.ErrFormat)
	}
	return nil
}

// attrSpan finds attribute qname (as written, prefix:local) in e's start
// tag and returns the byte range to delete it: the attribute and the blanks
// before it. The tag was accepted by the tokenizer, so it is well formed:
// names, "=", and values quoted with ' or " that do not contain their quote.
func attrSpan(b []byte, e *element, qname string) (edit, bool) {
	tag := b[e.start:e.tagEnd]
	i := 1 // past '<'
	for i < len(tag) && !isXMLSpace(tag[i]) && tag[i] != '>' && tag[i] != '/' {
		i++
	}
	for i < len(tag) {
		from := i
		for i < len(tag) && isXMLSpace(tag[i]) {
			i++
		}
		n := i
		for i < len(tag) && !isXMLSpace(tag[i]) && tag[i] != '=' && tag[i] != '>' && tag[i] != '/' {
			i++
		}
		name := string(tag[n:i])
		if name == "" {
			return edit{}, false
		}
		for i < len(tag) && (isXMLSpace(tag[i]) || tag[i] == '=') {
			i++
		}
		if i >= len(tag) || tag[i] != '"' && tag[i] != '\'' {
			return edit{}, false
		}
		q := tag[i]
		j := bytes.IndexByte(tag[i+1:], q)
		if j < 0 {
			return edit{}, false
		}
		i += j + 2
		if name == qname {
			return edit{e.start + from, e.start + i, ""}, true
		}
	}
	return edit{}, false
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// edit is a change to a part: the bytes [from, to) replaced by text.
type edit struct {
	from, to int
	text     string
}

// appendChildren returns the edit that adds markup as the last children of
// e (a self-closing element is opened up for it).
func appendChildren(e *element, markup string) edit {
	if e.selfClosing {
		return edit{e.closeAt, e.closeAt + 2, ">" + markup + "</" + qualified(e.name.Space, e.name.Local) + ">"}
	}
	return edit{e.closeAt, e.closeAt, markup}
}

// applyEdits applies non-overlapping edits to b.
func applyEdits(b []byte, edits []edit) ([]byte, error) {
	slices.SortFunc(edits, func(x, y edit) int { return x.from - y.from })
	var out bytes.Buffer
	out.Grow(len(b) + 1024)
	last := 0
	for _, e := range edits {
		if e.from < last || e.to < e.from || e.to > len(b) {
			return nil, fmt.Errorf("%w: overlapping edits", filetype.ErrFormat)
		}
		out.Write(b[last:e.from])
		out.WriteString(e.text)
		last = e.to
	}
	out.Write(b[last:])
	return out.Bytes(), nil
}

// escapeXML escapes s for text content and attribute values.
func escapeXML(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
