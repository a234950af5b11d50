package rawhttp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Field is one header line as it was received, in order.
type Field struct{ Name, Value string }

// Request is one complete request as the origin parsed it.
type Request struct {
	Method, Target, Proto string
	Header                []Field
	// ContentLength is the declared length, -1 when there was none.
	ContentLength int64
	Chunked       bool
	Body          []byte
	// Raw is every byte of the request as it arrived.
	Raw []byte
}

// Get returns the values of the header fields named name (any case).
func (r *Request) Get(name string) []string {
	var out []string
	for _, f := range r.Header {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// ErrAmbiguous is what the strict parser reports for a request whose framing
// or headers two parsers could read differently.
var ErrAmbiguous = errors.New("ambiguous request")

const maxLine = 64 << 10

// ReadRequest reads one request strictly: CRLF line endings only, no
// obs-fold, token header names, at most one Content-Length (digits only),
// Transfer-Encoding exactly "chunked" and never with a Content-Length, chunk
// sizes of at most 16 hex digits without extensions. io.EOF means the
// connection ended cleanly between requests.
func ReadRequest(br *bufio.Reader) (*Request, error) {
	var raw bytes.Buffer
	line, err := readLine(br, &raw)
	if err != nil {
		if err == io.EOF && raw.Len() == 0 {
			return nil, io.EOF
		}
		return nil, err
	}
	parts := strings.Split(line, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || !isToken(parts[0]) {
		return nil, fmt.Errorf("%w: request line %q", ErrAmbiguous, line)
	}
	if parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0" {
		return nil, fmt.Errorf("%w: protocol %q", ErrAmbiguous, parts[2])
	}
	req := &Request{Method: parts[0], Target: parts[1], Proto: parts[2], ContentLength: -1}
	if err := readHeader(br, &raw, &req.Header); err != nil {
		return nil, err
	}
	hosts := req.Get("Host")
	if len(hosts) != 1 {
		return nil, fmt.Errorf("%w: %d Host fields", ErrAmbiguous, len(hosts))
	}
	cls, tes := req.Get("Content-Length"), req.Get("Transfer-Encoding")
	switch {
	case len(tes) > 0 && len(cls) > 0:
		return nil, fmt.Errorf("%w: Content-Length and Transfer-Encoding", ErrAmbiguous)
	case len(tes) > 1 || len(tes) == 1 && tes[0] != "chunked":
		return nil, fmt.Errorf("%w: Transfer-Encoding %q", ErrAmbiguous, tes)
	case len(cls) > 1:
		return nil, fmt.Errorf("%w: %d Content-Length fields", ErrAmbiguous, len(cls))
	case len(cls) == 1:
		n, err := parseDigits(cls[0])
		if err != nil {
			return nil, err
		}
		req.ContentLength = n
		req.Body = make([]byte, n)
		if _, err := io.ReadFull(br, req.Body); err != nil {
			raw.Write(req.Body)
			return nil, fmt.Errorf("body short of its Content-Length: %w", err)
		}
		raw.Write(req.Body)
	case len(tes) == 1:
		req.Chunked = true
		if req.Body, err = readChunked(br, &raw, &req.Header); err != nil {
			return nil, err
		}
	}
	req.Raw = raw.Bytes()
	return req, nil
}

func readLine(br *bufio.Reader, raw *bytes.Buffer) (string, error) {
	var b []byte
	for {
		frag, err := br.ReadSlice('\n')
		raw.Write(frag)
		b = append(b, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if len(b) > maxLine {
			return "", fmt.Errorf("%w: line over %d bytes", ErrAmbiguous, maxLine)
		}
	}
	if len(b) < 2 || b[len(b)-2] != '\r' {
		return "", fmt.Errorf("%w: bare LF line ending in %q", ErrAmbiguous, b)
	}
	s := string(b[:len(b)-2])
	if strings.ContainsAny(s, "\r\x00") {
		return "", fmt.Errorf("%w: CR or NUL inside a line %q", ErrAmbiguous, s)
	}
	return s, nil
}

func readHeader(br *bufio.Reader, raw *bytes.Buffer, into *[]Field) error {
	for n := 0; ; n++ {
		if n > 1000 {
			return fmt.Errorf("%w: over 1000 header lines", ErrAmbiguous)
		}
		line, err := readLine(br, raw)
		if err != nil {
			return err
		}
		if line == "" {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return fmt.Errorf("%w: obs-fold line %q", ErrAmbiguous, line)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) {
			return fmt.Errorf("%w: header line %q", ErrAmbiguous, line)
		}
		*into = append(*into, Field{Name: name, Value: strings.Trim(value, " \t")})
	}
}

func readChunked(br *bufio.Reader, raw *bytes.Buffer, trailer *[]Field) ([]byte, error) {
	var body []byte
	for {
		line, err := readLine(br, raw)
		if err != nil {
			return nil, err
		}
		if line == "" || len(line) > 16 || strings.Trim(line, "0123456789abcdefABCDEF") != "" {
			return nil, fmt.Errorf("%w: chunk size line %q", ErrAmbiguous, line)
		}
		size, err := strconv.ParseUint(line, 16, 63)
		if err != nil {
			return nil, fmt.Errorf("%w: chunk size %q", ErrAmbiguous, line)
		}
		if size == 0 {
			return body, readHeader(br, raw, trailer)
		}
		if size > 64<<20 {
			return nil, fmt.Errorf("%w: chunk of %d bytes", ErrAmbiguous, size)
		}
		chunk := make([]byte, size+2)
		_, err = io.ReadFull(br, chunk)
		raw.Write(chunk)
		if err != nil {
			return nil, fmt.Errorf("chunk short: %w", err)
		}
		if !bytes.HasSuffix(chunk, []byte("\r\n")) {
			return nil, fmt.Errorf("%w: chunk not ended by CRLF", ErrAmbiguous)
		}
		body = append(body, chunk[:size]...)
	}
}

func parseDigits(v string) (int64, error) {
	if v == "" || len(v) > 18 || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("%w: Content-Length %q", ErrAmbiguous, v)
	}
	return strconv.ParseInt(v, 10, 64)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}
