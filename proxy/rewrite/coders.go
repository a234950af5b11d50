package rewrite

import (
	"bufio"
	"compress/zlib"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Every decoder and encoder of a body is pooled: building a zstd, brotli or
// gzip coder costs far more (tens of KiB of tables and windows) than running
// it over a typical page. A coder goes back to its pool when its body ends
// (or is abandoned) and is Reset on the next one.
//
// A rewritten body is re-compressed for the hop from the appliance to the
// client, usually a LAN: gzip, zlib and raw deflate run at level 1 (nginx's
// default gzip_comp_level too), which in BenchmarkSuffixRequest/page20k-gzip
// takes ~8% off the request against level 5 for output some 15-20% larger.
var (
	gzipReaders   = sync.Pool{}
	gzipWriters   = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(nil, 1); return w }}
	brotliReaders = sync.Pool{}
	brotliWriters = sync.Pool{New: func() any { return brotli.NewWriterLevel(nil, 4) }}
	zstdReaders   = sync.Pool{New: func() any {
		// RFC 9659: an HTTP zstd body's window is at most 8 MiB, so one
		// response cannot make the decoder hold more.
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20))
		return d
	}}
	zstdWriters = sync.Pool{New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
		return e
	}}
	zlibReaders  = sync.Pool{}
	zlibWriters  = sync.Pool{New: func() any { w, _ := zlib.NewWriterLevel(nil, 1); return w }}
	flateReaders = sync.Pool{}
	flateWriters = sync.Pool{New: func() any { w, _ := flate.NewWriter(nil, 1); return w }}
	peekReaders  = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 512) }}
)

// coders is one body's decoder and encoder for a Content-Encoding, taken
// from the pools; release gives them back.
type coders struct {
	dec io.Reader      // decodes the origin's bytes
	enc io.WriteCloser // re-encodes into the destination

	gzr  *gzip.Reader
	gzw  *gzip.Writer
	brr  *brotli.Reader
	brw  *brotli.Writer
	zsr  *zstd.Decoder
	zsw  *zstd.Encoder
	peek *bufio.Reader
	zlr  io.ReadCloser
	zlw  *zlib.Writer
	flr  io.ReadCloser
	flw  *flate.Writer
}

// encodable reports a Content-Encoding coders can decode and re-encode.
func encodable(enc string) bool {
	switch enc {
	case "gzip", "x-gzip", "br", "zstd", "deflate":
		return true
	}
	return false
}

// open prepares decoding src and encoding into dst for enc (one of the
// encodable ones). A header that cannot be read is ErrEncoding; src's own
// error is kept in the chain.
func (c *coders) open(enc string, src io.Reader, dst io.Writer) error {
	var err error
	switch enc {
	case "gzip", "x-gzip":
		c.gzr, _ = gzipReaders.Get().(*gzip.Reader)
		if c.gzr == nil {
			c.gzr = new(gzip.Reader)
		}
		if err = c.gzr.Reset(src); err != nil {
			break
		}
		c.gzw = gzipWriters.Get().(*gzip.Writer)
		c.gzw.Reset(dst)
		c.dec, c.enc = c.gzr, c.gzw
	case "br":
		if c.brr, _ = brotliReaders.Get().(*brotli.Reader); c.brr == nil {
			c.brr = brotli.NewReader(src)
		} else if err = c.brr.Reset(src); err != nil {
			break
		}
		c.brw = brotliWriters.Get().(*brotli.Writer)
		c.brw.Reset(dst)
		c.dec, c.enc = c.brr, c.brw
	case "zstd":
		c.zsr = zstdReaders.Get().(*zstd.Decoder)
		if err = c.zsr.Reset(src); err != nil {
			break
		}
		c.zsw = zstdWriters.Get().(*zstd.Encoder)
		c.zsw.Reset(dst)
		c.dec, c.enc = c.zsr, c.zsw
	case "deflate":
		// HTTP's "deflate" is zlib (RFC 1950), but servers also send raw
		// deflate; answer in the form received.
		c.peek = peekReaders.Get().(*bufio.Reader)
		c.peek.Reset(src)
		head, _ := c.peek.Peek(2)
		if len(head) == 2 && head[0]&0x0f == 8 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
			if zr, ok := zlibReaders.Get().(io.ReadCloser); ok {
				if err = zr.(zlib.Resetter).Reset(c.peek, nil); err == nil {
					c.zlr = zr
				}
			} else {
				c.zlr, err = zlib.NewReader(c.peek)
			}
			if err != nil {
				break
			}
			c.zlw = zlibWriters.Get().(*zlib.Writer)
			c.zlw.Reset(dst)
			c.dec, c.enc = c.zlr, c.zlw
		} else {
			if fr, ok := flateReaders.Get().(io.ReadCloser); ok {
				_ = fr.(flate.Resetter).Reset(c.peek, nil)
				c.flr = fr
			} else {
				c.flr = flate.NewReader(c.peek)
			}
			c.flw = flateWriters.Get().(*flate.Writer)
			c.flw.Reset(dst)
			c.dec, c.enc = c.flr, c.flw
		}
	default:
		return fmt.Errorf("%w: %s: not supported", ErrEncoding, enc)
	}
	if err != nil {
		c.release()
		return fmt.Errorf("%w: %s: %w", ErrEncoding, enc, err)
	}
	return nil
}

// release puts every coder back in its pool; c is empty after it.
func (c *coders) release() {
	if c.gzr != nil {
		gzipReaders.Put(c.gzr)
	}
	if c.gzw != nil {
		gzipWriters.Put(c.gzw)
	}
	if c.brr != nil {
		brotliReaders.Put(c.brr)
	}
	if c.brw != nil {
		brotliWriters.Put(c.brw)
	}
	if c.zsr != nil {
		_ = c.zsr.Reset(nil) // drops its reference to the body and stops its work
		zstdReaders.Put(c.zsr)
	}
	if c.zsw != nil {
		zstdWriters.Put(c.zsw)
	}
	if c.zlr != nil {
		zlibReaders.Put(c.zlr)
	}
	if c.zlw != nil {
		zlibWriters.Put(c.zlw)
	}
	if c.flr != nil {
		flateReaders.Put(c.flr)
	}
	if c.flw != nil {
		flateWriters.Put(c.flw)
	}
	if c.peek != nil {
		c.peek.Reset(nil)
		peekReaders.Put(c.peek)
	}
	*c = coders{}
}

// Staging buffers of the rewriters and body readers. Buffers that grew past
// maxPooledBuf (a body with a huge tag) are left to the collector, so the
// pool never pins more than that per idle buffer.
const maxPooledBuf = 256 << 10

var stageBufs = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

func getStage() []byte { return (*stageBufs.Get().(*[]byte))[:0] }

func putStage(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooledBuf {
		return
	}
	b = b[:0]
	stageBufs.Put(&b)
}
