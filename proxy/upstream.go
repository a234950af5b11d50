package proxy

import (
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"time"

	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// upstreamKey identifies what an upstream connection may be reused for: the
// address dialled, the name verified there, and the protocol spoken.
type upstreamKey struct {
	dest netip.AddrPort
	name string
	tls  bool
	h2   bool
}

// upstreamPool shares upstream transports between client connections to the
// same destination and name, so a new client connection costs one TLS
// handshake (the client's) instead of two, and idle client connections do not
// each pin an upstream connection. It is bounded: the least recently used
// transport is closed when the pool is full.
//
// Sharing is by (address, verified name, protocol) only: a connection is
// never used for a name it was not verified for. Connection-bound
// authentication (NTLM/Negotiate) would need per-client pinning; it is not
// offered here.
type upstreamPool struct {
	mu    sync.Mutex
	byKey map[upstreamKey]*list.Element
	lru   *list.List // of *pooledTransport, most recent first
	max   int
}

type pooledTransport struct {
	key  upstreamKey
	t    *http.Transport
	lean *leanUpstream // HTTP/1.1 keys only
}

func newUpstreamPool(max int) *upstreamPool {
	return &upstreamPool{byKey: map[upstreamKey]*list.Element{}, lru: list.New(), max: max}
}

func (p *upstreamPool) get(key upstreamKey, build func() *pooledTransport) *pooledTransport {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.byKey[key]; ok {
		p.lru.MoveToFront(e)
		return e.Value.(*pooledTransport)
	}
	pt := build()
	pt.key = key
	p.byKey[key] = p.lru.PushFront(pt)
	for p.lru.Len() > p.max {
		old := p.lru.Remove(p.lru.Back()).(*pooledTransport)
		delete(p.byKey, old.key)
		// In-flight requests finish; only idle connections close now, the
		// rest when their responses end.
		old.closeIdle(true)
	}
	return pt
}

// closeIdle closes both paths' idle connections; final: the lean path pools
// none after this (the transport is out of the pool).
func (pt *pooledTransport) closeIdle(final bool) {
	pt.t.CloseIdleConnections()
	if pt.lean != nil {
		pt.lean.closeIdle(final)
	}
}

func (p *upstreamPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for e := p.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*pooledTransport).closeIdle(true)
	}
	p.lru.Init()
	clear(p.byKey)
}

// upstreamFor returns the transport for a connection: it dials only the
// original destination, verifies the origin against the name the client
// asked for, and speaks the HTTP version the client chose.
// An HTTP/1.1 connection's is the lean upstream (upstreamlean.go), which
// sends the requests it cannot take to the transport.
func (s *Server) upstreamFor(ci *ConnInfo, h2 bool) http.RoundTripper {
	pt := s.pooledFor(upstreamKey{dest: ci.Dest, name: ci.certName(), tls: ci.TLS, h2: h2 && ci.TLS})
	if pt.lean != nil {
		return pt.lean
	}
	return pt.t
}

// transportFor returns the shared transport for key: it dials only key.dest
// and verifies key.name there.
func (s *Server) transportFor(key upstreamKey) *http.Transport { return s.pooledFor(key).t }

func (s *Server) pooledFor(key upstreamKey) *pooledTransport {
	return s.upstreams.get(key, func() *pooledTransport {
		dest := key.dest.String()
		t := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				if s.dialHook != nil {
					s.dialHook(dest)
				}
				return s.dialer.DialContext(ctx, "tcp", dest)
			},
			TLSHandshakeTimeout:   s.cfg.HandshakeTimeout,
			IdleConnTimeout:       s.cfg.IdleTimeout,
			ExpectContinueTimeout: time.Second,
			MaxIdleConnsPerHost:   64,
			// Bodies pass through with the encoding the origin chose.
			DisableCompression: true,

			MaxResponseHeaderBytes: upstreamMaxHeaderBytes,
		}
		if key.tls {
			conf := s.upstreamTLS.Clone()
			conf.ServerName = key.name
			conf.ClientSessionCache = destSessionCache{shared: s.upstreamTLS.ClientSessionCache, dest: dest}
			t.TLSClientConfig = conf
			t.DialTLSContext = s.upstreamTLSDialer(t.DialContext, conf)
		} else {
			t.DialContext = s.framedDialer(t.DialContext)
		}
		if key.h2 {
			t.ForceAttemptHTTP2 = true
		} else {
			// An empty map turns the transport's HTTP/2 off.
			t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			if t.TLSClientConfig != nil {
				t.TLSClientConfig.NextProtos = []string{"http/1.1"}
			}
		}
		pt := &pooledTransport{t: t}
		if !key.h2 {
			pt.lean = newLeanUpstream(s, t, dest, key.tls)
		}
		return pt
	})
}

// connTransport sends each request over its connection's own upstream.
type connTransport struct{}

func (connTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ci := ConnInfoFrom(r.Context())
	if ci == nil || ci.upstream == nil {
		return nil, errors.New("request without a connection upstream")
	}
	return ci.upstream.RoundTrip(r)
}

// rewriteToOrigin points the outgoing request at the origin the client was
// talking to. No forwarding headers are added: in transparent mode the
// appliance is invisible to the origin.
func rewriteToOrigin(pr *httputil.ProxyRequest) {
	ci := ConnInfoFrom(pr.In.Context())
	if ci != nil && ci.TLS {
		pr.Out.URL.Scheme = "https"
	} else {
		pr.Out.URL.Scheme = "http"
	}
	pr.Out.URL.Host = pr.In.Host
	pr.Out.Host = pr.In.Host
	// The proxy's own cookies (the control script's session) never reach
	// the origin.
	stripOwnCookies(pr.Out.Header)
}

// upstreamError answers a failed round trip: a block page naming the reason
// when the origin's certificate did not verify, a gateway error otherwise.
func (s *Server) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	if s.sessionUpstreamError(w, st) || s.clientBodyFailed(w, r, st, err) {
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		st.set("error", "client went away")
		return
	}
	if errors.Is(err, ErrForbiddenAddr) {
		st.set("block", err.Error())
		code, msg := suffixRefusal(err)
		writeBlockPage(w, code, blockPage{Title: "Not served", Reason: msg, Host: r.Host, RequestID: st.id})
		return
	}
	if reason, ok := certFailure(err); ok {
		s.Stats.UpstreamUnverified.Add(1)
		st.set("block", "upstream certificate: "+reason)
		writeBlockPage(w, http.StatusBadGateway, blockPage{
			Title:  "This site's certificate is not trusted",
			Reason: fmt.Sprintf("The certificate presented by %s failed verification: %s.", r.Host, reason),
			Host:   r.Host, RequestID: st.id,
		})
		return
	}
	s.Stats.UpstreamErrors.Add(1)
	st.set("error", "upstream: "+err.Error())
	writeBlockPage(w, http.StatusBadGateway, blockPage{
		Title:  "The site could not be reached",
		Reason: fmt.Sprintf("The gateway could not complete the request to %s.", r.Host),
		Host:   r.Host, RequestID: st.id,
	})
}

// certFailure says whether err is an origin certificate verification
// failure, and why in a few words.
func certFailure(err error) (string, bool) {
	var (
		verr     *tls.CertificateVerificationError
		hostErr  x509.HostnameError
		authErr  x509.UnknownAuthorityError
		invalErr x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, certcheck.ErrRevoked):
		return "it has been revoked by its issuer", true
	case errors.Is(err, certcheck.ErrWeakKey), errors.Is(err, certcheck.ErrUnsupportedKey):
		return "its key is too weak (" + err.Error() + ")", true
	case errors.Is(err, certcheck.ErrNoRevocationInfo):
		return "its revocation status could not be checked and revocation checking is hard", true
	case errors.As(err, &hostErr):
		return "it is not valid for " + hostErr.Host, true
	case errors.As(err, &authErr):
		return "it is signed by an unknown authority", true
	case errors.As(err, &invalErr):
		if invalErr.Reason == x509.Expired {
			return "it has expired or is not yet valid", true
		}
		return "it is invalid (" + invalErr.Error() + ")", true
	case errors.As(err, &verr):
		return verr.Err.Error(), true
	}
	return "", false
}

// destSessionCache scopes upstream TLS session resumption to the address the
// session was verified at: a session is only resumed with the same
// destination and server name, never with another address that happens to
// hold the same ticket keys. Resumption skips certificate presentation, so it
// must not stretch trust beyond where a full handshake established it.
type destSessionCache struct {
	shared tls.ClientSessionCache
	dest   string
}

func (c destSessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	return c.shared.Get(c.dest + "|" + key)
}

func (c destSessionCache) Put(key string, cs *tls.ClientSessionState) {
	c.shared.Put(c.dest+"|"+key, cs)
}
