package rewrite

import (
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

type xtoken struct {
	typ   html.TokenType
	name  string
	attrs []html.Attribute
}

func xtokens(doc string) []xtoken {
	z := html.NewTokenizer(strings.NewReader(doc))
	var out []xtoken
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return out
		}
		tok := z.Token()
		out = append(out, xtoken{tt, tok.Data, tok.Attr})
	}
}

// notModelled: inputs where this package knowingly differs from a bare
// tokenizer: foreign content (CDATA), the script-data escape states, and
// NUL bytes (replaced by the tokenizer).
var (
	notModelled      = regexp.MustCompile(`(?i)<svg|<math|\x00`)
	scriptAndComment = regexp.MustCompile(`(?is)<script.*<!--`)
)

// FuzzHTMLDifferential checks the rewriter against golang.org/x/net/html's
// tokenizer: the output has the same tokens, tag names and attribute names
// as the input, attribute values differ only by mapped hosts, and every
// single-URL attribute whose decoded value is a mappable URL was rewritten.
func FuzzHTMLDifferential(f *testing.F) {
	for _, c := range htmlGolden {
		f.Add(c.in)
	}
	f.Add(benchPage(3 << 10))
	f.Fuzz(func(t *testing.T, doc string) {
		if notModelled.MatchString(doc) || scriptAndComment.MatchString(doc) || len(doc) > 1<<16 {
			return
		}
		m := newTestMapper()
		out := rewriteHTML(t, doc, m, BodyOptions{})
		in, got := xtokens(doc), xtokens(out)
		if len(in) != len(got) {
			t.Fatalf("token count %d -> %d\n in %q\nout %q", len(in), len(got), doc, out)
		}
		strip := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "."+testSuffix, "")) }
		for i := range in {
			a, b := in[i], got[i]
			if a.typ != b.typ || (a.typ != html.TextToken && a.typ != html.CommentToken && a.name != b.name) {
				t.Fatalf("token %d: %v %q -> %v %q\n in %q\nout %q", i, a.typ, a.name, b.typ, b.name, doc, out)
			}
			dropped := 0
			for k, av := range a.attrs {
				if k-dropped >= len(b.attrs) || b.attrs[k-dropped].Key != av.Key {
					if av.Key == "integrity" {
						dropped++
						continue
					}
					t.Fatalf("token %d: attribute %q lost\n in %q\nout %q", i, av.Key, doc, out)
				}
				bv := b.attrs[k-dropped]
				if strip(av.Val) != strip(bv.Val) && !strings.EqualFold(strings.TrimSuffix(strip(av.Val), "."), strip(bv.Val)) {
					if !mappedDot.MatchString(av.Val) {
						t.Fatalf("token %d: %s=%q -> %q\n in %q\nout %q", i, av.Key, av.Val, bv.Val, doc, out)
					}
				}
				if classifyAttr(av.Key) == attrURL && a.typ != html.EndTagToken {
					if want, ok := URLToSuffix(av.Val, m); ok && bv.Val != want && !dup(a.attrs[:k], av.Key) {
						t.Fatalf("token %d: %s=%q not rewritten (got %q, want %q)\n in %q\nout %q", i, av.Key, av.Val, bv.Val, want, doc, out)
					}
				}
			}
			if len(a.attrs)-dropped != len(b.attrs) {
				t.Fatalf("token %d: attributes %d -> %d\n in %q\nout %q", i, len(a.attrs), len(b.attrs), doc, out)
			}
		}
	})
}

func dup(attrs []html.Attribute, key string) bool {
	for _, a := range attrs {
		if a.Key == key {
			return true
		}
	}
	return false
}
