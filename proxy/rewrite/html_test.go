package rewrite

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// rewriteHTML runs doc through an HTMLWriter in one Write.
func rewriteHTML(t testing.TB, doc string, m Mapper, o BodyOptions) string {
	t.Helper()
	var out bytes.Buffer
	w := NewHTML(&out, m, o)
	if _, err := io.WriteString(w, doc); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return out.String()
}

// rewriteHTMLSplit writes doc in two pieces split at cut.
func rewriteHTMLSplit(t testing.TB, doc string, cut int, m Mapper, o BodyOptions) string {
	t.Helper()
	var out bytes.Buffer
	w := NewHTML(&out, m, o)
	for _, p := range []string{doc[:cut], doc[cut:]} {
		if _, err := io.WriteString(w, p); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return out.String()
}

var htmlGolden = []struct{ name, in, want string }{
	{"double quoted href", `<a href="https://app.example.com/x">x</a>`, `<a href="https://app.example.com.gw.test/x">x</a>`},
	{"single quoted", `<a href='https://app.example.com/x'>`, `<a href='https://app.example.com.gw.test/x'>`},
	{"unquoted", `<a href=https://app.example.com/x>`, `<a href=https://app.example.com.gw.test/x>`},
	{"unquoted then attr", `<img src=//cdn.example.net/i.png alt=x>`, `<img src=//cdn.example.net.gw.test/i.png alt=x>`},
	{"entity in query kept", `<a href="https://app.example.com/?a=1&amp;b=2">`, `<a href="https://app.example.com.gw.test/?a=1&amp;b=2">`},
	{"encoded slashes decoded", `<a href="https:&#x2F;&#x2F;app.example.com/x">`, `<a href="https://app.example.com.gw.test/x">`},
	{"encoded unquoted", `<a href=https:&#47;&#47;app.example.com/?a&amp;b>`, `<a href=https://app.example.com.gw.test/?a&amp;b>`},
	{"encoded host, tail kept raw", `<a href="&#x68;ttps://app&#46;example.com/&amp0&#0A">`, `<a href="https://app.example.com.gw.test/&amp0&#0A">`},
	{"encoded space unquoted", `<a href=&#32;//app.example.com/>`, `<a href=&#32;//app.example.com.gw.test/>`},
	{"uppercase tag and attr", `<A HREF="HTTPS://APP.EXAMPLE.COM/X">`, `<A HREF="HTTPS://app.example.com.gw.test/X">`},
	{"spacing kept", "<a\n  href = \"https://app.example.com/\"\tclass=x >", "<a\n  href = \"https://app.example.com.gw.test/\"\tclass=x >"},
	{"relative untouched", `<a href="/x"><img src="i.png"><form action="?q">`, `<a href="/x"><img src="i.png"><form action="?q">`},
	{"unmapped untouched", `<a href="https://other.org/">`, `<a href="https://other.org/">`},
	{"non-url attribute untouched", `<a title="https://app.example.com/" href="https://app.example.com/">`, `<a title="https://app.example.com/" href="https://app.example.com.gw.test/">`},
	{"data- attribute", `<img data-src="https://cdn.example.net/a.png">`, `<img data-src="https://cdn.example.net.gw.test/a.png">`},
	{"many url attributes", `<form action="https://app.example.com/p"><button formaction="https://app.example.com/q"><video poster="https://cdn.example.net/p.jpg"><object data="https://cdn.example.net/o"><blockquote cite="https://app.example.com/c"><html manifest="https://app.example.com/m"><body background="https://cdn.example.net/b.gif"><iframe src="https://login.example.com/f"></iframe>`,
		`<form action="https://app.example.com.gw.test/p"><button formaction="https://app.example.com.gw.test/q"><video poster="https://cdn.example.net.gw.test/p.jpg"><object data="https://cdn.example.net.gw.test/o"><blockquote cite="https://app.example.com.gw.test/c"><html manifest="https://app.example.com.gw.test/m"><body background="https://cdn.example.net.gw.test/b.gif"><iframe src="https://login.example.com.gw.test/f"></iframe>`},
	{"ping list", `<a ping="https://app.example.com/p /rel https://other.org/t">`, `<a ping="https://app.example.com.gw.test/p /rel https://other.org/t">`},
	{"srcset", `<img srcset="https://cdn.example.net/a.png 1x, /b.png 2x,https://cdn.example.net/c.png 3x">`,
		`<img srcset="https://cdn.example.net.gw.test/a.png 1x, /b.png 2x,https://cdn.example.net.gw.test/c.png 3x">`},
	{"srcset without descriptors", `<img srcset="https://cdn.example.net/a.png, https://cdn.example.net/b.png 2x">`,
		`<img srcset="https://cdn.example.net.gw.test/a.png, https://cdn.example.net.gw.test/b.png 2x">`},
	// as in HTML's parser, a comma without a following space stays in the URL
	{"srcset comma inside url", `<img srcset="https://cdn.example.net/a.png,https://cdn.example.net/b.png 2x">`,
		`<img srcset="https://cdn.example.net.gw.test/a.png,https://cdn.example.net/b.png 2x">`},
	{"imagesrcset", `<link rel=preload as=image imagesrcset="//cdn.example.net/a.png 480w">`, `<link rel=preload as=image imagesrcset="//cdn.example.net.gw.test/a.png 480w">`},
	{"meta refresh", `<meta http-equiv="Refresh" content="0; url=https://login.example.com/">`, `<meta http-equiv="Refresh" content="0; url=https://login.example.com.gw.test/">`},
	{"meta content not refresh", `<meta property="og:url" content="https://app.example.com/">`, `<meta property="og:url" content="https://app.example.com/">`},
	{"base href", `<base href="https://app.example.com/app/">`, `<base href="https://app.example.com.gw.test/app/">`},
	{"style attribute", `<div style="background:url(https://cdn.example.net/b.png)">`, `<div style="background:url(https://cdn.example.net.gw.test/b.png)">`},
	{"style attribute entity quotes", `<div style="background:url(&quot;//cdn.example.net/b.png&quot;); x:url(&quot;https://cdn.example.net/c&quot;)">`, `<div style="background:url(&quot;//cdn.example.net/b.png&quot;); x:url(&quot;https://cdn.example.net.gw.test/c&quot;)">`},
	{"srcdoc", `<iframe srcdoc="<a href=&quot;https://app.example.com/&quot;>x</a>"></iframe>`, `<iframe srcdoc="<a href=&quot;https://app.example.com.gw.test/&quot;>x</a>"></iframe>`},
	{"srcdoc single quoted", `<iframe srcdoc='<img src="//cdn.example.net/i.png">'>`, `<iframe srcdoc='<img src="//cdn.example.net.gw.test/i.png">'>`},
	{"srcdoc unchanged", `<iframe srcdoc="<p>hi &amp; bye</p>"></iframe>`, `<iframe srcdoc="<p>hi &amp; bye</p>"></iframe>`},
	{"style element", "<style>@import 'https://cdn.example.net/a.css';\nb{background:url(//cdn.example.net/x.png)}</style>", "<style>@import 'https://cdn.example.net.gw.test/a.css';\nb{background:url(//cdn.example.net.gw.test/x.png)}</style>"},
	{"script element", `<script>var u = "https://app.example.com/api", v = '//cdn.example.net/x'; if (a </b) {}</script>`,
		`<script>var u = "https://app.example.com.gw.test/api", v = '//cdn.example.net.gw.test/x'; if (a </b) {}</script>`},
	{"script with tag-like text", `<script>document.write("<a href='https://app.example.com/'>")</script><a href="https://app.example.com/">`,
		`<script>document.write("<a href='https://app.example.com.gw.test/'>")</script><a href="https://app.example.com.gw.test/">`},
	{"script end tag uppercase", `<SCRIPT>x="https://app.example.com"</SCRIPT ><a href="https://app.example.com">`,
		`<SCRIPT>x="https://app.example.com.gw.test"</SCRIPT ><a href="https://app.example.com.gw.test">`},
	{"json script", `<script type="application/json">{"u":"https:\/\/app.example.com\/x"}</script>`, `<script type="application/json">{"u":"https:\/\/app.example.com.gw.test\/x"}</script>`},
	{"event handler", `<button onclick="location='https://app.example.com/go'">`, `<button onclick="location='https://app.example.com.gw.test/go'">`},
	{"comment left alone", `<!-- <a href="https://app.example.com/"> --><a href="https://app.example.com/">`, `<!-- <a href="https://app.example.com/"> --><a href="https://app.example.com.gw.test/">`},
	{"conditional comment left alone", `<!--[if IE]><script src="https://cdn.example.net/ie.js"></script><![endif]-->`, `<!--[if IE]><script src="https://cdn.example.net/ie.js"></script><![endif]-->`},
	{"abrupt comments", `<!--><a href="https://app.example.com/"><!---><b>`, `<!--><a href="https://app.example.com.gw.test/"><!---><b>`},
	{"bang comment end", `<!-- x --!><a href="https://app.example.com/">`, `<!-- x --!><a href="https://app.example.com.gw.test/">`},
	{"doctype and pi", `<!DOCTYPE html><?xml x="https://app.example.com/"?><a href="https://app.example.com/">`, `<!DOCTYPE html><?xml x="https://app.example.com/"?><a href="https://app.example.com.gw.test/">`},
	{"textarea raw", `<textarea><a href="https://app.example.com/"></textarea>`, `<textarea><a href="https://app.example.com/"></textarea>`},
	{"title raw", `<title>https://app.example.com/ <a href="https://app.example.com/"></title>`, `<title>https://app.example.com/ <a href="https://app.example.com/"></title>`},
	{"svg cdata and xlink", `<svg><![CDATA[ <a href="https://app.example.com/"> ]]><use xlink:href="https://cdn.example.net/s.svg#i"/></svg>`,
		`<svg><![CDATA[ <a href="https://app.example.com/"> ]]><use xlink:href="https://cdn.example.net.gw.test/s.svg#i"/></svg>`},
	{"less-than in text", `a < b <3 <a href="https://app.example.com/">`, `a < b <3 <a href="https://app.example.com.gw.test/">`},
	{"end tag with attrs", `</a href="https://app.example.com/"><a href="https://app.example.com/">`, `</a href="https://app.example.com/"><a href="https://app.example.com.gw.test/">`},
	{"quote inside attr name", `<a b"c=d href="https://app.example.com/">`, `<a b"c=d href="https://app.example.com.gw.test/">`},
	{"gt in quoted value", `<a title="a>b" href="https://app.example.com/">`, `<a title="a>b" href="https://app.example.com.gw.test/">`},
	{"self-closing", `<link href="https://cdn.example.net/a.css"/>`, `<link href="https://cdn.example.net.gw.test/a.css"/>`},
	{"sri dropped on rewritten script", `<script src="https://cdn.example.net/a.js" integrity="sha384-x" crossorigin></script>`, `<script src="https://cdn.example.net.gw.test/a.js" crossorigin></script>`},
	{"sri dropped before glued attr", `<script src=//cdn.example.net/a integrity=""x/>`, `<script src=//cdn.example.net.gw.test/a x/>`},
	{"sri dropped before slash", `<script src=//cdn.example.net/a integrity="y"/>`, `<script src=//cdn.example.net.gw.test/a />`},
	{"sri kept on unmapped script", `<script src="https://other.org/a.js" integrity="sha384-x"></script>`, `<script src="https://other.org/a.js" integrity="sha384-x"></script>`},
	{"sri kept on relative script", `<script src="/a.js" integrity="sha384-x"></script>`, `<script src="/a.js" integrity="sha384-x"></script>`},
	{"sri dropped on stylesheet", `<link integrity=sha384-y rel="Stylesheet" href="//cdn.example.net/a.css">`, `<link rel="Stylesheet" href="//cdn.example.net.gw.test/a.css">`},
	{"sri dropped on modulepreload", `<link rel="modulepreload" href="https://cdn.example.net/m.js" integrity="sha384-z">`, `<link rel="modulepreload" href="https://cdn.example.net.gw.test/m.js">`},
	{"sri kept on icon", `<link rel="icon" href="https://cdn.example.net/i.png" integrity="sha384-z">`, `<link rel="icon" href="https://cdn.example.net.gw.test/i.png" integrity="sha384-z">`},
	{"sri kept on img", `<img src="https://cdn.example.net/i.png" integrity="sha384-z">`, `<img src="https://cdn.example.net.gw.test/i.png" integrity="sha384-z">`},
	{"empty and valueless attributes", `<input disabled value="" src= >`, `<input disabled value="" src= >`},
	{"unterminated tag at end", `<a href="https://app.example.com/`, `<a href="https://app.example.com/`},
	{"plaintext", `<plaintext><a href="https://app.example.com/">`, `<plaintext><a href="https://app.example.com/">`},
	{"already suffixed", `<a href="https://app.example.com.gw.test/">`, `<a href="https://app.example.com.gw.test/">`},
}

func TestHTMLGolden(t *testing.T) {
	m := newTestMapper()
	for _, c := range htmlGolden {
		if got := rewriteHTML(t, c.in, m, BodyOptions{}); got != c.want {
			t.Errorf("%s:\n in  %s\n got %s\nwant %s", c.name, c.in, got, c.want)
		}
	}
}

// TestHTMLSplitEveryOffset: every two-piece split of every golden document
// gives the same output as one Write.
func TestHTMLSplitEveryOffset(t *testing.T) {
	m := newTestMapper()
	for _, c := range htmlGolden {
		for cut := 0; cut <= len(c.in); cut++ {
			if got := rewriteHTMLSplit(t, c.in, cut, m, BodyOptions{}); got != c.want {
				t.Fatalf("%s split at %d:\n got %s\nwant %s", c.name, cut, got, c.want)
			}
		}
	}
}

// TestHTMLByteAtATime writes a full page one byte per Write.
func TestHTMLByteAtATime(t *testing.T) {
	m := newTestMapper()
	page := benchPage(8 << 10)
	want := rewriteHTML(t, page, m, BodyOptions{Nonce: "n", Inject: []byte("x()")})
	var out bytes.Buffer
	w := NewHTML(&out, m, BodyOptions{Nonce: "n", Inject: []byte("x()")})
	for i := 0; i < len(page); i++ {
		if _, err := w.Write([]byte{page[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Fatal("byte-at-a-time output differs from one-shot output")
	}
	if !strings.Contains(want, "https://cdn.example.net.gw.test/") {
		t.Fatal("bench page was not rewritten")
	}
}

func TestHTMLInject(t *testing.T) {
	m := newTestMapper()
	o := BodyOptions{Nonce: "abc123", Inject: []byte("portcullis()")}
	const s = `<script nonce="abc123">portcullis()</script>`
	cases := []struct{ name, in, want string }{
		{"after head", `<!DOCTYPE html><html><HEAD lang=en><title>t</title></head><body>x</body></html>`,
			`<!DOCTYPE html><html><HEAD lang=en>` + s + `<title>t</title></head><body>x</body></html>`},
		{"body without head", `<!doctype html><html><body class=a><p>x`, `<!doctype html><html><body class=a>` + s + `<p>x`},
		{"implied head", "<!DOCTYPE html>\n<meta charset=utf-8><p>x", "<!DOCTYPE html>\n" + s + "<meta charset=utf-8><p>x"},
		{"text only", "  hello", "  " + s + "hello"},
		{"empty", "", s},
		{"comment first", "<!-- c --><head>", "<!-- c --><head>" + s},
		{"only once", "<head><head><body>", "<head>" + s + "<head><body>"},
	}
	for _, c := range cases {
		if got := rewriteHTML(t, c.in, m, o); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
		for cut := 0; cut <= len(c.in); cut++ {
			if got := rewriteHTMLSplit(t, c.in, cut, m, o); got != c.want {
				t.Fatalf("%s split at %d:\n got %s\nwant %s", c.name, cut, got, c.want)
			}
		}
	}
	if got := rewriteHTML(t, "<head>", m, BodyOptions{Inject: []byte("y")}); got != "<head><script>y</script>" {
		t.Errorf("no nonce: %s", got)
	}
}

func TestHTMLBadOptions(t *testing.T) {
	m := newTestMapper()
	for _, o := range []BodyOptions{
		{Nonce: `a" onload="x`, Inject: []byte("x")},
		{Inject: []byte("a</SCRIPT><img>")},
		{Inject: []byte("<!--")},
	} {
		w := NewHTML(io.Discard, m, o)
		if _, err := w.Write([]byte("<head>")); err == nil {
			t.Errorf("options %+v accepted", o)
		}
		if _, _, err := NewBody(io.Discard, "text/html", "", "app.example.com", m, o); err == nil {
			t.Errorf("NewBody accepted options %+v", o)
		}
	}
}

// TestHTMLOversizedTag: a tag beyond MaxTagSize passes through unmodified
// and is counted; the next tag is rewritten again, and a raw-text element
// opened by the big tag is still honoured.
func TestHTMLOversizedTag(t *testing.T) {
	m := newTestMapper()
	big := `<img src="https://cdn.example.net/a.png" alt="` + strings.Repeat("x>", MaxTagSize) + `">`
	bigScript := `<script data-x='` + strings.Repeat("y", 2*MaxTagSize) + `'>var a = "<a href='https://app.example.com/'>"</script>`
	tail := `<a href="https://app.example.com/">`
	doc := big + bigScript + tail
	var out bytes.Buffer
	w := NewHTML(&out, m, BodyOptions{})
	for i := 0; i < len(doc); i += 4096 {
		if _, err := io.WriteString(w, doc[i:min(i+4096, len(doc))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := big + `<script data-x='` + strings.Repeat("y", 2*MaxTagSize) + `'>var a = "<a href='https://app.example.com.gw.test/'>"</script>` +
		`<a href="https://app.example.com.gw.test/">`
	if out.String() != want {
		t.Errorf("oversized tags: output differs (len %d, want %d)", out.Len(), len(want))
	}
	if n := w.(*HTMLWriter).OversizedTags(); n != 2 {
		t.Errorf("OversizedTags = %d, want 2", n)
	}
}

func TestHTMLUnmappedIsIdentity(t *testing.T) {
	page := benchPage(64 << 10)
	if got := rewriteHTML(t, page, noMapper{}, BodyOptions{}); got != page {
		t.Fatal("page changed with a Mapper that maps nothing")
	}
}

// TestHTMLCarryBounded: long scripts, styles, comments and text stream
// through without the writer holding more than a few bytes between writes.
func TestHTMLCarryBounded(t *testing.T) {
	m := newTestMapper()
	w := NewHTML(io.Discard, m, BodyOptions{}).(*HTMLWriter)
	chunks := []string{
		"<script>", strings.Repeat(`var a = "https://app.example.com/x" / 2 < 3; `, 50_000), "</script>",
		"<style>", strings.Repeat(`a{b:url(//cdn.example.net/x)} `, 50_000), "</style>",
		"<!--", strings.Repeat("- -- <a href=x> ", 50_000), "-->",
		strings.Repeat("text a < b & c ", 50_000),
	}
	for _, c := range chunks {
		for i := 0; i < len(c); i += 32 << 10 {
			if _, err := io.WriteString(w, c[i:min(i+32<<10, len(c))]); err != nil {
				t.Fatal(err)
			}
			if len(w.pend) > 64 || len(w.js.buf) > 300 || len(w.css.buf) > 300 {
				t.Fatalf("carry grew: pend %d js %d css %d", len(w.pend), len(w.js.buf), len(w.css.buf))
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestUnescapeAttr(t *testing.T) {
	cases := []struct{ in, want string }{
		{"a&amp;b", "a&b"}, {"a&amp0", "a&amp0"}, {"a&amp/", "a&/"}, {"&copy=x", "&copy=x"},
		{"&#47;&#x2f;&#47x", "//" + "/x"}, {"&notit;", "&notit;"}, {"&not;x", "¬x"}, {"&not/", "¬/"}, {"&notit", "&notit"}, {"&zz;", "&zz;"}, {"&", "&"},
	}
	for _, c := range cases {
		if got := unescapeAttr(c.in); got != c.want {
			t.Errorf("unescapeAttr(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestLowerStringKnownNames: every known name is found in any case, and
// names that are not known (those of any page, and near misses) are not.
func TestLowerStringKnownNames(t *testing.T) {
	known := []string{
		"html", "head", "body", "meta", "link", "script", "style", "textarea",
		"title", "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext",
		"svg", "math",
		"href", "src", "action", "formaction", "poster", "data", "cite",
		"background", "manifest", "icon", "longdesc", "usemap", "codebase",
		"lowsrc", "dynsrc", "xlink:href", "profile", "classid", "srcset",
		"imagesrcset", "ping", "srcdoc", "http-equiv", "rel", "integrity", "content",
	}
	for _, n := range known {
		for _, v := range []string{n, strings.ToUpper(n), strings.ToUpper(n[:1]) + n[1:]} {
			if got := lowerString([]byte(v)); got != n {
				t.Errorf("lowerString(%q) = %q, want %q", v, got, n)
			}
		}
		if got := lowerString([]byte(n + "x")); got != "" {
			t.Errorf("lowerString(%q) = %q, want none", n+"x", got)
		}
	}
	for _, v := range []string{"div", "class", "span", "id", "a", "alt", "type", "name", "value", "width", "srcse", "hrefs", "data-x", ""} {
		if got := lowerString([]byte(v)); got != "" {
			t.Errorf("lowerString(%q) = %q, want none", v, got)
		}
	}
}
