package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// readResponse reads the head of the origin's response to req from br, as
// http.ReadResponse does and with the same result, in fewer allocations:
// one string for the whole head (the status, field names and values are
// pieces of it), the header map, and one object holding the Response, its
// body and the first values' backing.
//
// It takes only the plainest form of head, checked byte by byte before
// anything is built: the whole head in br's buffer; every line ending in
// CRLF; "HTTP/1.1" or "HTTP/1.0", one space, a status of three digits from
// 100, then nothing or one space and a reason of visible characters; every
// field a token name, a colon and a value of the bytes net/http allows; at
// most one Content-Length, valid; Transfer-Encoding absent, or one field
// "chunked"; no Trailer field on a chunked response. Anything else — a
// head longer than the buffer, obs-fold, a bare LF, a space before a
// colon, a refused field, a read error before the head ended — is read by
// http.ReadResponse itself from the same bytes, so whatever it would
// refuse is refused with its own error, and what it accepts in odd forms
// it still accepts. TestReadResponseAsNetHTTP compares both on a table of
// heads and FuzzReadResponseAsNetHTTP on any.
//
// The returned body is nil when http.ReadResponse read the response (its
// Body is net/http's); otherwise it is the response's own framing, with lc
// to be set by the caller.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, *leanBody, error) {
	head, err := peekHead(br)
	if err != nil {
		// Nothing was consumed: net/http reads what arrived and meets the
		// same error, and says what it makes of them.
		buffered, _ := br.Peek(br.Buffered())
		replay := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), errReader{err}), br.Size())
		resp, err := http.ReadResponse(replay, req)
		if err == nil {
			// Cannot happen (the head was not complete); never use a
			// response read from a copy.
			err = errors.New("origin's response head ended early")
			_ = resp
		}
		return nil, nil, err
	}
	if head != nil {
		if lr := parseHead(string(head), req); lr != nil {
			_, _ = br.Discard(len(head))
			return &lr.resp, &lr.body, nil
		}
	}
	resp, err := http.ReadResponse(br, req)
	return resp, nil, err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// peekHead waits until br holds a whole response head and returns it,
// without consuming it. It returns nil and no error when the head is not in
// the plain form parseHead takes (a bare LF, a blank first line) or does
// not fit in br's buffer, and the read error when one came first.
func peekHead(br *bufio.Reader) ([]byte, error) {
	want, scanned := 1, 0
	for {
		_, err := br.Peek(want)
		buf, _ := br.Peek(br.Buffered())
		for {
			i := bytes.IndexByte(buf[scanned:], '\n')
			if i < 0 {
				break
			}
			end := scanned + i
			if end == scanned || buf[end-1] != '\r' {
				return nil, nil // a bare LF: net/http's rules
			}
			if end-scanned == 1 {
				if scanned == 0 {
					return nil, nil // a blank first line
				}
				return buf[:end+1], nil
			}
			scanned = end + 1
		}
		if err == bufio.ErrBufferFull || len(buf) == br.Size() {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		want = len(buf) + 1
	}
}

// leanHeadValues is how many header values a leanResponse holds without
// allocating a backing for them.
const leanHeadValues = 16

// leanResponse is one response read by parseHead: the Response, its body,
// and the first header values' backing, as one allocation.
type leanResponse struct {
	resp http.Response
	body leanBody
	vals [leanHeadValues]string
	te   [1]string
}

// parseHead builds the response of head (a whole head, CRLF lines, blank
// line included) as http.ReadResponse would, or returns nil for a head not
// in the plain form (see readResponse).
func parseHead(head string, req *http.Request) *leanResponse {
	line, rest := cutCRLF(head)
	if len(line) < len("HTTP/1.1 200") || line[:7] != "HTTP/1." || line[8] != ' ' {
		return nil
	}
	minor := 0
	switch line[7] {
	case '1':
		minor = 1
	case '0':
	default:
		return nil
	}
	code := line[9:12]
	if code[0] < '1' || code[0] > '9' || !isDigit(code[1]) || !isDigit(code[2]) {
		return nil
	}
	if len(line) > 12 && (line[12] != ' ' || !validValue(line[13:])) {
		return nil
	}
	status := int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')

	// The fields, checked and counted before anything is built.
	n := 0
	for s := rest; ; n++ {
		var f string
		f, s = cutCRLF(s)
		if f == "" {
			break
		}
		colon := -1
		for i := 0; i < len(f); i++ {
			if f[i] == ':' {
				colon = i
				break
			}
			if !validFieldNameByte(f[i]) {
				return nil // obs-fold, a space before the colon, a bad name
			}
		}
		if colon <= 0 || !validValue(f[colon+1:]) {
			return nil
		}
	}

	lr := &leanResponse{}
	resp := &lr.resp
	*resp = http.Response{Status: line[9:], StatusCode: status, Proto: line[:8], ProtoMajor: 1, ProtoMinor: minor, Request: req}
	h := make(http.Header, n)
	strs := lr.vals[:]
	if n > len(strs) {
		strs = make([]string, n)
	}
	for s := rest; ; {
		var f string
		f, s = cutCRLF(s)
		if f == "" {
			break
		}
		colon := 0
		for f[colon] != ':' {
			colon++
		}
		key := textproto.CanonicalMIMEHeaderKey(f[:colon])
		value := trimSpaceTab(f[colon+1:])
		if vv := h[key]; vv == nil {
			vv, strs = strs[:1:1], strs[1:]
			vv[0] = value
			h[key] = vv
		} else {
			h[key] = append(vv, value)
		}
	}
	resp.Header = h

	// What ReadResponse does after the fields (fixPragmaCacheControl,
	// readTransfer), in its order.
	if hp, ok := h["Pragma"]; ok && len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	conn := h["Connection"]
	hasClose := httpguts.HeaderValuesContainsToken(conn, "close")
	if minor == 0 {
		resp.Close = hasClose || !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	} else {
		resp.Close = hasClose
		if hasClose {
			delete(h, "Connection")
		}
	}
	chunked := false
	if te, ok := h["Transfer-Encoding"]; ok {
		if minor == 1 && (len(te) != 1 || !asciiEqualFold(te[0], "chunked")) {
			return nil // refused by net/http, with its own error
		}
		delete(h, "Transfer-Encoding")
		chunked = minor == 1
	}
	length := int64(-1)
	if cl := h["Content-Length"]; len(cl) > 1 {
		return nil // duplicates, which net/http merges or refuses
	} else if len(cl) == 1 {
		v, err := strconv.ParseUint(textproto.TrimString(cl[0]), 10, 63)
		if err != nil {
			return nil // refused by net/http (or lax by GODEBUG)
		}
		length = int64(v)
	}
	isHead := req != nil && req.Method == http.MethodHead
	bodyAllowed := status >= 200 && status != 204 && status != 304
	realLength := length
	switch {
	case isHead || !bodyAllowed:
		realLength = 0
	case chunked:
		delete(h, "Content-Length")
		realLength = -1
	}
	resp.ContentLength = realLength
	if isHead {
		resp.ContentLength = length
	}
	if _, ok := h["Trailer"]; ok && chunked {
		return nil // the announced trailer: net/http's
	}
	if chunked {
		lr.te[0] = "chunked"
		resp.TransferEncoding = lr.te[:]
	}
	if realLength == -1 && !chunked && bodyAllowed {
		resp.Close = true // delimited by the connection's end
	}

	b := &lr.body
	b.resp = resp
	switch {
	case chunked && (isHead || !bodyAllowed), !chunked && realLength == 0:
		b.framing = framedNone
	case chunked:
		b.framing = framedChunks
	case realLength > 0:
		b.framing, b.left = framedLength, realLength
	case resp.Close:
		b.framing = framedUntilClose
	default:
		b.framing = framedNone
	}
	resp.Body = b
	return lr
}

// cutCRLF splits s at its first CRLF.
func cutCRLF(s string) (line, rest string) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\r' && s[i+1] == '\n' {
			return s[:i], s[i+2:]
		}
	}
	return s, ""
}

// validValue reports whether every byte of a field value (or reason) is one
// net/http accepts: visible, space, tab, or obs-text.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validFieldNameByte reports a token character (RFC 9110 5.6.2).
func validFieldNameByte(c byte) bool {
	return httpguts.IsTokenRune(rune(c))
}

func trimSpaceTab(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// bodyFraming is how a lean response's body ends.
type bodyFraming uint8

const (
	framedByNetHTTP  bodyFraming = iota // read by http.ReadResponse: its Body
	framedNone                          // no body
	framedLength                        // Content-Length bytes
	framedChunks                        // chunked, then the trailer
	framedUntilClose                    // until the connection ends
)

// readFramed reads the body by its framing from the connection's reader,
// as net/http's response body does.
func (b *leanBody) readFramed(p []byte) (int, error) {
	br := b.lc.br
	switch b.framing {
	case framedByNetHTTP:
		return b.body.Read(p)
	case framedLength:
		// io.LimitReader under net/http's body: EOF with the last bytes,
		// an early end is unexpected.
		if b.left <= 0 {
			return 0, io.EOF
		}
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err := br.Read(p)
		b.left -= int64(n)
		switch {
		case err == io.EOF && b.left > 0:
			err = io.ErrUnexpectedEOF
		case err == nil && n > 0 && b.left == 0:
			err = io.EOF
		}
		return n, err
	case framedChunks:
		if b.chunks == nil {
			b.chunks = httputil.NewChunkedReader(br)
		}
		n, err := b.chunks.Read(p)
		if err == io.EOF {
			if terr := readTrailer(br, &b.resp.Trailer); terr != nil {
				err = terr
			}
		}
		return n, err
	case framedUntilClose:
		return br.Read(p)
	}
	return 0, io.EOF
}

var errTrailerEOF = errors.New("http: unexpected EOF reading trailer")

// readTrailer reads the trailer section after the last chunk into *dst, as
// net/http's body does: bounded by what br's buffer holds.
func readTrailer(br *bufio.Reader, dst *http.Header) error {
	buf, err := br.Peek(2)
	if bytes.Equal(buf, []byte("\r\n")) {
		_, _ = br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return errTrailerEOF
	}
	if err != nil {
		return err
	}
	if !upcomingDoubleCRLF(br) {
		return errors.New("http: suspiciously long trailer after chunked body")
	}
	hdr, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			return errTrailerEOF
		}
		return err
	}
	if *dst == nil {
		*dst = http.Header(hdr)
		return nil
	}
	for k, vv := range hdr {
		(*dst)[k] = vv
	}
	return nil
}

// upcomingDoubleCRLF reports whether br's buffer, filled as far as it
// goes, holds the end of a trailer section.
func upcomingDoubleCRLF(br *bufio.Reader) bool {
	for n := 4; ; n++ {
		buf, err := br.Peek(n)
		if bytes.HasSuffix(buf, []byte("\r\n\r\n")) {
			return true
		}
		if err != nil {
			return false
		}
	}
}
