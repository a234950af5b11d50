package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/proxy/identity"
)

// SuffixConfig turns on the suffix reverse proxy: app.example.com.<suffix>
// is served by the appliance and proxied to app.example.com, with every URL,
// cookie and header rewritten so the browser stays under the suffix.
type SuffixConfig struct {
	// Mapper decides which hosts are onboarded apps. Required.
	Mapper *SuffixMapper
	// Certificate, when set, is served for every suffixed name it is valid
	// for (an admin-supplied certificate); other names get a leaf minted
	// from the appliance CA.
	Certificate *tls.Certificate
	// AllowPrivate reports origins (apps) that may resolve to private or
	// loopback addresses: intranet apps, the lab. Everything else that
	// resolves there is refused before any dial.
	AllowPrivate func(originHost string) bool
	// SuffixDiscovered suffixes links to domains of no onboarded app seen in
	// app responses (and then serves them), so a session does not leak out
	// of the proxy through them. Discovered domains are recorded either way.
	SuffixDiscovered bool
	// MaxDiscovered bounds the discovered-domain set. Default 10,000.
	MaxDiscovered int
	// Sessions keeps the identity the proxy learnt in an encrypted,
	// host-bound cookie. Nil: identities are not kept.
	Sessions *identity.Sessions
	// SAML returns the observer that verifies assertions posted to an app
	// (nil when the app has no SAML trust configured).
	SAML func(originHost string) *identity.SAMLObserver
	// Login is the proxy's own OIDC login, run for apps LoginRequired names
	// when no identity is known yet.
	Login         *identity.OIDCLogin
	LoginRequired func(originHost string) bool
	// MaxFormBody bounds a URL-encoded form body the proxy rewrites (SAML
	// and OIDC posts, ordinary forms). Bigger forms get 413. Default 4 MiB.
	MaxFormBody int64
}

func (c *SuffixConfig) setDefaults() {
	if c.MaxDiscovered == 0 {
		c.MaxDiscovered = 10000
	}
	if c.MaxFormBody == 0 {
		c.MaxFormBody = 4 << 20
	}
}

// ServeSuffix accepts TLS connections for *.<suffix> until ln is closed.
// Requests are served by the same HTTP/1.1 + HTTP/2 server as intercepted
// connections and dispatched on the connection's mode.
func (s *Server) ServeSuffix(ln net.Listener) error {
	if s.suffix == nil {
		return errors.New("suffix listener: no suffix configured")
	}
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
		ci := s.newConnInfo(ModeSuffix, c)
		ci.Dest = addrPortOf(c.LocalAddr())
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.handleSuffix(c, ci)
		}()
	}
}

// handleSuffix peeks the ClientHello (for JA4) and terminates TLS with a
// certificate for the suffixed name. A name that is not under the suffix, or
// not an app, still gets a handshake (with the suffix's own certificate) so
// that the browser can be shown why.
func (s *Server) handleSuffix(c net.Conn, ci *ConnInfo) {
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
	if err != nil {
		if errors.Is(err, ErrNotTLS) {
			s.Stats.ConnsNotTLS.Add(1)
			s.logConn(ci, "block", "not TLS on the suffix listener", 0, 0)
		} else if len(peeked) > 0 {
			s.Stats.HelloMalformed.Add(1)
			s.logConn(ci, "block", err.Error(), 0, 0)
		}
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	ci.Hello, ci.TLS, ci.JA4 = hello, true, hello.JA4()
	pc := &peekedConn{Conn: c, peeked: peeked, ci: ci}
	tc := tls.Server(pc, s.suffixTLS)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	err = tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.Stats.HandshakeFailed.Add(1)
		s.logConn(ci, "error", "client TLS handshake: "+err.Error(), 0, 0)
		_ = tc.Close()
		return
	}
	s.Stats.Intercepted.Add(1)
	s.noteClientCert(ci, tc)
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		pc.batch = &recordBatch{}
		s.inbox.push(tc)
		return
	}
	s.serveHTTP1(tc, ci)
}

// suffixCertificate serves the suffixed name a leaf: the admin's
// certificate when it covers the name, else one minted from the appliance
// CA. Leaves are minted only for names that map to an app (or a discovered
// domain being served), so a scan of random names cannot fill the cache.
func (s *Server) suffixCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	sc := s.cfg.Suffix
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if _, err := s.suffixOrigin(name); err != nil {
		name = sc.Mapper.suffix
	}
	if sc.Certificate != nil && sc.Certificate.Leaf != nil && sc.Certificate.Leaf.VerifyHostname(name) == nil {
		return sc.Certificate, nil
	}
	return s.cfg.Certs.Certificate(name)
}

// suffixOrigin maps a suffixed host to the origin it stands for: an app, or
// a discovered domain when those are served.
func (s *Server) suffixOrigin(host string) (string, error) {
	m := s.cfg.Suffix.Mapper
	origin, err := m.ToOrigin(host)
	if errors.Is(err, ErrNotOnboarded) && s.cfg.Suffix.SuffixDiscovered {
		if name, cerr := m.candidate(host); cerr == nil && s.suffix.discovered.has(name) {
			return name, nil
		}
	}
	return origin, err
}
