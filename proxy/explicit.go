package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ServeExplicit runs the explicit-proxy listener: CONNECT tunnels enter the
// same pipeline as transparent connections (peek, decide, intercept or
// bypass); absolute-form plain-HTTP requests run the same request hooks.
//
// CONNECT is served here rather than through goproxy: goproxy's hijack path
// drops bytes buffered while the CONNECT request was parsed, and its
// plain-HTTP path would bypass our hooks and transport; net/http gives the
// request parsing, and the rest is ours.
func (s *Server) ServeExplicit(ln net.Listener) error {
	s.lnMu.Lock()
	if s.explicit == nil {
		s.explicit = &http.Server{
			Handler:           s.limitRequests(http.HandlerFunc(s.serveExplicit)),
			ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
			IdleTimeout:       s.cfg.IdleTimeout,
			MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
			ErrorLog:          s.h1.ErrorLog,
			// The explicit front end speaks HTTP/1.1 only: CONNECT over h2 is
			// rare for proxies and would need its own tunnel type.
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		}
	}
	srv := s.explicit
	s.lnMu.Unlock()
	err := srv.Serve(s.limitListener(ln))
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

func (s *Server) serveExplicit(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		s.serveConnect(w, r)
	case r.URL.IsAbs() && r.URL.Scheme == "http":
		s.serveAbsolute(w, r)
	default:
		http.Error(w, "this is the Portcullis explicit proxy: send CONNECT or absolute-form http:// requests", http.StatusBadRequest)
	}
}

func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	host, port, err := splitTarget(r.Host)
	if err != nil {
		http.Error(w, "bad CONNECT target: "+err.Error(), http.StatusBadRequest)
		return
	}
	dest, err := s.resolve(r.Context(), host, port)
	if err != nil {
		s.logExplicitFailure(r, r.Host, err)
		http.Error(w, fmt.Sprintf("cannot reach %s: %v", r.Host, err), http.StatusBadGateway)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot take over the connection", http.StatusInternalServerError)
		return
	}
	ci := s.newConnInfo(ModeExplicit, c)
	ci.Dest, ci.ConnectHost = dest, normalizeHost(host)
	if _, err := c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		_ = c.Close()
		return
	}
	// Bytes the client sent right behind the CONNECT request were read into
	// the server's buffer: they are the start of the tunnel.
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ = brw.Reader.Peek(n)
		early = append([]byte(nil), early...)
	}
	tunnel := net.Conn(c)
	if len(early) > 0 {
		tunnel = &earlyConn{Conn: c, early: early}
	}
	s.conns.Add(1)
	defer s.conns.Done()
	s.handle(tunnel, ci)
}

// serveAbsolute proxies a plain-HTTP request sent in absolute form.
func (s *Server) serveAbsolute(w http.ResponseWriter, r *http.Request) {
	host, port, err := splitTarget(r.URL.Host)
	if err != nil {
		http.Error(w, "bad request target: "+err.Error(), http.StatusBadRequest)
		return
	}
	if port == "" {
		port = "80"
	}
	dest, err := s.resolve(r.Context(), host, port)
	if err != nil {
		s.logExplicitFailure(r, r.URL.Host, err)
		http.Error(w, fmt.Sprintf("cannot reach %s: %v", r.URL.Host, err), http.StatusBadGateway)
		return
	}
	r.Header.Del("Proxy-Connection")
	r.Header.Del("Proxy-Authorization")
	r.Host = r.URL.Host
	ci := &ConnInfo{ID: s.nextID.Add(1), Mode: ModeExplicit, Client: addrPortOf(remoteAddr(r)), Dest: dest, ConnectHost: normalizeHost(host), Start: time.Now()}
	ci.upstream = s.upstreamFor(ci, false)
	s.serveRequest(w, r.WithContext(withConnInfo(r.Context(), ci)))
}

// resolve turns an explicit-proxy target into the one address that will be
// dialled, refusing the appliance's own and other non-routable destinations.
func (s *Server) resolve(ctx context.Context, host, port string) (netip.AddrPort, error) {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if static, ok := s.cfg.Hosts[normalizeHost(host)]; ok {
		for _, v := range static {
			if a, err := netip.ParseAddr(v); err == nil {
				addrs = append(addrs, a)
			}
		}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err = s.lookupHost(ctx, host)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", host, err)
		}
	}
	for _, a := range addrs {
		a = a.Unmap()
		if forbiddenDestination(a) && !(s.allowLoopbackDest && a.IsLoopback()) {
			continue
		}
		return netip.AddrPortFrom(a, uint16(p)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("%w: %s", ErrForbiddenDestination, host)
}

func forbiddenDestination(a netip.Addr) bool {
	return !a.IsValid() || a.IsLoopback() || a.IsUnspecified() || a.IsLinkLocalUnicast() ||
		a.IsMulticast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast()
}

func splitTarget(hostport string) (host, port string, err error) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p, nil
	}
	if hostport == "" {
		return "", "", fmt.Errorf("empty host")
	}
	return hostport, "", nil
}

func remoteAddr(r *http.Request) net.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(ap)
}

// earlyConn replays bytes that arrived with the CONNECT request.
type earlyConn struct {
	net.Conn
	early []byte
}

func (c *earlyConn) Read(p []byte) (int, error) {
	if len(c.early) > 0 {
		n := copy(p, c.early)
		c.early = c.early[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *earlyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// normalizeHost lowercases a host name and drops a trailing dot and IPv6
// brackets, so one name has one spelling in decisions and logs.
func normalizeHost(h string) string {
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	return strings.ToLower(h)
}
