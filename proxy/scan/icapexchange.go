package scan

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"math"
	"mime"
	"net/url"
	"strconv"
	"strings"
)

// maxPreview caps the preview whatever the service asks for: the sender
// keeps the preview and one look-ahead read in one chunk buffer.
const maxPreview = 32 << 10

// httpHost is the Host of the encapsulated HTTP messages; the service sees
// a file, not where it came from.
const httpHost = "portcullis.invalid"

// icapExchange is one RESPMOD or REQMOD: the sender goroutine writes the
// request and the file while the caller reads the answer, because a service
// may answer (or stream a modified body back) before it has read the
// whole file.
type icapExchange struct {
	x *exchange
	// cont tells a sender waiting after its preview to go on (true) or stop
	// (closed, once the final answer has been read).
	cont    chan bool
	stopped bool
	sent    chan sendResult
	result  *sendResult
}

func (e *icapExchange) stopContinue() {
	if !e.stopped {
		e.stopped = true
		close(e.cont)
	}
}

// wait returns the sender's result, waiting for it the first time.
func (e *icapExchange) wait() sendResult {
	if e.result == nil {
		r := <-e.sent
		e.result = &r
	}
	return *e.result
}

// sendResult is what the sender wrote: n bytes of file with SHA-256 sum,
// complete when the whole file and the body's last chunk were written.
type sendResult struct {
	n        int64
	sum      [32]byte
	complete bool
	err      error
}

// requestHead is the ICAP request line and headers followed by the
// encapsulated HTTP headers that frame the file.
func (c *ICAP) requestHead(size int64, name string, preview int, allow204 bool) []byte {
	if len(name) > 255 {
		name = name[:255]
	}
	target := "/" + url.PathEscape(name)
	var fileHeaders strings.Builder
	fileHeaders.WriteString("Content-Type: application/octet-stream\r\n")
	if size >= 0 {
		fileHeaders.WriteString("Content-Length: " + strconv.FormatInt(size, 10) + "\r\n")
	}
	if name != "" {
		if d := mime.FormatMediaType("attachment", map[string]string{"filename": name}); d != "" {
			fileHeaders.WriteString("Content-Disposition: " + d + "\r\n")
		}
	}
	var http, encapsulated string
	if c.method == "RESPMOD" {
		req := "GET " + target + " HTTP/1.1\r\nHost: " + httpHost + "\r\n\r\n"
		res := "HTTP/1.1 200 OK\r\n" + fileHeaders.String() + "\r\n"
		http = req + res
		encapsulated = "req-hdr=0, res-hdr=" + strconv.Itoa(len(req)) + ", res-body=" + strconv.Itoa(len(http))
	} else {
		http = "POST " + target + " HTTP/1.1\r\nHost: " + httpHost + "\r\n" + fileHeaders.String() + "\r\n"
		encapsulated = "req-hdr=0, req-body=" + strconv.Itoa(len(http))
	}
	var b strings.Builder
	b.WriteString(c.method + " " + c.target.uri + " ICAP/1.0\r\nHost: " + c.target.hostport +
		"\r\nUser-Agent: Portcullis\r\nConnection: close\r\n")
	if allow204 {
		b.WriteString("Allow: 204\r\n")
	}
	if preview >= 0 {
		b.WriteString("Preview: " + strconv.Itoa(preview) + "\r\n")
	}
	b.WriteString("Encapsulated: " + encapsulated + "\r\n\r\n")
	b.WriteString(http)
	return []byte(b.String())
}

// fileSender writes the file as the chunked encapsulated body, counting
// and hashing what it read.
type fileSender struct {
	x    *exchange
	w    *bufio.Writer
	r    io.Reader
	size int64
	n    int64
	h    hash.Hash
	eof  bool
}

// sendFile writes head and the file: with a preview, the first preview
// bytes and then "0; ieof" if that was all, or "0" and a wait for the
// reader's go-ahead (an ICAP 100 Continue) before the rest.
func sendFile(x *exchange, head []byte, r io.Reader, size int64, preview int, cont <-chan bool) sendResult {
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := (*bp)[:clamdChunk]
	s := &fileSender{x: x, w: bufio.NewWriterSize(x.conn, 32<<10), r: r, size: size, h: sha256.New()}
	if _, err := s.w.Write(head); err != nil {
		return s.result(err)
	}
	if preview >= 0 {
		k, err := s.read(buf[:preview])
		if err != nil {
			return s.result(err)
		}
		var ahead []byte
		if !s.eof && (size < 0 || s.n == size) {
			// Whether the file ends with the preview decides "ieof".
			m, err := s.read(buf[preview:])
			if err != nil {
				return s.result(err)
			}
			ahead = buf[preview : preview+m]
		}
		if err := s.chunk(buf[:k]); err != nil {
			return s.result(err)
		}
		if s.eof && len(ahead) == 0 {
			return s.finish("0; ieof\r\n\r\n")
		}
		if _, err := s.w.WriteString("0\r\n\r\n"); err != nil {
			return s.result(err)
		}
		if err := s.w.Flush(); err != nil {
			return s.result(err)
		}
		if goOn := <-cont; !goOn {
			return s.result(nil)
		}
		if err := s.chunk(ahead); err != nil {
			return s.result(err)
		}
	}
	for !s.eof {
		k, err := s.read(buf)
		if err != nil {
			return s.result(err)
		}
		if err := s.chunk(buf[:k]); err != nil {
			return s.result(err)
		}
	}
	return s.finish("0\r\n\r\n")
}

// read fills p from the file as far as it goes, noting its end. A failure
// of the file aborts the exchange, so the answer's reader stops waiting.
func (s *fileSender) read(p []byte) (int, error) {
	k, err := io.ReadFull(s.r, p)
	s.n += int64(k)
	s.h.Write(p[:k])
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		s.eof = true
	case err != nil:
		s.x.abort()
		return k, &sourceError{err}
	}
	if s.size >= 0 && s.n > s.size {
		s.x.abort()
		return k, sizeMismatch(s.n, s.size, true)
	}
	return k, nil
}

func (s *fileSender) chunk(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	s.w.WriteString(strconv.FormatInt(int64(len(p)), 16) + "\r\n")
	s.w.Write(p)
	_, err := s.w.WriteString("\r\n")
	return err
}

func (s *fileSender) finish(last string) sendResult {
	if s.size >= 0 && s.n != s.size {
		s.x.abort()
		return s.result(sizeMismatch(s.n, s.size, false))
	}
	if _, err := s.w.WriteString(last); err != nil {
		return s.result(err)
	}
	if err := s.w.Flush(); err != nil {
		return s.result(err)
	}
	r := s.result(nil)
	r.complete = true
	return r
}

func (s *fileSender) result(err error) sendResult {
	r := sendResult{n: s.n, err: err}
	s.h.Sum(r.sum[:0])
	return r
}

// verdict reads the answer: 100 Continue lets the sender go on after its
// preview; 204 is clean; a 200 naming a threat is infected; any other 200
// is clean only if it carries back the message sent, byte for byte.
func (c *ICAP) verdict(e *icapExchange, size int64, previewing bool) (Verdict, error) {
	br := bufio.NewReaderSize(e.x.conn, icapBufSize)
	var h *icapHead
	for continued := false; ; {
		var err error
		if h, err = readICAPHead(br); err != nil {
			e.stopContinue()
			return Verdict{}, c.answerError(e, "read answer", err)
		}
		if h.status != 100 {
			break
		}
		if !previewing || continued {
			e.stopContinue()
			return Verdict{}, protocolError("100 Continue without a preview to continue")
		}
		continued = true
		e.cont <- true
	}
	e.stopContinue()
	v := Verdict{Scanner: icapName}
	switch h.status {
	case 204:
		return v, nil
	case 200:
	default:
		return Verdict{}, statusError(c.method, h)
	}
	if name, found := threat(h); found {
		v.Infected, v.Signature = true, name
		return v, nil
	}
	same, err := c.sameMessage(e, br, h, size)
	if err != nil {
		return Verdict{}, err
	}
	if !same {
		v.Infected, v.Signature = true, UnnamedThreat
	}
	return v, nil
}

// sameMessage reports whether a 200 carries back what was sent: the same
// kind of message (a 200 response for RESPMOD, the request for REQMOD) and
// the same body. Any change, headers aside, means the service replaced it.
func (c *ICAP) sameMessage(e *icapExchange, br *bufio.Reader, h *icapHead, size int64) (bool, error) {
	m, err := readEncapsulated(br, h)
	if err != nil {
		return false, c.answerError(e, "read the modified message", err)
	}
	if c.method == "RESPMOD" && (!m.response || m.status != 200) ||
		c.method == "REQMOD" && (m.response || !m.request) {
		return false, nil
	}
	limit := int64(math.MaxInt64)
	if size >= 0 {
		limit = size
	}
	sum := sha256.New()
	var n int64
	if m.body {
		n, err = readChunked(br, limit, sum)
		if errors.Is(err, errBodyOverLimit) {
			return false, nil
		}
		if err != nil {
			return false, c.answerError(e, "read the modified body", err)
		}
	}
	w := e.wait()
	if !w.complete {
		// Answered before the whole file was sent: not an echo of it.
		return false, nil
	}
	var got [32]byte
	sum.Sum(got[:0])
	return n == w.n && got == w.sum, nil
}

// answerError names a failure to read the answer. When the sender failed
// first (the file could not be read), that is the error.
func (c *ICAP) answerError(e *icapExchange, op string, err error) error {
	e.stopContinue()
	e.x.abort()
	var src *sourceError
	if w := e.wait(); errors.As(w.err, &src) {
		return w.err
	}
	if errors.Is(err, ErrProtocol) {
		return err
	}
	return e.x.ioError(op, err)
}
