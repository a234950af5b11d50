package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"time"
)

// newUpstream gives one client connection its own upstream transport, dialling
// only the original destination and verifying the origin against the name
// the client asked for. Keeping upstream connections per client connection
// means no request of one user ever rides a connection opened for another.
func (s *Server) newUpstream(ci *ConnInfo) http.RoundTripper {
	dest := ci.Dest.String()
	tlsConf := s.upstreamTLS.Clone()
	tlsConf.ServerName = ci.certName()
	tlsConf.ClientSessionCache = destSessionCache{shared: s.upstreamTLS.ClientSessionCache, dest: dest}
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return s.dialer.DialContext(ctx, "tcp", dest)
		},
		TLSClientConfig:       tlsConf,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   s.cfg.HandshakeTimeout,
		IdleConnTimeout:       s.cfg.IdleTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   4,
		// Bodies pass through with the encoding the origin chose.
		DisableCompression: true,
	}
	ci.closers = append(ci.closers, t.CloseIdleConnections)
	return t
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
}

// upstreamError answers a failed round trip: a block page naming the reason
// when the origin's certificate did not verify, a gateway error otherwise.
func (s *Server) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		st.set("error", "client went away")
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
