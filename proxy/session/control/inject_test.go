package control

import (
	"bytes"
	"compress/zlib"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// TestInjectPlacement: the elements go where the browser puts them in the
// head, and every other byte stays as it was.
func TestInjectPlacement(t *testing.T) {
	c, _ := newTestController(t)
	const bom = "\xef\xbb\xbf"
	cases := []struct {
		name, contentType, page string
		at                      int // offset of the insertion in page
	}{
		{"after head", "text/html; charset=utf-8", `<!doctype html><html><head><title>t</title></head><body>x</body></html>`, len(`<!doctype html><html><head>`)},
		{"uppercase", "text/html; charset=utf-8", `<!DOCTYPE HTML><HTML LANG=en><HEAD PROFILE="a>b"><TITLE>t</TITLE>`, len(`<!DOCTYPE HTML><HTML LANG=en><HEAD PROFILE="a>b">`)},
		{"no head", "text/html; charset=utf-8", "<!doctype html>\n<html>\n<title>t</title>", len("<!doctype html>\n<html>\n")},
		{"no html, no head", "text/html; charset=utf-8", "<body><p>hi", 0},
		{"text first", "text/html; charset=utf-8", "  hello <b>x</b>", 2},
		{"byte order mark", "text/html", bom + `<html><head><meta charset="utf-8">`, len(bom + `<html><head>`)},
		{"comments and doctype", "text/html; charset=utf-8", `<!-- <head> --><!----><!---> <!doctype html><?xml x?><html><!-- - -- --!><head >`,
			len(`<!-- <head> --><!----><!---> <!doctype html><?xml x?><html><!-- - -- --!><head >`)},
		{"attribute quoting", "text/html; charset=utf-8", `<html a='>' b=">" c=d>e><head/>`, len(`<html a='>' b=">" c=d>`)},
		{"header before head", "text/html; charset=utf-8", `<html><header>x`, len(`<html>`)},
		{"ignored end tags", "text/html; charset=utf-8", `</p></abcdef="x>y"><head>`, len(`</p></abcdef="x>`)},
		{"end tag that ends the head", "text/html; charset=utf-8", `</body><head>`, 0},
		{"lone lt", "text/html; charset=utf-8", `< head>`, 0},
		{"empty end tag dropped", "text/html; charset=utf-8", `</><head>x`, len(`</><head>`)},
		{"script first", "text/html; charset=utf-8", `<script>alert(1)</script>`, 0},
		{"comment only", "text/html; charset=utf-8", `<!-- just this -->`, len(`<!-- just this -->`)},
		{"unfinished tag", "text/html; charset=utf-8", `<html><hea`, len(`<html>`)},
		// No charset in the header: the meta that declares it stays in the
		// first 1024 bytes.
		{"after meta charset", "text/html", `<html><head><meta name=x content=y><link rel=icon href=/i><meta charset="utf-8"><title>t</title>`,
			len(`<html><head><meta name=x content=y><link rel=icon href=/i><meta charset="utf-8">`)},
		{"after http-equiv charset", "text/html", `<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><script>`,
			len(`<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">`)},
		{"before csp meta", "text/html", `<head><meta http-equiv=content-security-policy content="script-src 'none'"><meta charset=utf-8>`, len(`<head>`)},
		{"no meta charset", "text/html", `<head><title>t</title><meta charset=utf-8>`, len(`<head>`)},
		{"meta charset, implied head", "text/html", `<meta charset=utf-8><p>`, len(`<meta charset=utf-8>`)},
		{"lookahead limit", "text/html", `<head>` + strings.Repeat(`<meta name=a content=b>`, 60) + `<meta charset=utf-8>`, len(`<head>`) + 45*len(`<meta name=a content=b>`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunked := range []bool{false, true} {
				h := http.Header{"Content-Type": {tc.contentType}}
				rc, err := c.Inject(h, io.NopCloser(bytes.NewReader([]byte(tc.page))), "app.test", blockAll, "sess")
				if err != nil {
					t.Fatal(err)
				}
				b := rc.(*Body)
				var r io.Reader = b
				if chunked {
					r = iotest.OneByteReader(b)
				}
				out, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				rest, at := removeOnce(out, b.insert)
				if string(rest) != tc.page || at != tc.at {
					t.Errorf("chunked=%v: inserted at %d, want %d; page intact %v\n%s", chunked, at, tc.at, string(rest) == tc.page, rest)
				}
			}
		})
	}
}

func TestInjectEncodings(t *testing.T) {
	c, _ := newTestController(t)
	page := []byte(`<!doctype html><html><head><title>t</title></head><body>` + strings.Repeat("text ", 20000) + `</body></html>`)
	encoders := map[string]func(io.Writer) io.WriteCloser{
		"gzip":        func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) },
		"br":          func(w io.Writer) io.WriteCloser { return brotli.NewWriter(w) },
		"zstd":        func(w io.Writer) io.WriteCloser { e, _ := zstd.NewWriter(w); return e },
		"deflate":     func(w io.Writer) io.WriteCloser { return zlib.NewWriter(w) },
		"raw deflate": func(w io.Writer) io.WriteCloser { f, _ := flate.NewWriter(w, 5); return f },
	}
	for name, enc := range encoders {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			w := enc(&buf)
			w.Write(page)
			w.Close()
			coding := strings.TrimPrefix(name, "raw ")
			h := http.Header{"Content-Type": {"text/html; charset=utf-8"}, "Content-Encoding": {coding},
				"Content-Length": {"123"}, "Etag": {`"x"`}, "Cache-Control": {"public, max-age=600"}}
			out, insert, err := injectBytes(t, c, h, buf.Bytes(), blockAll)
			if err != nil {
				t.Fatal(err)
			}
			rest, at := removeOnce(out, insert)
			if !bytes.Equal(rest, page) || at != len(`<!doctype html><html><head>`) {
				t.Errorf("decoded page changed or insertion at %d", at)
			}
			for _, k := range []string{"Content-Encoding", "Content-Length", "Etag"} {
				if h.Get(k) != "" {
					t.Errorf("%s still set: %q", k, h.Get(k))
				}
			}
			if got := h.Get("Cache-Control"); got != "private, no-cache" {
				t.Errorf("Cache-Control = %q", got)
			}
		})
	}
	t.Run("corrupt gzip", func(t *testing.T) {
		_, _, err := injectBytes(t, c, http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"gzip"}}, []byte("not gzip at all"), blockAll)
		if !errorsIs(err, ErrEncoding) {
			t.Errorf("err = %v, want ErrEncoding", err)
		}
	})
	t.Run("truncated gzip", func(t *testing.T) {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(page)
		w.Close()
		_, _, err := injectBytes(t, c, http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"gzip"}}, buf.Bytes()[:buf.Len()/2], blockAll)
		if !errorsIs(err, ErrEncoding) {
			t.Errorf("err = %v, want ErrEncoding", err)
		}
	})
}

func TestInjectRefuses(t *testing.T) {
	c, _ := newTestController(t)
	cases := []struct {
		name string
		h    http.Header
		want error
	}{
		{"not html", http.Header{"Content-Type": {"application/json"}}, ErrNotHTML},
		{"no type", http.Header{}, ErrNotHTML},
		{"utf-16", http.Header{"Content-Type": {"text/html; charset=UTF-16LE"}}, ErrCharset},
		{"stacked encodings", http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"gzip, br"}}, ErrEncoding},
		{"unknown encoding", http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"compress"}}, ErrEncoding},
		{"partial", http.Header{"Content-Type": {"text/html"}, "Content-Range": {"bytes 0-9/100"}}, ErrPartial},
		{"sandboxed", http.Header{"Content-Type": {"text/html"}, "Content-Security-Policy": {"default-src 'self'; sandbox allow-forms"}}, ErrSandboxed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.h.Clone()
			body := io.NopCloser(strings.NewReader("<p>x"))
			rc, err := c.Inject(tc.h, body, "app.test", blockAll, "sess")
			if !errorsIs(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if rc != body {
				t.Error("the original body was not returned")
			}
			if !headersEqual(before, tc.h) {
				t.Errorf("headers changed: %v -> %v", before, tc.h)
			}
		})
	}
	t.Run("nothing to control", func(t *testing.T) {
		h := http.Header{"Content-Type": {"text/html"}, "Content-Length": {"4"}}
		body := io.NopCloser(strings.NewReader("<p>x"))
		rc, err := c.Inject(h, body, "app.test", Rules{Message: "m"}, "sess")
		if err != nil || rc != body || h.Get("Content-Length") != "4" {
			t.Errorf("Inject with allow-only rules changed something: %v", err)
		}
	})
	t.Run("utf-16 byte order mark", func(t *testing.T) {
		page := "\xff\xfe<\x00h\x00"
		rc, err := c.Inject(http.Header{"Content-Type": {"text/html"}}, io.NopCloser(strings.NewReader(page)), "app.test", blockAll, "sess")
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(rc)
		if string(out) != page || !errorsIs(rc.(*Body).Skipped(), ErrUTF16Body) {
			t.Errorf("out %q, skipped %v", out, rc.(*Body).Skipped())
		}
	})
	t.Run("empty body", func(t *testing.T) {
		out, _, err := injectBytes(t, c, http.Header{"Content-Type": {"text/html"}}, nil, blockAll)
		if err != nil || len(out) != 0 {
			t.Errorf("empty body became %q (%v)", out, err)
		}
	})
}

// TestInjectedMarkupIsInert: a hostile message cannot leave its element.
func TestInjectedMarkupIsInert(t *testing.T) {
	c, _ := newTestController(t)
	msg := "</style></script><script>alert(1)</script><!-- \"' \\ \u2028 & \x00"
	rules := blockAll
	rules.Message = msg
	_, insert, err := injectBytes(t, c, http.Header{"Content-Type": {"text/html"}}, []byte("<head>"), rules)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ToLower(string(insert))
	if n := strings.Count(s, "</script"); n != 1 {
		t.Errorf("%d </script in the inserted markup, want 1", n)
	}
	if n := strings.Count(s, "</style"); n != 1 {
		t.Errorf("%d </style, want 1", n)
	}
	if strings.Contains(s, "<!--") || strings.Contains(s, "<script>alert") {
		t.Errorf("the message escaped its element:\n%s", insert)
	}
	if strings.Contains(strings.ToLower(controlScript), "</script") || strings.Contains(controlScript, "<!--") {
		t.Error("script.js contains </script or <!--")
	}
}

func headersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

func TestInjectReportSourceKeepsPort(t *testing.T) {
	c, _ := newTestController(t)
	for host, want := range map[string]string{"App.Test:8443": "https://app.test:8443/.portcullis/report", "app.test:443": "https://app.test/.portcullis/report"} {
		h := http.Header{"Content-Type": {"text/html"}, "Content-Security-Policy": {"connect-src 'none'"}}
		if _, err := c.Inject(h, io.NopCloser(strings.NewReader("")), host, blockAll, "s"); err != nil {
			t.Fatal(err)
		}
		if got := h.Get("Content-Security-Policy"); got != "connect-src 'none' "+want {
			t.Errorf("%s: %q", host, got)
		}
	}
}

// TestInjectReadAfterClose: a closed body gives its pooled decoder back and
// never reads from it again.
func TestInjectReadAfterClose(t *testing.T) {
	c, _ := newTestController(t)
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write([]byte("<head>" + strings.Repeat("x", 100000)))
	w.Close()
	rc, err := c.Inject(http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"gzip"}}, io.NopCloser(&buf), "app.test", blockAll, "s")
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	if _, err := rc.Read(p); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if n, err := rc.Read(p); n != 0 || err == nil {
		t.Errorf("read after close: %d, %v", n, err)
	}
}
