package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/portcullis-gw/portcullis/proxy/session"
	"github.com/portcullis-gw/portcullis/proxy/session/control"
)

// Config is the pipeline's configuration. Certs is required; everything else
// has a secure default.
type Config struct {
	// Certs mints the client-facing leaves.
	Certs *CertStore
	// Conn makes the access decision; nil intercepts every connection.
	Conn ConnDecider
	// Request makes the session decision; nil allows every request.
	Request RequestDecider
	// UpstreamRoots verifies origins; nil means the system roots. It is never
	// possible to turn verification off.
	UpstreamRoots *x509.CertPool
	// UpstreamVerify, when set, runs after the chain and name verified on
	// every upstream handshake (revocation and key sizes: proxy/certcheck);
	// an error refuses the origin like a certificate that did not verify.
	UpstreamVerify func(tls.ConnectionState) error
	// TLSPorts are destination ports where only TLS is accepted; anything else
	// arriving there is closed and counted. Default: 443.
	TLSPorts []uint16
	// HandshakeTimeout bounds peeking the ClientHello and the client-side TLS
	// handshake. Default 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections on both sides. Default 120s.
	IdleTimeout time.Duration
	// DialTimeout bounds connecting to the origin. Default 10s.
	DialTimeout time.Duration
	// Hosts maps names to addresses for explicit-proxy requests before DNS.
	Hosts map[string][]string
	// Clients, when set, classifies clients (browser or native) and learns
	// certificate-pinned destinations (clientkind.go).
	Clients *ClientConfig
	// Suffix, when set, turns on the suffix reverse proxy (ServeSuffix).
	Suffix *SuffixConfig
	// Session, when set, enforces session policies (downloads, uploads,
	// body fields, inspection) in the transparent and suffix pipelines.
	Session *SessionConfig
	// ClientCerts, when set, asks clients of both TLS listeners for a
	// device certificate (clientcert.go). Nil: no certificate is asked for.
	ClientCerts *ClientCertConfig
	// Recorder, when set, receives a record of every request and every
	// non-intercepted connection, and may refuse new sessions (Admit).
	Recorder Recorder
	// HoldForRecord holds the end of each response until its record is
	// durable; the Recorder must be a DurableRecorder.
	HoldForRecord bool
	// Identity is who the user is in transparent mode, and step-up in
	// both modes (transparentlogin.go); nil: neither.
	Identity *IdentityConfig

	// Limits against hostile clients and origins (proxy/limits.go). A zero
	// value means the secure default (Default* there), never "no limit".
	//
	// MaxHeaderBytes bounds a request's header block: the HTTP/1.1 request
	// line and headers, the decoded HTTP/2 header list (CONTINUATION
	// included). Over it: 431, or the HTTP/2 connection is closed. 64 KiB.
	MaxHeaderBytes int
	// MaxHeaderCount bounds a request's header fields; over it: 431. 100.
	MaxHeaderCount int
	// MaxConnsPerClient bounds the connections one client address (an IPv6
	// client's /64) holds open on each listener; more are reset at accept. 256.
	MaxConnsPerClient int
	// ReadHeaderTimeout bounds reading a request's headers (slowloris). 10s.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout cuts a request body that makes no progress for this
	// long (408); every read rearms it, so a slow upload that moves is never
	// cut. 60s.
	BodyReadTimeout time.Duration
	// UpstreamIdleTimeout cancels a request in which no byte moved either
	// way for this long: an origin that stalls before or after its headers. 120s.
	UpstreamIdleTimeout time.Duration
	// MaxConcurrentStreams bounds the HTTP/2 streams one client connection
	// has open at once. 100.
	MaxConcurrentStreams uint32
	// MaxStreamResets bounds the HTTP/2 streams a client may reset before
	// their handler finished, per connection and 10 s; past it the
	// connection is closed (rapid reset, CVE-2023-44487). 200.
	MaxStreamResets int
	// WebSocket frame, message and tunnel idle bounds; HTTP/2 upload windows.
	UpgradeLimits

	// AccessLog receives one line per request and per non-intercepted
	// connection; Log receives operational messages. Both default to discard.
	AccessLog *slog.Logger
	Log       *slog.Logger
}

func (c *Config) setDefaults() {
	if c.TLSPorts == nil {
		c.TLSPorts = []uint16{443}
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	c.setLimitDefaults()
	discard := slog.New(slog.DiscardHandler)
	if c.AccessLog == nil {
		c.AccessLog = discard
	}
	if c.Log == nil {
		c.Log = discard
	}
}

// Server runs the connection pipeline. One Server serves every listener.
type Server struct {
	cfg   Config
	Stats Stats
	warm  *warmPool // runs HTTP/2 handlers (warmstack.go)

	clientTLS   *tls.Config // shared by every intercepted connection
	upstreamTLS *tls.Config // template cloned per connection with its ServerName
	dialer      net.Dialer
	resolver    *net.Resolver
	dns         dnsCache // lookups of the suffix and explicit proxies (dnscache.go)

	upstreams *upstreamPool
	limits    *limits

	h1    *http.Server // serves intercepted and plain connections, h2 via TLSNextProto
	inbox *connInbox
	// h1conns are the HTTP/1.1 connections the pipeline serves itself
	// (h1serve.go) until one of their requests is not plain.
	h1conns  h1Conns
	rproxy   *httputil.ReverseProxy
	explicit *http.Server
	// requestLines is the access log's handler when it takes request lines
	// directly (RequestLineHandler).
	requestLines RequestLineHandler

	// allowLoopbackDest lets in-package tests use loopback origins through
	// the explicit proxy; it is never set outside tests.
	allowLoopbackDest bool
	// dialHook, when set by a test, sees every upstream dial before it is made.
	dialHook func(dest string)

	enforcer  *session.Enforcer // set when Config.Session
	durable   DurableRecorder   // set when Config.HoldForRecord
	suffix    *suffixState
	suffixTLS *tls.Config

	clientCerts *clientCerts // set when Config.ClientCerts

	nextID  atomic.Uint64
	conns   sync.WaitGroup
	closing atomic.Bool
	lnMu    sync.Mutex
	lns     []net.Listener
	// tunnels are the connections net/http does not wait for (switched
	// requests, spliced connections): Close drains them (drain.go).
	tunnels *tunnelSet

	// control runs the in-page controls; set when Config.Session has a
	// ControlKey.
	control *control.Controller
	// passthrough holds destinations learnt from pinned native clients.
	passthrough *passThrough
}

// NewServer builds the pipeline. Call Serve for each listener and Close at
// the end.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Certs == nil {
		return nil, errors.New("proxy config: a certificate store is required")
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, inbox: newConnInbox(), resolver: net.DefaultResolver, upstreams: newUpstreamPool(1024), limits: newLimits(cfg.MaxConnsPerClient)}
	s.tunnels = newTunnelSet(&s.Stats.TunnelsCut)
	s.requestLines, _ = cfg.AccessLog.Handler().(RequestLineHandler)
	s.dialer = net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	if cfg.ClientCerts != nil {
		var err error
		if s.clientCerts, err = newClientCerts(*cfg.ClientCerts); err != nil {
			return nil, fmt.Errorf("proxy config: %w", err)
		}
	}
	s.passthrough = newPassThrough(cfg.Clients)
	s.clientTLS = &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := hello.ServerName
			if pc, ok := hello.Conn.(*peekedConn); ok {
				name = pc.ci.certName()
			}
			return cfg.Certs.Certificate(name)
		},
	}
	s.clientCerts.requestCerts(s.clientTLS)
	s.upstreamTLS = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            cfg.UpstreamRoots,
		ClientSessionCache: tls.NewLRUClientSessionCache(4096),
		VerifyConnection:   cfg.UpstreamVerify,
	}
	s.rproxy = &httputil.ReverseProxy{
		Rewrite:      rewriteToOrigin,
		Transport:    upstreamGuard{s, connTransport{}},
		ErrorHandler: s.upstreamError,
		BufferPool:   copyBuffers,
		ErrorLog:     slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	s.warm = newWarmPool(cfg.Log)
	s.h1 = &http.Server{
		Handler:           s.warm.handler(s.limitRequests(http.HandlerFunc(s.serveRequest))),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ConnContext:       s.limitConnContext,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	h2s := &http2.Server{
		IdleTimeout:          cfg.IdleTimeout,
		MaxConcurrentStreams: cfg.MaxConcurrentStreams,
		MaxReadFrameSize:     h2MaxReadFrameSize,
		// What a client may upload ahead of the pipeline (x/net buffers it).
		MaxUploadBufferPerConnection: cfg.H2MaxUploadBufferPerConnection,
		MaxUploadBufferPerStream:     cfg.H2MaxUploadBufferPerStream,
	}
	if err := http2.ConfigureServer(s.h1, h2s); err != nil {
		return nil, fmt.Errorf("configure http2: %w", err)
	}
	// x/net's own "h2" hook, but serving the connection with its records
	// batched (recordbatch.go). The same http2.Server serves it, so its
	// graceful shutdown (registered by ConfigureServer) still covers it.
	s.h1.TLSNextProto[http2.NextProtoTLS] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
		var ctx context.Context
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext() // net/http's per-connection context, ConnContext's
		}
		h2s.ServeConn(batchedH2(c), &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: hs})
	}
	if cfg.HoldForRecord {
		d, ok := cfg.Recorder.(DurableRecorder)
		if !ok {
			return nil, errors.New("proxy config: holding responses for their record needs a recorder that reports durability")
		}
		s.durable = d
	}
	if cfg.Session != nil {
		if cfg.Session.Engine == nil {
			return nil, errors.New("proxy config: session enforcement needs an engine getter")
		}
		if err := s.initSession(); err != nil {
			return nil, fmt.Errorf("proxy config: session: %w", err)
		}
		s.rproxy.ModifyResponse = s.sessionModifyResponse
	}
	if cfg.Suffix != nil {
		if cfg.Suffix.Mapper == nil {
			return nil, errors.New("proxy config: the suffix proxy needs a host mapper")
		}
		s.initSuffix()
		s.suffixTLS = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			NextProtos:     []string{"h2", "http/1.1"},
			GetCertificate: s.suffixCertificate,
		}
		s.clientCerts.requestCerts(s.suffixTLS)
	}
	go func() { _ = s.h1.Serve(s.inbox) }()
	return s, nil
}

// Serve accepts connections from a transparent listener until it is closed.
// Each accepted socket's local address is the original destination.
func (s *Server) Serve(ln net.Listener) error {
	s.track(ln)
	ln = s.limitListener(ln)
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		ci := s.newConnInfo(ModeTransparent, c)
		ci.Dest = addrPortOf(c.LocalAddr())
		s.goHandle(c, ci)
	}
}

func (s *Server) newConnInfo(mode Mode, c net.Conn) *ConnInfo {
	s.Stats.ConnsAccepted.Add(1)
	return &ConnInfo{ID: s.nextID.Add(1), Mode: mode, Client: addrPortOf(c.RemoteAddr()), Start: time.Now(), srv: s, ClientKind: browserKind}
}

func (s *Server) goHandle(c net.Conn, ci *ConnInfo) {
	s.conns.Add(1)
	go func() {
		defer s.conns.Done()
		s.handle(c, ci)
	}()
}

func (s *Server) track(ln net.Listener) {
	s.lnMu.Lock()
	s.lns = append(s.lns, ln)
	s.lnMu.Unlock()
}

// handle runs one connection through peek → access decision → enforcement.
func (s *Server) handle(c net.Conn, ci *ConnInfo) {
	if s.cfg.Recorder != nil {
		if err := s.cfg.Recorder.Admit(); err != nil {
			s.Stats.RefusedUnrecorded.Add(1)
			s.refuse(c, ci)
			s.logConn(ci, "block", "activity log unavailable: "+err.Error(), 0, 0)
			return
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	hello, peeked, err := ReadClientHello(c)
	switch {
	case err == nil:
		ci.Hello, ci.TLS, ci.JA4 = hello, true, hello.JA4()
		s.classifyConn(ci)
	case errors.Is(err, ErrNotTLS) && !slices.Contains(s.cfg.TLSPorts, ci.Dest.Port()):
		// Plain HTTP (port 80, or a CONNECT tunnel to a plain port).
	case errors.Is(err, ErrNotTLS):
		s.Stats.ConnsNotTLS.Add(1)
		s.logConn(ci, "block", "not TLS on a TLS port", 0, 0)
		_ = c.Close()
		return
	case errors.Is(err, ErrMalformedClientHello):
		s.Stats.HelloMalformed.Add(1)
		s.logConn(ci, "block", err.Error(), 0, 0)
		_ = c.Close()
		return
	default:
		// Closed or timed out part-way: nothing to decide about.
		if len(peeked) > 0 {
			s.Stats.HelloIncomplete.Add(1)
			s.logConn(ci, "error", "incomplete ClientHello: "+err.Error(), 0, 0)
		}
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})

	d := ConnDecision{Verdict: VerdictIntercept}
	if s.cfg.Conn != nil {
		d = s.cfg.Conn.DecideConn(ci)
	}
	d = s.deferToUser(ci, d)
	if d.Verdict == VerdictIntercept && ci.TLS && s.passthrough.has(ci.ServerName(), ci.ClientKind.Family) {
		d = ConnDecision{Verdict: VerdictBypass, Reason: "learnt pass-through: " + ci.ClientKind.Family + " pins its certificates"}
	}
	if d.Verdict == VerdictBlock && d.Page && ci.TLS {
		// A browser is shown why: the handshake completes with our leaf
		// and every request gets the block page.
		s.Stats.Blocked.Add(1)
		ci.blockPage = &d
		s.intercept(&peekedConn{Conn: c, peeked: peeked, ci: ci}, ci)
		return
	}
	switch d.Verdict {
	case VerdictBypass:
		s.Stats.Bypassed.Add(1)
		s.splice(c, peeked, ci, d.Reason)
	case VerdictBlock:
		s.Stats.Blocked.Add(1)
		s.refuse(c, ci)
		s.logConn(ci, "block", d.Reason, 0, 0)
	default:
		s.Stats.Intercepted.Add(1)
		s.intercept(&peekedConn{Conn: c, peeked: peeked, ci: ci}, ci)
	}
}

// refuse ends a blocked connection: a fatal access_denied alert for TLS, a
// reset for plain HTTP, so the client fails at once instead of timing out.
func (s *Server) refuse(c net.Conn, ci *ConnInfo) {
	if ci.TLS {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte{21, 3, 3, 0, 2, 2, 49})
	} else if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (s *Server) intercept(pc *peekedConn, ci *ConnInfo) {
	if !ci.TLS {
		ci.upstream = s.upstreamFor(ci, false)
		s.serveHTTP1(pc, ci)
		return
	}
	tc := tls.Server(pc, s.clientTLS)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.Stats.HandshakeFailed.Add(1)
		if !s.learnPinned(ci, err) {
			s.logConn(ci, "error", "client TLS handshake: "+err.Error(), 0, 0)
		}
		_ = tc.Close()
		return
	}
	s.noteClientCert(ci, tc)
	h2 := tc.ConnectionState().NegotiatedProtocol == "h2"
	ci.upstream = s.upstreamFor(ci, h2)
	if h2 {
		pc.batch = &recordBatch{}
		s.inbox.push(tc)
		return
	}
	s.serveHTTP1(tc, ci)
}

// Close stops the listeners and drains: requests in flight and tunnels
// (drain.go) have until ctx is done to end, then what is still open is cut.
// It returns once everything ended, or at most cutRecordWait after ctx is
// done, with ctx's error if anything had to be cut.
func (s *Server) Close(ctx context.Context) error {
	s.closing.Store(true)
	s.lnMu.Lock()
	for _, ln := range s.lns {
		_ = ln.Close()
	}
	explicit := s.explicit
	s.lnMu.Unlock()
	s.tunnels.drain()
	// The explicit listener closes now as well, not once the intercepted
	// connections have drained: while it stayed open it took new clients
	// during the whole grace period. Both servers drain at once.
	explicitDone := make(chan error, 1)
	if explicit != nil {
		go func() { explicitDone <- explicit.Shutdown(ctx) }()
	} else {
		explicitDone <- nil
	}
	h1Done := make(chan error, 1)
	go func() { h1Done <- s.h1conns.shutdown(ctx) }()
	err := errors.Join(s.h1.Shutdown(ctx), <-explicitDone, <-h1Done)
	_ = s.h1.Close()
	// Once the HTTP servers are done no tunnel starts: each one open has
	// what is left of the grace period.
	if werr := s.tunnels.wait(ctx); werr != nil {
		n := s.tunnels.cut(cutAtGraceOver)
		if n > 0 {
			s.cfg.Log.Warn("shutdown grace period over: tunnels cut", "tunnels", n)
			if err == nil {
				err = fmt.Errorf("%d tunnels cut: %w", n, werr)
			}
		}
	}
	s.upstreams.closeAll()
	s.warm.close()
	// What was cut writes its record before Close returns (bounded).
	final := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		final, cancel = context.WithTimeout(context.Background(), cutRecordWait)
		defer cancel()
	}
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		_ = s.tunnels.wait(final)
	case <-final.Done():
	}
	return err
}

// copyBuffers bounds the memory of every body copy: 32 KiB per direction.
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte  { return *(p.pool.Get().(*[]byte)) }
func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

var _ httputil.BufferPool = (*bufferPool)(nil)
