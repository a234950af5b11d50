package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
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
