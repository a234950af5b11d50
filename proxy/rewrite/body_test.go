package rewrite

import (
	"bytes"
	"compress/zlib"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

type codec struct {
	name   string
	encode func(io.Writer) io.WriteCloser
	decode func(io.Reader) (io.Reader, error)
}

var codecs = []codec{
	{"gzip", func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) },
		func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
	{"br", func(w io.Writer) io.WriteCloser { return brotli.NewWriter(w) },
		func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil }},
	{"zstd", func(w io.Writer) io.WriteCloser { z, _ := zstd.NewWriter(w); return z },
		func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) }},
	{"deflate", func(w io.Writer) io.WriteCloser { return zlib.NewWriter(w) },
		func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) }},
	{"deflate-raw", func(w io.Writer) io.WriteCloser { z, _ := flate.NewWriter(w, 5); return z },
		func(r io.Reader) (io.Reader, error) { return flate.NewReader(r), nil }},
}

func encodeWith(t *testing.T, c codec, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := c.encode(&b)
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestBodyEncodings: each encoding decodes, rewrites and re-encodes in
// the same encoding (and form, for deflate), across many small writes.
func TestBodyEncodings(t *testing.T) {
	m := newTestMapper()
	page := benchPage(40 << 10)
	var plain bytes.Buffer
	want := runWriter(t, NewHTML(&plain, m, BodyOptions{}), &plain, page)
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			enc := encodeWith(t, c, page)
			var out bytes.Buffer
			ce := c.name
			if ce == "deflate-raw" {
				ce = "Deflate"
			}
			w, ok, err := NewBody(&out, "text/html; charset=UTF-8", ce, "app.example.com", m, BodyOptions{})
			if !ok || err != nil {
				t.Fatalf("NewBody: ok=%v err=%v", ok, err)
			}
			for i := 0; i < len(enc); i += 777 {
				if _, err := w.Write(enc[i:min(i+777, len(enc))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := c.decode(&out)
			if err != nil {
				t.Fatalf("output is not %s: %v", c.name, err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("output is not %s: %v", c.name, err)
			}
			if string(got) != want {
				t.Fatalf("decoded output differs from identity rewrite (%d vs %d bytes)", len(got), len(want))
			}
		})
	}
}

func TestBodyCorruptEncoding(t *testing.T) {
	m := newTestMapper()
	for _, c := range codecs[:3] {
		enc := encodeWith(t, c, benchPage(8<<10))
		enc[len(enc)/2] ^= 0xff
		enc = enc[:len(enc)-4]
		w, _, _ := NewBody(io.Discard, "text/css", c.name, "app.example.com", m, BodyOptions{})
		_, werr := w.Write(enc)
		cerr := w.Close()
		if werr == nil && cerr == nil {
			t.Errorf("%s: corrupt input accepted", c.name)
		}
		if err := errors.Join(werr, cerr); !errors.Is(err, ErrEncoding) {
			t.Errorf("%s: error %v is not ErrEncoding", c.name, err)
		}
	}
}

func TestBodyTypes(t *testing.T) {
	m := newTestMapper()
	cases := []struct {
		ct, ce string
		ok     bool
		in     string
		want   string
	}{
		{"text/html", "", true, `<a href="https://app.example.com/">`, `<a href="https://app.example.com.gw.test/">`},
		{"TEXT/HTML; charset=utf-8", "identity", true, `<a href="https://app.example.com/">`, `<a href="https://app.example.com.gw.test/">`},
		{"text/css", "", true, `a{b:url(//cdn.example.net/x)}`, `a{b:url(//cdn.example.net.gw.test/x)}`},
		{"application/javascript", "", true, `"https://app.example.com"`, `"https://app.example.com.gw.test"`},
		{"application/json", "", true, `{"a":"https:\/\/app.example.com"}`, `{"a":"https:\/\/app.example.com.gw.test"}`},
		{"application/vnd.api+json", "", true, `"https://app.example.com"`, `"https://app.example.com.gw.test"`},
		{"image/svg+xml", "", true, `<image href="https://cdn.example.net/a.png"/>`, `<image href="https://cdn.example.net.gw.test/a.png"/>`},
		{"application/atom+xml", "", true, `<link href="https://app.example.com/"/>`, `<link href="https://app.example.com.gw.test/"/>`},
		{"image/png", "", false, "", ""},
		{"text/plain", "", false, "", ""},
		{"application/octet-stream", "", false, "", ""},
		{"", "", false, "", ""},
		{"text/html; charset=utf-16le", "", false, "", ""},
		{"text/html", "gzip, br", false, "", ""},
		{"text/html", "compress", false, "", ""},
	}
	for _, c := range cases {
		var out bytes.Buffer
		w, ok, err := NewBody(&out, c.ct, c.ce, "app.example.com", m, BodyOptions{})
		if err != nil || ok != c.ok {
			t.Errorf("%q/%q: ok=%v err=%v, want ok=%v", c.ct, c.ce, ok, err, c.ok)
			continue
		}
		if !ok {
			continue
		}
		if got := runWriter(t, w, &out, c.in); got != c.want {
			t.Errorf("%q: got %s want %s", c.ct, got, c.want)
		}
	}
}

// TestBodyWriteErrorStopsPipeline: a failing destination surfaces as an
// error and the decoding goroutine ends.
func TestBodyWriteErrorStopsPipeline(t *testing.T) {
	m := newTestMapper()
	enc := encodeWith(t, codecs[0], strings.Repeat(benchPage(64<<10), 4))
	w, _, _ := NewBody(failWriter{}, "text/html", "gzip", "app.example.com", m, BodyOptions{})
	var err error
	for i := 0; i < len(enc) && err == nil; i += 4096 {
		_, err = w.Write(enc[i:min(i+4096, len(enc))])
	}
	if cerr := w.Close(); cerr == nil && err == nil {
		t.Fatal("destination error lost")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("client went away") }
