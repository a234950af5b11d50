package rewrite

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// BodyOptions configure body rewriting.
type BodyOptions struct {
	// Nonce is the CSP nonce of the injected script ("" = none).
	Nonce string
	// Inject is script text placed, in a <script nonce> element, right
	// after <head> (or at the start of <body>, or before the first other
	// tag or text when there is neither); nil = nothing injected. It must
	// not contain "</script" or "<!--".
	Inject []byte
}

func (o BodyOptions) validate() error {
	for i := 0; i < len(o.Nonce); i++ {
		c := o.Nonce[i]
		if !(isAlpha(c) || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '-' || c == '_') {
			return fmt.Errorf("%w: %q", ErrBadNonce, o.Nonce)
		}
	}
	lower := bytes.ToLower(o.Inject)
	if bytes.Contains(lower, []byte("</script")) || bytes.Contains(lower, []byte("<!--")) {
		return ErrBadInject
	}
	return nil
}

func (o BodyOptions) scriptElement() []byte {
	var b []byte
	if o.Nonce != "" {
		b = append(b, `<script nonce="`...)
		b = append(b, o.Nonce...)
		b = append(b, `">`...)
	} else {
		b = append(b, "<script>"...)
	}
	b = append(b, o.Inject...)
	return append(b, "</script>"...)
}

type bodyKind uint8

const (
	kindNone bodyKind = iota
	kindHTML
	kindCSS
	kindText
)

// classifyContentType says which rewriter a Content-Type needs; charsets
// that are not ASCII-compatible are not rewritable.
func classifyContentType(ct string) bodyKind {
	ct = strings.ToLower(ct)
	mt, params, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	if _, cs, ok := strings.Cut(params, "charset="); ok {
		cs = strings.Trim(strings.TrimSpace(cs), `"`)
		if strings.HasPrefix(cs, "utf-16") || strings.HasPrefix(cs, "utf-32") || strings.HasPrefix(cs, "ucs-") {
			return kindNone
		}
	}
	switch mt {
	case "text/html", "application/xhtml+xml":
		return kindHTML
	case "text/css":
		return kindCSS
	case "text/javascript", "application/javascript", "application/x-javascript",
		"text/ecmascript", "application/ecmascript", "text/x-javascript",
		"application/json", "text/json", "text/xml", "application/xml":
		return kindText
	}
	if strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml") {
		return kindText
	}
	return kindNone
}

// NewBody returns a writer that rewrites a response body of the given
// Content-Type and Content-Encoding (gzip, br, zstd, deflate, identity) into
// dst, decoding and re-encoding with the same encoding. ok=false when the
// type or the encoding is not rewritable (the caller passes the bytes
// through unchanged). HTML, CSS, JavaScript, JSON and XML (including
// image/svg+xml and application/*+json, *+xml) are rewritable.
//
// Close must be called: it flushes the rewriter and the encoder and, for
// encoded bodies, ends the decoding goroutine. Close does not close dst.
// Corrupt encoded input makes Write or Close fail with ErrEncoding.
// originHost is the host the body came from; relative URLs need no change,
// so it is not used today.
func NewBody(dst io.Writer, contentType, contentEncoding string, originHost string, m Mapper, o BodyOptions) (io.WriteCloser, bool, error) {
	kind := classifyContentType(contentType)
	if kind == kindNone {
		return nil, false, nil
	}
	if err := o.validate(); err != nil {
		return nil, false, err
	}
	newRewriter := func(d io.Writer) io.WriteCloser {
		switch kind {
		case kindHTML:
			return NewHTML(d, m, o)
		case kindCSS:
			return NewCSS(d, m)
		}
		return NewText(d, m)
	}
	enc := strings.ToLower(strings.TrimSpace(contentEncoding))
	switch enc {
	case "", "identity":
		return newRewriter(dst), true, nil
	}
	if !encodable(enc) {
		return nil, false, nil // unknown or stacked encodings pass through
	}
	pr, pw := io.Pipe()
	w := &decodingWriter{pw: pw, done: make(chan error, 1)}
	go func() {
		err := transcode(pr, dst, enc, newRewriter)
		if err != nil {
			pr.CloseWithError(err)
		} else {
			_, _ = io.Copy(io.Discard, pr) // trailing bytes after the stream end
		}
		w.done <- err
	}()
	return w, true, nil
}

// transcode decodes src, rewrites, and re-encodes into dst.
func transcode(src io.Reader, dst io.Writer, enc string, newRewriter func(io.Writer) io.WriteCloser) error {
	var c coders
	if err := c.open(enc, src, dst); err != nil {
		return err
	}
	defer c.release()
	rw := newRewriter(c.enc)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := c.dec.Read(buf)
		if n > 0 {
			if _, err := rw.Write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("%w: %s: %v", ErrEncoding, enc, rerr)
		}
	}
	if err := rw.Close(); err != nil {
		return err
	}
	return c.enc.Close()
}

// copyBufs are the 32 KiB reads of decoded bodies.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// decodingWriter is the caller's end of an encoded body's pipeline.
type decodingWriter struct {
	pw     *io.PipeWriter
	done   chan error
	closed bool
}

func (w *decodingWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errClosed
	}
	return w.pw.Write(p)
}

func (w *decodingWriter) Close() error {
	if w.closed {
		return errClosed
	}
	w.closed = true
	w.pw.Close()
	return <-w.done
}
