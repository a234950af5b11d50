package control

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// checkParsed parses the injected document with a spec tree builder and
// checks that the inserted elements are the first children of <head>...
// or at least in <head>, and that removing them leaves the tree the
// original document gives.
func checkParsed(t *testing.T, orig, out, insert []byte) {
	t.Helper()
	if bytes.Count(out, insert) != 1 {
		return // nothing inserted (UTF-16, empty): nothing to check
	}
	// The byte order mark is the decoder's: browsers drop it before
	// tokenizing, the parser here does not.
	const bom = "\xef\xbb\xbf"
	want, err1 := html.Parse(bytes.NewReader(bytes.TrimPrefix(orig, []byte(bom))))
	got, err2 := html.Parse(bytes.NewReader(bytes.TrimPrefix(out, []byte(bom))))
	if err1 != nil || err2 != nil {
		t.Fatalf("parse: %v %v", err1, err2)
	}
	var found int
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		for ch := n.FirstChild; ch != nil; {
			next := ch.NextSibling
			if ch.Type == html.ElementNode && (ch.DataAtom == atom.Script || ch.DataAtom == atom.Style) && hasAttr(ch, "nonce") && (hasAttr(ch, "data-portcullis") || attr(ch, "id") == "__portcullis-style") {
				if n.DataAtom != atom.Head {
					t.Errorf("inserted <%s> is a child of <%s>, want <head>\n%q", ch.Data, n.Data, orig)
				}
				found++
				n.RemoveChild(ch)
			} else {
				walk(ch)
			}
			ch = next
		}
	}
	walk(got)
	if found != 2 {
		t.Errorf("found %d inserted elements in the tree, want 2\n%q", found, orig)
	}
	if a, b := render(want), render(got); a != b {
		t.Errorf("tree changed\norig %q\nwant %s\ngot  %s", orig, a, b)
	}
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// render prints a tree with adjacent text nodes merged (removing an element
// between two runs of whitespace leaves two text nodes), and without
// whitespace text in <head> and <html>, which renders nothing: a character
// reference for a tab before the first tag is dropped by the tree builder
// before <head> and kept in it, after the inserted elements.
func render(n *html.Node) string {
	var b strings.Builder
	var walk func(n *html.Node, depth int)
	walk = func(n *html.Node, depth int) {
		var text strings.Builder
		flush := func() {
			if text.Len() > 0 && !(strings.TrimSpace(text.String()) == "" && (n.DataAtom == atom.Head || n.DataAtom == atom.Html)) {
				b.WriteString(strings.Repeat(" ", depth) + "#text " + strings.ReplaceAll(text.String(), "\n", `\n`) + "\n")
			}
			text.Reset()
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			if ch.Type == html.TextNode {
				text.WriteString(ch.Data)
				continue
			}
			flush()
			switch ch.Type {
			case html.ElementNode:
				b.WriteString(strings.Repeat(" ", depth) + "<" + ch.Data)
				for _, a := range ch.Attr {
					b.WriteString(" " + a.Key + "=" + a.Val)
				}
				b.WriteString(">\n")
			case html.CommentNode:
				b.WriteString(strings.Repeat(" ", depth) + "<!--" + ch.Data + "-->\n")
			case html.DoctypeNode:
				b.WriteString("<!doctype " + ch.Data + ">\n")
			}
			walk(ch, depth+1)
		}
		flush()
	}
	walk(n, 0)
	return b.String()
}

var differentialPages = []string{
	`<!doctype html><html><head><title>t</title></head><body>x</body></html>`,
	"<!DOCTYPE html>\n<html lang=en>\n  <head>\n    <meta charset=utf-8>\n    <title>t</title>\n  </head>\n  <body><p>x</p></body>\n</html>\n",
	`<title>no html, no head</title><p>text`,
	`just text`,
	"\n\n<!-- c --> <html> <!-- d --> <body>b",
	`<html><frameset><frame src=a></frameset></html>`,
	`<html><template><p>t</template>`,
	`<svg><title>x</title></svg>`,
	`</html><p>x`,
	`</head>x`,
	`<head/><meta charset=utf-8><link rel=x href=y><script>s()</script>`,
	`<html a="<head>"><head b='>'>`,
	`<?php echo 1 ?><head>`,
	`<!---- x --!> <head>`,
	`<plaintext><head>`,
	`<noscript><p>n</noscript>`,
	"\xef\xbb\xbf<html><head>",
	`<meta http-equiv="content-security-policy" content="default-src 'none'"><meta charset=utf-8><p>`,
	`<base href="https://example.net/"><meta charset=utf-8>`,
	`<head><meta charset=utf-8 <body>`,
}

func TestInjectDifferential(t *testing.T) {
	c, _ := newTestController(t)
	for _, ct := range []string{"text/html; charset=utf-8", "text/html"} {
		for _, page := range differentialPages {
			out, insert, err := injectBytes(t, c, http.Header{"Content-Type": {ct}}, []byte(page), blockAll)
			if err != nil {
				t.Fatal(err)
			}
			if rest, _ := removeOnce(out, insert); string(rest) != page {
				t.Errorf("bytes changed: %q", page)
			}
			checkParsed(t, []byte(page), out, insert)
		}
	}
}

// FuzzInject: whatever the page and however it arrives, Inject never
// panics, the output is the page with the elements inserted once, and a
// spec parser puts them in <head> without changing the rest of the tree.
func FuzzInject(f *testing.F) {
	for _, p := range differentialPages {
		f.Add([]byte(p), uint8(0), false)
	}
	f.Add([]byte("<html><head>"), uint8(1), true)
	f.Add([]byte("\xfe\xff\x00<"), uint8(2), false)
	c, _ := newTestController(f)
	f.Fuzz(func(t *testing.T, page []byte, chunk uint8, noCharset bool) {
		ct := "text/html; charset=utf-8"
		if noCharset {
			ct = "text/html"
		}
		rc, err := c.Inject(http.Header{"Content-Type": {ct}}, io.NopCloser(&chunkReader{b: page, n: int(chunk%17) + 1}), "app.test", blockAll, "s")
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		insert := rc.(*Body).insert
		rest, at := removeOnce(out, insert)
		if !bytes.Equal(rest, page) {
			t.Fatalf("output is not the page plus the elements")
		}
		_ = at
		if bytes.Count(rest, insert) > 0 && !bytes.Contains(page, insert) {
			t.Fatalf("inserted twice")
		}
		if len(page) < 4096 {
			checkParsed(t, page, out, insert)
		}
	})
}

// chunkReader hands out at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}
