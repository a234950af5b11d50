package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/rawhttp"
)

// headOutcome is everything a caller can see of a response read from
// input: the head, the body and how it ended, the trailer, and what was
// left unread behind it.
type headOutcome struct {
	Err                   string
	Status                string
	StatusCode            int
	Proto                 string
	ProtoMajor, Minor     int
	Header, Trailer       http.Header
	ContentLength         int64
	TransferEncoding      []string
	Close                 bool
	Body, BodyErr, Behind string
}

func (o headOutcome) String() string {
	type fields headOutcome // without this method
	return fmt.Sprintf("%+v", fields(o))
}

// readBoth reads input as the lean path does (readResponse, the body by
// its framing) and as net/http does (ReadResponse, its Body); fast says
// whether readResponse built the response itself.
func readBoth(t testing.TB, input []byte, method string, oneByte bool) (lean, std headOutcome, fast bool) {
	req := &http.Request{Method: method}
	src := func() io.Reader {
		if oneByte {
			return iotest.OneByteReader(bytes.NewReader(input))
		}
		return bytes.NewReader(input)
	}
	outcome := func(br *bufio.Reader, resp *http.Response, body io.Reader, err error) headOutcome {
		if err != nil {
			return headOutcome{Err: err.Error()}
		}
		o := headOutcome{Status: resp.Status, StatusCode: resp.StatusCode, Proto: resp.Proto,
			ProtoMajor: resp.ProtoMajor, Minor: resp.ProtoMinor, Header: resp.Header,
			ContentLength: resp.ContentLength, TransferEncoding: resp.TransferEncoding, Close: resp.Close}
		if resp.Request != req {
			o.Err = "the response's Request is not the request"
		}
		var b bytes.Buffer
		buf := make([]byte, 7) // several reads per body
		for {
			n, err := body.Read(buf)
			b.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				o.BodyErr = err.Error()
				break
			}
		}
		o.Body, o.Trailer = b.String(), resp.Trailer
		rest, _ := io.ReadAll(br)
		o.Behind = string(rest)
		return o
	}

	br := bufio.NewReaderSize(src(), 4096)
	resp, lb, err := readResponse(br, req)
	var body io.Reader
	if err == nil {
		body = resp.Body
		if lb != nil {
			lb.lc = &leanConn{br: br}
			body = readerFunc(lb.readFramed)
		}
	}
	lean = outcome(br, resp, body, err)

	br = bufio.NewReaderSize(src(), 4096)
	resp, err = http.ReadResponse(br, req)
	if err == nil {
		body = resp.Body
	}
	std = outcome(br, resp, body, err)
	return lean, std, lb != nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// readResponse gives what http.ReadResponse gives, head, body, trailer and
// the bytes behind, for heads it builds itself and for those it leaves to
// net/http; the plain ones it builds itself.
func TestReadResponseAsNetHTTP(t *testing.T) {
	long := strings.Repeat("x", 5000)
	cases := []struct {
		name, input string
		fast        bool // readResponse builds it itself
	}{
		{"plain", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nokNEXT", true},
		{"no reason", "HTTP/1.1 204\r\n\r\n", true},
		{"empty reason", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", true},
		{"lower-case names", "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-thing-ID: 1\r\n\r\nabc", true},
		{"repeated fields", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nVary: A\r\nset-cookie: c=3\r\nContent-Length: 0\r\n\r\n", true},
		{"values trimmed", "HTTP/1.1 200 OK\r\nX-A:   spaced \t \r\nX-B:\r\nX-C: \t\r\nContent-Length:  1 \r\n\r\nz", true},
		{"obs-text value", "HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n", true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT", true},
		{"chunked mixed case", "HTTP/1.1 200 OK\r\nTransfer-Encoding: ChUnKeD\r\n\r\n1\r\na\r\n0\r\n\r\n", true},
		{"chunked with a trailer not announced", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\nNEXT", true},
		{"chunked and Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", true},
		{"chunked broken", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", true},
		{"chunked cut short", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhello", true},
		{"chunked trailer cut short", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Sum: 1\r\n", true},
		{"length cut short", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true},
		{"until close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until the end", true},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nokNEXT", true},
		{"connection close, keep-alive", "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok", true},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nokNEXT", true},
		{"HTTP/1.0 chunked ignored", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", true},
		{"HTTP/1.0 bad Transfer-Encoding ignored", "HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\na", true},
		{"304 with a length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"x\"\r\n\r\nNEXT", true},
		{"204 chunked", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\nNEXT", true},
		{"103", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", true},
		{"pragma", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n", true},
		{"pragma and cache-control", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nCache-Control: max-age=5\r\nContent-Length: 0\r\n\r\n", true},
		{"Trailer, not chunked", "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nContent-Length: 1\r\n\r\na", true},
		{"long head", "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("y", 2000) + "\r\nContent-Length: 2\r\n\r\nok", true},
		{"many fields", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-F: v\r\nX-G: w\r\nX-H-", 10) + "End: 1\r\nContent-Length: 0\r\n\r\n", true},
		{"status 999", "HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n", true},
		{"huge length", "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nabc", true},
		{"leading zeros length", "HTTP/1.1 200 OK\r\nContent-Length: 007\r\n\r\nabcdefg", true},

		// Left to net/http: odd forms it accepts, and what it refuses.
		{"announced trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n1\r\na\r\n0\r\nX-Sum: 1\r\n\r\n", false},
		{"bad trailer key", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false},
		{"bare LF in one field", "HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok", false},
		{"bare LF ends the head", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok", false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n", false},
		{"first field folded", "HTTP/1.1 200 OK\r\n X-A: one\r\nContent-Length: 0\r\n\r\n", false},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", false},
		{"no colon", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", false},
		{"empty name", "HTTP/1.1 200 OK\r\n: v\r\n\r\n", false},
		{"bad name", "HTTP/1.1 200 OK\r\nX(A): v\r\n\r\n", false},
		{"name with obs-text", "HTTP/1.1 200 OK\r\nX-\xc3\xa9: v\r\n\r\n", false},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", false},
		{"CR in value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", false},
		{"DEL in value", "HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\n\r\n", false},
		{"two lengths that agree", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false},
		{"two lengths that differ", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk", false},
		{"length list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", false},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false},
		{"empty length", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", false},
		{"length overflows", "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n", false},
		{"gzip transfer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false},
		{"gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false},
		{"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"empty", "", false},
		{"blank first line", "\r\nHTTP/1.1 200 OK\r\n\r\n", false},
		{"no status", "HTTP/1.1\r\n\r\n", false},
		{"two spaces", "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"short status", "HTTP/1.1 20 OK\r\n\r\n", false},
		{"long status", "HTTP/1.1 2000 OK\r\n\r\n", false},
		{"signed status", "HTTP/1.1 +20 OK\r\n\r\n", false},
		{"status 099", "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n", false},
		{"tab after status", "HTTP/1.1 200\tOK\r\n\r\n", false},
		{"HTTP/1.2", "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/2.0", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"lower-case proto", "http/1.1 200 OK\r\n\r\n", false},
		{"control in reason", "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n", false},
		{"head cut short", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", false},
		{"status line cut short", "HTTP/1.1 200 O", false},
		{"head longer than the buffer", "HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\nContent-Length: 2\r\n\r\nok", false},
	}
	for _, tc := range cases {
		for _, method := range []string{"GET", "HEAD"} {
			for _, oneByte := range []bool{false, true} {
				lean, std, fast := readBoth(t, []byte(tc.input), method, oneByte)
				if !reflect.DeepEqual(lean, std) {
					t.Errorf("%s (%s, one byte a read %v):\nlean    %v\nnet/http %v", tc.name, method, oneByte, lean, std)
				}
				if fast != tc.fast {
					t.Errorf("%s (%s): built by readResponse itself %v, want %v", tc.name, method, fast, tc.fast)
				}
			}
		}
	}
}

// Whatever the bytes, readResponse gives what http.ReadResponse gives.
func FuzzReadResponseAsNetHTTP(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: y\r\n\r\n",
		"HTTP/1.0 304 x\r\nConnection: keep-alive\r\nPragma: no-cache\r\n\r\n",
		"HTTP/1.1 103 Early\r\nLink: a\r\n\r\nHTTP/1.1 200 OK\r\n\r\nrest",
		"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, input []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		lean, std, _ := readBoth(t, input, method, false)
		if !reflect.DeepEqual(lean, std) {
			t.Errorf("%q (%s):\nlean    %v\nnet/http %v", input, method, lean, std)
		}
	})
}

// An origin's head that net/http refuses fails the request with a 502 and
// a record naming why, and the connection it came on is not used again:
// the next request on the client's connection reaches the origin on a new
// one.
func TestLeanMalformedHeadRefused(t *testing.T) {
	heads := []struct{ name, head, reason string }{
		{"two lengths that differ", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk", "multiple Content-Length"},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
		{"empty length", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "invalid empty Content-Length"},
		{"gzip transfer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported transfer encoding"},
		{"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "too many transfer encodings"},
		{"bad trailer key", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", "bad trailer key"},
		{"first field folded", "HTTP/1.1 200 OK\r\n X-A: one\r\nContent-Length: 0\r\n\r\n", "malformed MIME header initial line"},
		{"no colon", "HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 0\r\n\r\n", "missing colon"},
		{"bad name", "HTTP/1.1 200 OK\r\nX(A): v\r\nContent-Length: 0\r\n\r\n", "malformed MIME header line"},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", "malformed MIME header line"},
		{"CR in value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", "malformed MIME header line"},
		{"short status", "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", "malformed HTTP status code"},
		{"bad version", "HTTPS/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "malformed HTTP version"},
		{"no status", "garbage\r\n\r\n", "malformed HTTP response"},
	}
	rec := &faultRecorder{}
	h := newHarness(t, func(c *Config) { c.Recorder = rec })
	o := h.rawTLSOrigin("origin.test", func(c net.Conn, req *rawhttp.Request) bool {
		for i, hd := range heads {
			if req.Target == fmt.Sprintf("/malformed/%d", i) {
				_, err := io.WriteString(c, hd.head)
				return err == nil // kept open: the proxy must not take it again
			}
		}
		return rawhttp.OK(c, req)
	})
	front := h.limitedFront(o.Addr)
	c := h.dialTLS1(front, "", "origin.test")
	get := func(path string) *rawhttp.Response {
		t.Helper()
		if err := c.Send("GET " + path + " HTTP/1.1\r\nHost: origin.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := c.ReadResponse("GET", 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp
	}
	if resp := get("/ok"); resp.Status != 200 {
		t.Fatalf("/ok: %d", resp.Status)
	}
	for i, hd := range heads {
		path := fmt.Sprintf("/malformed/%d", i)
		if resp := get(path); resp.Status != http.StatusBadGateway {
			t.Errorf("%s: client got %d, want 502", hd.name, resp.Status)
		}
		checkFaultRecord(t, rec, path, "upstream: ", 1)
		if got := rec.find(path); len(got) == 1 && !strings.Contains(got[0].Reason, hd.reason) {
			t.Errorf("%s: record says %q, want it to name %q", hd.name, got[0].Reason, hd.reason)
		}
		conns := o.Conns()
		if resp := get("/ok"); resp.Status != 200 {
			t.Fatalf("/ok after %s: %d", hd.name, resp.Status)
		}
		if o.Conns() != conns+1 {
			t.Errorf("%s: the next request went on an old connection (origin connections %d -> %d)", hd.name, conns, o.Conns())
		}
	}
}
