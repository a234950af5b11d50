package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/http/httpguts"
)

// leanUpstream is the HTTP/1.1 upstream of one key (address, verified name,
// protocol) for the commonest request: a GET or HEAD without a body or an
// upgrade. http.Transport hands every request between three goroutines
// (the caller, its connection's write loop and read loop) and allocates a
// few dozen objects doing so; here the request's own goroutine writes the
// request and reads the response on a pooled connection, which costs none
// of that. Everything else (bodies, upgrades, Expect) goes to the
// Transport, which is also the RoundTrip of this type.
//
// What the Transport guarantees is kept, and where it differs it is named:
//
//   - Connections are dialled by the Transport's own dialers: the origin is
//     verified in full (chain, name, UpstreamVerify) and every connection is
//     framed (framedConn), so bytes an origin sends beyond a response fail
//     the connection instead of answering the next request.
//   - A connection goes back to the pool only when its response ended
//     exactly: the body read to its end, nothing buffered behind it, the
//     framing at a message boundary, neither side asking to close. Before
//     it is used again, anything that arrived while it was idle (a late
//     overrun, a close) is looked for without blocking — in TLS's buffer
//     and in the socket's — and such a connection is closed, never written
//     to. The Transport reads idle connections continuously to find the
//     same; this looks when it matters, once per reuse.
//   - Response headers are bounded by upstreamMaxHeaderBytes (1xx included,
//     at most max1xx of those), a 101 that was not asked for is refused.
//     Heads are read as http.ReadResponse reads them: the plainest by
//     readResponse itself with the same result, every other form by
//     ReadResponse (upstreamhead.go).
//   - The request makes no progress for UpstreamIdleTimeout: it fails as
//     upstreamGuard's watchdog would fail it (ErrUpstreamIdle, counted),
//     here by the connection's deadline, rearmed as response bytes arrive.
//     The client going away (the request's context ending) aborts it at
//     once: the connection's watcher (leanWatcher) puts its deadline in
//     the past, and the connection is not reused.
//   - A reused connection that fails before any byte of its response is
//     retried once on a new one (GET and HEAD without a body are
//     idempotent), as the Transport retries a connection the origin closed
//     while idle.
type leanUpstream struct {
	s       *Server
	t       *http.Transport
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	dest    string
	maxIdle int

	mu      sync.Mutex
	idle    []*leanConn // most recently used last
	closed  bool
	sweeper *time.Timer
}

// max1xx is how many informational responses may precede a response (as
// net/http's transport allows).
const max1xx = 5

func newLeanUpstream(s *Server, t *http.Transport, dest string, tls bool) *leanUpstream {
	lu := &leanUpstream{s: s, t: t, dest: dest, maxIdle: t.MaxIdleConnsPerHost, dial: t.DialContext}
	if tls {
		lu.dial = t.DialTLSContext
	}
	return lu
}

// RoundTrip is the Transport's: requests the lean path does not take.
func (lu *leanUpstream) RoundTrip(r *http.Request) (*http.Response, error) { return lu.t.RoundTrip(r) }

// leanEligible reports whether the lean path takes r: a GET or HEAD with no
// body, trailer, upgrade or expectation.
func leanEligible(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.Body == nil || r.Body == http.NoBody) && len(r.Trailer) == 0 && !r.Close &&
		r.Header["Upgrade"] == nil && r.Header["Expect"] == nil && len(r.TransferEncoding) == 0
}

// leanConn is one pooled HTTP/1.1 origin connection.
type leanConn struct {
	lu   *leanUpstream
	conn *framedConn
	raw  syscall.RawConn // the TCP socket, for the idle check; nil if none
	lim  headerLimit
	br   *bufio.Reader
	bw   *bufio.Writer

	idleSince time.Time
	armedAt   time.Time // when the deadline was last set
	peekFn    func(fd uintptr) bool
	peekN     int
	peekErr   syscall.Errno
	scratch   [1]byte

	watcher leanWatcher
}

// headerLimit bounds what the response head may read from the connection;
// n < 0 is no limit (the body is bounded by its framing).
type headerLimit struct {
	r   io.Reader
	n   int64
	hit bool
}

func (l *headerLimit) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		l.hit = true
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

var errHeadersTooLarge = fmt.Errorf("origin's response headers exceed %d bytes", upstreamMaxHeaderBytes)

func (lu *leanUpstream) newConn(c net.Conn) (*leanConn, error) {
	fc, ok := c.(*framedConn)
	if !ok {
		_ = c.Close()
		return nil, errors.New("upstream connection is not framed")
	}
	lc := &leanConn{lu: lu, conn: fc}
	lc.lim.r = fc
	lc.attach()
	lc.watcher.start(lc)
	under := fc.Conn
	if nc, ok := under.(interface{ NetConn() net.Conn }); ok {
		under = nc.NetConn()
	}
	if sc, ok := under.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			lc.raw = raw
			lc.peekFn = lc.peek
		}
	}
	return lc, nil
}

// roundTrip sends r (leanEligible, or with body as its whole body:
// leanBodyEligible) over a pooled or new connection. A request with a body
// is not sent again when a reused connection fails.
func (lu *leanUpstream) roundTrip(r *http.Request, st *requestState, body []byte) (*http.Response, error) {
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		lc, reused := lu.take()
		if lc == nil {
			c, err := lu.dial(ctx, "tcp", lu.dest)
			if err != nil {
				return nil, err
			}
			if lc, err = lu.newConn(c); err != nil {
				return nil, err
			}
		}
		resp, gotBytes, err := lc.do(r, st, body)
		if err == nil {
			return resp, nil
		}
		lc.close()
		if body == nil && reused && attempt == 0 && !gotBytes && ctx.Err() == nil && !errors.Is(err, ErrUpstreamIdle) {
			continue
		}
		return nil, err
	}
}

// do writes r (and reqBody, its body read whole, if any) and reads its
// response head; gotBytes says whether any byte of a response arrived (a
// reused connection that fails before one may be retried).
func (lc *leanConn) do(r *http.Request, st *requestState, reqBody []byte) (resp *http.Response, gotBytes bool, err error) {
	ctx := r.Context()
	gen := lc.watcher.watch(ctx)
	lc.arm()
	defer func() {
		if err != nil {
			lc.watcher.unwatch(gen)
			err = lc.failure(ctx, err, "no response")
		}
	}()
	if writeHead(lc.bw, r, st != nil && st.forward != nil, len(reqBody)) {
		_, _ = lc.bw.Write(reqBody) // an error is Flush's
	} else {
		wr := r
		if reqBody != nil {
			// r's body was read whole: Request.Write sends the copy.
			c := *r
			c.Body = io.NopCloser(bytes.NewReader(reqBody))
			wr = &c
		}
		if err = wr.Write(lc.bw); err != nil {
			return nil, false, err
		}
	}
	if err = lc.bw.Flush(); err != nil {
		return nil, false, err
	}
	lc.lim.n, lc.lim.hit = upstreamMaxHeaderBytes, false
	var body *leanBody
	for n1xx := 0; ; n1xx++ {
		resp, body, err = readResponse(lc.br, r)
		if err != nil {
			gotBytes = lc.lim.n < upstreamMaxHeaderBytes
			if lc.lim.hit {
				err = errHeadersTooLarge
			}
			return nil, gotBytes, err
		}
		if resp.StatusCode >= 200 {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nil, true, errors.New("origin switched protocols without being asked to")
		}
		if n1xx == max1xx {
			return nil, true, errors.New("origin sent too many informational responses")
		}
		if st != nil && st.forward != nil {
			forward1xx(st.forward, resp.StatusCode, resp.Header)
		} else if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err = trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, true, err
			}
		}
	}
	lc.lim.n = -1
	// No new deadline for the body: its reads touch the one set above
	// (rearmed once a sixteenth of it has passed), so a response that
	// comes at once costs no timer update.
	if body == nil {
		body = &leanBody{body: resp.Body}
	}
	body.lc, body.gen, body.st, body.ctx, body.keep = lc, gen, st, ctx, !resp.Close
	resp.Body = body
	return resp, true, nil
}

// writeHead writes the head of r as Request.Write writes it, without
// Request.Write's per-request allocations: the request line, Host,
// User-Agent (Go's default when the field is absent, none when it is
// empty), Content-Length when bodyLen (the length of the body that follows
// the head, read whole: leanBodyEligible) is not 0, then every other field
// with a valid name and its value trimmed (the client's Content-Length,
// Transfer-Encoding and Trailer are not copied: a request without a body
// sends none). It writes nothing and
// reports false for what only Request.Write handles (an opaque target, a
// Host it would rewrite or refuse, a control byte in the target, CR or LF in
// a value): the caller then uses Request.Write.
//
// forwarded is set for the client's own request (forwardLean), which writes
// it as the ReverseProxy would have sent it: without Connection (only
// "keep-alive" reaches here), Forwarded and X-Forwarded-*, and without a
// User-Agent when the client sent none.
func writeHead(w *bufio.Writer, r *http.Request, forwarded bool, bodyLen int) bool {
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	if r.URL.Opaque != "" || host == "" || !httpguts.ValidHostHeader(host) || strings.IndexByte(host, '%') >= 0 || !isASCII(host) {
		return false
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	query := r.URL.ForceQuery || r.URL.RawQuery != ""
	if hasCTL(path) || hasCTL(r.URL.RawQuery) {
		return false
	}
	ua := "Go-http-client/1.1"
	if forwarded {
		ua = ""
	}
	if v, ok := r.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	for _, vv := range r.Header {
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n") {
				return false
			}
		}
	}
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(path)
	if query {
		w.WriteByte('?')
		w.WriteString(r.URL.RawQuery)
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if ua = textproto.TrimString(ua); ua != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(ua)
		w.WriteString("\r\n")
	}
	if bodyLen > 0 {
		var n [20]byte
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(n[:0], int64(bodyLen), 10))
		w.WriteString("\r\n")
	}
	for k, vv := range r.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		case "Connection", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			if forwarded {
				continue
			}
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(textproto.TrimString(v))
			w.WriteString("\r\n")
		}
	}
	w.WriteString("\r\n")
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// hasCTL reports a control byte (as Request.Write refuses in a target).
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' || b == 0x7f {
			return true
		}
	}
	return false
}

// arm sets the connection's deadline UpstreamIdleTimeout from now.
func (lc *leanConn) arm() {
	now := time.Now()
	lc.armedAt = now
	_ = lc.conn.SetDeadline(now.Add(lc.lu.s.cfg.UpstreamIdleTimeout))
}

// touch rearms the deadline once a sixteenth of it has passed since it was
// set, so a transfer that moves never reaches it and a busy one does not
// reset a timer per read.
func (lc *leanConn) touch() {
	if time.Since(lc.armedAt) > lc.lu.s.cfg.UpstreamIdleTimeout/16 {
		lc.arm()
	}
}

// abort ends what the connection is doing: the client went away.
func (lc *leanConn) abort() { _ = lc.conn.SetDeadline(time.Unix(1, 0)) }

// failure names err: the client going away, or no progress for
// UpstreamIdleTimeout (counted as a stall), or err itself.
func (lc *leanConn) failure(ctx context.Context, err error, what string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		lc.lu.s.limits.stats.UpstreamStalls.Add(1)
		return fmt.Errorf("%w: %s for %s: %v", ErrUpstreamIdle, what, lc.lu.s.cfg.UpstreamIdleTimeout, err)
	}
	return err
}

func (lc *leanConn) close() {
	_ = lc.conn.Close()
	lc.watcher.stop()
	lc.detach()
}

// attach gives the connection a buffered reader and writer (h1serve.go's
// pools, the same 4 KiB) for a request; detach gives them back while it
// waits in the pool. An idle upstream connection then holds no buffer:
// after the lab's 50 keep-alive connections the 50 pooled upstream
// connections had kept 8 KiB each, 0.4 MiB of the idle heap, and under
// load the buffers in use follow the requests in flight. Both run on the
// goroutine that owns the connection (its request's, or the pool's under
// lu.mu); a body reads br only until it is done, and is done before its
// connection is put back or closed (leanBody.finish).
func (lc *leanConn) attach() {
	lc.br = h1Readers.Get().(*bufio.Reader)
	lc.br.Reset(&lc.lim)
	lc.bw = h1Writers.Get().(*bufio.Writer)
	lc.bw.Reset(lc.conn)
}

func (lc *leanConn) detach() {
	if lc.br != nil {
		lc.br.Reset(nil)
		h1Readers.Put(lc.br)
		lc.br = nil
	}
	if lc.bw != nil {
		lc.bw.Reset(nil)
		h1Writers.Put(lc.bw)
		lc.bw = nil
	}
}

// take returns the most recently used idle connection that is still sound.
func (lu *leanUpstream) take() (*leanConn, bool) {
	for {
		lu.mu.Lock()
		n := len(lu.idle)
		if n == 0 {
			lu.mu.Unlock()
			return nil, false
		}
		lc := lu.idle[n-1]
		lu.idle[n-1] = nil
		lu.idle = lu.idle[:n-1]
		lu.mu.Unlock()
		if time.Since(lc.idleSince) < lu.s.cfg.IdleTimeout && lc.sound() {
			lc.attach()
			return lc, true
		}
		lc.close()
	}
}

// sound looks, without blocking, for anything that arrived on an idle
// connection: bytes or a close waiting in the socket (a non-blocking peek),
// then bytes TLS holds decrypted or undecrypted (read with a deadline
// already past, which reads no socket). Bytes there are read with a short deadline
// so framedConn counts an overrun or TLS sees its close; either way the
// connection is not used.
func (lc *leanConn) sound() bool {
	if lc.raw != nil {
		// First, as a deadline already past fails the raw read too.
		lc.peekN, lc.peekErr = 0, 0
		if err := lc.raw.Read(lc.peekFn); err != nil {
			return false
		}
		if lc.peekErr != syscall.EAGAIN {
			if lc.peekN > 0 {
				_ = lc.conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				_, _ = lc.conn.Read(lc.scratch[:])
			}
			return false
		}
	}
	_ = lc.conn.SetReadDeadline(time.Unix(1, 0))
	n, err := lc.conn.Read(lc.scratch[:])
	return n == 0 && errors.Is(err, os.ErrDeadlineExceeded)
}

// peek is a non-blocking MSG_PEEK of one byte on the socket.
func (lc *leanConn) peek(fd uintptr) bool {
	n, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&lc.scratch[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	lc.peekN, lc.peekErr = int(n), e
	return true
}

// put returns a connection whose response ended exactly to the pool.
func (lu *leanUpstream) put(lc *leanConn) {
	lc.detach()
	lc.idleSince = time.Now()
	lu.mu.Lock()
	if lu.closed || len(lu.idle) >= lu.maxIdle {
		lu.mu.Unlock()
		lc.close()
		return
	}
	lu.idle = append(lu.idle, lc)
	if lu.sweeper == nil {
		lu.sweeper = time.AfterFunc(lu.s.cfg.IdleTimeout, lu.sweep)
	} else if len(lu.idle) == 1 {
		lu.sweeper.Reset(lu.s.cfg.IdleTimeout)
	}
	lu.mu.Unlock()
}

// sweep closes connections idle for IdleTimeout, oldest first.
func (lu *leanUpstream) sweep() {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	cut := 0
	for cut < len(lu.idle) && time.Since(lu.idle[cut].idleSince) >= lu.s.cfg.IdleTimeout {
		lu.idle[cut].close()
		cut++
	}
	lu.idle = append(lu.idle[:0], lu.idle[cut:]...)
	clear(lu.idle[len(lu.idle):cap(lu.idle)])
	if len(lu.idle) > 0 {
		lu.sweeper.Reset(lu.s.cfg.IdleTimeout - time.Since(lu.idle[0].idleSince))
	}
}

// closeIdle closes the idle connections; with final, later ones too.
func (lu *leanUpstream) closeIdle(final bool) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	for _, lc := range lu.idle {
		lc.close()
	}
	clear(lu.idle)
	lu.idle = lu.idle[:0]
	lu.closed = lu.closed || final
}

// leanBody is a lean response's body. At its end the connection goes back
// to the pool if the response ended exactly; a failure is put on the
// request's record, as upstreamBody does.
type leanBody struct {
	lc   *leanConn
	gen  uint64 // the request's, for unwatch
	st   *requestState
	ctx  context.Context
	keep bool
	done bool

	framing bodyFraming
	body    io.ReadCloser  // framedByNetHTTP: net/http's body
	left    int64          // framedLength: bytes still to come
	chunks  io.Reader      // framedChunks: the chunked reader, once reading
	resp    *http.Response // framedChunks: where the trailer goes
}

func (b *leanBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	b.lc.touch()
	n, err := b.readFramed(p)
	switch {
	case err == nil:
	case err == io.EOF:
		b.finish(true)
	default:
		err = b.lc.failure(b.ctx, err, "no byte")
		b.finish(false)
		switch {
		case b.st == nil:
		case errors.Is(err, context.Canceled):
			b.st.set("error", "client went away")
		default:
			b.st.set("error", "upstream: response body: "+err.Error())
		}
	}
	return n, err
}

// Close before the end closes the connection: what is left of the body is
// not read.
func (b *leanBody) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish releases the connection: to the pool when the response ended
// exactly (clean) and nothing makes it unfit, closed otherwise.
func (b *leanBody) finish(clean bool) {
	b.done = true
	lc := b.lc
	if lc.watcher.unwatch(b.gen) && clean && b.keep && lc.br.Buffered() == 0 && lc.conn.atBoundary() {
		lc.lu.put(lc)
		return
	}
	lc.close()
}

// atBoundary reports whether the connection's framing is between messages
// with nothing held back: it may carry another request.
func (c *framedConn) atBoundary() bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.err == nil && len(c.pending) == 0 && c.expected.Load() == 0 && !c.resp.tunnel && !c.resp.untilClose
}
