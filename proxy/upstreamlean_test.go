package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"
)

// writeHead writes what Request.Write writes for a request without a body
// (fields in another order), and leaves to Request.Write what it would
// rewrite or refuse.
func TestWriteHeadAsRequestWrite(t *testing.T) {
	mk := func(method, target, host string, h http.Header) *http.Request {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{Method: method, URL: u, Host: host, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	}
	same := []*http.Request{
		mk("GET", "https://origin.test/", "origin.test", http.Header{"User-Agent": {""}}),
		mk("GET", "https://origin.test/a%20b/c?x=1&y=%2F", "origin.test:8443", http.Header{"Accept": {"*/*"}, "Cookie": {"a=1", "b=2"}, "User-Agent": {"curl/8"}}),
		mk("HEAD", "https://origin.test/p?", "origin.test", http.Header{"X-Pad": {"  spaced\t"}}),
		mk("GET", "https://origin.test", "origin.test", http.Header{}), // Go's default User-Agent
		mk("GET", "https://[::1]:443/", "[::1]:443", http.Header{"Content-Length": {"0"}, "Trailer": {"X"}, "Bad Name": {"v"}}),
	}
	same[2].URL.ForceQuery = true
	for i, r := range same {
		var a, b bytes.Buffer
		wa := bufio.NewWriter(&a)
		if !writeHead(wa, r, false, 0) {
			t.Fatalf("%d: writeHead declined %s %s", i, r.Method, r.URL)
		}
		_ = wa.Flush()
		if err := r.Write(&b); err != nil {
			t.Fatal(err)
		}
		ra, err := http.ReadRequest(bufio.NewReader(&a))
		if err != nil {
			t.Fatalf("%d: writeHead wrote an unreadable request: %v\n%s", i, err, a.String())
		}
		rb, err := http.ReadRequest(bufio.NewReader(&b))
		if err != nil {
			t.Fatal(err)
		}
		if ra.Method != rb.Method || ra.RequestURI != rb.RequestURI || ra.Host != rb.Host || !reflect.DeepEqual(ra.Header, rb.Header) || a.Len() != b.Len() {
			t.Errorf("%d: writeHead\n%q\nRequest.Write\n%q", i, a.String(), b.String())
		}
	}
	for i, r := range []*http.Request{
		mk("GET", "https://origin.test/", "ünicode.test", http.Header{}),
		mk("GET", "https://origin.test/", "origin.test", http.Header{"X-Split": {"a\r\nX-Injected: 1"}}),
		mk("GET", "https://origin.test/", "bad host", http.Header{}),
		mk("GET", "https://origin.test/", "[fe80::1%25eth0]", http.Header{}),
		{Method: "GET", URL: &url.URL{Opaque: "//origin.test/x"}, Host: "origin.test", Header: http.Header{}},
		{Method: "GET", URL: &url.URL{Path: "/", RawQuery: "a\x00b"}, Host: "origin.test", Header: http.Header{}},
	} {
		var a bytes.Buffer
		w := bufio.NewWriter(&a)
		if writeHead(w, r, false, 0) || w.Buffered() > 0 {
			t.Errorf("%d: writeHead wrote %q, want it left to Request.Write", i, a.String())
		}
	}
}

// With a body read whole, writeHead and the body after it are what
// Request.Write sends for the request with that body: the same fields,
// one Content-Length of the body's length (the client's own, even a wrong
// one, is not copied), and the body.
func TestWriteHeadWithBodyAsRequestWrite(t *testing.T) {
	body := []byte("field=value&other=" + string(bytes.Repeat([]byte("x"), 5000)))
	for _, cl := range []string{"", "5018", "3"} {
		h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Cookie": {"s=1"}}
		if cl != "" {
			h["Content-Length"] = []string{cl}
		}
		u, _ := url.Parse("https://origin.test/save?x=1")
		r := &http.Request{Method: "POST", URL: u, Host: "origin.test", Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, ContentLength: int64(len(body))}
		var a, b bytes.Buffer
		wa := bufio.NewWriter(&a)
		if !writeHead(wa, r, false, len(body)) {
			t.Fatal("writeHead declined a plain POST")
		}
		_, _ = wa.Write(body)
		_ = wa.Flush()
		rb := *r
		rb.Body = io.NopCloser(bytes.NewReader(body))
		if err := rb.Write(&b); err != nil {
			t.Fatal(err)
		}
		sa, sb := a.String(), b.String()
		ra, err := http.ReadRequest(bufio.NewReader(&a))
		if err != nil {
			t.Fatalf("client Content-Length %q: unreadable: %v\n%s", cl, err, sa)
		}
		gotBody, _ := io.ReadAll(ra.Body)
		want, _ := http.ReadRequest(bufio.NewReader(&b))
		if !reflect.DeepEqual(ra.Header, want.Header) || ra.ContentLength != int64(len(body)) || !bytes.Equal(gotBody, body) || len(sa) != len(sb) {
			t.Errorf("client Content-Length %q: writeHead + body\n%q\nRequest.Write\n%q", cl, sa[:200], sb[:200])
		}
	}
}

// A pooled upstream connection holds no buffers while it waits (attach,
// detach), nor a goroutine: requests on one client connection reuse one
// origin connection, and between them the idle connection has neither
// reader nor writer, and no watcher goroutine (leanWatcher.start).
func TestLeanIdleConnectionHoldsNoBuffers(t *testing.T) {
	h := newHarness(t, nil)
	o := h.rawTLSOrigin("origin.test", forwardOrigin(make(chan struct{})))
	front := h.limitedFront(o.Addr)
	c := h.dialTLS1(front, "", "origin.test")
	for i := range 3 {
		_ = c.Send(fmt.Sprintf("GET /n%d HTTP/1.1\r\nHost: origin.test\r\n\r\n", i))
		if resp, err := c.ReadResponse("GET", 5*time.Second); err != nil || resp.Status != 200 {
			t.Fatalf("request %d: %+v, %v", i, resp, err)
		}
		idle := leanIdle(t, h.srv)
		if len(idle) != 1 {
			t.Fatalf("after request %d: %d idle upstream connections, want 1", i, len(idle))
		}
		if idle[0].br != nil || idle[0].bw != nil {
			t.Fatalf("after request %d: the idle upstream connection holds its reader %v and writer %v", i, idle[0].br != nil, idle[0].bw != nil)
		}
		// The HTTP/1.1 loop's requests end their own watch: no watcher
		// goroutine was started for the connection.
		if idle[0].watcher.next != nil {
			t.Fatalf("after request %d: the idle upstream connection has a watcher goroutine", i)
		}
	}
	if n := o.Conns(); n != 1 {
		t.Fatalf("origin saw %d connections for 3 requests, want 1 (reused)", n)
	}
}

// leanIdle is a copy of the idle lists of the server's lean upstreams.
func leanIdle(t *testing.T, s *Server) []*leanConn {
	t.Helper()
	var out []*leanConn
	// The response reaches the client before its body ends on the proxy's
	// side: wait (bounded) for the connection to be put back.
	deadline := time.Now().Add(2 * time.Second)
	for {
		out = out[:0]
		s.upstreams.mu.Lock()
		for e := s.upstreams.lru.Front(); e != nil; e = e.Next() {
			if lu := e.Value.(*pooledTransport).lean; lu != nil {
				lu.mu.Lock()
				out = append(out, lu.idle...)
				lu.mu.Unlock()
			}
		}
		s.upstreams.mu.Unlock()
		if len(out) > 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(5 * time.Millisecond)
	}
}
