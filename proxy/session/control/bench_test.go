package control

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// benchPage is a 64 KiB page; the baseline copies it as a proxy without the
// script would, so the two sub-benchmarks of one run give the ratio.
var benchPage = []byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>t</title></head><body>` +
	strings.Repeat(`<div class="row"><a href="/item">item</a> text text text</div>`, 1100) + `</body></html>`)

// BenchmarkInject: a page through Inject against the same page copied
// as it is, in the same run.
func BenchmarkInject(b *testing.B) {
	c, _ := newTestController(b)
	b.Run("baseline copy", func(b *testing.B) {
		b.SetBytes(int64(len(benchPage)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 32<<10)
			for pb.Next() {
				_, _ = io.CopyBuffer(plainWriter{io.Discard}, plainReader{bytes.NewReader(benchPage)}, buf)
			}
		})
	})
	b.Run("inject", func(b *testing.B) {
		b.SetBytes(int64(len(benchPage)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 32<<10)
			for pb.Next() {
				h := http.Header{"Content-Type": {"text/html; charset=utf-8"}, "Content-Security-Policy": {"script-src 'self'"}}
				rc, err := c.Inject(h, io.NopCloser(bytes.NewReader(benchPage)), "app.test", blockAll, "session-id")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.CopyBuffer(plainWriter{io.Discard}, rc, buf)
				rc.Close()
			}
		})
	})
}

// plainReader and plainWriter hide WriterTo and ReaderFrom, so both runs
// copy through the same 32 KiB buffer.
type plainReader struct{ io.Reader }

type plainWriter struct{ io.Writer }

// BenchmarkInjectEncoded: decoding dominates an encoded page.
func BenchmarkInjectEncoded(b *testing.B) {
	c, _ := newTestController(b)
	for _, coding := range []string{"gzip", "zstd", "br"} {
		var enc bytes.Buffer
		w := map[string]func(io.Writer) io.WriteCloser{
			"gzip": func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) },
			"zstd": func(w io.Writer) io.WriteCloser { e, _ := zstd.NewWriter(w); return e },
			"br":   func(w io.Writer) io.WriteCloser { return brotli.NewWriter(w) },
		}[coding](&enc)
		w.Write(benchPage)
		w.Close()
		b.Run(coding, func(b *testing.B) {
			b.SetBytes(int64(len(benchPage)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 32<<10)
				for pb.Next() {
					h := http.Header{"Content-Type": {"text/html; charset=utf-8"}, "Content-Encoding": {coding}}
					rc, err := c.Inject(h, io.NopCloser(bytes.NewReader(enc.Bytes())), "app.test", blockAll, "session-id")
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.CopyBuffer(plainWriter{io.Discard}, rc, buf); err != nil {
						b.Fatal(err)
					}
					rc.Close()
				}
			})
		})
	}
}
