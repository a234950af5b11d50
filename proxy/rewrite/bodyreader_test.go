package rewrite

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// chunkReader returns at most n bytes per Read and can fail at the end.
type chunkReader struct {
	b      []byte
	n      int
	err    error // returned instead of io.EOF
	closed bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

func (r *chunkReader) Close() error { r.closed = true; return nil }

// readChunks drains r with reads of the given size.
func readChunks(t testing.TB, r io.Reader, size int) ([]byte, error) {
	t.Helper()
	var out []byte
	p := make([]byte, size)
	for range 10_000_000 {
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
	t.Fatal("reader never ended")
	return nil, nil
}

// writerRewrite is what NewBody writes for body: the reference the pull
// reader must reproduce byte for byte.
func writerRewrite(t *testing.T, body []byte, ct, ce string, o BodyOptions) []byte {
	t.Helper()
	var out bytes.Buffer
	w, ok, err := NewBody(&out, ct, ce, "app.example.com", newTestMapper(), o)
	if !ok || err != nil {
		t.Fatalf("NewBody(%q, %q): ok=%v err=%v", ct, ce, ok, err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestBodyReaderMatchesWriter: pulling a body through NewBodyReader gives
// exactly what NewBody writes, for every rewritten type and encoding,
// whatever the origin's read sizes and the caller's.
func TestBodyReaderMatchesWriter(t *testing.T) {
	m := newTestMapper()
	types := []struct{ ct, body string }{
		{"text/html; charset=utf-8", benchPage(40 << 10)},
		{"text/css", benchCSS(20 << 10)},
		{"application/javascript", benchJS(20 << 10)},
	}
	encs := append([]codec{{name: ""}}, codecs...)
	o := BodyOptions{Nonce: "n0nce", Inject: []byte("window.__pc=1")}
	for _, ty := range types {
		for _, c := range encs {
			body := []byte(ty.body)
			ce := c.name
			if c.name != "" {
				body = encodeWith(t, c, ty.body)
				if ce == "deflate-raw" {
					ce = "deflate"
				}
			}
			want := writerRewrite(t, body, ty.ct, ce, o)
			for _, sizes := range [][2]int{{1 << 20, 32 << 10}, {777, 100}, {4096, 1}} {
				if sizes[1] == 1 && len(body) > 16<<10 && c.name != "" {
					continue // one-byte reads through an encoder: slow, and covered by the identity case
				}
				src := &chunkReader{b: body, n: sizes[0]}
				r, ok, err := NewBodyReader(src, ty.ct, ce, m, o)
				if !ok || err != nil {
					t.Fatalf("%s/%s: ok=%v err=%v", ty.ct, c.name, ok, err)
				}
				got, err := readChunks(t, r, sizes[1])
				if err != nil {
					t.Fatalf("%s/%s %v: %v", ty.ct, c.name, sizes, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s/%s %v: pulled body differs from the written one (%d vs %d bytes)", ty.ct, c.name, sizes, len(got), len(want))
				}
				if err := r.Close(); err != nil || !src.closed {
					t.Fatalf("Close: %v, source closed %v", err, src.closed)
				}
			}
		}
	}
}

// TestBodyReaderBuffer: a body that fits is buffered whole (its length is
// then known); one that does not is buffered up to about the bound and the
// rest streams, the bytes the same either way.
func TestBodyReaderBuffer(t *testing.T) {
	m := newTestMapper()
	for _, c := range []struct {
		size     int
		complete bool
	}{{20 << 10, true}, {300 << 10, false}} {
		page := benchPage(c.size)
		want := writerRewrite(t, []byte(page), "text/html", "", BodyOptions{})
		r, _, _ := NewBodyReader(&chunkReader{b: []byte(page), n: 8 << 10}, "text/html", "", m, BodyOptions{})
		n, complete, err := r.Buffer(128 << 10)
		if err != nil || complete != c.complete {
			t.Fatalf("%d bytes: Buffer complete=%v err=%v, want complete=%v", c.size, complete, err, c.complete)
		}
		if complete && n != len(want) {
			t.Fatalf("buffered length %d, rewritten body is %d", n, len(want))
		}
		if !complete && (n <= 128<<10 || n > 128<<10+64<<10) {
			t.Fatalf("buffered %d bytes of an oversize body, want just over the bound", n)
		}
		got, err := readChunks(t, r, 32<<10)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: read %d bytes (%v), want %d", c.size, len(got), err, len(want))
		}
		_ = r.Close()
	}
}

// TestBodyReaderErrors: a corrupt encoding is ErrEncoding, the origin's own
// failure keeps its identity, and either ends the body rather than looking
// like its end.
func TestBodyReaderErrors(t *testing.T) {
	m := newTestMapper()
	for _, c := range codecs[:3] {
		enc := encodeWith(t, c, benchPage(8<<10))
		enc[len(enc)/2] ^= 0xff
		enc = enc[:len(enc)-4]
		r, _, _ := NewBodyReader(&chunkReader{b: enc, n: 1000}, "text/css", c.name, m, BodyOptions{})
		if _, err := readChunks(t, r, 4096); !errors.Is(err, ErrEncoding) {
			t.Errorf("%s: corrupt body read with %v, want ErrEncoding", c.name, err)
		}
		_ = r.Close()
	}
	r, _, _ := NewBodyReader(&chunkReader{b: []byte("\x1f\x8bnot gzip"), n: 100}, "text/html", "gzip", m, BodyOptions{})
	if _, _, err := r.Buffer(1 << 20); !errors.Is(err, ErrEncoding) {
		t.Errorf("bad gzip header buffered with %v, want ErrEncoding", err)
	}
	_ = r.Close()
	reset := errors.New("connection reset by origin")
	for _, ce := range []string{"", "gzip"} {
		body := []byte(benchPage(20 << 10))
		if ce == "gzip" {
			body = encodeWith(t, codecs[0], string(body))
		}
		r, _, _ := NewBodyReader(&chunkReader{b: body[:len(body)/2], n: 4096, err: reset}, "text/html", ce, m, BodyOptions{})
		if _, err := readChunks(t, r, 4096); !errors.Is(err, reset) {
			t.Errorf("%q: origin failure read as %v", ce, err)
		}
		_ = r.Close()
	}
	if _, ok, _ := NewBodyReader(io.NopCloser(strings.NewReader("x")), "image/png", "", m, BodyOptions{}); ok {
		t.Error("image/png taken for rewriting")
	}
	if _, ok, _ := NewBodyReader(io.NopCloser(strings.NewReader("x")), "text/html", "gzip, br", m, BodyOptions{}); ok {
		t.Error("stacked encodings taken for rewriting")
	}
	if _, _, err := NewBodyReader(io.NopCloser(strings.NewReader("x")), "text/html", "", m, BodyOptions{Nonce: "a b"}); !errors.Is(err, ErrBadNonce) {
		t.Errorf("bad nonce: %v", err)
	}
}

// TestBodyReaderNoGoroutineAndPooled: an encoded body is pulled without a
// goroutine, and a warm 20 KiB page costs a bounded number of allocations
// (the coders, the buffers and the rewriter's staging are pooled).
func TestBodyReaderNoGoroutineAndPooled(t *testing.T) {
	m := newTestMapper()
	page := benchPage(20 << 10)
	gz := encodeWith(t, codecs[0], page)
	before := runtime.NumGoroutine()
	r, _, _ := NewBodyReader(&chunkReader{b: gz, n: 4096}, "text/html", "gzip", m, BodyOptions{})
	p := make([]byte, 512)
	if _, err := r.Read(p); err != nil {
		t.Fatal(err)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines while a gzip body is half read, %d before", n, before)
	}
	_ = r.Close()
	if raceBuild {
		return // sync.Pool drops items at random under -race
	}
	// The rewriter's own allocations (a replacement string per rewritten
	// srcset, the page's host cache) are the same with or without the
	// reader; what the reader adds must be a few, whatever the encoding.
	rewriterOnly := testing.AllocsPerRun(50, func() {
		w := NewHTML(io.Discard, m, BodyOptions{})
		_, _ = w.Write([]byte(page))
		_ = w.Close()
	})
	for _, c := range []struct {
		ce   string
		body []byte
	}{{"", []byte(page)}, {"gzip", gz}} {
		allocs := testing.AllocsPerRun(50, func() {
			r, _, _ := NewBodyReader(&chunkReader{b: c.body, n: 32 << 10}, "text/html", c.ce, m, BodyOptions{})
			if _, _, err := r.Buffer(128 << 10); err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatal(err)
			}
			_ = r.Close()
		})
		t.Logf("%q: %.0f allocations per 20 KiB page, the rewriter alone %.0f", c.ce, allocs, rewriterOnly)
		if allocs > rewriterOnly+8 {
			t.Errorf("%q: %.0f allocations per 20 KiB page, the rewriter alone %.0f: the reader's are not pooled", c.ce, allocs, rewriterOnly)
		}
	}
}

// FuzzBodyReader: the pull reader reproduces the writer's bytes for any
// input and any read sizes.
func FuzzBodyReader(f *testing.F) {
	f.Add([]byte(benchPage(2<<10)), uint16(100), uint16(7))
	f.Add([]byte(`<a href="https://app.example.com/x"><script>f("//app.example.com")</script>`), uint16(1), uint16(3))
	f.Add([]byte(`<svg><![CDATA[ https://cdn.example.net/ ]]></svg><style>url(//cdn.example.net/a)`), uint16(5), uint16(1))
	m := newTestMapper()
	f.Fuzz(func(t *testing.T, body []byte, in, out uint16) {
		var want bytes.Buffer
		w := NewHTML(&want, m, BodyOptions{Inject: []byte("x=1")})
		_, _ = w.Write(body)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, _, _ := NewBodyReader(&chunkReader{b: body, n: int(in%4096) + 1}, "text/html", "", m, BodyOptions{Inject: []byte("x=1")})
		got, err := readChunks(t, r, int(out%4096)+1)
		if err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("pulled %q (%v), written %q", got, err, want.Bytes())
		}
	})
}
