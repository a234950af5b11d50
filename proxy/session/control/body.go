package control

import (
	"bufio"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Body is the response body Inject returns: the page with the control
// elements inserted, decoded from its Content-Encoding. Bytes before the
// insertion point are held only while a token is undecided (a few bytes;
// up to maxHeldMeta for a <meta> in lookahead); after it, Read hands the
// decoded stream straight through.
type Body struct {
	src    io.ReadCloser
	enc    string
	srcErr *errReader // src as the decoder sees it, to tell its errors from the decoder's
	dec    io.Reader  // nil until the first Read
	close  func()     // releases the decoder

	sc     *scanner
	insert []byte
	buf    []byte   // read buffer while scanning
	pend   []byte   // held bytes of an undecided token
	out    [][]byte // what Read hands out next, in order (slices of buf, pend, insert)
	done   bool
	err    error

	skipped error
}

var _ io.ReadCloser = (*Body)(nil)

// Skipped tells, once the body has been read, whether the document was
// passed through without the control elements: ErrUTF16Body for a UTF-16
// document, nil when the elements went in (or the body was empty).
func (b *Body) Skipped() error { return b.skipped }

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n := 0
		for len(b.out) > 0 && n < len(p) {
			k := copy(p[n:], b.out[0])
			n += k
			if b.out[0] = b.out[0][k:]; len(b.out[0]) == 0 {
				b.out = b.out[1:]
			}
		}
		if n > 0 {
			return n, nil
		}
		if b.err != nil {
			return 0, b.err
		}
		if b.dec == nil {
			if err := b.openDecoder(); err != nil {
				b.err = err
				return 0, err
			}
		}
		if b.done {
			n, err := b.dec.Read(p)
			return n, b.wrap(err)
		}
		b.fill()
	}
}

// fill reads one chunk while the insertion point is undecided. What it
// queues in out refers to buf and pend, which stay untouched until out is
// empty again.
func (b *Body) fill() {
	if b.buf == nil {
		b.buf = make([]byte, 4<<10)
	}
	n, err := b.dec.Read(b.buf)
	final := err == io.EOF
	if err != nil && !final {
		b.err = b.wrap(err)
		return
	}
	if n == 0 && !final {
		return
	}
	data := b.buf[:n]
	if len(b.pend) > 0 {
		data = append(b.pend, data...) // a few held bytes in front
	}
	at, keep := b.sc.scan(data, len(b.pend), final)
	b.out = b.out[:0]
	switch {
	case at >= 0:
		b.out = append(b.out, data[:at], b.insert, data[at:])
		b.done = true
	case at == scanSkip || at == scanNothing:
		b.out = append(b.out, data)
		b.done = true
		if at == scanSkip {
			b.skipped = ErrUTF16Body
		}
	default:
		b.out = append(b.out, data[:len(data)-keep])
		// The held bytes move to their own buffer: buf is read into next.
		held := data[len(data)-keep:]
		b.pend = append(make([]byte, 0, len(held)+len(b.buf)), held...)
	}
	if final {
		b.err = io.EOF
	}
}

// Close releases the decoder and closes the original body. Read after
// Close fails; as for any body, Read and Close must not run concurrently
// (the decoder goes back to a pool).
func (b *Body) Close() error {
	b.err, b.out, b.done = errBodyClosed, nil, false
	b.dec = closedReader{}
	if b.close != nil {
		b.close()
		b.close = nil
	}
	return b.src.Close()
}

var errBodyClosed = errors.New("control: read after close")

type closedReader struct{}

func (closedReader) Read([]byte) (int, error) { return 0, errBodyClosed }

// Decoders are pooled: building a zstd or brotli decoder costs more than
// decoding a typical page (BenchmarkInjectEncoded).
var (
	gzipReaders   sync.Pool
	brotliReaders sync.Pool
	zstdReaders   sync.Pool
)

func (b *Body) openDecoder() error {
	b.srcErr = &errReader{r: b.src}
	switch b.enc {
	case "":
		b.dec = b.src
		return nil
	case "gzip", "x-gzip":
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		if zr == nil {
			zr = new(gzip.Reader)
		}
		if err := zr.Reset(b.srcErr); err != nil {
			return b.wrap(err)
		}
		b.dec, b.close = zr, func() { gzipReaders.Put(zr) }
	case "br":
		br, _ := brotliReaders.Get().(*brotli.Reader)
		if br == nil {
			br = brotli.NewReader(b.srcErr)
		} else if err := br.Reset(b.srcErr); err != nil {
			return b.wrap(err)
		}
		b.dec, b.close = br, func() { brotliReaders.Put(br) }
	case "zstd":
		zr, _ := zstdReaders.Get().(*zstd.Decoder)
		if zr == nil {
			var err error
			if zr, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20)); err != nil {
				return b.wrap(err)
			}
		}
		if err := zr.Reset(b.srcErr); err != nil {
			zstdReaders.Put(zr)
			return b.wrap(err)
		}
		b.dec, b.close = zr, func() { _ = zr.Reset(nil); zstdReaders.Put(zr) }
	case "deflate":
		// HTTP's deflate is zlib (RFC 1950), but servers also send raw
		// deflate (RFC 1951): the zlib header says which.
		br := bufio.NewReader(b.srcErr)
		head, _ := br.Peek(2)
		if len(head) == 2 && head[0]&0x0f == 8 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return b.wrap(err)
			}
			b.dec = zr
		} else {
			b.dec = flate.NewReader(br)
		}
	default:
		return fmt.Errorf("%w: %s", ErrEncoding, b.enc)
	}
	return nil
}

// wrap marks errors of the decoder itself as ErrEncoding; io.EOF and the
// original body's own errors (a reset connection) pass as they are.
func (b *Body) wrap(err error) error {
	if err == nil || err == io.EOF || b.enc == "" {
		return err
	}
	if b.srcErr != nil && b.srcErr.err != nil && errors.Is(err, b.srcErr.err) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) && b.srcErr != nil && b.srcErr.err == io.EOF {
		return fmt.Errorf("%w: %s: truncated stream", ErrEncoding, b.enc)
	}
	return fmt.Errorf("%w: %s: %v", ErrEncoding, b.enc, err)
}

// errReader remembers the last error of its reader.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.err = err
	}
	return n, err
}
