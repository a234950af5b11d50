package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// readPlainHead reads the next request's head from br into req and u when
// it is one the loop serves itself (h1serve.go): it reports ok, and the
// head is consumed. Anything else — and any head the loop is not sure it
// reads exactly as net/http does — reports !ok with nothing consumed, so
// the http.Server reads it from its first byte. An error is a connection
// that timed out before its head was complete (it is closed unanswered,
// as net/http does); a connection that ends part-way is handed over, so
// net/http answers it as it would.
//
// Plain is: "METHOD SP /target SP HTTP/1.1" with a token method other than
// CONNECT and PRI, a target of visible ASCII starting with '/', every line
// ending in CRLF with no other CR or LF, field names of token characters,
// values of visible characters, spaces and tabs (no obs-fold), exactly one
// valid Host, no Transfer-Encoding, Expect or Upgrade, a Connection of
// keep-alive/close only, at most one Content-Length and only of decimal
// digits (plainLength), at most maxFields fields, and the whole head
// within br's buffer and within maxBytes. The body, when the length is not
// 0, is left in br: req.ContentLength says how much of what follows it is,
// and req.Body stays http.NoBody for the caller to set (h1Body).
//
// The head's fields are substrings of one string, the head's copy: one
// allocation where net/http makes one per value.
func readPlainHead(br *bufio.Reader, req *http.Request, u *url.URL, maxFields, maxBytes int) (ok bool, err error) {
	var head []byte
	// Only the bytes that arrived since the last look are scanned, so a
	// head that trickles in (slowloris) costs its length, not its square.
	scanned := 0
	for {
		n := br.Buffered()
		buf, _ := br.Peek(n)
		from := max(scanned-3, 0)
		if i := bytes.Index(buf[from:], crlfCRLF); i >= 0 {
			head = buf[:from+i+4]
			break
		}
		if n >= br.Size() || n > maxBytes || !plainSoFar(buf, scanned) {
			return false, nil
		}
		scanned = n
		if _, err := br.Peek(n + 1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false, err
			}
			if n == 0 {
				return false, err
			}
			return false, nil // net/http answers a truncated head
		}
	}
	if len(head) > maxBytes {
		return false, nil
	}
	// Count the field lines; every LF must end a CRLF.
	fields := 0
	for i, c := range head {
		switch c {
		case '\n':
			if i == 0 || head[i-1] != '\r' {
				return false, nil
			}
			fields++
		case '\r':
			if i+1 >= len(head) || head[i+1] != '\n' {
				return false, nil
			}
		}
	}
	fields -= 2 // the request line and the empty line
	if fields < 1 || fields > maxFields {
		return false, nil
	}
	hs := string(head)
	line, rest, _ := strings.Cut(hs, "\r\n")
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || method == "" || method == http.MethodConnect || method == "PRI" || !isToken(method) {
		return false, nil
	}
	if !plainTarget(target, u) {
		return false, nil
	}
	h := make(http.Header, fields)
	vals := make([]string, fields)
	hosts := 0
	length := int64(0)
	for i := 0; ; i++ {
		line, rest, _ = strings.Cut(rest, "\r\n")
		if line == "" {
			break
		}
		name, value, found := strings.Cut(line, ":")
		if !found || name == "" || !isToken(name) || !plainValue(value) {
			return false, nil
		}
		value = strings.Trim(value, " \t")
		key := name
		if !isCanonicalKey(name) {
			key = http.CanonicalHeaderKey(name)
		}
		switch key {
		case "Transfer-Encoding", "Expect", "Upgrade", "Te", "Http2-Settings":
			return false, nil
		case "Host":
			hosts++
		case "Content-Length":
			n, ok := plainLength(value)
			if !ok || len(h["Content-Length"]) > 0 {
				return false, nil
			}
			length = n
		case "Connection":
			for f := range strings.SplitSeq(value, ",") {
				f = strings.Trim(f, " \t")
				if !strings.EqualFold(f, "keep-alive") && !strings.EqualFold(f, "close") {
					return false, nil
				}
			}
		}
		if vv, dup := h[key]; dup {
			h[key] = append(vv, value)
			continue
		}
		vals[i] = value
		h[key] = vals[i : i+1 : i+1]
	}
	if hosts != 1 || !httpguts.ValidHostHeader(h["Host"][0]) {
		return false, nil
	}
	if hp := h["Pragma"]; len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	*req = http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          http.NoBody,
		ContentLength: length,
		Host:          h["Host"][0],
		RequestURI:    target,
		Close:         httpguts.HeaderValuesContainsToken(h["Connection"], "close"),
	}
	delete(h, "Host")
	_, _ = br.Discard(len(head))
	return true, nil
}

var crlfCRLF = []byte("\r\n\r\n")

// maxPlainLength bounds the Content-Length the loop takes (1 TiB): a
// larger one is handed over, and net/http applies its own rules to it.
const maxPlainLength = 1 << 40

// plainLength parses a Content-Length value the loop takes: decimal
// digits only, no sign, no leading zero but in "0" itself, no list, at
// most maxPlainLength. Anything else ("+5", "05", "5, 5", " 5" inside the
// trimmed value, hex) is for net/http, which refuses or reads it by its
// own rules (and the hostile tests check that).
func plainLength(v string) (int64, bool) {
	if v == "" || len(v) > 13 || v[0] == '0' && len(v) > 1 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n > maxPlainLength {
		return 0, false
	}
	return n, true
}

// plainSoFar reports whether a partial head can still be plain, looking at
// the bytes from from on: it is checked before waiting for more bytes, so
// a head that is already not plain is handed over at once (net/http then
// applies its own timeouts and limits from its first byte).
func plainSoFar(b []byte, from int) bool {
	for i := from; i < len(b); i++ {
		switch b[i] {
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return false
			}
		case 0:
			return false
		}
	}
	return true
}

// plainTarget parses an origin-form target whose path url.ParseRequestURI
// would keep as it is (no escapes, nothing it would escape again) into u,
// as ParseRequestURI does; it reports false for any other target.
func plainTarget(t string, u *url.URL) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(t, "?")
	for i := 0; i < len(path); i++ {
		if !plainPathByte[path[i]] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	*u = url.URL{Path: path, RawQuery: query}
	if hasQuery && query == "" {
		u.ForceQuery = true
	}
	return true
}

// plainPathByte are the bytes of a path net/url neither unescapes nor
// escapes: its RawPath stays empty.
var plainPathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// plainValue reports a field value of visible characters, obs-text, spaces
// and tabs only.
func plainValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// isCanonicalKey reports a field name already in net/http's canonical
// form: upper case at the start and after each '-', lower case elsewhere.
func isCanonicalKey(s string) bool {
	upper := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}
