package rewrite

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func runWriter(t testing.TB, w io.WriteCloser, out *bytes.Buffer, pieces ...string) string {
	t.Helper()
	for _, p := range pieces {
		if _, err := io.WriteString(w, p); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return out.String()
}

var textGolden = []struct{ name, in, want string }{
	{"js string", `fetch("https://app.example.com/api")`, `fetch("https://app.example.com.gw.test/api")`},
	{"js single and template", "a='http://app.example.com:8080/x';b=`wss://app.example.com/ws`", "a='http://app.example.com.gw.test:8080/x';b=`wss://app.example.com.gw.test/ws`"},
	{"protocol-relative in quotes", `s.src='//cdn.example.net/a.js'`, `s.src='//cdn.example.net.gw.test/a.js'`},
	{"comment not a url", "x = 1 // cdn.example.net is great\ny = a //cdn.example.net", "x = 1 // cdn.example.net is great\ny = a //cdn.example.net"},
	{"json escaped slashes", `{"u":"https:\/\/app.example.com\/p"}`, `{"u":"https:\/\/app.example.com.gw.test\/p"}`},
	{"json unicode escapes", `{"u":"https:\u002F\u002Fapp.example.com\u002Fp","v":"https:\u002f\u002fcdn.example.net"}`, `{"u":"https:\u002F\u002Fapp.example.com.gw.test\u002Fp","v":"https:\u002f\u002fcdn.example.net.gw.test"}`},
	{"escaped protocol-relative", `{"u":"\/\/cdn.example.net\/x"}`, `{"u":"\/\/cdn.example.net.gw.test\/x"}`},
	{"sentence end dot", "see https://app.example.com. Bye", "see https://app.example.com.gw.test. Bye"},
	{"uppercase host", `"HTTPS://App.Example.Com/"`, `"HTTPS://app.example.com.gw.test/"`},
	{"scheme boundary", `"xhttps://app.example.com/" "foo+http://app.example.com"`, `"xhttps://app.example.com/" "foo+http://app.example.com"`},
	{"other scheme", `"ftp://app.example.com/" "file://app.example.com"`, `"ftp://app.example.com/" "file://app.example.com"`},
	{"unmapped and suffix", `"https://other.org/" "https://app.example.com.gw.test/"`, `"https://other.org/" "https://app.example.com.gw.test/"`},
	{"userinfo skipped", `"https://app.example.com@evil.org/"`, `"https://app.example.com@evil.org/"`},
	{"xml attrs", `<a xmlns="http://www.w3.org/2005/Atom"><link href="https://app.example.com/feed"/></a>`, `<a xmlns="http://www.w3.org/2005/Atom"><link href="https://app.example.com.gw.test/feed"/></a>`},
	{"end of input", `x="https://app.example.com`, `x="https://app.example.com.gw.test`},
	{"lone slashes", `a/b\c\\d//`, `a/b\c\\d//`},
	{"sharepoint", `"https://contoso.sharepoint.com/sites/a"`, `"https://contoso.sharepoint.com.gw.test/sites/a"`},
}

var cssGolden = []struct{ name, in, want string }{
	{"url unquoted", `a{background:url(https://cdn.example.net/a.png)}`, `a{background:url(https://cdn.example.net.gw.test/a.png)}`},
	{"url protocol-relative", `a{background:url(//cdn.example.net/a.png)}`, `a{background:url(//cdn.example.net.gw.test/a.png)}`},
	{"url quoted", `a{background:url( "//cdn.example.net/a.png" )}`, `a{background:url( "//cdn.example.net.gw.test/a.png" )}`},
	{"import", `@import "https://cdn.example.net/b.css"; @import url('https://cdn.example.net/c.css');`, `@import "https://cdn.example.net.gw.test/b.css"; @import url('https://cdn.example.net.gw.test/c.css');`},
	{"comment and relative", `/* https://other.org */ a{background:url(/a.png)}`, `/* https://other.org */ a{background:url(/a.png)}`},
}

func TestTextGolden(t *testing.T) {
	m := newTestMapper()
	for _, c := range textGolden {
		for cut := 0; cut <= len(c.in); cut++ {
			var out bytes.Buffer
			if got := runWriter(t, NewText(&out, m), &out, c.in[:cut], c.in[cut:]); got != c.want {
				t.Errorf("%s (split %d):\n got %s\nwant %s", c.name, cut, got, c.want)
				break
			}
		}
	}
}

func TestCSSGolden(t *testing.T) {
	m := newTestMapper()
	for _, c := range cssGolden {
		for cut := 0; cut <= len(c.in); cut++ {
			var out bytes.Buffer
			if got := runWriter(t, NewCSS(&out, m), &out, c.in[:cut], c.in[cut:]); got != c.want {
				t.Errorf("%s (split %d):\n got %s\nwant %s", c.name, cut, got, c.want)
				break
			}
		}
	}
}

func TestTextByteAtATime(t *testing.T) {
	m := newTestMapper()
	js := benchJS(16 << 10)
	var one bytes.Buffer
	want := runWriter(t, NewText(&one, m), &one, js)
	var out bytes.Buffer
	w := NewText(&out, m)
	for i := 0; i < len(js); i++ {
		if _, err := w.Write([]byte{js[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != want || !strings.Contains(want, `https:\/\/cdn.example.net.gw.test\/`) || strings.Contains(want, `"https://app.example.com/`) {
		t.Fatal("byte-at-a-time text output differs or is not rewritten")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("write after close accepted")
	}
}

// TestTextCarryBounded: a long run without separators never builds up a
// carry.
func TestTextCarryBounded(t *testing.T) {
	m := newTestMapper()
	w := NewText(io.Discard, m).(*textWriter)
	chunk := bytes.Repeat([]byte("abcdefgh/"), 4096)
	for i := 0; i < 64; i++ {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if len(w.s.buf) > textContext+300 {
			t.Fatalf("carry grew to %d bytes", len(w.s.buf))
		}
	}
	host := "https://" + strings.Repeat("a", 1000)
	if _, err := w.Write([]byte(host)); err != nil {
		t.Fatal(err)
	}
	if len(w.s.buf) > textContext+300 {
		t.Fatalf("carry grew to %d bytes on a long host", len(w.s.buf))
	}
}
