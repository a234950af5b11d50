package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// upstreamGuard wraps a pipeline's transport with what a hostile or broken
// origin must not be able to do to a request:
//
//   - stall it: a request in which no byte moved either way (request body
//     read from the client, response body read from the origin) for
//     UpstreamIdleTimeout is cancelled, before or after the response
//     headers. Progress rearms it, so a long upload or a slow download that
//     moves is never cut; an idle pooled connection carries no request and
//     is not watched.
//   - end it short unnoticed: a response body that fails (reset, closed
//     mid-chunk, short of its Content-Length, stalled) puts the error on the
//     request's record; the ReverseProxy then aborts the client's response
//     (HTTP/1.1: the connection closes without the final chunk or short of
//     the length; HTTP/2: RST_STREAM), so the client never sees it complete.
//
// WebSocket tunnels (101) are not watched here once switched: their frames
// and idle time are bounded by the tunnel (websocket.go).
type upstreamGuard struct {
	s    *Server
	next http.RoundTripper
}

func (g upstreamGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, ok := g.next.(connTransport); ok && leanEligible(r) {
		// The lean path guards the request itself (upstreamlean.go).
		if ci := ConnInfoFrom(r.Context()); ci != nil {
			if lu, ok := ci.upstream.(*leanUpstream); ok {
				return lu.roundTrip(r, stateOf(r.Context()), nil)
			}
		}
	}
	wd := &watchdog{timeout: g.s.cfg.UpstreamIdleTimeout, stats: &g.s.limits.stats}
	ctx, cancel := context.WithCancel(r.Context())
	wd.start(cancel)
	out := r.WithContext(ctx)
	if out.Body != nil && out.Body != http.NoBody {
		out.Body = &progressBody{ReadCloser: out.Body, wd: wd}
	}
	resp, err := g.next.RoundTrip(out)
	if err != nil {
		wd.stop()
		cancel()
		if wd.fired.Load() {
			return nil, fmt.Errorf("%w: no response for %s: %v", ErrUpstreamIdle, wd.timeout, err)
		}
		return nil, err
	}
	wd.touch()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		wd.stop()
		return g.s.tunnelResponse(r, resp), nil // bounded in websocket.go
	}
	resp.Body = &upstreamBody{ReadCloser: resp.Body, wd: wd, cancel: cancel, st: stateOf(r.Context())}
	return resp, nil
}

// watchdog cancels a request when it made no progress for timeout. The
// timer is not reset on every byte: touch stamps the time, and the timer,
// when it fires early, sleeps again for what is left.
type watchdog struct {
	timeout time.Duration
	stats   *LimitStats
	last    atomic.Int64 // unix nanoseconds of the last progress
	fired   atomic.Bool

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
	cancel  context.CancelFunc
}

func (w *watchdog) start(cancel context.CancelFunc) {
	w.cancel = cancel
	w.touch()
	w.mu.Lock()
	w.timer = time.AfterFunc(w.timeout, w.check)
	w.mu.Unlock()
}

func (w *watchdog) touch() { w.last.Store(time.Now().UnixNano()) }

func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	left := w.timeout - time.Since(time.Unix(0, w.last.Load()))
	if left > 0 {
		w.timer.Reset(left)
		return
	}
	w.stopped = true
	w.fired.Store(true)
	w.stats.UpstreamStalls.Add(1)
	w.cancel()
}

func (w *watchdog) stop() {
	w.mu.Lock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}

// progressBody is the outgoing request body: reading it is progress.
type progressBody struct {
	io.ReadCloser
	wd *watchdog
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.wd.touch()
	}
	return n, err
}

// upstreamBody is the origin's response body as the pipeline copies it.
type upstreamBody struct {
	io.ReadCloser
	wd     *watchdog
	cancel context.CancelFunc
	st     *requestState
	failed bool
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.wd.touch()
	}
	switch {
	case err == nil:
	case err == io.EOF:
		b.wd.stop()
	case !b.failed:
		b.failed = true
		b.wd.stop()
		if b.wd.fired.Load() {
			err = fmt.Errorf("%w: no byte for %s: %v", ErrUpstreamIdle, b.wd.timeout, err)
		}
		switch {
		case b.st == nil:
		case b.wd.fired.Load() || !errors.Is(err, context.Canceled):
			b.st.set("error", "upstream: response body: "+err.Error())
		default:
			b.st.set("error", "client went away")
		}
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	b.wd.stop()
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// ErrUpstreamTLS marks a failed TLS handshake with the origin (it refused
// TLS, reset, or does not speak it), so the record names it; certificate
// failures inside it still match their own types.
var ErrUpstreamTLS = errors.New("upstream TLS handshake")

// upstreamTLSDialer is a transport's DialTLSContext: the handshake the
// transport would do, with its errors marked ErrUpstreamTLS and bounded by
// HandshakeTimeout. conf is read at dial time.
func (s *Server) upstreamTLSDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error), conf *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(c, conf)
		hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("%w: %w", ErrUpstreamTLS, err)
		}
		if tc.ConnectionState().NegotiatedProtocol != "h2" {
			return s.frameUpstream(tc, addr), nil
		}
		return tc, nil
	}
}

// logExplicitFailure records an explicit-proxy request whose target could
// not be resolved or is not allowed: no connection exists yet to carry it.
func (s *Server) logExplicitFailure(r *http.Request, target string, err error) {
	ci := &ConnInfo{ID: s.nextID.Add(1), Mode: ModeExplicit, Client: addrPortOf(remoteAddr(r)), ConnectHost: normalizeHost(target), Start: time.Now()}
	decision := "error"
	if errors.Is(err, ErrForbiddenDestination) {
		decision = "block"
	}
	s.logConn(ci, decision, r.Method+" "+target+": "+err.Error(), 0, 0)
}

// framedDialer is a plain-HTTP transport's DialContext: its connections
// are framed (framedConn) like HTTP/1.1 over TLS.
func (s *Server) framedDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return s.frameUpstream(c, addr), nil
	}
}
