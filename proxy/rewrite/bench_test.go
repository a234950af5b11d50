package rewrite

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/net/html"
)

// benchPage builds a realistic page of about size bytes: a head with
// stylesheets, preloads and inline CSS/JSON, then a body of navigation,
// cards with images and srcset, forms, inline scripts and plain text, with
// a mix of mapped, unmapped and relative URLs.
func benchPage(size int) string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Example App — Dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="https://cdn.example.net/css/app.4f9a.css" integrity="sha384-abc" crossorigin="anonymous">
<link rel="preload" as="font" href="https://cdn.example.net/fonts/inter.woff2" crossorigin>
<link rel="icon" href="/favicon.ico"><link rel="preconnect" href="https://fonts.googleapis.com">
<style>
:root{--brand:#0b5fff}body{font-family:Inter,sans-serif;margin:0}
.hero{background:url("https://cdn.example.net/img/hero.jpg") center/cover no-repeat}
@font-face{font-family:Inter;src:url(//cdn.example.net/fonts/inter.woff2) format("woff2")}
.card:hover{box-shadow:0 2px 8px rgba(0,0,0,.2)}
</style>
<script>window.__CONFIG__={"api":"https:\/\/app.example.com\/api\/v2","login":"https://login.example.com/oauth2/authorize","cdn":"//cdn.example.net","sentry":"https://o1.ingest.sentry.io/42"};</script>
<script src="https://cdn.example.net/js/vendor.91c2.js" integrity="sha384-def" defer></script>
<script src="/static/js/app.js" defer></script>
</head>
<body class="theme-light">
<header><nav><ul>
`)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `<li class="nav-item"><a class="nav-link" href="https://app.example.com/projects/%d?tab=overview&amp;sort=desc">Project %d</a></li>
<div class="card" data-id="%d" style="border-left:3px solid var(--brand)"><img src="https://cdn.example.net/thumbs/%d.webp" srcset="https://cdn.example.net/thumbs/%d.webp 1x, https://cdn.example.net/thumbs/%d@2x.webp 2x" alt="Thumbnail %d" loading="lazy" width="320" height="180">
<h3 class="card-title">Quarterly report %d</h3><p class="card-text">Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. See <a href="/docs/%d">the docs</a> or <a href="https://www.example.org/help">help</a>.</p>
<form method="post" action="https://app.example.com/projects/%d/star"><input type="hidden" name="csrf" value="k%dq"><button type="submit" class="btn btn-sm">Star</button></form>
<!-- card %d rendered by template v2 -->
<script>track("view",{"id":%d,"url":"https://app.example.com/projects/%d","ref":document.referrer});</script></div>
`, i, i, i, i, i, i, i, i, i, i, i, i, i, i)
	}
	b.WriteString("</ul></nav></header></body></html>\n")
	return b.String()
}

func benchCSS(size int) string {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, ".icon-%d{background-image:url(\"https://cdn.example.net/icons/%d.svg\");width:16px;height:16px;margin:0 4px 0 0}\n.c%d>a:hover{color:#%06x;text-decoration:underline}\n@media (max-width:600px){.c%d{display:none}}\n", i, i, i, i*2654435761&0xffffff, i)
	}
	return b.String()
}

func benchJS(size int) string {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "function f%d(a,b){if(a/b>2){return fetch(\"https://app.example.com/api/items/\"+a,{method:'GET'})}// comment %d\nvar r=/ab+c/g;return {\"u\":\"https:\\/\\/cdn.example.net\\/x%d.png\",\"n\":%d,\"o\":\"https://other.org/t\"}}\n", i, i, i, i)
	}
	return b.String()
}

func benchWriter(b *testing.B, data string, newW func(io.Writer) io.WriteCloser) {
	p := []byte(data)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := newW(io.Discard)
		for i := 0; i < len(p); i += 32 << 10 {
			if _, err := w.Write(p[i:min(i+32<<10, len(p))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// BenchmarkHTML is the target metric: a ~100 KiB page, 32 KiB writes.
// BenchmarkCopyBaseline moves the same bytes through a plain writer.
func BenchmarkHTML(b *testing.B) {
	m := newTestMapper()
	benchWriter(b, benchPage(100<<10), func(w io.Writer) io.WriteCloser {
		return NewHTML(w, m, BodyOptions{Nonce: "n0nce", Inject: []byte("window.__pc=1")})
	})
}

// BenchmarkCopyBaseline copies the page in the same 32 KiB writes into a
// buffer: the floor of any streaming rewriter.
func BenchmarkCopyBaseline(b *testing.B) {
	benchWriter(b, benchPage(100<<10), func(w io.Writer) io.WriteCloser {
		var buf bytes.Buffer
		buf.Grow(128 << 10)
		return nopCloser{&buf}
	})
}

// BenchmarkXNetTokenizerBaseline only tokenizes the page with
// golang.org/x/net/html and copies each token's raw bytes (no rewriting):
// what the hand-written scanner replaces.
func BenchmarkXNetTokenizerBaseline(b *testing.B) {
	page := []byte(benchPage(100 << 10))
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		z := html.NewTokenizer(bytes.NewReader(page))
		for z.Next() != html.ErrorToken {
			out.Write(z.Raw())
		}
	}
}

func BenchmarkCSS(b *testing.B) {
	m := newTestMapper()
	benchWriter(b, benchCSS(100<<10), func(w io.Writer) io.WriteCloser { return NewCSS(w, m) })
}

func BenchmarkText(b *testing.B) {
	m := newTestMapper()
	benchWriter(b, benchJS(100<<10), func(w io.Writer) io.WriteCloser { return NewText(w, m) })
}

func gzipped(b testing.TB, s string) []byte {
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, 6)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return z.Bytes()
}

// BenchmarkHTMLGzip decodes, rewrites and re-encodes a gzipped page;
// BenchmarkGzipBaseline only decodes and re-encodes it. Bytes are the
// decoded page size in both.
func BenchmarkHTMLGzip(b *testing.B) {
	m := newTestMapper()
	page := benchPage(100 << 10)
	z := gzipped(b, page)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		w, ok, err := NewBody(io.Discard, "text/html; charset=utf-8", "gzip", "app.example.com", m, BodyOptions{})
		if !ok || err != nil {
			b.Fatal(ok, err)
		}
		if _, err := w.Write(z); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGzipBaseline(b *testing.B) {
	page := benchPage(100 << 10)
	z := gzipped(b, page)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	zr := new(gzip.Reader)
	zw, _ := gzip.NewWriterLevel(io.Discard, 5)
	for b.Loop() {
		if err := zr.Reset(bytes.NewReader(z)); err != nil {
			b.Fatal(err)
		}
		zw.Reset(io.Discard)
		if _, err := io.Copy(zw, zr); err != nil {
			b.Fatal(err)
		}
		_ = zw.Close()
	}
}

// BenchmarkResponseHeaders is ResponseHeaders on the head of a typical
// small response, which has none of the fields it rewrites.
func BenchmarkResponseHeaders(b *testing.B) {
	m := newTestMapper()
	h := http.Header{
		"Content-Type":              {"application/json; charset=utf-8"},
		"Content-Length":            {"412"},
		"Date":                      {"Wed, 02 Dec 2026 14:00:00 GMT"},
		"Cache-Control":             {"private, no-cache"},
		"Vary":                      {"Accept-Encoding"},
		"Strict-Transport-Security": {"max-age=31536000"},
		"X-Content-Type-Options":    {"nosniff"},
	}
	b.ReportAllocs()
	for b.Loop() {
		ResponseHeaders(h, "app.example.com", m, HeaderOptions{})
	}
}
