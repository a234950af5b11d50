package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// What the limits do not bound:
//
//   - A tunnel other than WebSocket (a 101 to another protocol): only its
//     idle time is bounded (TunnelIdleTimeout); its bytes are copied as
//     they come. Any tunnel keeps its client's connection slot until it ends.
//   - WebSocket messages are counted on the wire: with permessage-deflate
//     the bound is on compressed bytes (the endpoints inflate them; the
//     appliance holds no message, so none of it costs memory here).
//   - Response bodies: streamed through bounded buffers, never held whole
//     here (session enforcement states its own holding limits).

// The secure defaults of Config's limits block. Every limit is on: a zero
// in Config means the default here, never "unlimited".
const (
	DefaultMaxHeaderBytes       = 64 << 10
	DefaultMaxHeaderCount       = 100
	DefaultMaxConnsPerClient    = 256
	DefaultReadHeaderTimeout    = 10 * time.Second
	DefaultBodyReadTimeout      = 60 * time.Second
	DefaultUpstreamIdleTimeout  = 120 * time.Second
	DefaultMaxConcurrentStreams = 100
	DefaultMaxStreamResets      = 200
	// streamResetWindow is the period MaxStreamResets counts over.
	streamResetWindow = 10 * time.Second
	// h2MaxReadFrameSize is the largest frame a client may send us: the
	// protocol's minimum. The framer keeps a read buffer as large as the
	// largest frame it has read, so a larger value is memory a client can
	// pin on every connection it holds.
	h2MaxReadFrameSize = 16 << 10
	// upstreamMaxHeaderBytes bounds an origin's response headers (a 101
	// upgrade's included); net/http's own default is 10 MiB.
	upstreamMaxHeaderBytes = 1 << 20

	// WebSocket frames and messages (websocket.go). Browsers and the usual
	// server libraries send a message as one frame, so the frame bound is
	// what most messages meet: 4 MiB passes the large messages apps send
	// (document snapshots, pasted images) while a frame header announcing
	// gigabytes is refused before any of it reaches the other side. A
	// message fragmented by a streaming writer may grow to 16 MiB. Nothing
	// is buffered here; the bounds protect the endpoints, which hold
	// whole messages.
	DefaultWebSocketMaxFrame   = 4 << 20
	DefaultWebSocketMaxMessage = 16 << 20
	// DefaultTunnelIdleTimeout ends a WebSocket (or other 101) tunnel in
	// which no byte moved either way for this long. Apps that keep a socket
	// open ping every 20-60 s (socket.io 25 s, SignalR 15 s), so 10 minutes
	// never cuts a live one, and a tunnel whose client vanished (no FIN: a
	// laptop closed, a NAT entry dropped) gives its connection slot back.
	DefaultTunnelIdleTimeout = 10 * time.Minute
	// HTTP/2 receive windows: what a client may have sent ahead of the
	// pipeline reading it (x/net buffers it). Per connection 1 MiB (x/net's
	// own default; 100 MB/s at 10 ms RTT); per stream 256 KiB (x/net: 1 MiB),
	// so one upload cannot take the whole connection's window (25 MB/s per
	// upload at 10 ms, 250 MB/s on a 1 ms LAN). A client pins at most the
	// connection window per connection it holds (MaxConnsPerClient).
	DefaultH2MaxUploadBufferPerConnection = 1 << 20
	DefaultH2MaxUploadBufferPerStream     = 256 << 10
)

// UpgradeLimits bound what happens after a request switched protocols (a
// WebSocket tunnel) and what an HTTP/2 client may upload ahead of the
// pipeline. A zero value means the default above.
type UpgradeLimits struct {
	// WebSocketMaxFrame bounds one frame's payload; WebSocketMaxMessage a
	// message's (the sum of its fragments). Past either, both sides get a
	// close frame with status 1009 and the tunnel ends.
	WebSocketMaxFrame   int64
	WebSocketMaxMessage int64
	// TunnelIdleTimeout ends a tunnel in which no byte moved either way
	// (close status 1001 on a WebSocket).
	TunnelIdleTimeout time.Duration
	// H2MaxUploadBufferPerConnection and H2MaxUploadBufferPerStream are the
	// HTTP/2 receive windows the appliance grants a client.
	H2MaxUploadBufferPerConnection int32
	H2MaxUploadBufferPerStream     int32
}

func (u *UpgradeLimits) setDefaults() {
	if u.WebSocketMaxFrame <= 0 {
		u.WebSocketMaxFrame = DefaultWebSocketMaxFrame
	}
	if u.WebSocketMaxMessage <= 0 {
		u.WebSocketMaxMessage = DefaultWebSocketMaxMessage
	}
	if u.TunnelIdleTimeout <= 0 {
		u.TunnelIdleTimeout = DefaultTunnelIdleTimeout
	}
	if u.H2MaxUploadBufferPerConnection <= 0 {
		u.H2MaxUploadBufferPerConnection = DefaultH2MaxUploadBufferPerConnection
	}
	if u.H2MaxUploadBufferPerStream <= 0 {
		u.H2MaxUploadBufferPerStream = DefaultH2MaxUploadBufferPerStream
	}
}

// Errors of the limits, matched with errors.Is.
var (
	// ErrClientBody marks a failure reading the client's request body
	// (malformed chunking, shorter than its Content-Length, stalled): the
	// client's error, answered 400 or 408, never a gateway error.
	ErrClientBody = errors.New("client body")
	// ErrUpstreamIdle means neither the origin nor the client moved a byte
	// of a request for UpstreamIdleTimeout: an origin that stalls before or
	// after its response headers.
	ErrUpstreamIdle = errors.New("upstream stalled")
)

func (c *Config) setLimitDefaults() {
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxHeaderCount <= 0 {
		c.MaxHeaderCount = DefaultMaxHeaderCount
	}
	if c.MaxConnsPerClient <= 0 {
		c.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.BodyReadTimeout <= 0 {
		c.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if c.UpstreamIdleTimeout <= 0 {
		c.UpstreamIdleTimeout = DefaultUpstreamIdleTimeout
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.MaxStreamResets <= 0 {
		c.MaxStreamResets = DefaultMaxStreamResets
	}
	c.UpgradeLimits.setDefaults()
}

// LimitStats count what the limits refused or cut. Every field only grows.
type LimitStats struct {
	ConnsOverClientCap atomic.Uint64 // connections closed at accept: the client held MaxConnsPerClient
	HeadersTooMany     atomic.Uint64 // requests refused 431 for their header count
	ClientBodyErrors   atomic.Uint64 // request bodies that broke (malformed, short, stalled)
	ClientBodyTimeouts atomic.Uint64 // of those, stalled past BodyReadTimeout
	UpstreamStalls     atomic.Uint64 // requests cut after UpstreamIdleTimeout without a byte
	ResetFloods        atomic.Uint64 // HTTP/2 connections closed for resetting streams too fast
	UpstreamOverruns   atomic.Uint64 // HTTP/1.1 origin connections failed for bytes beyond a response

	WebSocketOversize atomic.Uint64 // tunnels closed 1009: a frame or message over its bound
	WebSocketProtocol atomic.Uint64 // tunnels closed 1002: malformed framing, an unmasked client frame
	TunnelsIdle       atomic.Uint64 // tunnels closed after TunnelIdleTimeout without a byte
}

// Limits are the limit counters.
func (s *Server) Limits() *LimitStats { return &s.limits.stats }

// limits is the Server's per-client accounting.
type limits struct {
	stats LimitStats

	mu       sync.Mutex
	perAddr  map[netip.Addr]int
	max      int
	lastLog  time.Time
	unlogged int
}

func newLimits(max int) *limits {
	return &limits{perAddr: map[netip.Addr]int{}, max: max}
}

// clientKey is what the per-client cap counts by: the address, or for IPv6
// its /64, since one host holds a whole /64.
func clientKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

func (l *limits) acquire(a netip.Addr) bool {
	k := clientKey(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perAddr[k] >= l.max {
		return false
	}
	l.perAddr[k]++
	return true
}

func (l *limits) release(a netip.Addr) {
	k := clientKey(a)
	l.mu.Lock()
	if n := l.perAddr[k]; n <= 1 {
		delete(l.perAddr, k)
	} else {
		l.perAddr[k] = n - 1
	}
	l.mu.Unlock()
}

// held is how many connections the client key of a holds (tests, status).
func (l *limits) held(a netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perAddr[clientKey(a)]
}

// limitListener caps the connections each client holds open on ln. A
// connection over the cap is reset at accept, before a byte of it is read;
// refusals are logged at most once a second (a flood must not become a log
// flood), each line saying how many it stands for.
func (s *Server) limitListener(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, s: s}
}

type limitedListener struct {
	net.Listener
	s *Server
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := addrPortOf(c.RemoteAddr()).Addr()
		if l.s.limits.acquire(a) {
			return &limitedConn{Conn: c, release: func() { l.s.limits.release(a) }}, nil
		}
		l.s.limits.stats.ConnsOverClientCap.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		l.s.logOverCap(c, a)
	}
}

func (s *Server) logOverCap(c net.Conn, a netip.Addr) {
	l := s.limits
	l.mu.Lock()
	now := time.Now()
	l.unlogged++
	if now.Sub(l.lastLog) < time.Second {
		l.mu.Unlock()
		return
	}
	n := l.unlogged
	l.unlogged, l.lastLog = 0, now
	l.mu.Unlock()
	ci := &ConnInfo{ID: s.nextID.Add(1), Client: addrPortOf(c.RemoteAddr()), Dest: addrPortOf(c.LocalAddr()), Start: now}
	s.logConn(ci, "block", fmt.Sprintf("per-client connection limit (%d) reached by %s: %d connection(s) refused", s.cfg.MaxConnsPerClient, a, n), 0, 0)
}

// limitedConn gives its client's slot back when it closes. It passes the
// kernel-copy and half-close paths of the connection it wraps through, so
// bypassed connections are still spliced.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) SetLinger(sec int) error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		return tc.SetLinger(sec)
	}
	return nil
}

func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *limitedConn) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.Conn.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c.Conn})
}

// connGuard is per client connection state of the limits, reached from a
// request's context.
type connGuard struct {
	conn net.Conn

	mu          sync.Mutex
	windowStart time.Time
	resets      int
	closed      bool
}

type connGuardKey struct{}

// limitConnContext is the http.Server's ConnContext: the pipeline's own
// context (connContext) plus the connection's guard.
func (s *Server) limitConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(connContext(ctx, c), connGuardKey{}, &connGuard{conn: c})
}

// noteReset counts a stream the client reset before its handler finished.
// It reports whether the connection went over MaxStreamResets in a window
// (then it is closed: rapid reset, CVE-2023-44487).
func (g *connGuard) noteReset(max int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	now := time.Now()
	if now.Sub(g.windowStart) > streamResetWindow {
		g.windowStart, g.resets = now, 0
	}
	g.resets++
	if g.resets <= max {
		return false
	}
	g.closed = true
	return true
}

// limitRequests runs before the pipeline on every request of every
// listener: the header-count limit, the client-body watchdog (a per-read
// deadline rearmed on progress) and HTTP/2 reset accounting.
func (s *Server) limitRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := headerCount(r); n > s.cfg.MaxHeaderCount {
			s.limits.stats.HeadersTooMany.Add(1)
			s.refuseRequest(w, r, http.StatusRequestHeaderFieldsTooLarge,
				fmt.Sprintf("request has %d header fields, over the limit of %d", n, s.cfg.MaxHeaderCount))
			return
		}
		if r.ProtoMajor == 1 && (len(r.TransferEncoding) > 0 || r.ProtoMinor == 0) {
			// net/http resolves Content-Length + Transfer-Encoding by
			// dropping the length, and ignores Transfer-Encoding on
			// HTTP/1.0, both silently: whatever follows such a body might
			// be bytes the client meant another parser to read as its
			// body. The connection ends after the request, so they are
			// never read as a request (RFC 9112 6.1, 6.3). HTTP/1.0
			// keep-alive is given up for that.
			w.Header().Set("Connection", "close")
		}
		if r.Body != nil && r.Body != http.NoBody {
			// The error handler finds the body through the context: the
			// ReverseProxy hands it the request with the body rewrapped.
			cb := s.newClientBody(r.Body, http.NewResponseController(w))
			r = r.WithContext(context.WithValue(r.Context(), clientBodyKey{}, cb))
			r.Body = cb
		}
		next.ServeHTTP(w, r)
		if r.ProtoMajor == 2 && r.Context().Err() != nil {
			if g, ok := r.Context().Value(connGuardKey{}).(*connGuard); ok && g.noteReset(s.cfg.MaxStreamResets) {
				s.limits.stats.ResetFloods.Add(1)
				s.cfg.Log.Warn("HTTP/2 client reset streams too fast: connection closed", "client", r.RemoteAddr, "limit", s.cfg.MaxStreamResets)
				_ = g.conn.Close()
			}
		}
	})
}

func headerCount(r *http.Request) int {
	n := 0
	for _, v := range r.Header {
		n += len(v)
	}
	for _, v := range r.Trailer {
		n += len(v)
	}
	return n
}

// refuseRequest answers a request the limits refuse before the pipeline,
// with an access-log line and a record like any other request.
func (s *Server) refuseRequest(w http.ResponseWriter, r *http.Request, code int, reason string) {
	ci := ConnInfoFrom(r.Context())
	if ci == nil {
		ci = &ConnInfo{ID: s.nextID.Add(1), Client: addrPortOf(remoteAddr(r)), Start: time.Now()}
	}
	st := &requestState{id: strconv.FormatUint(ci.ID, 16) + "-" + strconv.FormatUint(requestSeq.Add(1), 16), decision: "block", reason: reason}
	rec := &recorder{ResponseWriter: w, status: code, expect: -1}
	start := time.Now()
	closeHTTP1(w, r)
	http.Error(rec, http.StatusText(code), code)
	s.logRequest(ci, r, st, rec, 0, time.Since(start))
}

// clientBody is a request body as the pipeline reads it. Each read pushes
// the connection's (HTTP/2: the stream's) read deadline BodyReadTimeout
// ahead, so a client that stops sending mid-body is cut while one that keeps
// sending, however slowly in total, is not. Its errors carry ErrClientBody,
// so a failed round trip is answered as the client's error.
type clientBody struct {
	io.ReadCloser
	rc      bodyDeadline
	timeout time.Duration
	stats   *LimitStats
	armed   time.Time
	done    bool
	// failed is the body's error, for the error handler: the transport
	// may report the request's cancellation instead (net/http cancels it
	// when the client's side of the connection ends, as a short body's
	// does).
	failed atomic.Pointer[clientBodyError]
	// reading is held while a read is in flight, so the error handler can
	// wait for the one that is failing.
	reading sync.Mutex
}

type clientBodyKey struct{}

// newClientBody wraps body, whose read deadline rc moves.
func (s *Server) newClientBody(body io.ReadCloser, rc bodyDeadline) *clientBody {
	return &clientBody{ReadCloser: body, rc: rc, timeout: s.cfg.BodyReadTimeout, stats: &s.limits.stats}
}

// clientBodyError is an error reading the client's body.
type clientBodyError struct {
	err     error
	timeout time.Duration // set when the body stalled
}

func (e *clientBodyError) Error() string {
	if e.timeout > 0 {
		return fmt.Sprintf("client body: no progress for %s: %v", e.timeout, e.err)
	}
	return "client body: " + e.err.Error()
}

func (e *clientBodyError) Unwrap() []error { return []error{ErrClientBody, e.err} }

func (b *clientBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	// Rearming costs a timer reset; doing it at most eight times per
	// period keeps the deadline between 7/8 and 1 period past the last read.
	if now := time.Now(); now.Sub(b.armed) > b.timeout/8 {
		_ = b.rc.SetReadDeadline(now.Add(b.timeout))
		b.armed = now
	}
	b.reading.Lock()
	defer b.reading.Unlock()
	n, err := b.ReadCloser.Read(p)
	if err == nil {
		return n, nil
	}
	b.done = true
	// The deadline must not outlive the body: HTTP/1.1's background read
	// (which notices a client going away) and the next request use it.
	_ = b.rc.SetReadDeadline(time.Time{})
	if err == io.EOF || errors.Is(err, errBodyEnded) || errors.Is(err, http.ErrBodyReadAfterClose) {
		return n, err
	}
	ce := &clientBodyError{err: err}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		ce.timeout = b.timeout
		b.stats.ClientBodyTimeouts.Add(1)
	}
	b.stats.ClientBodyErrors.Add(1)
	b.failed.Store(ce)
	return n, ce
}

// clientBodyFailed answers a round trip that failed because the client's
// body did: 408 when it stalled, 400 when it was malformed or short. It
// reports whether it answered.
func (s *Server) clientBodyFailed(w http.ResponseWriter, r *http.Request, st *requestState, err error) bool {
	var ce *clientBodyError
	if !errors.As(err, &ce) {
		if ce = clientBodyFailure(r); ce == nil {
			return false
		}
	}
	st.set("error", ce.Error())
	code := http.StatusBadRequest
	if ce.timeout > 0 {
		code = http.StatusRequestTimeout
	}
	closeHTTP1(w, r)
	http.Error(w, "the request body could not be read: "+http.StatusText(code), code)
	return true
}

// closeHTTP1 ends an HTTP/1.x connection after this response. (On HTTP/2
// the same header would shut the whole connection down gracefully, every
// other stream with it.)
func closeHTTP1(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
}

// clientBodyFailure is the error the request's body failed with, if it did.
func clientBodyFailure(r *http.Request) *clientBodyError {
	b, ok := r.Context().Value(clientBodyKey{}).(*clientBody)
	if !ok {
		return nil
	}
	// The cancellation can be seen before the read that caused it has
	// returned: wait for that read, briefly.
	for deadline := time.Now().Add(100 * time.Millisecond); !b.reading.TryLock(); {
		if time.Now().After(deadline) {
			return b.failed.Load()
		}
		time.Sleep(time.Millisecond)
	}
	b.reading.Unlock()
	return b.failed.Load()
}
