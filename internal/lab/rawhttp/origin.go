package rawhttp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// Responder answers one request the origin parsed. It writes whatever bytes
// it likes to c (a fault: a reset, a stall, a short body) and returns false
// to end the connection.
type Responder func(c net.Conn, req *Request) (keepAlive bool)

// OK is the default Responder: a 200 with a two-byte body, kept alive.
func OK(c net.Conn, _ *Request) bool {
	_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
	return err == nil
}

// Origin is a loopback server that records every byte it receives and each
// request its strict parser read. Close it (t.Cleanup does) to end it.
type Origin struct {
	Addr netip.AddrPort

	ln      net.Listener
	respond Responder
	tls     *tls.Config

	mu    sync.Mutex
	conns []*recordedConn
	reqs  []*Request
	errs  []error
	wg    sync.WaitGroup
	live  map[net.Conn]struct{}
}

// OriginOptions configure an Origin. With TLS set, connections are served
// over TLS with it (its NextProtos decide HTTP/2 vs 1.1; this origin speaks
// 1.1 only, so leave h2 out).
type OriginOptions struct {
	TLS     *tls.Config
	Respond Responder
}

// NewOrigin starts an origin on 127.0.0.1.
func NewOrigin(t testing.TB, opts OriginOptions) *Origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &Origin{ln: ln, respond: opts.Respond, tls: opts.TLS, live: map[net.Conn]struct{}{}}
	if o.respond == nil {
		o.respond = OK
	}
	o.Addr = ln.Addr().(*net.TCPAddr).AddrPort()
	o.wg.Add(1)
	go o.serve()
	t.Cleanup(o.Close)
	return o
}

// Close stops the origin and ends every connection.
func (o *Origin) Close() {
	_ = o.ln.Close()
	o.mu.Lock()
	for c := range o.live {
		_ = c.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
}

func (o *Origin) serve() {
	defer o.wg.Done()
	for {
		c, err := o.ln.Accept()
		if err != nil {
			return
		}
		rc := &recordedConn{Conn: c}
		o.mu.Lock()
		o.conns = append(o.conns, rc)
		o.live[c] = struct{}{}
		o.mu.Unlock()
		o.wg.Add(1)
		go o.serveConn(rc)
	}
}

func (o *Origin) serveConn(rc *recordedConn) {
	defer o.wg.Done()
	defer func() {
		_ = rc.Close()
		o.mu.Lock()
		delete(o.live, rc.Conn)
		o.mu.Unlock()
	}()
	var c net.Conn = rc
	if o.tls != nil {
		tc := tls.Server(rc, o.tls)
		if err := tc.Handshake(); err != nil {
			o.noteErr(err)
			return
		}
		c = tc
	}
	br := bufio.NewReader(c)
	for {
		req, err := ReadRequest(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				o.noteErr(err)
			}
			return
		}
		o.mu.Lock()
		o.reqs = append(o.reqs, req)
		o.mu.Unlock()
		if !o.respond(c, req) {
			return
		}
	}
}

func (o *Origin) noteErr(err error) {
	o.mu.Lock()
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}

// Requests are the complete requests received so far, in arrival order.
func (o *Origin) Requests() []*Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*Request(nil), o.reqs...)
}

// Errors are the parse errors (ambiguous or incomplete requests) so far.
func (o *Origin) Errors() []error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]error(nil), o.errs...)
}

// Received is every byte received on each connection (TLS: the
// ciphertext, so compare requests, not this, for TLS origins).
func (o *Origin) Received() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([][]byte, len(o.conns))
	for i, c := range o.conns {
		out[i] = c.bytes()
	}
	return out
}

// Conns is how many connections were accepted.
func (o *Origin) Conns() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.conns)
}

// Reset forgets what was recorded.
func (o *Origin) Reset() {
	o.mu.Lock()
	o.conns, o.reqs, o.errs = nil, nil, nil
	o.mu.Unlock()
}

type recordedConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *recordedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recordedConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf.Bytes()...)
}
