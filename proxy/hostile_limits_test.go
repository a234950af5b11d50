package proxy

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/portcullis-gw/portcullis/internal/lab/rawhttp"
)

func manyHeaders(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "X-H%d: v\r\n", i)
	}
	return b.String()
}

// Header bytes and header count are bounded (defaults 64 KiB / 100) on
// HTTP/1.1 and HTTP/2, WebSocket upgrades included; refusals are 431,
// logged, and nothing reaches the origin.
func TestHostileHeaderLimits(t *testing.T) {
	h := newHarness(t, nil) // the defaults
	if h.srv.cfg.MaxHeaderBytes != 64<<10 || h.srv.cfg.MaxHeaderCount != 100 {
		t.Fatalf("defaults %d bytes / %d headers", h.srv.cfg.MaxHeaderBytes, h.srv.cfg.MaxHeaderCount)
	}
	o := h.rawOrigin(nil)
	front := h.limitedFront(o.Addr)
	send := func(t *testing.T, raw string) int {
		t.Helper()
		c, err := rawhttp.Dial(front, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Send(raw); err != nil {
			t.Fatal(err)
		}
		resp, err := c.ReadResponse("GET", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Status
	}
	big := "X-Big: " + strings.Repeat("a", 70<<10) + "\r\n"
	for _, tc := range []struct {
		name string
		raw  string
		want int
	}{
		{"100 headers", "GET / HTTP/1.1\r\nHost: origin.test\r\n" + manyHeaders(100) + "\r\n", 200},
		{"101 headers", "GET / HTTP/1.1\r\nHost: origin.test\r\n" + manyHeaders(101) + "\r\n", 431},
		{"32 KiB of headers", "GET / HTTP/1.1\r\nHost: origin.test\r\nX-Big: " + strings.Repeat("a", 32<<10) + "\r\n\r\n", 200},
		{"70 KiB of headers", "GET / HTTP/1.1\r\nHost: origin.test\r\n" + big + "\r\n", 431},
		{"WebSocket upgrade with 101 headers", "GET /ws HTTP/1.1\r\nHost: origin.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + manyHeaders(97) + "\r\n", 431},
		{"WebSocket upgrade with 70 KiB of headers", "GET /ws HTTP/1.1\r\nHost: origin.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" + big + "\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o.Reset()
			if got := send(t, tc.raw); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if tc.want != 200 && o.Conns() != 0 {
				t.Errorf("origin reached by a refused request")
			}
		})
	}
	if n := len(h.logLines("reason", "header fields, over the limit of 100")); n != 2 {
		t.Errorf("%d access-log lines for the header-count refusals, want 2", n)
	}

	t.Run("HTTP/2", func(t *testing.T) {
		to := h.rawTLSOrigin("origin.test", nil)
		c := h.dialH2(h.limitedFront(to.Addr), "origin.test")
		if got := c.Settings[http2.SettingMaxHeaderListSize]; got < 64<<10 || got > 80<<10 {
			t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d, want about 64 KiB", got)
		}
		var kv []string
		for i := range 101 {
			kv = append(kv, fmt.Sprintf("x-h%d", i), "v")
		}
		_ = c.Headers(1, true, rawhttp.Request2("GET", "origin.test", "/", kv...)...)
		if res := c.Await(1, 5*time.Second); res.Status != 431 {
			t.Errorf("101 fields: %+v, want 431", res)
		}
		_ = c.Headers(3, true, rawhttp.Request2("GET", "origin.test", "/", "x-big", strings.Repeat("a", 70<<10))...)
		if res := c.Await(3, 5*time.Second); res.Status != 431 && !res.GoAway && !res.Reset {
			t.Errorf("70 KiB field: %+v, want 431 or a reset", res)
		}
		if n := len(to.Requests()); n != 0 {
			t.Errorf("origin got %d request(s)", n)
		}
	})
}

// The per-client connection cap (default 256) resets connections over it at
// accept; other clients are not affected and a closed connection frees its
// slot. Tested through Server.Serve, the transparent listener's own path.
func TestHostilePerClientConnectionCap(t *testing.T) {
	if def := newHarness(t, nil).srv.cfg.MaxConnsPerClient; def != 256 {
		t.Fatalf("default cap %d", def)
	}
	h := newHarness(t, func(c *Config) { c.MaxConnsPerClient = 4 })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.srv.Serve(ln) }()
	addr := ln.Addr().String()
	dial := func(src string) *rawhttp.Client {
		c, err := rawhttp.Dial(addr, src)
		if err != nil {
			t.Fatalf("dial from %s: %v (held %d, refused %d)", src, err, h.srv.limits.held(netip.MustParseAddr(src)), h.srv.Limits().ConnsOverClientCap.Load())
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	var held []*rawhttp.Client
	for range 4 {
		held = append(held, dial("127.0.0.2"))
	}
	src2 := netip.MustParseAddr("127.0.0.2")
	if !waitFor2(2*time.Second, func() bool { return h.srv.limits.held(src2) == 4 }) {
		t.Fatalf("held %d", h.srv.limits.held(src2))
	}
	if over, err := rawhttp.Dial(addr, "127.0.0.2"); err == nil && !over.Closed(2*time.Second) {
		t.Fatal("fifth connection from 127.0.0.2 was not closed")
	}
	if other := dial("127.0.0.3"); other.Closed(300 * time.Millisecond) {
		t.Fatal("a connection from another client was closed")
	}
	_ = held[0].Close()
	if !waitFor2(2*time.Second, func() bool { return h.srv.limits.held(src2) == 3 }) {
		t.Fatalf("closing a connection did not free its slot: held %d", h.srv.limits.held(src2))
	}
	if again := dial("127.0.0.2"); again.Closed(300 * time.Millisecond) {
		t.Fatal("a freed slot was not reusable")
	}
	if n := h.srv.Limits().ConnsOverClientCap.Load(); n != 1 {
		t.Errorf("ConnsOverClientCap = %d, want 1", n)
	}
	if len(h.logLines("reason", "per-client connection limit (4) reached by 127.0.0.2")) != 1 {
		t.Errorf("refusal not logged: %v", h.log.lines(t))
	}

	// The explicit listener has the same cap.
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.srv.ServeExplicit(eln) }()
	for range 4 {
		c, err := rawhttp.Dial(eln.Addr().String(), "127.0.0.4")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	src4 := netip.MustParseAddr("127.0.0.4")
	if !waitFor2(2*time.Second, func() bool { return h.srv.limits.held(src4) == 4 }) {
		t.Fatalf("explicit listener: held %d", h.srv.limits.held(src4))
	}
	// (A reset that comes before the dial returns is a refusal too.)
	if over, err := rawhttp.Dial(eln.Addr().String(), "127.0.0.4"); err == nil && !over.Closed(2*time.Second) {
		t.Fatal("fifth explicit-proxy connection from 127.0.0.4 was not closed")
	}

	// IPv6 clients are counted by /64.
	if clientKey(netip.MustParseAddr("2001:db8::1")) != clientKey(netip.MustParseAddr("2001:db8::ffff:2")) {
		t.Error("two addresses of one /64 counted apart")
	}
}

// Slowloris: headers that trickle in are cut at ReadHeaderTimeout (default
// 10s), on plain and TLS connections; idle keep-alive connections at
// IdleTimeout.
func TestHostileHeaderAndIdleTimeouts(t *testing.T) {
	if d := newHarness(t, nil).srv.cfg.ReadHeaderTimeout; d != 10*time.Second {
		t.Fatalf("default ReadHeaderTimeout %s", d)
	}
	const timeout = 400 * time.Millisecond
	h := newHarness(t, func(c *Config) { c.ReadHeaderTimeout = timeout; c.IdleTimeout = timeout })
	o := h.rawTLSOrigin("origin.test", nil)
	front := h.limitedFront(o.Addr)
	po := h.rawOrigin(nil)
	pfront := h.limitedFront(po.Addr)
	trickle := func(t *testing.T, c *rawhttp.Client) time.Duration {
		start := time.Now()
		msg := "GET / HTTP/1.1\r\nHost: origin.test\r\nX-Slow: " + strings.Repeat("a", 100)
		for i := 0; i < len(msg); i++ {
			if err := c.Send(msg[i : i+1]); err != nil {
				return time.Since(start)
			}
			time.Sleep(50 * time.Millisecond)
			if time.Since(start) > 5*time.Second {
				t.Fatal("slowloris connection not cut within 5s")
			}
		}
		t.Fatal("whole slow header sent without being cut")
		return 0
	}
	// cutInTime: a trickled head is cut at about ReadHeaderTimeout.
	cutInTime := func(t *testing.T, c *rawhttp.Client) {
		t.Helper()
		if d := trickle(t, c); d < timeout || d > timeout+time.Second {
			t.Errorf("cut after %s, want about %s", d, timeout)
		}
	}
	// served: one request on c is answered 200.
	served := func(t *testing.T, c *rawhttp.Client) {
		t.Helper()
		_ = c.Send(nextReq)
		if resp, err := c.ReadResponse("GET", 5*time.Second); err != nil || resp.Status != 200 {
			t.Fatalf("%v %+v", err, resp)
		}
	}
	t.Run("plain slowloris", func(t *testing.T) {
		c, err := rawhttp.Dial(pfront, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cutInTime(t, c)
	})
	t.Run("TLS slowloris", func(t *testing.T) {
		c := h.dialTLS1(front, "", "origin.test")
		cutInTime(t, c)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := h.dialTLS1(front, "", "origin.test")
		served(t, c)
		start := time.Now()
		if !c.Closed(5 * time.Second) {
			t.Fatal("idle connection not closed")
		}
		if d := time.Since(start); d < timeout*3/4 || d > timeout+time.Second {
			t.Errorf("idle connection closed after %s, want about %s", d, timeout)
		}
	})
	if n := len(o.Requests()) + len(po.Requests()); n != 1 {
		t.Errorf("origins got %d requests, want only the idle test's one", n)
	}
	// With a long idle timeout, a head that trickles in is still cut at
	// ReadHeaderTimeout: the connection's first request and one after a
	// served request (the pipeline's own HTTP/1.1 loop sets the header
	// deadline only when the head is not already buffered).
	lh := newHarness(t, func(c *Config) { c.ReadHeaderTimeout = timeout; c.IdleTimeout = 30 * time.Second })
	lo := lh.rawTLSOrigin("origin.test", nil)
	lfront := lh.limitedFront(lo.Addr)
	t.Run("TLS slowloris, long idle timeout", func(t *testing.T) {
		c := lh.dialTLS1(lfront, "", "origin.test")
		cutInTime(t, c)
	})
	t.Run("TLS slowloris after a request, long idle timeout", func(t *testing.T) {
		c := lh.dialTLS1(lfront, "", "origin.test")
		served(t, c)
		cutInTime(t, c)
	})
	if n := len(lo.Requests()); n != 1 {
		t.Errorf("origin got %d requests, want only the first served one", n)
	}
}

// HTTP/2: MaxConcurrentStreams (default 100) is advertised and enforced.
func TestHostileHTTP2StreamLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxConcurrentStreams = 3 })
	if d := newHarness(t, nil).srv.cfg.MaxConcurrentStreams; d != 100 {
		t.Fatalf("default MaxConcurrentStreams %d", d)
	}
	o := h.rawTLSOrigin("origin.test", nil)
	c := h.dialH2(h.limitedFront(o.Addr), "origin.test")
	if got := c.Settings[http2.SettingMaxConcurrentStreams]; got != 3 {
		t.Fatalf("advertised %d streams, want 3", got)
	}
	if got := c.Settings[http2.SettingMaxFrameSize]; got != 0 && got != 16<<10 {
		t.Errorf("advertised max frame size %d, want 16 KiB", got)
	}
	// Three uploads held open (no END_STREAM), then a fourth stream.
	for id := uint32(1); id <= 5; id += 2 {
		_ = c.Headers(id, false, rawhttp.Request2("POST", "origin.test", "/", "content-length", "1")...)
	}
	_ = c.Headers(7, true, rawhttp.Request2("GET", "origin.test", "/")...)
	res := c.Await(7, 5*time.Second)
	if !res.Reset || (res.Code != http2.ErrCodeProtocol && res.Code != http2.ErrCodeRefusedStream) {
		t.Fatalf("fourth concurrent stream: %+v, want RST_STREAM", res)
	}
	// Finishing one frees a stream.
	_ = c.Framer.WriteData(1, true, []byte("x"))
	if res := c.Await(1, 5*time.Second); res.Status != 200 {
		t.Fatalf("stream 1: %+v", res)
	}
	_ = c.Headers(9, true, rawhttp.Request2("GET", "origin.test", "/")...)
	if res := c.Await(9, 5*time.Second); res.Status != 200 {
		t.Fatalf("stream after one finished: %+v", res)
	}
}

// Rapid reset (CVE-2023-44487): a client that opens and resets thousands of
// streams has its connection closed, and the appliance keeps serving others
// meanwhile.
func TestHostileHTTP2RapidReset(t *testing.T) {
	h := newHarness(t, nil)
	dest := h.origin(nil, "origin.test")
	front := h.limitedFront(dest)
	good := h.client(dest, true)
	var served, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := good.Get("https://origin.test/")
			if err != nil {
				failed.Add(1)
				continue
			}
			resp.Body.Close()
			served.Add(1)
		}
	}()
	c := h.dialH2(front, "origin.test")
	block := c.Encode(rawhttp.Request2("GET", "origin.test", "/")...)
	const streams = 5000
	var sent int
	var werr error
	for id := uint32(1); sent < streams; id += 2 {
		if werr = c.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); werr != nil {
			break
		}
		if werr = c.Framer.WriteRSTStream(id, http2.ErrCodeCancel); werr != nil {
			break
		}
		sent++
	}
	code, sawGoAway, err := c.WaitClosed(10 * time.Second)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("after %d reset streams the connection is still open", sent)
	}
	t.Logf("attacker: %d streams opened and reset before the write side failed (%v); GOAWAY %v %v; resets-flood closes %d; other client: %d served, %d failed",
		sent, werr, sawGoAway, code, h.srv.Limits().ResetFloods.Load(), served.Load(), failed.Load())
	if served.Load() == 0 || failed.Load() != 0 {
		t.Errorf("the other client: %d served, %d failed", served.Load(), failed.Load())
	}
	if _, body := get(t, good, "https://origin.test/"); !strings.Contains(body, "hello") {
		t.Error("not serving after the attack")
	}
}

// CONTINUATION flood (CVE-2024-27316 style): a header block that never
// ends is cut once it passes the header limit, and memory stays bounded.
func TestHostileHTTP2ContinuationFlood(t *testing.T) {
	h := newHarness(t, nil)
	o := h.rawTLSOrigin("origin.test", nil)
	c := h.dialH2(h.limitedFront(o.Addr), "origin.test")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	closed := make(chan struct{})
	go func() {
		_, _, _ = c.WaitClosed(30 * time.Second)
		close(closed)
	}()
	var enc bytes.Buffer
	e := hpack.NewEncoder(&enc)
	for _, f := range rawhttp.Request2("GET", "origin.test", "/") {
		_ = e.WriteField(f)
	}
	if err := c.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc.Bytes(), EndHeaders: false}); err != nil {
		t.Fatal(err)
	}
	value := strings.Repeat("v", 1000)
	var sent int
	var werr error
	for sent < 64<<20 {
		select {
		case <-closed:
			werr = fmt.Errorf("server closed the connection")
		default:
		}
		if werr != nil {
			break
		}
		enc.Reset()
		for i := range 15 {
			_ = e.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-f%d", sent+i), Value: value})
		}
		if werr = c.Framer.WriteContinuation(1, false, enc.Bytes()); werr != nil {
			break
		}
		sent += enc.Len()
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("connection still open after %d bytes of CONTINUATION", sent)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("connection cut after %d bytes of header block (%v); heap in use grew %d bytes", sent, werr, grew)
	// What the client wrote includes what loopback's socket buffers took
	// after the server closed; the flood goes on to 64 MiB if never cut.
	if sent > 16<<20 {
		t.Errorf("%d bytes of CONTINUATION written before the cut, want far under the 64 MiB flood", sent)
	}
	if grew > 8<<20 {
		t.Errorf("heap grew %d bytes", grew)
	}
	if o.Conns() != 0 {
		t.Error("origin was reached")
	}
}
