package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// wsEchoOrigin is a real WebSocket origin (gorilla) on loopback TLS: it
// echoes every message. When a connection's read ends, ended receives
// that error and then whether the proxy closed the connection (a read
// after the closing handshake met EOF within 3 s) rather than leaving it
// open.
type wsEchoOrigin struct {
	addr  netip.AddrPort
	ended chan wsOriginEnd
}

type wsOriginEnd struct {
	err          error
	proxyClosed  bool
	closedWithin time.Duration
}

func startWSEchoOrigin(t *testing.T, labCA *lab.TestCA) *wsEchoOrigin {
	t.Helper()
	cert, err := labCA.Leaf(lab.LeafOptions{Names: []string{"origin.test"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &wsEchoOrigin{addr: addrPortOf(ln.Addr()), ended: make(chan wsOriginEnd, 4)}
	up := websocket.Upgrader{}
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				mt, msg, err := c.ReadMessage()
				if err != nil {
					// gorilla has answered a close frame with its own;
					// the proxy, as the client, is now to close.
					start := time.Now()
					_ = c.NetConn().SetReadDeadline(time.Now().Add(3 * time.Second))
					_, rerr := c.NetConn().Read(make([]byte, 1))
					o.ended <- wsOriginEnd{err: err, proxyClosed: rerr != nil && !isTimeout(rerr), closedWithin: time.Since(start)}
					return
				}
				if err := c.WriteMessage(mt, msg); err != nil {
					return
				}
			}
		}),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return o
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialWSThrough opens a gorilla WebSocket client through the proxy's
// transparent path to dest.
func dialWSThrough(t *testing.T, h *harness, dest netip.AddrPort) *websocket.Conn {
	t.Helper()
	front := h.front(dest)
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.Certificate())
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", front)
		},
		TLSClientConfig:  &tls.Config{RootCAs: roots},
		HandshakeTimeout: 5 * time.Second,
	}
	c, resp, err := d.Dial("wss://origin.test/ws", nil)
	if err != nil {
		t.Fatalf("websocket dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// recordsNow is what the recorder holds at this moment (no waiting: the
// records of a drain must be in before Close returns).
func (c *captureRecorder) recordsNow() []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Record(nil), c.recs...)
}

// TestCloseDrainsWebSocketWithGoingAway: at Close, a WebSocket relay
// between a real client and a real origin (gorilla, which checks masking
// and answers close frames) is ended politely: the client gets a close
// frame with 1001, the origin gets one too (masked, or gorilla would fail
// the connection with 1002), both handshakes complete, both connections
// are closed by the proxy, and Close returns long before the grace period
// with the request's record already written.
func TestCloseDrainsWebSocketWithGoingAway(t *testing.T) {
	rec := &captureRecorder{}
	h := newHarness(t, func(c *Config) { c.Recorder = rec })
	o := startWSEchoOrigin(t, h.labCA)
	ws := dialWSThrough(t, h, o.addr)
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := ws.ReadMessage(); err != nil || string(got) != "before" {
		t.Fatalf("echo before the drain: %q %v", got, err)
	}

	const grace = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- h.srv.Close(ctx) }()

	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("client: %v, want a close frame with 1001", err)
	}
	// gorilla answered the close frame; the proxy then closes.
	_ = ws.NetConn().SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := ws.NetConn().Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("client: the connection stayed open after the closing handshake (%v)", err)
	}
	select {
	case end := <-o.ended:
		if !errors.As(end.err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("origin: %v, want a (masked) close frame with 1001", end.err)
		}
		if !end.proxyClosed {
			t.Fatalf("origin: the proxy did not close its connection after the closing handshake")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("origin: its connection did not end")
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(grace):
		t.Fatal("Close did not return within the grace period")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v for a tunnel that ended politely, want well under the grace %v", d, grace)
	}
	if n := h.srv.Stats.TunnelsCut.Load(); n != 0 {
		t.Fatalf("%d tunnels counted as cut, want 0", n)
	}
	var found bool
	for _, r := range rec.recordsNow() {
		if r.Path == "/ws" {
			found = true
			if r.Decision != "allow" || !strings.Contains(r.Reason, wentAwayReason) {
				t.Fatalf("record of /ws: decision %q reason %q, want allow and %q", r.Decision, r.Reason, wentAwayReason)
			}
		}
	}
	if !found {
		t.Fatal("the WebSocket request's record was not written before Close returned")
	}
}

// tlsEchoOrigin is an opaque TLS service on loopback (a leaf for name
// from the lab CA) echoing every byte: what a bypassed connection reaches.
func tlsEchoOrigin(t *testing.T, labCA *lab.TestCA, name string) netip.AddrPort {
	t.Helper()
	cert, err := labCA.Leaf(lab.LeafOptions{Names: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return addrPortOf(ln.Addr())
}

// ignoringWSClient opens a WebSocket through the proxy by hand and then
// ignores the closing handshake: it notes the close frame it receives but
// never answers, and keeps sending pings.
type ignoringWSClient struct {
	c       *tls.Conn
	gotCode chan uint16    // the close frame's status
	eof     chan time.Time // when its connection ended
}

func openIgnoringWSClient(t *testing.T, h *harness, dest netip.AddrPort) *ignoringWSClient {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.Certificate())
	c, err := tls.Dial("tcp", h.front(dest), &tls.Config{RootCAs: roots, ServerName: "origin.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: origin.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	w := &ignoringWSClient{c: c, gotCode: make(chan uint16, 1), eof: make(chan time.Time, 1)}
	go func() {
		for {
			op, _, p, err := readWSFrame(br)
			if err != nil {
				w.eof <- time.Now()
				return
			}
			if op == 8 && len(p) >= 2 {
				w.gotCode <- uint16(p[0])<<8 | uint16(p[1])
			}
		}
	}()
	return w
}

func (w *ignoringWSClient) ping() error {
	_, err := w.c.Write(wsFrame(true, 9, []byte("still here"), true))
	return err
}

// TestCloseCutsTunnelsAtGraceEnd: a WebSocket client that ignores the
// close frame and a spliced (bypassed, opaque) connection that stays open
// both keep their connections for the whole grace period (the spliced one
// still carries data both ways, the WebSocket client's frames are still
// taken), and are cut when it ends, not before; Close returns within the
// grace period plus a small bound, each cut is counted, and each record,
// written before Close returned, says why.
func TestCloseCutsTunnelsAtGraceEnd(t *testing.T) {
	rec := &captureRecorder{}
	h := newHarness(t, func(c *Config) {
		c.Recorder = rec
		c.Conn = ConnDeciderFunc(func(ci *ConnInfo) ConnDecision {
			if ci.ServerName() == "bypass.test" {
				return ConnDecision{Verdict: VerdictBypass, Reason: "test bypass"}
			}
			return ConnDecision{Verdict: VerdictIntercept}
		})
	})
	ws := openIgnoringWSClient(t, h, startWSEchoOrigin(t, h.labCA).addr)
	labRoots := x509.NewCertPool()
	labRoots.AddCert(h.labCA.Cert)
	sp, err := tls.Dial("tcp", h.front(tlsEchoOrigin(t, h.labCA, "bypass.test")), &tls.Config{RootCAs: labRoots, ServerName: "bypass.test"})
	if err != nil {
		t.Fatalf("spliced connection: %v", err)
	}
	defer sp.Close()
	echo := func(msg string) error {
		_ = sp.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(sp, msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(sp, got); err != nil {
			return err
		}
		if string(got) != msg {
			return fmt.Errorf("echo %q, want %q", got, msg)
		}
		return nil
	}
	if err := echo("before"); err != nil {
		t.Fatal(err)
	}

	const grace = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- h.srv.Close(ctx) }()

	select {
	case code := <-ws.gotCode:
		if code != wsCloseGoingAway {
			t.Fatalf("client: close frame %d, want 1001", code)
		}
	case <-time.After(time.Second):
		t.Fatal("client: no close frame at the start of the drain")
	}
	// The grace period: both stay open, the spliced one carries data.
	exchanges := 0
	for i := 0; time.Since(start) < grace-300*time.Millisecond; i++ {
		if err := echo(fmt.Sprintf("during %d", i)); err != nil {
			t.Fatalf("spliced connection %v into the grace period: %v", time.Since(start), err)
		}
		if err := ws.ping(); err != nil {
			t.Fatalf("WebSocket client %v into the grace period: %v", time.Since(start), err)
		}
		select {
		case at := <-ws.eof:
			t.Fatalf("WebSocket client's connection ended %v into the grace period", at.Sub(start))
		case err := <-closed:
			t.Fatalf("Close returned %v into the grace period: %v", time.Since(start), err)
		default:
		}
		exchanges++
		time.Sleep(100 * time.Millisecond)
	}
	if exchanges < 5 {
		t.Fatalf("only %d exchanges during the grace period", exchanges)
	}

	select {
	case err := <-closed:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close: %v, want the grace period's end", err)
		}
	case <-time.After(grace + 2*time.Second):
		t.Fatal("Close did not return within the grace period plus 2s")
	}
	took := time.Since(start)
	if took < grace || took > grace+cutRecordWait+500*time.Millisecond {
		t.Fatalf("Close returned after %v, want between the grace %v and %v later", took, grace, cutRecordWait+500*time.Millisecond)
	}
	records := rec.recordsNow()
	select {
	case at := <-ws.eof:
		if at.Sub(start) < grace-50*time.Millisecond {
			t.Fatalf("WebSocket client cut %v after Close began, before the grace %v", at.Sub(start), grace)
		}
	case <-time.After(time.Second):
		t.Fatal("WebSocket client's connection was not cut at the grace period's end")
	}
	_ = sp.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := sp.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("spliced connection still open after the grace period (%v)", err)
	}
	if n := h.srv.Stats.TunnelsCut.Load(); n != 2 {
		t.Fatalf("%d tunnels counted as cut, want 2", n)
	}
	var wsRec, spRec bool
	for _, r := range records {
		switch {
		case r.Path == "/ws":
			wsRec = true
			if r.Decision != "allow" || !strings.Contains(r.Reason, cutAtGraceOver) {
				t.Errorf("record of /ws: decision %q reason %q, want allow and %q", r.Decision, r.Reason, cutAtGraceOver)
			}
		case r.Decision == "bypass":
			spRec = true
			if !strings.Contains(r.Reason, "test bypass") || !strings.Contains(r.Reason, cutAtGraceOver) {
				t.Errorf("record of the spliced connection: reason %q, want its bypass reason and %q", r.Reason, cutAtGraceOver)
			}
		}
	}
	if !wsRec || !spRec {
		t.Fatalf("records written before Close returned: WebSocket %v, spliced %v; want both", wsRec, spRec)
	}
	cutLines := 0
	for _, l := range h.log.lines(t) {
		if r, _ := l["reason"].(string); strings.Contains(r, cutAtGraceOver) {
			cutLines++
		}
	}
	if cutLines != 2 {
		t.Fatalf("%d access-log lines say %q, want 2", cutLines, cutAtGraceOver)
	}
}

// TestCloseDrainLeaksNothing: after both drains (polite and cut) and their
// servers' teardown, the goroutines and file descriptors are back to what
// they were before.
func TestCloseDrainLeaksNothing(t *testing.T) {
	before, fdsBefore := settledCounts(t)
	t.Run("polite", TestCloseDrainsWebSocketWithGoingAway)
	t.Run("cut", TestCloseCutsTunnelsAtGraceEnd)
	var g, fds int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		runtime.GC()
		if g, fds = runtime.NumGoroutine(), countFDs(t); g <= before && fds <= fdsBefore {
			t.Logf("goroutines %d (before %d), fds %d (before %d)", g, before, fds, fdsBefore)
			return
		}
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("goroutines %d (before %d), fds %d (before %d)\n%s", g, before, fds, fdsBefore, buf[:runtime.Stack(buf, true)])
}

// settledCounts waits for goroutines of earlier tests to end (bounded)
// and returns the goroutine and descriptor counts.
func settledCounts(t *testing.T) (int, int) {
	g := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == g {
			break
		}
		g = n
	}
	return g, countFDs(t)
}

// TestWSFramerGoAwayAtFrameBoundary: a close frame armed in the middle of
// a frame goes out right after that frame (never inside it), what follows
// is dropped, and the peer's answering close frame is noticed; one armed
// at a boundary goes out at once; none is armed after a close frame passed.
func TestWSFramerGoAwayAtFrameBoundary(t *testing.T) {
	big := wsFrame(true, 2, make([]byte, 3000), false)
	next := wsFrame(true, 1, []byte("after"), false)
	closeFrame := wsCloseFrame(wsCloseGoingAway, goingAwayReason, false)
	answer := wsFrame(true, 8, wsClosePayload(1001, ""), false)

	f := wsFramer{maxFrame: 1 << 20, maxMessage: 1 << 20}
	var out strings.Builder
	feed := func(p []byte) {
		t.Helper()
		if v, err := f.feed(&out, p); v != nil || err != nil {
			t.Fatalf("feed: %v %v", v, err)
		}
	}
	feed(big[:1000])
	f.arm(closeFrame)
	feed(nil)
	if out.Len() != 1000 || f.sentClose {
		t.Fatalf("armed mid-frame: %d bytes out, close sent %v; want the 1000 fed, no close", out.Len(), f.sentClose)
	}
	// The rest of the frame, the next one and the answer, in odd pieces.
	rest := append(append(append([]byte{}, big[1000:]...), next...), answer...)
	for i := 0; i < len(rest); i += 7 {
		feed(rest[i:min(i+7, len(rest))])
	}
	want := append(append([]byte{}, big...), closeFrame...)
	if out.String() != string(want) {
		t.Fatalf("got %d bytes, want the whole frame then the close frame (%d bytes)", out.Len(), len(want))
	}
	if !f.sentClose || !f.sawClose || !f.dropping {
		t.Fatalf("sent %v saw %v dropping %v, want all", f.sentClose, f.sawClose, f.dropping)
	}

	// At a boundary (a header held back counts as one): at once.
	g := wsFramer{maxFrame: 1 << 20, maxMessage: 1 << 20}
	out.Reset()
	if _, err := g.feed(&out, next[:1]); err != nil {
		t.Fatal(err)
	}
	g.arm(closeFrame)
	if _, err := g.feed(&out, nil); err != nil || out.String() != string(closeFrame) {
		t.Fatalf("armed at a boundary: got %x (%v), want the close frame alone", out.String(), err)
	}

	// A close frame already passed this way: none of the proxy's follows.
	k := wsFramer{maxFrame: 1 << 20, maxMessage: 1 << 20}
	out.Reset()
	if _, err := k.feed(&out, answer); err != nil {
		t.Fatal(err)
	}
	k.arm(closeFrame)
	if _, err := k.feed(&out, nil); err != nil || out.String() != string(answer) || k.dropping {
		t.Fatalf("after a passed close frame: got %x (%v) dropping %v, want only that frame", out.String(), err, k.dropping)
	}
}
