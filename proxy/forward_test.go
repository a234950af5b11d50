package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/rawhttp"
)

// forwardOrigin answers by path what the lean forwarder must pass on
// exactly: informational responses, trailers, hop-by-hop fields, a stream.
func forwardOrigin(release <-chan struct{}) rawhttp.Responder {
	return func(c net.Conn, req *rawhttp.Request) bool {
		w := func(s string) { _, _ = io.WriteString(c, s) }
		switch req.Target {
		case "/early-hints":
			w("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
			w("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		case "/trailers":
			w("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n")
		case "/hop-by-hop":
			w("HTTP/1.1 200 OK\r\nConnection: X-Private, keep-alive\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok")
		case "/stream":
			w("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n6\r\nfirst\n\r\n")
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			w("6\r\nlater\n\r\n0\r\n\r\n")
		default:
			return rawhttp.OK(c, req)
		}
		return true
	}
}

// The lean forwarder sends the origin the client's head less what ends at
// the proxy, and gives the client what the ReverseProxy would have: 1xx as
// they come, trailers, no hop-by-hop fields, a chunked stream as it flows.
func TestForwardLean(t *testing.T) {
	h := newHarness(t, nil)
	release := make(chan struct{})
	o := h.rawTLSOrigin("origin.test", forwardOrigin(release))
	front := h.limitedFront(o.Addr)

	t.Run("request head", func(t *testing.T) {
		c := h.dialTLS1(front, "", "origin.test")
		_ = c.Send("GET /head?q=1 HTTP/1.1\r\nHost: origin.test\r\nConnection: keep-alive\r\nX-Forwarded-For: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\nX-Forwarded-Host: evil.example\r\nCookie: a=b\r\nAccept: */*\r\n\r\n")
		resp, err := c.ReadResponse("GET", 5*time.Second)
		if err != nil || resp.Status != 200 {
			t.Fatalf("response %+v, %v", resp, err)
		}
		reqs := o.Requests()
		got := reqs[len(reqs)-1]
		if got.Target != "/head?q=1" || got.Method != "GET" {
			t.Errorf("origin got %s %s", got.Method, got.Target)
		}
		for _, name := range []string{"X-Forwarded-For", "Forwarded", "X-Forwarded-Host", "Connection", "User-Agent"} {
			if v := got.Get(name); len(v) > 0 {
				t.Errorf("origin got %s: %q; it ends at the proxy (or was never sent)", name, v)
			}
		}
		if v := got.Get("Cookie"); len(v) != 1 || v[0] != "a=b" {
			t.Errorf("origin got Cookie %q, want a=b", v)
		}
		if v := got.Get("Accept"); len(v) != 1 || v[0] != "*/*" {
			t.Errorf("origin got Accept %q", v)
		}
		// A field the client names in Connection goes through the
		// ReverseProxy, which removes it; the request still succeeds.
		_ = c.Send("GET /head2 HTTP/1.1\r\nHost: origin.test\r\nConnection: X-Hop\r\nX-Hop: 1\r\nUser-Agent: t/1\r\n\r\n")
		if resp, err := c.ReadResponse("GET", 5*time.Second); err != nil || resp.Status != 200 {
			t.Fatalf("second response %+v, %v", resp, err)
		}
		reqs = o.Requests()
		got = reqs[len(reqs)-1]
		if got.Target != "/head2" || len(got.Get("X-Hop")) > 0 || len(got.Get("User-Agent")) != 1 {
			t.Errorf("origin got %s with X-Hop %q, User-Agent %q", got.Target, got.Get("X-Hop"), got.Get("User-Agent"))
		}
	})

	do := func(t *testing.T, path string, trace *httptrace.ClientTrace) *http.Response {
		t.Helper()
		conf := h.clientTLS()
		conf.ServerName, conf.NextProtos = "origin.test", []string{"http/1.1"}
		tr := &http.Transport{DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&tls.Dialer{Config: conf}).DialContext(ctx, "tcp", front)
		}}
		t.Cleanup(tr.CloseIdleConnections)
		req, _ := http.NewRequest("GET", "https://origin.test"+path, nil)
		if trace != nil {
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	t.Run("early hints", func(t *testing.T) {
		var got []string
		resp := do(t, "/early-hints", &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			got = append(got, strings.Join(h.Values("Link"), ","))
			if code != 103 {
				t.Errorf("1xx code %d", code)
			}
			return nil
		}})
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Errorf("final response %d %q", resp.StatusCode, body)
		}
		if len(got) != 1 || got[0] != "</style.css>; rel=preload" {
			t.Errorf("client saw 1xx Links %q, want the origin's one 103", got)
		}
		if resp.Header.Get("Link") != "" {
			t.Errorf("the 103's Link leaked into the final response: %q", resp.Header.Get("Link"))
		}
	})

	t.Run("trailers", func(t *testing.T) {
		resp := do(t, "/trailers", nil)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "hello" {
			t.Fatalf("body %q, %v", body, err)
		}
		if v := resp.Trailer.Get("X-Checksum"); v != "abc123" {
			t.Errorf("trailer X-Checksum %q, want abc123 (trailer %v)", v, resp.Trailer)
		}
	})

	t.Run("hop-by-hop response fields", func(t *testing.T) {
		resp := do(t, "/hop-by-hop", nil)
		defer resp.Body.Close()
		_, _ = io.ReadAll(resp.Body)
		for _, name := range []string{"X-Private", "Keep-Alive", "Proxy-Authenticate"} {
			if v := resp.Header.Values(name); len(v) > 0 {
				t.Errorf("client got %s: %q", name, v)
			}
		}
		if resp.Header.Get("X-Kept") != "yes" {
			t.Errorf("X-Kept lost: %v", resp.Header)
		}
	})

	t.Run("stream flows", func(t *testing.T) {
		resp := do(t, "/stream", nil)
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		first := make(chan string, 1)
		go func() {
			line, _ := br.ReadString('\n')
			first <- line
		}()
		select {
		case line := <-first:
			if line != "first\n" {
				t.Errorf("first line %q", line)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the first chunk did not reach the client while the origin held the rest")
		}
		close(release)
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "later\n" {
			t.Errorf("rest %q, %v", rest, err)
		}
	})
}

// A client that goes away while the lean path waits for the origin ends
// the origin's request at once (its connection is closed), not at
// UpstreamIdleTimeout — before the response head, and in a body that
// stalls — for HTTP/1.1 and HTTP/2 clients, and for an HTTP/1.1 upload
// once its body has been sent (on the lean path and, past its body
// limit, the Transport's).
func TestForwardLeanClientGoneAbortsUpstream(t *testing.T) {
	ended := make(chan string, 8)
	h := newHarness(t, func(c *Config) { c.UpstreamIdleTimeout = time.Minute })
	o := h.rawTLSOrigin("origin.test", func(c net.Conn, req *rawhttp.Request) bool {
		switch req.Target {
		case "/stall-head", "/stall-post":
			if req.Target == "/stall-post" && len(req.Body) == 0 {
				ended <- "/stall-post without its body"
				return false
			}
		case "/stall-body":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
		default:
			return rawhttp.OK(c, req)
		}
		_, _ = io.Copy(io.Discard, c) // until the proxy closes the connection
		ended <- req.Target
		return false
	})
	front := h.limitedFront(o.Addr)
	wait := func(t *testing.T, path string) {
		t.Helper()
		select {
		case got := <-ended:
			if got != path {
				t.Fatalf("origin's %s ended, want %s", got, path)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the origin's request still open 5s after the client went away", path)
		}
	}
	for _, path := range []string{"/stall-head", "/stall-body"} {
		t.Run("HTTP/1.1"+path, func(t *testing.T) {
			c := h.dialTLS1(front, "", "origin.test")
			_ = c.Send("GET " + path + " HTTP/1.1\r\nHost: origin.test\r\n\r\n")
			time.Sleep(200 * time.Millisecond) // the request reached the origin
			c.Close()
			wait(t, path)
		})
		t.Run("HTTP/2"+path, func(t *testing.T) {
			c := h.dialH2(front, "origin.test")
			_ = c.Headers(1, true, rawhttp.Request2("GET", "origin.test", path)...)
			time.Sleep(200 * time.Millisecond)
			_ = c.Close()
			wait(t, path)
		})
	}
	for _, n := range []int{1000, 64 << 10} {
		t.Run(fmt.Sprintf("HTTP/1.1 POST of %d bytes", n), func(t *testing.T) {
			c := h.dialTLS1(front, "", "origin.test")
			_ = c.Send(postHead("/stall-post", n) + strings.Repeat("u", n))
			time.Sleep(300 * time.Millisecond) // the request reached the origin
			c.Close()
			wait(t, "/stall-post")
		})
	}
	// The pipeline still serves on the lean path afterwards.
	c := h.dialTLS1(front, "", "origin.test")
	_ = c.Send("GET /ok HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	if resp, err := c.ReadResponse("GET", 5*time.Second); err != nil || resp.Status != 200 {
		t.Fatalf("after: %+v, %v", resp, err)
	}
}
