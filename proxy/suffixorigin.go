package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
)

// suffixTransport sends a suffix request to its origin: the origin's name is
// resolved here (configured hosts first, then DNS), every address is checked
// before anything is dialled, and the connection is verified for the origin
// name and shared like any other upstream. A request the lean HTTP/1.1 path
// takes (upstreamlean.go: GET or HEAD, no body, no upgrade) goes over it,
// guarded there; every other one through upstreamGuard and the origin's
// Transport.
type suffixTransport struct{ s *Server }

func (t suffixTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	st := stateOf(r.Context())
	if st == nil || st.origin == "" {
		return nil, fmt.Errorf("suffix request without an origin")
	}
	dest, err := t.s.resolveOrigin(r.Context(), st.origin)
	if err != nil {
		return nil, err
	}
	h2 := r.ProtoMajor == 2 && !upgradeIs(r.Header, "websocket")
	pt := t.s.pooledFor(upstreamKey{dest: dest, name: st.origin, tls: true, h2: h2})
	if pt.lean != nil && leanEligible(r) {
		return pt.lean.roundTrip(r, st, nil)
	}
	return upstreamGuard{t.s, pt.t}.RoundTrip(r)
}

// resolveOrigin picks the address to dial for an origin host. Forbidden
// addresses (private, loopback, link-local, metadata) are refused unless the
// app is allowed them; a name resolving to any forbidden address is refused
// entirely, so DNS answers mixing public and internal addresses cannot be
// used to reach the inside.
func (s *Server) resolveOrigin(ctx context.Context, host string) (netip.AddrPort, error) {
	var addrs []netip.Addr
	port := uint16(443)
	if hs, ok := s.cfg.Hosts[host]; ok {
		// Configured entries are addresses, or address:port for an origin
		// on another port (tests, intranet apps).
		for _, h := range hs {
			if ap, err := netip.ParseAddrPort(h); err == nil {
				addrs, port = append(addrs, ap.Addr().Unmap()), ap.Port()
			} else if a, err := netip.ParseAddr(h); err == nil {
				addrs = append(addrs, a.Unmap())
			}
		}
	} else {
		ips, err := s.lookupHost(ctx, host)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", host, err)
		}
		for _, a := range ips {
			addrs = append(addrs, a.Unmap())
		}
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	allowPrivate := s.cfg.Suffix.AllowPrivate != nil && s.cfg.Suffix.AllowPrivate(host)
	if !allowPrivate {
		for _, a := range addrs {
			if ForbiddenOriginAddr(a) {
				s.Stats.SuffixForbidden.Add(1)
				return netip.AddrPort{}, fmt.Errorf("%w: %s resolves to %s", ErrForbiddenAddr, host, a)
			}
		}
	}
	return netip.AddrPortFrom(addrs[0], port), nil
}
