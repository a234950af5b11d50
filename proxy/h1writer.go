package proxy

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Writer is the response of a request the loop serves (h1serve.go): the
// http.ResponseWriter the pipeline writes to, framing the response on the
// connection's buffered writer as net/http's server would. Body bytes of a
// response whose length is not declared are held (up to h1Hold) until the
// handler ends, flushes or writes more, so a short body gets a
// Content-Length and a long one is chunked.
type h1Writer struct {
	hc     *h1conn
	req    *http.Request
	header http.Header

	status        int // the final status, 0 until WriteHeader
	wroteHeader   bool
	committed     bool // the head is in the connection's writer
	chunked       bool
	handlerDone   bool
	contentLength int64    // declared, -1 when not
	written       int64    // body bytes the handler wrote
	held          int      // bytes of hc.hold in use
	trailers      []string // declared (the Trailer field at WriteHeader)
	hasTrailers   bool     // trailers declared or prefixed at WriteHeader
	badLength     bool     // the handler's Content-Length was invalid
	closeAfter    bool
	flushErr      error
}

// h1Hold is how much of a body of undeclared length is held before the
// head is written: net/http's bufferBeforeChunkingSize.
const h1Hold = 2048

func (w *h1Writer) Header() http.Header { return w.header }

func (w *h1Writer) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.wroteHeader {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Informational: sent at once, the fields with it (RFC 8297),
		// the header kept for the final response.
		bw := w.hc.writer()
		writeStatusLine(bw, code)
		writeFields(bw, w.header, true)
		_, _ = bw.WriteString("\r\n")
		if err := bw.Flush(); err != nil && w.flushErr == nil {
			w.flushErr = err
		}
		return
	}
	w.wroteHeader, w.status = true, code
	// What net/http decides from its copy of the header at this point:
	// trailers, and a Content-Length (an invalid one is dropped, but
	// still keeps a length from being computed).
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			w.hasTrailers = true
			break
		}
	}
	for _, v := range w.header["Trailer"] {
		w.hasTrailers = true
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				k := http.CanonicalHeaderKey(f)
				if httpguts.ValidTrailerHeader(k) {
					w.trailers = append(w.trailers, k)
				}
			}
		}
	}
	if cl := w.header.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.hc.s.cfg.Log.Debug("http: invalid Content-Length in a response, dropped", "value", cl)
			w.header.Del("Content-Length")
			w.badLength = true
		}
	}
}

func (w *h1Writer) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if w.flushErr != nil {
		return 0, w.flushErr
	}
	if !w.committed {
		if w.contentLength == -1 && w.held+len(p) <= h1Hold {
			w.held += copy(w.hc.hold[w.held:], p)
			return len(p), nil
		}
		if w.held > 0 {
			w.commit(w.hc.hold[:w.held])
			w.body(w.hc.hold[:w.held])
			w.held = 0
		} else {
			w.commit(p)
		}
	}
	w.body(p)
	if w.flushErr != nil {
		return 0, w.flushErr
	}
	return len(p), nil
}

// body writes body bytes after the head: dropped for HEAD, framed as a
// chunk when chunked.
func (w *h1Writer) body(p []byte) {
	if w.req.Method == http.MethodHead || len(p) == 0 {
		return
	}
	bw := w.hc.bw
	if w.chunked {
		_, _ = bw.Write(strconv.AppendUint(bw.AvailableBuffer(), uint64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
		_, _ = bw.Write(p)
		_, _ = bw.WriteString("\r\n")
	} else {
		_, _ = bw.Write(p)
	}
}

// Flush sends the head, what is held and what is buffered.
func (w *h1Writer) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting the connection's error
// (http.ResponseController uses it).
func (w *h1Writer) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.flushErr != nil {
		return w.flushErr
	}
	if !w.committed {
		w.commit(w.hc.hold[:w.held])
		w.body(w.hc.hold[:w.held])
		w.held = 0
	}
	if err := w.hc.bw.Flush(); err != nil {
		w.flushErr = err
	}
	return w.flushErr
}

// SetReadDeadline and SetWriteDeadline are http.ResponseController's.
func (w *h1Writer) SetReadDeadline(t time.Time) error  { return w.hc.c.SetReadDeadline(t) }
func (w *h1Writer) SetWriteDeadline(t time.Time) error { return w.hc.c.SetWriteDeadline(t) }

// finish ends the response once the handler returned: the head if not yet
// written (with a Content-Length for what was held), the held body, the
// last chunk and the trailers.
func (w *h1Writer) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(w.hc.hold[:w.held])
		w.body(w.hc.hold[:w.held])
		w.held = 0
	}
	if w.chunked {
		bw := w.hc.writer()
		_, _ = bw.WriteString("0\r\n")
		if t := w.finalTrailers(); t != nil {
			writeFields(bw, t, false)
		}
		_, _ = bw.WriteString("\r\n")
	}
	if w.req.Method != http.MethodHead && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written {
		// Short of its declared length: the client must not read the
		// next response from where this one should have ended.
		w.closeAfter = true
	}
}

// commit writes the status line and the head, choosing the framing as
// net/http's server does. first is the start of the body (sniffing, and
// the whole body when the handler is done).
func (w *h1Writer) commit(first []byte) {
	w.committed = true
	bw := w.hc.writer()
	h := w.header
	code := w.status
	isHEAD := w.req.Method == http.MethodHead

	te := h.Get("Transfer-Encoding")
	hasTE := te != ""
	delete(h, "Transfer-Encoding") // the framing below is the loop's

	setCL := int64(-1)
	if w.handlerDone && !w.hasTrailers && !w.badLength && !hasTE && bodyAllowedForStatus(code) && !hasField(h, "Content-Length") && (!isHEAD || len(first) > 0) {
		w.contentLength = int64(len(first))
		setCL = int64(len(first))
	}
	hasCL := w.contentLength != -1
	if w.req.Close || hasToken(w.req.Header.Get("Connection"), "close") || w.hc.s.closing.Load() {
		w.closeAfter = true
	}
	if h.Get("Connection") == "close" || w.hc.bodyTooLongToDrain() {
		w.closeAfter = true
	}
	var setType string
	if bodyAllowedForStatus(code) {
		_, haveType := h["Content-Type"]
		if h.Get("Content-Encoding") == "" && !haveType && !hasTE && len(first) > 0 {
			setType = http.DetectContentType(first)
		}
	} else {
		delete(h, "Content-Length")
		if code == http.StatusNotModified {
			delete(h, "Content-Type")
		}
	}
	if hasCL && hasTE && te != "identity" {
		delete(h, "Content-Length")
		hasCL = false
		setCL = -1
		w.contentLength = -1
	}
	setTE := ""
	switch {
	case isHEAD || !bodyAllowedForStatus(code):
	case hasCL:
	case hasTE && te == "identity":
		w.closeAfter = true
	default:
		w.chunked = true
		setTE = "chunked"
	}
	if w.chunked {
		delete(h, "Content-Length")
		setCL = -1
	}
	setConn := ""
	if w.closeAfter && !hasToken(h.Get("Connection"), "close") {
		delete(h, "Connection")
		setConn = "close"
	}

	writeStatusLine(bw, code)
	writeFields(bw, h, false)
	if !hasField(h, "Date") {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.Write(time.Now().UTC().AppendFormat(bw.AvailableBuffer(), http.TimeFormat))
		_, _ = bw.WriteString("\r\n")
	}
	if setCL >= 0 {
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), setCL, 10))
		_, _ = bw.WriteString("\r\n")
	}
	for _, f := range [...][2]string{{"Content-Type", setType}, {"Connection", setConn}, {"Transfer-Encoding", setTE}} {
		if f[1] != "" {
			_, _ = bw.WriteString(f[0])
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(f[1])
			_, _ = bw.WriteString("\r\n")
		}
	}
	_, _ = bw.WriteString("\r\n")
}

// finalTrailers are the trailer fields the handler set: those the Trailer
// field declared and those named with http.TrailerPrefix.
func (w *h1Writer) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.header {
		if kk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		for _, v := range w.header[k] {
			if t == nil {
				t = make(http.Header)
			}
			t.Add(k, v)
		}
	}
	return t
}

func hasField(h http.Header, k string) bool {
	_, ok := h[k]
	return ok
}

// hasToken reports whether v, a comma-separated list, holds token
// (case-insensitively).
func hasToken(v, token string) bool {
	for f := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(f), token) {
			return true
		}
	}
	return false
}

func bodyAllowedForStatus(code int) bool {
	switch {
	case code >= 100 && code <= 199, code == http.StatusNoContent, code == http.StatusNotModified:
		return false
	}
	return true
}

func writeStatusLine(bw *bufio.Writer, code int) {
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	_ = bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		_, _ = bw.WriteString(text)
	} else {
		_, _ = bw.WriteString("status code ")
		_, _ = bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	}
	_, _ = bw.WriteString("\r\n")
}

// writeFields writes h's fields sorted by name, as net/http's
// Header.Write: names that are not valid are skipped, CR and LF in values
// become spaces and values are trimmed. noBody leaves out Content-Length
// and Transfer-Encoding (informational responses); fields named with
// http.TrailerPrefix are never written here.
func writeFields(bw *bufio.Writer, h http.Header, noBody bool) {
	var keysArr [32]string
	keys := keysArr[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		if noBody && (k == "Content-Length" || k == "Transfer-Encoding") {
			continue
		}
		for _, v := range h[k] {
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			writeFieldValue(bw, v)
			_, _ = bw.WriteString("\r\n")
		}
	}
}

func writeFieldValue(bw *bufio.Writer, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\n", " ", "\r", " ").Replace(v)
	}
	_, _ = bw.WriteString(strings.Trim(v, " \t"))
}

// h1Out is the connection as the response's buffered writer sees it: a
// failed write ends the request's context, as net/http's does.
type h1Out struct{ hc *h1conn }

func (o h1Out) Write(p []byte) (int, error) {
	n, err := o.hc.c.Write(p)
	if err != nil {
		o.hc.gone.Store(true)
		if rc := o.hc.cur; rc != nil {
			rc.cancel(context.Canceled)
		}
	}
	return n, err
}
