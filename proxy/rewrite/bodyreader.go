package rewrite

import (
	"fmt"
	"io"
	"strings"
)

// BodyReader is a response body rewritten as it is read: each Read that
// finds nothing buffered pulls one read (at most 32 KiB) of the origin's
// bytes through the decoder, the rewriter and the encoder into one output
// buffer, and serves from it. There is no goroutine and no pipe; memory per
// body is the input buffer, the coders (pooled) and what one pull produced
// (bounded by the rewriters' own carries, see MaxTagSize).
//
// Buffer reads ahead up to a bound before the first Read, so a body that
// fits can be sent with its length.
type BodyReader struct {
	src  io.ReadCloser
	from io.Reader      // the rewriter's input: src, or a decoder over it
	rw   io.WriteCloser // the rewriter, writing into c.enc or out
	c    coders
	enc  string

	in   *[]byte
	out  outBuf
	off  int // out.b[:off] was read already
	done bool
	err  error // the body's end: io.EOF or what broke it
}

// outBuf collects what the rewriter (or the encoder) writes.
type outBuf struct{ b []byte }

func (o *outBuf) Write(p []byte) (int, error) {
	o.b = append(o.b, p...)
	return len(p), nil
}

// NewBodyReader returns src rewritten like NewBody would write it, for the
// given Content-Type and Content-Encoding. ok=false (and src untouched)
// when the type or encoding is not rewritable. Close closes src. A corrupt
// encoded body fails a Read with ErrEncoding; src's own errors are in the
// chain of what Read returns.
func NewBodyReader(src io.ReadCloser, contentType, contentEncoding string, m Mapper, o BodyOptions) (*BodyReader, bool, error) {
	kind := classifyContentType(contentType)
	if kind == kindNone {
		return nil, false, nil
	}
	if err := o.validate(); err != nil {
		return nil, false, err
	}
	enc := strings.ToLower(strings.TrimSpace(contentEncoding))
	if enc == "identity" {
		enc = ""
	}
	if enc != "" && !encodable(enc) {
		return nil, false, nil // unknown or stacked encodings pass through
	}
	r := &BodyReader{src: src, from: src, enc: enc}
	r.out.b = getStage()
	var dst io.Writer = &r.out
	if enc != "" {
		if err := r.c.open(enc, src, &r.out); err != nil {
			// The header was unreadable: the body fails on its first read,
			// as a corrupt body later on would.
			r.finish(err)
			return r, true, nil
		}
		r.from, dst = r.c.dec, r.c.enc
	}
	switch kind {
	case kindHTML:
		r.rw = NewHTML(dst, m, o)
	case kindCSS:
		r.rw = NewCSS(dst, m)
	default:
		r.rw = NewText(dst, m)
	}
	r.in = copyBufs.Get().(*[]byte)
	return r, true, nil
}

// Read implements io.Reader.
func (r *BodyReader) Read(p []byte) (int, error) {
	for r.off == len(r.out.b) {
		if r.done {
			r.releaseOut()
			return 0, r.err
		}
		r.out.b, r.off = r.out.b[:0], 0
		r.pull()
	}
	n := copy(p, r.out.b[r.off:])
	r.off += n
	return n, nil
}

// Buffer reads the body ahead until it ended or more than max rewritten
// bytes wait to be read. complete reports the whole body is buffered, with
// n its length; err is what broke the body if it did.
func (r *BodyReader) Buffer(max int) (n int, complete bool, err error) {
	for !r.done && len(r.out.b)-r.off <= max {
		r.pull()
	}
	n = len(r.out.b) - r.off
	if r.done && r.err != io.EOF {
		return n, false, r.err
	}
	return n, r.done, nil
}

// pull moves one read of the origin's bytes through the rewriter.
func (r *BodyReader) pull() {
	n, err := r.from.Read(*r.in)
	if n > 0 {
		if _, werr := r.rw.Write((*r.in)[:n]); werr != nil {
			r.finish(werr)
			return
		}
	}
	switch {
	case err == nil:
	case err == io.EOF:
		err = r.rw.Close()
		if err == nil && r.c.enc != nil {
			err = r.c.enc.Close()
		}
		if err == nil {
			err = io.EOF
			if r.enc != "" {
				// Bytes after the encoded stream's end are dropped, as
				// a browser drops them; reading them (boundedly) lets
				// the origin's connection be reused.
				_, _ = io.CopyN(io.Discard, r.src, 64<<10)
			}
		}
		r.finish(err)
	case r.enc != "":
		r.finish(fmt.Errorf("%w: %s: %w", ErrEncoding, r.enc, err))
	default:
		r.finish(err)
	}
}

// finish ends the body with err and gives the coders and the input buffer
// back; what was produced stays readable.
func (r *BodyReader) finish(err error) {
	r.done, r.err = true, err
	r.c.release()
	if r.in != nil {
		copyBufs.Put(r.in)
		r.in = nil
	}
}

func (r *BodyReader) releaseOut() {
	putStage(r.out.b)
	r.out.b, r.off = nil, 0
}

// Close closes the origin's body and releases what the reader holds.
func (r *BodyReader) Close() error {
	if !r.done {
		r.finish(errClosed)
	}
	r.releaseOut()
	return r.src.Close()
}
