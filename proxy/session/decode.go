package session

import (
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

var errEncoding = errors.New("unsupported content encoding")

// identityEncoding reports a Content-Encoding that leaves the bytes as
// they are.
func identityEncoding(enc string) bool {
	enc = strings.TrimSpace(strings.ToLower(enc))
	return enc == "" || enc == "identity"
}

// decodingWriter decodes a Content-Encoding written to it into dst (on a
// goroutine fed through a pipe, so the encoded stream can be teed). Close
// waits for the decoder and returns its error.
type decodingWriter struct {
	pw   *io.PipeWriter
	done chan error
}

func newDecodingWriter(enc string, dst io.Writer) (*decodingWriter, error) {
	enc = strings.TrimSpace(strings.ToLower(enc))
	switch enc {
	case "gzip", "x-gzip", "br", "zstd", "deflate":
	default:
		return nil, fmt.Errorf("%w: %q", errEncoding, enc)
	}
	pr, pw := io.Pipe()
	d := &decodingWriter{pw: pw, done: make(chan error, 1)}
	go func() {
		var r io.Reader
		var err error
		switch enc {
		case "gzip", "x-gzip":
			var g *gzip.Reader
			if g, err = gzip.NewReader(pr); err == nil {
				r = g
			}
		case "br":
			r = brotli.NewReader(pr)
		case "zstd":
			var z *zstd.Decoder
			if z, err = zstd.NewReader(pr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20)); err == nil {
				defer z.Close()
				r = z
			}
		case "deflate":
			// "deflate" is zlib-wrapped (RFC 9110); raw deflate fails
			// inspection rather than being guessed at.
			var z io.ReadCloser
			if z, err = zlib.NewReader(pr); err == nil {
				r = z
			}
		}
		if err == nil {
			_, err = io.Copy(dst, r)
		}
		pr.CloseWithError(err)
		d.done <- err
	}()
	return d, nil
}

func (d *decodingWriter) Write(p []byte) (int, error) { return d.pw.Write(p) }

func (d *decodingWriter) Close() error {
	_ = d.pw.Close()
	return <-d.done
}
