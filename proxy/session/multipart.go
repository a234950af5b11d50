package session

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
)

// PartLimits bound a multipart body's structure; zero fields take the
// package defaults (DefaultMaxParts, DefaultMaxPartHeader).
type PartLimits struct {
	MaxParts      int
	MaxPartHeader int
}

// Part is one part of a multipart body; read it for its bytes.
type Part struct {
	Header      textproto.MIMEHeader
	FormName    string
	FileName    string // "" for a text field
	ContentType string // as declared
	r           io.Reader
	c           *mpCounter
}

func (p *Part) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.c.body += int64(n)
	return n, err
}

// WalkMultipart reads a multipart body strictly and calls fn for every
// part (fn may read the part or not). It fails with ErrMalformed for a
// truncated body, a close delimiter that never comes, more than MaxParts
// parts, or a part header block over MaxPartHeader bytes; fn's own errors
// are returned as they are. Parts are read raw: a Content-Transfer-Encoding
// is not decoded (browsers send none).
func WalkMultipart(r io.Reader, boundary string, lim PartLimits, fn func(*Part) error) error {
	if lim.MaxParts <= 0 {
		lim.MaxParts = DefaultMaxParts
	}
	if lim.MaxPartHeader <= 0 {
		lim.MaxPartHeader = DefaultMaxPartHeader
	}
	if boundary == "" || len(boundary) > 70 {
		return fmt.Errorf("%w: bad boundary", ErrMalformed)
	}
	c := &mpCounter{r: r, close: []byte("\r\n--" + boundary + "--"), headerMax: int64(lim.MaxPartHeader) + 2*4096 + 2*int64(len(boundary)) + 16}
	c.tail = make([]byte, 0, len(c.close))
	mr := multipart.NewReader(c, boundary)
	for n := 0; ; n++ {
		c.startHeader()
		p, err := mr.NextRawPart()
		if err == io.EOF {
			if !c.closed {
				return fmt.Errorf("%w: multipart body ends without its close delimiter", ErrMalformed)
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, errPartHeader) {
				return fmt.Errorf("%w: part header over %d bytes", ErrMalformed, lim.MaxPartHeader)
			}
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if n >= lim.MaxParts {
			return fmt.Errorf("%w: more than %d parts", ErrMalformed, lim.MaxParts)
		}
		c.inBody()
		part := &Part{Header: p.Header, FormName: p.FormName(), FileName: cleanName(p.FileName()),
			ContentType: p.Header.Get("Content-Type"), r: p, c: c}
		if p.FileName() != "" && part.FileName == "" {
			part.FileName = "unnamed"
		}
		if err := fn(part); err != nil {
			return err
		}
		// Drain what fn left, so truncation is seen.
		if _, err := io.Copy(io.Discard, part); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errPartHeader) {
				return fmt.Errorf("%w: %v", ErrMalformed, err)
			}
			return err
		}
	}
}

var errPartHeader = errors.New("part header too large")

// mpCounter sits under the multipart reader: it bounds the bytes read for
// one part's boundary and header block (everything consumed that was not
// delivered as body), and watches the stream for the close delimiter, which
// the standard reader does not insist on.
type mpCounter struct {
	r         io.Reader
	consumed  int64
	body      int64
	base      int64 // consumed - body when the current header block started
	inHeader  bool
	headerMax int64
	close     []byte
	tail      []byte
	closed    bool
	first     bool
}

func (c *mpCounter) startHeader() { c.inHeader, c.base = true, c.consumed-c.body }
func (c *mpCounter) inBody()      { c.inHeader = false }

func (c *mpCounter) Read(p []byte) (int, error) {
	if c.inHeader && c.consumed-c.body-c.base > c.headerMax {
		return 0, errPartHeader
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.watch(p[:n])
		c.consumed += int64(n)
	}
	return n, err
}

// watch looks for "\r\n--boundary--" across reads (or "--boundary--" at
// the very start: a body with no parts).
func (c *mpCounter) watch(b []byte) {
	if c.closed {
		return
	}
	if c.consumed == 0 && bytes.HasPrefix(b, c.close[2:]) {
		c.closed = true
		return
	}
	k := len(c.close) - 1
	joined := append(c.tail, b[:min(len(b), k)]...)
	if bytes.Contains(joined, c.close) || bytes.Contains(b, c.close) {
		c.closed = true
		return
	}
	if len(b) >= k {
		c.tail = append(c.tail[:0], b[len(b)-k:]...)
	} else {
		joined = append(c.tail, b...)
		if len(joined) > k {
			joined = joined[len(joined)-k:]
		}
		c.tail = append(c.tail[:0], joined...)
	}
}
