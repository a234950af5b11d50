package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/rawhttp"
)

// plainHeads are request heads the loop reads itself.
var plainHeads = []string{
	"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
	"GET /x/y.html?q=1&r=%20s HTTP/1.1\r\nHost: a.test:8443\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n",
	"HEAD /a;b=c,d@e:f$g+h HTTP/1.1\r\nhost: a.test\r\naccept-encoding: gzip\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n",
	"DELETE /r HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	"GET /?  HTTP/1.1\r\nHost: a.test\r\n\r\n"[:len("GET /?")] + " HTTP/1.1\r\nHost: a.test\r\n\r\n",
	"OPTIONS /p HTTP/1.1\r\nHost: a.test\r\nPragma: no-cache\r\nConnection: keep-alive, close\r\n\r\n",
	"GET //double/slash HTTP/1.1\r\nHost: a.test\r\nX-Empty:\r\nX-Sp:   padded \t \r\nX-Obs: caf\xc3\xa9\r\n\r\n",
	"GET /p?q#frag HTTP/1.1\r\nHost: [::1]:443\r\nCookie: a=b; c=d\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc",
	"PUT /f HTTP/1.1\r\nHost: a.test\r\ncontent-length:  10 \r\nContent-Type: text/plain\r\n\r\n0123456789",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1099511627776\r\n\r\n",
}

// notPlainHeads are handed to net/http (most of them are the hostile
// tests' cases, which net/http refuses or normalises).
var notPlainHeads = []string{
	"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3, 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: +3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 03\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0x3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: -1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1099511627777\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 99999999999999999999\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
	"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n",
	"GET / HTTP/1.1\nHost: a.test\n\n",
	"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: b\r\n c\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
	"GET / HTTP/1.1\r\nX: y\r\n\r\n",
	"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
	"GET * HTTP/1.1\r\nHost: a.test\r\n\r\n",
	"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET /a%2Fb HTTP/1.1\r\nHost: a.test\r\n\r\n",
	"GET /a b HTTP/1.1\r\nHost: a.test\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a.test\r\n\r\n",
	"GET / HTTP/1.1\r\nHost : a.test\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a.test\r\nX-Nul: a\x00b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\x01.test\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: x-hop\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a.test\r\nTE: trailers\r\n\r\n",
	"GET /\x7f HTTP/1.1\r\nHost: a.test\r\n\r\n",
	"G@T / HTTP/1.1\r\nHost: a.test\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a.test\r\nX: a\rb\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a.test\r\n" + strings.Repeat("X-Big: "+strings.Repeat("b", 100)+"\r\n", 50) + "\r\n",
	"GET / HTTP/1.1\r\nHost: a.test",
}

// The loop reads a plain head exactly as net/http does (the same request
// in every field the pipeline sees), consumes the head and nothing more,
// and leaves anything else unconsumed for net/http.
func TestReadPlainHeadAsNetHTTP(t *testing.T) {
	for _, head := range plainHeads {
		got, ok := checkPlainHead(t, []byte(head+"NEXT"))
		if !ok {
			t.Errorf("%q: not read as plain", head)
			continue
		}
		// net/http's server accepts it too (Host rules, field checks).
		if code := netHTTPStatus(t, head); code != 200 {
			t.Errorf("%q: net/http's server answers %d, the loop would serve it", head, code)
		}
		_ = got
	}
	for _, head := range notPlainHeads {
		if _, ok := checkPlainHead(t, []byte(head)); ok {
			t.Errorf("%q: read as plain", head)
		}
	}
}

func FuzzReadPlainHeadAsNetHTTP(f *testing.F) {
	for _, h := range plainHeads {
		f.Add([]byte(h))
	}
	for _, h := range notPlainHeads {
		f.Add([]byte(h))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkPlainHead(t, in) })
}

// checkPlainHead runs readPlainHead on in and, when it takes the head,
// compares it with http.ReadRequest on the same bytes.
func checkPlainHead(t *testing.T, in []byte) (*http.Request, bool) {
	t.Helper()
	br := bufio.NewReaderSize(bytes.NewReader(in), h1Buffer)
	var req http.Request
	var u url.URL
	ok, err := readPlainHead(br, &req, &u, DefaultMaxHeaderCount, DefaultMaxHeaderBytes)
	if err != nil || !ok {
		if n := br.Buffered(); err == nil && n != min(len(in), h1Buffer) {
			t.Fatalf("%q: not plain, but %d of %d bytes consumed", in, min(len(in), h1Buffer)-n, len(in))
		}
		return nil, false
	}
	end := bytes.Index(in, []byte("\r\n\r\n")) + 4
	if rest, _ := io.ReadAll(br); !bytes.Equal(rest, in[end:]) {
		t.Fatalf("%q: after the head %q is left, want %q", in, rest, in[end:])
	}
	ref, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
	if err != nil {
		t.Fatalf("%q: read as plain, net/http refuses it: %v", in, err)
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"method", req.Method, ref.Method},
		{"URL", *req.URL, *ref.URL},
		{"proto", [3]any{req.Proto, req.ProtoMajor, req.ProtoMinor}, [3]any{ref.Proto, ref.ProtoMajor, ref.ProtoMinor}},
		{"header", req.Header, ref.Header},
		{"host", req.Host, ref.Host},
		{"request URI", req.RequestURI, ref.RequestURI},
		{"close", req.Close, ref.Close},
		{"content length", req.ContentLength, ref.ContentLength},
		{"transfer encoding", req.TransferEncoding, ref.TransferEncoding},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Fatalf("%q: %s %#v, net/http reads %#v", in, c.what, c.got, c.want)
		}
	}
	if req.Body != http.NoBody {
		t.Fatalf("%q: body %v", in, req.Body)
	}
	return &req, true
}

// netHTTPStatus is what net/http's server answers to head.
func netHTTPStatus(t *testing.T, head string) int {
	t.Helper()
	c := dialNetHTTP(t, func(http.ResponseWriter, *http.Request) {})
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", head, err)
	}
	return resp.StatusCode
}

// writerCases are handler behaviours the loop's response writer must frame
// as net/http's server does.
var writerCases = []struct {
	name    string
	request string
	handler http.HandlerFunc
}{
	{"nothing written", "GET", func(w http.ResponseWriter, r *http.Request) {}},
	{"short body, sniffed", "GET", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html><p>hi") }},
	{"short body, typed", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"a":1}`)
	}},
	{"encoded, not sniffed", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write([]byte{0x1f, 0x8b, 8, 0})
	}},
	{"long body, chunked", "GET", func(w http.ResponseWriter, r *http.Request) {
		for range 5 {
			_, _ = w.Write(bytes.Repeat([]byte("0123456789"), 100))
		}
	}},
	{"declared length", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5000")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(bytes.Repeat([]byte("x"), 5000))
	}},
	{"declared length, over", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		if _, err := io.WriteString(w, "abcdef"); err != http.ErrContentLength {
			panic("write over the length: " + errString(err))
		}
		_, _ = io.WriteString(w, "abc")
	}},
	{"flushed then written", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "data: 2\n\n")
	}},
	{"204 with a body", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "4")
		w.WriteHeader(http.StatusNoContent)
		if _, err := io.WriteString(w, "body"); err != http.ErrBodyNotAllowed {
			panic("204 body: " + errString(err))
		}
	}},
	{"304 fields suppressed", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Etag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	}},
	{"HEAD, declared length", "HEAD", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
		w.Header().Set("Content-Type", "text/plain")
	}},
	{"HEAD, body written", "HEAD", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") }},
	{"trailers declared", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum, X-Other")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	}},
	{"trailer prefix", "GET", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "body")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	}},
	{"early hints", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</s.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "after hints")
	}},
	{"odd fields", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Lf"] = []string{"a\nb\r\nc"}
		w.Header()["Bad Name"] = []string{"v"}
		w.Header()["X-Pad"] = []string{"  v \t"}
		w.Header()["X-Multi"] = []string{"1", "2"}
		_, _ = io.WriteString(w, "x")
	}},
	{"handler closes", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	}},
	{"client closes", "GET-close", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "bye") }},
	{"unknown status", "GET", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599) }},
	{"invalid length dropped", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "nope")
		_, _ = io.WriteString(w, "abc")
	}},
	{"short of its length", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		_, _ = io.WriteString(w, "abc")
	}},
	{"date kept", "GET", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
	}},
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

func writerRequest(kind string) string {
	switch kind {
	case "HEAD":
		return "HEAD /r HTTP/1.1\r\nHost: a.test\r\n\r\n"
	case "GET-close":
		return "GET /r HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
	}
	return "GET /r HTTP/1.1\r\nHost: a.test\r\n\r\n"
}

// The loop's response writer frames every case as net/http's server does:
// the same status line and fields in the same order (Date aside), the same
// body and trailers, and the same decision to close.
func TestH1WriterAsNetHTTP(t *testing.T) {
	for _, c := range writerCases {
		t.Run(c.name, func(t *testing.T) {
			req := writerRequest(c.request)
			want := netHTTPRaw(t, c.handler, req)
			got := loopRaw(t, c.handler, req)
			wh, wresp := splitRaw(t, want, c.request)
			gh, gresp := splitRaw(t, got, c.request)
			if !slices.Equal(gh, wh) {
				t.Errorf("head:\n%s\nnet/http:\n%s", strings.Join(gh, "\n"), strings.Join(wh, "\n"))
			}
			if !bytes.Equal(gresp.body, wresp.body) || !reflect.DeepEqual(gresp.trailer, wresp.trailer) {
				t.Errorf("body %q trailer %v, net/http %q %v", gresp.body, gresp.trailer, wresp.body, wresp.trailer)
			}
			if gresp.closed != wresp.closed {
				t.Errorf("connection closed after: %v, net/http %v", gresp.closed, wresp.closed)
			}
		})
	}
}

type rawResp struct {
	body    []byte
	trailer http.Header
	closed  bool
}

// splitRaw parses a raw response (with any 1xx before it): the head lines
// with Date's value blanked, and the body, trailers and whether the server
// closed the connection after it.
func splitRaw(t *testing.T, raw []byte, kind string) ([]string, rawResp) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(string(raw[:bytes.LastIndex(raw[:bytes.Index(raw, []byte("\r\n\r\n"))+4], []byte("\r\n\r\n"))]), "\r\n") {
		if strings.HasPrefix(l, "Date: ") {
			l = "Date: *"
		}
		lines = append(lines, l)
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	method := "GET"
	if kind == "HEAD" {
		method = "HEAD"
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	for err == nil && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(br, &http.Request{Method: method})
	}
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	body, _ := io.ReadAll(resp.Body)
	rest, _ := io.ReadAll(br)
	return lines, rawResp{body: body, trailer: resp.Trailer, closed: len(rest) == 0 && resp.Close}
}

// netHTTPRaw is the raw response net/http's server writes for handler.
func netHTTPRaw(t *testing.T, handler http.HandlerFunc, req string) []byte {
	t.Helper()
	return rawExchange(t, dialNetHTTP(t, handler), req)
}

// dialNetHTTP is a connection to a net/http server on loopback serving
// handler; both end with the test.
func dialNetHTTP(t *testing.T, handler http.HandlerFunc) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// loopRaw is the raw response the loop's writer writes for handler.
func loopRaw(t *testing.T, handler http.HandlerFunc, req string) []byte {
	t.Helper()
	srv := &Server{cfg: Config{Log: slog.New(slog.DiscardHandler)}}
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		defer a.Close()
		hc := &h1conn{s: srv, c: a, header: make(http.Header)}
		hc.br = bufio.NewReaderSize(a, h1Buffer)
		var r http.Request
		var u url.URL
		if ok, err := readPlainHead(hc.br, &r, &u, 100, 1<<20); !ok || err != nil {
			panic("request not plain")
		}
		w := &h1Writer{hc: hc, req: &r, header: hc.header, contentLength: -1}
		handler(w, &r)
		w.finish()
		_ = hc.bw.Flush()
		if w.closeAfter || r.Close {
			return
		}
		// Kept open: the test's read sees the response, then no close.
		_, _ = hc.br.Peek(1)
	}()
	return rawExchange(t, b, req)
}

// rawExchange writes req and reads what comes back until the connection
// closes or stays quiet for 300ms.
func rawExchange(t *testing.T, c net.Conn, req string) []byte {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out
		}
	}
}

// Through the pipeline: plain requests (pipelined too, and with a
// Content-Length body) are the loop's; the first request that is not
// plain (here an escaped path) hands the connection to net/http, which
// reads that request from its first byte and serves the rest.
func TestH1LoopServesPlainThenHandsOver(t *testing.T) {
	h := newHarness(t, nil)
	o := h.rawTLSOrigin("origin.test", rawhttp.OK)
	front := h.limitedFront(o.Addr)
	c := h.dialTLS1(front, "", "origin.test")
	plain0, handed0 := h.srv.Stats.H1Plain.Load(), h.srv.Stats.H1HandedOver.Load()
	_ = c.Send("GET /one HTTP/1.1\r\nHost: origin.test\r\n\r\nHEAD /two HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	for _, m := range []string{"GET", "HEAD"} {
		resp, err := c.ReadResponse(m, 5*time.Second)
		if err != nil || resp.Status != 200 || !resp.Complete {
			t.Fatalf("%s: %+v, %v", m, resp, err)
		}
	}
	if got := h.srv.Stats.H1Plain.Load() - plain0; got != 2 {
		t.Fatalf("the loop served %d plain requests, want 2", got)
	}
	_ = c.Send("POST /three HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 5\r\n\r\nhello")
	if resp, err := c.ReadResponse("POST", 5*time.Second); err != nil || resp.Status != 200 {
		t.Fatalf("POST: %+v, %v", resp, err)
	}
	if got := h.srv.Stats.H1HandedOver.Load() - handed0; got != 0 {
		t.Fatalf("%d hand-overs at a Content-Length body, want 0", got)
	}
	_ = c.Send("PUT /four%2F HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 5\r\n\r\nworld")
	if resp, err := c.ReadResponse("PUT", 5*time.Second); err != nil || resp.Status != 200 {
		t.Fatalf("PUT: %+v, %v", resp, err)
	}
	_ = c.Send("GET /five HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	if resp, err := c.ReadResponse("GET", 5*time.Second); err != nil || resp.Status != 200 {
		t.Fatalf("GET after the hand-over: %+v, %v", resp, err)
	}
	if got := h.srv.Stats.H1HandedOver.Load() - handed0; got != 1 {
		t.Fatalf("%d hand-overs, want 1", got)
	}
	if got := h.srv.Stats.H1Plain.Load() - plain0; got != 3 {
		t.Fatalf("the loop served %d plain requests, want 3 (the PUT and after are net/http's)", got)
	}
	var targets []string
	for _, r := range o.Requests() {
		targets = append(targets, r.Method+" "+r.Target)
		if r.Target == "/three" && string(r.Body) != "hello" || r.Target == "/four%2F" && string(r.Body) != "world" {
			t.Fatalf("origin got %s body %q", r.Target, r.Body)
		}
	}
	if want := []string{"GET /one", "HEAD /two", "POST /three", "PUT /four%2F", "GET /five"}; !slices.Equal(targets, want) {
		t.Fatalf("origin got %v, want %v", targets, want)
	}
	// A client that asks to close gets its answer, then the close.
	_ = c.Send("GET /six HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
	c2 := h.dialTLS1(front, "", "origin.test")
	_ = c2.Send("GET /seven HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
	resp, err := c2.ReadResponse("GET", 5*time.Second)
	if err != nil || resp.Status != 200 || resp.Header.Get("Connection") != "close" || !c2.Closed(2*time.Second) {
		t.Fatalf("Connection: close: %+v, %v", resp, err)
	}
}

// Close ends idle loop connections at once and lets one in flight finish,
// marked "Connection: close".
func TestH1LoopShutdown(t *testing.T) {
	h := newHarness(t, nil)
	o := h.rawTLSOrigin("origin.test", func(c net.Conn, req *rawhttp.Request) bool {
		if req.Target == "/slow" {
			time.Sleep(500 * time.Millisecond)
		}
		return rawhttp.OK(c, req)
	})
	front := h.limitedFront(o.Addr)
	idle := h.dialTLS1(front, "", "origin.test")
	_ = idle.Send("GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	if resp, err := idle.ReadResponse("GET", 5*time.Second); err != nil || resp.Status != 200 {
		t.Fatalf("%+v, %v", resp, err)
	}
	busy := h.dialTLS1(front, "", "origin.test")
	_ = busy.Send("GET /slow HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- h.srv.Close(ctx) }()
	if !idle.Closed(2 * time.Second) {
		t.Fatal("idle connection still open 2s into Close")
	}
	resp, err := busy.ReadResponse("GET", 5*time.Second)
	if err != nil || resp.Status != 200 || !resp.Complete || resp.Header.Get("Connection") != "close" {
		t.Fatalf("in-flight request at Close: %+v, %v", resp, err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %s", d)
	}
}
