package scan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Bounds on what an ICAP server may send. A server is trusted to scan, not
// to make the gateway buffer without limit: past a bound the answer is an
// ErrProtocol, so no verdict.
const (
	icapBufSize        = 16 << 10 // bufio size; also bounds one line
	maxICAPLine        = 8 << 10  // status, header, chunk-size or trailer line
	maxICAPHead        = 64 << 10 // status line and all ICAP headers
	maxICAPHeaderLines = 128      // header and continuation lines together
	maxEncapsulatedHdr = 64 << 10 // encapsulated HTTP headers, all sections
	maxTrailerLines    = 32
	maxThreatName      = 256
)

// icapHead is an ICAP response's status line and headers.
type icapHead struct {
	status int
	reason string
	fields []icapField
}

// icapField is one header; continuation lines are kept, each trimmed, after
// a "\n" so that X-Violations-Found keeps its one-item-per-line structure.
type icapField struct{ name, value string } // name lowercased

// get returns the first field called name (lowercase).
func (h *icapHead) get(name string) (string, bool) {
	for _, f := range h.fields {
		if f.name == name {
			return f.value, true
		}
	}
	return "", false
}

func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: icap: "+format, append([]any{ErrProtocol}, args...)...)
}

// readLine returns one CRLF-terminated line without its CRLF, charging its
// length to budget. The slice is valid until the next read.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxICAPLine {
		return nil, protocolError("line longer than %d bytes", maxICAPLine)
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if *budget -= len(line); *budget < 0 {
		return nil, protocolError("header block over its size limit")
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, protocolError("line not ended by CRLF")
	}
	return line[:len(line)-2], nil
}

// readICAPHead reads a status line and headers. Network errors are returned
// as they are (the caller names them); malformed input is an ErrProtocol.
func readICAPHead(br *bufio.Reader) (*icapHead, error) {
	budget := maxICAPHead
	line, err := readLine(br, &budget)
	if err != nil {
		return nil, err
	}
	h := &icapHead{}
	if h.status, h.reason, err = parseStatusLine(line); err != nil {
		return nil, err
	}
	for n := 0; ; n++ {
		line, err := readLine(br, &budget)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			return h, nil
		}
		if n == maxICAPHeaderLines {
			return nil, protocolError("more than %d header lines", maxICAPHeaderLines)
		}
		if !fieldText(line) {
			return nil, protocolError("control byte in a header line")
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(h.fields) == 0 {
				return nil, protocolError("continuation line before any header")
			}
			f := &h.fields[len(h.fields)-1]
			f.value += "\n" + string(bytes.TrimSpace(line))
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || !token(name) {
			return nil, protocolError("malformed header line %q", truncate(line))
		}
		h.fields = append(h.fields, icapField{
			name:  strings.ToLower(string(name)),
			value: string(bytes.TrimSpace(value)),
		})
	}
}

// parseStatusLine parses "ICAP/1.0 SP 3DIGIT [SP reason]".
func parseStatusLine(line []byte) (int, string, error) {
	rest, ok := bytes.CutPrefix(line, []byte("ICAP/1.0 "))
	if !ok || len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return 0, "", protocolError("malformed status line %q", truncate(line))
	}
	code := 0
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return 0, "", protocolError("malformed status code %q", truncate(line))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return 0, "", protocolError("status code %d", code)
	}
	reason := ""
	if len(rest) > 3 {
		reason = string(rest[4:])
	}
	if !fieldText([]byte(reason)) {
		return 0, "", protocolError("control byte in the status line")
	}
	return code, reason, nil
}

// encapsulated is the HTTP message an ICAP 200 carries.
type encapsulated struct {
	// request and response tell which HTTP headers came back; requestLine
	// and status are their first lines' verdict-relevant parts.
	request, response bool
	method            string
	status            int
	// body is true when a chunked body follows (req-body or res-body).
	body bool
}

// readEncapsulated reads the encapsulated HTTP header sections an
// Encapsulated header announces and leaves br at the start of the body, if
// any. A head without Encapsulated carries no message.
func readEncapsulated(br *bufio.Reader, h *icapHead) (*encapsulated, error) {
	value, ok := h.get("encapsulated")
	if !ok {
		return &encapsulated{}, nil
	}
	parts, err := parseEncapsulated(value)
	if err != nil {
		return nil, err
	}
	m := &encapsulated{}
	for i, p := range parts {
		if !strings.HasSuffix(p.name, "-hdr") {
			m.body = p.name == "req-body" || p.name == "res-body"
			break
		}
		length := parts[i+1].offset - p.offset
		section := make([]byte, length)
		if _, err := io.ReadFull(br, section); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		first, ok := httpHeaderSection(section)
		if !ok {
			return nil, protocolError("encapsulated %s is not an HTTP header block", p.name)
		}
		if p.name == "req-hdr" {
			if m.method, ok = requestLineMethod(first); !ok {
				return nil, protocolError("encapsulated request line %q", truncate(first))
			}
			m.request = true
		} else {
			if m.status, ok = httpStatus(first); !ok {
				return nil, protocolError("encapsulated status line %q", truncate(first))
			}
			m.response = true
		}
	}
	return m, nil
}

type encapPart struct {
	name   string
	offset int
}

// parseEncapsulated checks the Encapsulated header strictly (RFC 3507
// 4.4.1): known names, request headers before response headers, header
// sections before exactly one final body entity, offsets from 0 that never
// go back, and header sections within maxEncapsulatedHdr.
func parseEncapsulated(value string) ([]encapPart, error) {
	value = strings.ReplaceAll(value, "\n", " ")
	var parts []encapPart
	for item := range strings.SplitSeq(value, ",") {
		name, off, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, protocolError("Encapsulated item %q", truncate([]byte(item)))
		}
		n, err := strconv.Atoi(off)
		if err != nil || len(off) > 9 || !digits(off) {
			return nil, protocolError("Encapsulated offset %q", truncate([]byte(off)))
		}
		parts = append(parts, encapPart{name, n})
		if len(parts) > 3 {
			return nil, protocolError("Encapsulated has more than 3 entities")
		}
	}
	last := -1
	for i, p := range parts {
		r, known := encapRank(p.name)
		switch {
		case !known:
			return nil, protocolError("Encapsulated entity %q", p.name)
		case r <= last:
			return nil, protocolError("Encapsulated entities out of order")
		case i == 0 && p.offset != 0:
			return nil, protocolError("Encapsulated does not start at offset 0")
		case i > 0 && p.offset < parts[i-1].offset:
			return nil, protocolError("Encapsulated offsets go back")
		case r == 2 && i != len(parts)-1:
			return nil, protocolError("Encapsulated body entity is not the last")
		}
		last = r
	}
	if last != 2 {
		return nil, protocolError("Encapsulated has no body entity")
	}
	if hdr := parts[len(parts)-1].offset; hdr > maxEncapsulatedHdr {
		return nil, protocolError("encapsulated HTTP headers of %d bytes (limit %d)", hdr, maxEncapsulatedHdr)
	}
	return parts, nil
}

// encapRank orders the entities: request headers, response headers, body.
func encapRank(name string) (int, bool) {
	switch name {
	case "req-hdr":
		return 0, true
	case "res-hdr":
		return 1, true
	case "req-body", "res-body", "null-body", "opt-body":
		return 2, true
	}
	return 0, false
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// httpHeaderSection checks that b is HTTP header lines ended by an empty
// line and returns the first line.
func httpHeaderSection(b []byte) ([]byte, bool) {
	if !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		return nil, false
	}
	first, _, _ := bytes.Cut(b, []byte("\r\n"))
	return first, len(first) > 0
}

// httpStatus reads the code from "HTTP/1.x SP 3DIGIT ...".
func httpStatus(line []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(line, []byte("HTTP/1."))
	if !ok || len(rest) < 5 || (rest[0] != '0' && rest[0] != '1') || rest[1] != ' ' {
		return 0, false
	}
	code, err := strconv.Atoi(string(rest[2:5]))
	if err != nil || code < 100 || code > 999 || (len(rest) > 5 && rest[5] != ' ') {
		return 0, false
	}
	return code, true
}

// requestLineMethod reads the method from "METHOD SP target SP HTTP/1.x".
func requestLineMethod(line []byte) (string, bool) {
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(method) == 0 || !token(method) {
		return "", false
	}
	i := bytes.LastIndexByte(rest, ' ')
	if i <= 0 || !bytes.HasPrefix(rest[i+1:], []byte("HTTP/1.")) {
		return "", false
	}
	return string(method), true
}

// errBodyOverLimit: the encapsulated body is longer than the limit given
// to readChunked.
var errBodyOverLimit = errors.New("encapsulated body over the limit")

// readChunked reads a chunked body into w and returns its length. A body
// longer than limit stops with errBodyOverLimit, before it is read.
func readChunked(br *bufio.Reader, limit int64, w io.Writer) (int64, error) {
	var n int64
	for {
		budget := maxICAPLine
		line, err := readLine(br, &budget)
		if err != nil {
			return n, err
		}
		sizeField, _, _ := bytes.Cut(line, []byte(";"))
		sizeField = bytes.TrimRight(sizeField, " \t")
		size, ok := chunkSize(sizeField)
		if !ok {
			return n, protocolError("chunk size %q", truncate(line))
		}
		if size == 0 {
			return n, readTrailer(br)
		}
		if size > limit-n {
			return n, errBodyOverLimit
		}
		m, err := io.CopyN(w, br, size)
		n += m
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		var crlf [2]byte
		if _, err := io.ReadFull(br, crlf[:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		if crlf != [2]byte{'\r', '\n'} {
			return n, protocolError("chunk not followed by CRLF")
		}
	}
}

func chunkSize(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | int64(d)
	}
	return v, true
}

func readTrailer(br *bufio.Reader) error {
	budget := maxICAPHead
	for range maxTrailerLines {
		line, err := readLine(br, &budget)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
	}
	return protocolError("more than %d trailer lines", maxTrailerLines)
}

// threat reports whether an ICAP 200's headers say a threat was found, and
// its name: X-Infection-Found's Threat= (c-icap, Squid's convention),
// X-Violations-Found's second item (RFC 3507 errata draft), or X-Virus-ID.
func threat(h *icapHead) (string, bool) {
	if v, ok := h.get("x-infection-found"); ok {
		for part := range strings.SplitSeq(strings.ReplaceAll(v, "\n", " "), ";") {
			k, val, _ := strings.Cut(part, "=")
			if strings.EqualFold(strings.TrimSpace(k), "threat") {
				return threatName(val), true
			}
		}
		return UnnamedThreat, true
	}
	if v, ok := h.get("x-violations-found"); ok {
		lines := strings.Split(v, "\n")
		count, err := strconv.Atoi(strings.TrimSpace(lines[0]))
		switch {
		case err == nil && count == 0:
			// Nothing found, by its own count; the message decides.
		case err == nil && count > 0 && len(lines) >= 3:
			return threatName(lines[2]), true
		default:
			return UnnamedThreat, true
		}
	}
	if v, ok := h.get("x-virus-id"); ok && strings.TrimSpace(v) != "" {
		return threatName(v), true
	}
	return "", false
}

func threatName(s string) string {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\n", " "))
	if s == "" || s == "-" {
		return UnnamedThreat
	}
	if len(s) > maxThreatName {
		s = s[:maxThreatName]
	}
	return strings.ToValidUTF8(s, "?")
}

// token reports whether b is an RFC 7230 token.
func token(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// fieldText reports whether b holds only visible ASCII, space, tab and
// obs-text bytes.
func fieldText(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
