package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// The pipeline serves HTTP/1.1 connections itself (h1conn) for as long as
// their requests are plain: a request line in origin form, HTTP/1.1, header
// fields that are all well-formed tokens and values, exactly one valid
// Host, no body or one framed by a single plain Content-Length (no
// Transfer-Encoding), no Expect and no upgrade (readPlainHead; the body is
// an h1Body). That is most of what browsers and apps send, and for it
// net/http's server costs about twenty allocations, a goroutine, a header
// copy and a background read per request, which this loop does not.
//
// At the first request that is anything else — a chunked or oddly framed
// body, a malformed or hostile head, a head larger than the read buffer,
// an upgrade — the connection is handed, with every byte read from it so
// far, to the shared http.Server (replayConn), which reads that request
// again from its first byte and serves the connection from then on. So
// whatever net/http refuses, answers or normalises is still refused,
// answered or normalised by net/http, and the hostile-client tests hold on
// both.
//
// What the loop does, as net/http's server does for such requests:
//   - IdleTimeout while waiting for a request, ReadHeaderTimeout from its
//     first byte; a client that times out, closes or resets is closed
//     without an answer;
//   - the request context ends when the handler returns, and earlier when
//     the client goes away while the handler runs (a read watches the
//     connection from clientWatchDelay into the handler, or from the end
//     of its body if that comes later, when nothing else is buffered; a
//     pipelined request stays in the buffer);
//   - a body is read under BodyReadTimeout per read, and what the handler
//     left of it is read and dropped, up to 256 KiB, before the next
//     request (more closes the connection, announced when the response
//     has not started);
//   - responses: Date added, Content-Type sniffed when absent,
//     Content-Length computed for a body that ends within the first write
//     buffer, chunked otherwise, trailers, 1xx sent at once, HEAD bodies
//     dropped, the fields of 204/304 responses suppressed, header fields
//     written sorted with CR/LF folded to spaces and invalid names skipped;
//   - the connection closes after a response when the client asked, the
//     handler set "Connection: close", the body fell short of its
//     Content-Length, the handler aborted (http.ErrAbortHandler) or the
//     server is shutting down.

// clientWatchDelay is how long a request runs before the connection is
// watched for the client going away: long enough that a quick request
// never pays for the watch, short enough that a stalled origin is
// abandoned at once when its client leaves.
const clientWatchDelay = 50 * time.Millisecond

// h1Buffer is the size of a connection's read buffer, and so of the
// largest head the loop parses itself.
const h1Buffer = 4 << 10

var (
	h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, h1Buffer) }}
	h1Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, h1Buffer) }}
)

// aLongTimeAgo is a deadline in the past: it wakes a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// h1conn is one HTTP/1.1 connection served by the loop.
type h1conn struct {
	s   *Server
	c   net.Conn // *tls.Conn or *peekedConn
	ci  *ConnInfo
	br  *bufio.Reader
	bw  *bufio.Writer
	ctx context.Context // the connection's: ConnInfo and connection guard

	remote   string
	tlsState *tls.ConnectionState

	// header is the response header map, cleared and reused per request.
	header http.Header
	// hold is a response's body held before its head (h1Writer).
	hold [h1Hold]byte
	// cur is the context of the request being served, for h1Out; body
	// its body, when it has one (h1Body).
	cur  *h1ReqCtx
	body *h1Body

	// state is h1Idle between requests, h1Active while one is read or
	// served; shutdown closes idle connections (drain.go's role for
	// net/http's).
	state atomic.Int32

	// The client watch (watchStart, watchAfterBody, unwatch): the timer
	// and the fields below are used under watchMu, since a body's end may
	// come on the transport's goroutine.
	watchMu    sync.Mutex
	watchState int
	watchTimer *time.Timer
	watchDone  chan struct{}
	watchReq   *h1ReqCtx
	gone       atomic.Bool // the client's side ended while a handler ran
}

const (
	h1Idle int32 = iota
	h1Active
)

const (
	h1WatchOff = iota
	// h1WatchAfterBody: the request's body is being read; the watch is
	// armed when it has all been (watchAfterBody), unless the handler
	// returned first.
	h1WatchAfterBody
	h1WatchArmed
	h1WatchReading
)

// h1Conns is the set of connections the loop serves, for shutdown.
type h1Conns struct {
	mu    sync.Mutex
	conns map[*h1conn]struct{}
	done  chan struct{} // closed when the set empties during shutdown
	quit  bool
}

func (cs *h1Conns) add(hc *h1conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.quit {
		return false
	}
	if cs.conns == nil {
		cs.conns = make(map[*h1conn]struct{})
	}
	cs.conns[hc] = struct{}{}
	return true
}

func (cs *h1Conns) remove(hc *h1conn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.conns, hc)
	if cs.quit && len(cs.conns) == 0 && cs.done != nil {
		close(cs.done)
		cs.done = nil
	}
}

// shutdown closes the idle connections at once and the others after their
// response, and waits for them until ctx ends; then it closes what is left.
func (cs *h1Conns) shutdown(ctx context.Context) error {
	cs.mu.Lock()
	cs.quit = true
	var done chan struct{}
	if len(cs.conns) > 0 {
		done = make(chan struct{})
		cs.done = done
	}
	for hc := range cs.conns {
		if hc.state.Load() == h1Idle {
			_ = hc.c.SetReadDeadline(aLongTimeAgo)
		}
	}
	cs.mu.Unlock()
	if done == nil {
		return nil
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			cs.mu.Lock()
			for hc := range cs.conns {
				_ = hc.c.Close()
			}
			cs.mu.Unlock()
			return ctx.Err()
		case <-tick.C:
			// A connection that went idle after the first pass.
			cs.mu.Lock()
			for hc := range cs.conns {
				if hc.state.Load() == h1Idle {
					_ = hc.c.SetReadDeadline(aLongTimeAgo)
				}
			}
			cs.mu.Unlock()
		}
	}
}

// serveHTTP1 serves an intercepted connection that did not negotiate h2:
// the loop while its requests are plain, the shared http.Server after.
func (s *Server) serveHTTP1(c net.Conn, ci *ConnInfo) {
	hc := &h1conn{s: s, c: c, ci: ci, header: make(http.Header)}
	if !s.h1conns.add(hc) {
		_ = c.Close() // shutting down
		return
	}
	hc.ctx = s.limitConnContext(context.Background(), c)
	hc.remote = c.RemoteAddr().String()
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		hc.tlsState = &st
	}
	hc.br = h1Readers.Get().(*bufio.Reader)
	hc.br.Reset(c)
	handed, gentle := hc.serve()
	hc.unwatchTimer()
	s.h1conns.remove(hc)
	if gentle {
		hc.closeGently()
	}
	hc.br.Reset(nil)
	h1Readers.Put(hc.br)
	if !handed {
		_ = c.Close()
	}
}

// closeGently ends a connection the loop chose to close after a response:
// the sending side first (TLS close_notify, then FIN), then whatever the
// client still sends is read and dropped until it closes too, for at most
// closeLinger. Closing with unread bytes would reset the connection, and
// a reset can destroy the response before the client has read it (the
// reason net/http pauses after its FIN as well).
func (hc *h1conn) closeGently() {
	if cw, ok := hc.c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if tc, ok := hc.c.(*tls.Conn); ok {
		if cw, ok := tc.NetConn().(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}
	_ = hc.c.SetReadDeadline(time.Now().Add(closeLinger))
	_, _ = io.Copy(io.Discard, io.LimitReader(hc.c, 256<<10))
}

// closeLinger bounds closeGently's wait for the client's close.
const closeLinger = 500 * time.Millisecond

// serve runs the connection's requests. It reports whether it handed the
// connection to the http.Server (which then owns it), and whether the
// connection ends after a complete response (closed gently).
func (hc *h1conn) serve() (handed, gentle bool) {
	s := hc.s
	for {
		hc.state.Store(h1Idle)
		if s.closing.Load() {
			return false, false
		}
		if s.cfg.IdleTimeout > 0 {
			_ = hc.c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		if _, err := hc.br.Peek(1); err != nil {
			return false, false
		}
		hc.state.Store(h1Active)
		if !headBuffered(hc.br) {
			// The head comes in parts: ReadHeaderTimeout bounds it
			// (slowloris). A head already here needs no timer.
			_ = hc.c.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
		}
		hr := &h1Request{}
		ok, err := readPlainHead(hc.br, &hr.req, &hr.url, s.cfg.MaxHeaderCount, s.cfg.MaxHeaderBytes)
		if err != nil {
			// Timed out, closed or reset part-way: net/http closes such a
			// connection without an answer, and so does the loop.
			return false, false
		}
		if !ok {
			return hc.handOver(), false
		}
		_ = hc.c.SetReadDeadline(time.Time{})
		s.Stats.H1Plain.Add(1)
		if keep, clean := hc.serveRequest(hr); !keep {
			return false, clean
		}
	}
}

// headBuffered reports whether br already holds a blank line (CRLF CRLF):
// readPlainHead then reads no socket, as it looks no further than the
// first one.
func headBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	return bytes.Contains(buf, crlfCRLF)
}

// handOver gives the connection, from the first byte of the request the
// loop did not take, to the http.Server.
func (hc *h1conn) handOver() bool {
	_ = hc.c.SetReadDeadline(time.Time{})
	n := hc.br.Buffered()
	buf, _ := hc.br.Peek(n)
	rc := &replayConn{Conn: hc.c, ci: hc.ci, buf: append([]byte(nil), buf...)}
	hc.s.h1conns.remove(hc)
	hc.s.Stats.H1HandedOver.Add(1)
	hc.s.inbox.push(rc)
	return true
}

// h1Request is what the loop allocates for one request, as one object.
type h1Request struct {
	req  http.Request
	url  url.URL
	w    h1Writer
	ctx  h1ReqCtx
	body h1Body
}

// serveRequest runs one request through the pipeline and writes its
// response. It reports whether the connection stays open and, when not,
// whether the response went out whole (the connection is then closed
// gently).
func (hc *h1conn) serveRequest(hr *h1Request) (keep, clean bool) {
	s := hc.s
	r := &hr.req
	r.RemoteAddr = hc.remote
	r.TLS = hc.tlsState
	hr.ctx.parent = hc.ctx
	clear(hc.header)
	w := &hr.w
	*w = h1Writer{hc: hc, req: r, header: hc.header, status: 0, contentLength: -1}
	if s.closing.Load() {
		w.closeAfter = true
	}
	hc.cur = &hr.ctx
	hc.body = nil
	var parent context.Context = &hr.ctx
	hasBody := r.ContentLength > 0
	if hasBody {
		// The body's bytes follow in br (h1Body), read under the same
		// per-read deadline as net/http's request bodies (clientBody).
		hr.body = h1Body{hc: hc, left: r.ContentLength}
		hc.body = &hr.body
		cb := s.newClientBody(&hr.body, &hr.body)
		r.Body = cb
		parent = context.WithValue(parent, clientBodyKey{}, cb)
		// The watch reads the connection, so it is not started while the
		// body may still be read from it (a client that goes away
		// mid-body is noticed by the body's read), but once the body's
		// last byte is read: an upload the origin is slow to answer is
		// then ended when its client goes away, as a GET is.
		hc.watchPending(&hr.ctx)
	} else if hc.br.Buffered() == 0 {
		hc.watchStart(&hr.ctx)
	}
	aborted := hc.runHandler(parent, w, r)
	hc.unwatch()
	hr.ctx.cancel(context.Canceled)
	hc.cur = nil
	if aborted {
		if w.committed {
			_ = hc.bw.Flush()
		}
		if hasBody {
			hr.body.end(false)
		}
		hc.releaseWriter()
		return false, false
	}
	w.finish()
	err := w.flushErr
	if hc.bw != nil {
		if ferr := hc.bw.Flush(); err == nil {
			err = ferr
		}
	}
	hc.releaseWriter()
	keep = err == nil && !hc.gone.Load() && !w.closeAfter && !r.Close
	if hasBody && !hr.body.end(keep) {
		keep = false
	}
	if err != nil || hc.gone.Load() {
		return false, false
	}
	return keep, true
}

// runHandler calls the pipeline, reporting whether the handler aborted
// (panicked): http.ErrAbortHandler silently, anything else logged with its
// stack, as net/http does.
func (hc *h1conn) runHandler(parent context.Context, w *h1Writer, r *http.Request) (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			aborted = true
			if p != http.ErrAbortHandler {
				hc.s.cfg.Log.Error("http: panic serving request", "client", hc.remote, "panic", p, "stack", string(debug.Stack()))
			}
		}
	}()
	hc.s.serveRequestIn(parent, w, r)
	return false
}

func (hc *h1conn) writer() *bufio.Writer {
	if hc.bw == nil {
		hc.bw = h1Writers.Get().(*bufio.Writer)
		hc.bw.Reset(h1Out{hc})
	}
	return hc.bw
}

func (hc *h1conn) releaseWriter() {
	if hc.bw != nil {
		hc.bw.Reset(nil)
		h1Writers.Put(hc.bw)
		hc.bw = nil
	}
}

// watchStart arms the client watch for a request.
func (hc *h1conn) watchStart(rc *h1ReqCtx) {
	hc.watchMu.Lock()
	hc.armWatchLocked(rc)
	hc.watchMu.Unlock()
}

func (hc *h1conn) armWatchLocked(rc *h1ReqCtx) {
	hc.watchState, hc.watchReq = h1WatchArmed, rc
	if hc.watchTimer == nil {
		hc.watchTimer = time.AfterFunc(clientWatchDelay, hc.watchFire)
	} else {
		hc.watchTimer.Reset(clientWatchDelay)
	}
}

// watchPending is watchStart for a request with a body: the watch is armed
// by watchAfterBody.
func (hc *h1conn) watchPending(rc *h1ReqCtx) {
	hc.watchMu.Lock()
	hc.watchState, hc.watchReq = h1WatchAfterBody, rc
	hc.watchMu.Unlock()
}

// watchAfterBody arms the watch of a request whose body has just been read
// to its end (h1Body.Read, holding the body's lock, so nothing reads the
// connection meanwhile), if the request is still being served and nothing
// of the client's next request is buffered (that request is not read
// before this one's response).
func (hc *h1conn) watchAfterBody() {
	hc.watchMu.Lock()
	if hc.watchState == h1WatchAfterBody && hc.br.Buffered() == 0 {
		// The body's last read ran under its per-read deadline.
		_ = hc.c.SetReadDeadline(time.Time{})
		hc.armWatchLocked(hc.watchReq)
	}
	hc.watchMu.Unlock()
}

// watchFire runs clientWatchDelay into a request still being served: a
// read waits on the connection, and the request's context ends if the
// client's side does.
func (hc *h1conn) watchFire() {
	hc.watchMu.Lock()
	if hc.watchState != h1WatchArmed {
		hc.watchMu.Unlock()
		return
	}
	hc.watchState = h1WatchReading
	done := make(chan struct{})
	hc.watchDone = done
	rc := hc.watchReq
	hc.watchMu.Unlock()
	go func() {
		defer close(done)
		if _, err := hc.br.Peek(1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return // unwatch woke it
			}
			hc.gone.Store(true)
			rc.cancel(context.Canceled)
		}
		// A byte: the client's next request, pipelined; it stays in br.
	}()
}

// unwatch ends the client watch when the handler returns: a body read to
// its end after this arms nothing.
func (hc *h1conn) unwatch() {
	hc.watchMu.Lock()
	if hc.watchTimer != nil {
		hc.watchTimer.Stop()
	}
	state, done := hc.watchState, hc.watchDone
	hc.watchState, hc.watchReq, hc.watchDone = h1WatchOff, nil, nil
	hc.watchMu.Unlock()
	if state == h1WatchReading {
		_ = hc.c.SetReadDeadline(aLongTimeAgo)
		<-done
		_ = hc.c.SetReadDeadline(time.Time{})
	}
}

func (hc *h1conn) unwatchTimer() {
	hc.watchMu.Lock()
	if hc.watchTimer != nil {
		hc.watchTimer.Stop()
	}
	hc.watchMu.Unlock()
}

// h1ReqCtx is a request's context: the connection's values, ended (with
// context.Canceled) when the handler returns or the client goes away. Its
// Done channel is made only when asked for, and AfterFunc registers
// children without the goroutine context.WithCancel would start for a
// parent it does not know.
type h1ReqCtx struct {
	parent context.Context
	mu     sync.Mutex
	done   chan struct{}
	err    error
	after  []*h1After
	// endW is the lean upstream watcher to fire with endGen when the
	// request ends (requestEnd).
	endW   *leanWatcher
	endGen uint64
}

var _ requestEnd = (*h1ReqCtx)(nil)

func (c *h1ReqCtx) watchEnd(w *leanWatcher, gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false // ended: the watcher's channel path sees Done closed
	}
	c.endW, c.endGen = w, gen
	return true
}

func (c *h1ReqCtx) unwatchEnd(w *leanWatcher) {
	c.mu.Lock()
	if c.endW == w {
		c.endW = nil
	}
	c.mu.Unlock()
}

type h1After struct{ f func() }

func (c *h1ReqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

func (c *h1ReqCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

func (c *h1ReqCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *h1ReqCtx) Value(key any) any { return c.parent.Value(key) }

func (c *h1ReqCtx) String() string { return "proxy HTTP/1.1 request context" }

// AfterFunc is what context.AfterFunc and context.WithCancel use for a
// parent of this type.
func (c *h1ReqCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	a := &h1After{f: f}
	c.after = append(c.after, a)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.after {
			if x == a {
				c.after = append(c.after[:i], c.after[i+1:]...)
				return true
			}
		}
		return false
	}
}

func (c *h1ReqCtx) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	after := c.after
	c.after = nil
	w, gen := c.endW, c.endGen
	c.endW = nil
	c.mu.Unlock()
	if w != nil {
		w.fire(gen) // never blocks
	}
	for _, a := range after {
		go a.f()
	}
}

// replayConn is a connection handed to the http.Server after the loop read
// from it: the bytes read are read again first.
type replayConn struct {
	net.Conn
	ci  *ConnInfo
	buf []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite ends the sending side (TLS: close_notify) as net/http expects
// of a connection it closes gracefully.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

var _ io.Reader = (*replayConn)(nil)
