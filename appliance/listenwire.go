package appliance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/portcullis-gw/portcullis/proxy"
)

// Listener setup serves the address families the host has. Hosts without
// IPv6 (disabled by sysctl or at boot) and hosts whose loopback has no IPv4
// address exist; neither may keep the appliance from starting as long as
// one family can be served, and each skip is logged with what is served.

// errFamilyMissing marks an address this host cannot serve: its family is
// disabled or the address is not configured on any interface.
var errFamilyMissing = errors.New("address family not available on this host")

// onHost checks that this host (network namespace) has addr's address. The
// transparent listeners cannot tell by binding, since IP_TRANSPARENT allows
// binding any address: a plain bind of the same address on port 0 can.
func onHost(network, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen(network, net.JoinHostPort(host, "0"))
	if err != nil {
		if familyMissing(err) {
			return fmt.Errorf("%w: %w", errFamilyMissing, err)
		}
		return err
	}
	return ln.Close()
}

func familyMissing(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT)
}

// listenTransparent binds the transparent listeners of the configured
// families the host has; an empty listen_v4 or listen_v6 leaves its family
// out. It fails only when neither can be served.
func (a *Appliance) listenTransparent() error {
	ctx := context.Background()
	var served []string
	var skipped []error
	for _, f := range []struct{ key, network, addr, family string }{
		{"transparent.listen_v4", "tcp4", a.cfg.Transparent.ListenV4, "IPv4"},
		{"transparent.listen_v6", "tcp6", a.cfg.Transparent.ListenV6, "IPv6"},
	} {
		if f.addr == "" {
			skipped = append(skipped, fmt.Errorf("%s is empty", f.key))
			continue
		}
		if err := onHost(f.network, f.addr); err != nil {
			if !errors.Is(err, errFamilyMissing) {
				return fmt.Errorf("%s: %w", f.key, err)
			}
			a.log.Warn("transparent proxy does not serve "+f.family+": the host has no such address",
				"key", f.key, "addr", f.addr, "err", err)
			skipped = append(skipped, fmt.Errorf("%s %s: %w", f.key, f.addr, err))
			continue
		}
		ln, err := proxy.ListenTransparent(ctx, f.network, f.addr)
		if err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
		a.transparent = append(a.transparent, ln)
		served = append(served, f.family)
	}
	if len(served) == 0 {
		return fmt.Errorf("transparent proxy: no address family can be served: %w", errors.Join(skipped...))
	}
	var addrs []string
	for _, ln := range a.transparent {
		addrs = append(addrs, ln.Addr().String())
	}
	a.log.Info("transparent proxy serves "+strings.Join(served, " and "), "listen", strings.Join(addrs, " "))
	return nil
}

// listenTCP listens on addr for the setting key. A loopback address of a
// family the host lacks (127.0.0.1 without IPv4 on lo, ::1 without IPv6)
// falls back to the other family's loopback on the same port, which is just
// as local, and the move is logged.
func (a *Appliance) listenTCP(key, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	alt, ok := otherLoopback(addr)
	if !ok || !familyMissing(err) {
		return nil, err
	}
	ln, altErr := net.Listen("tcp", alt)
	if altErr != nil {
		return nil, fmt.Errorf("%s: neither %s nor %s can be served: %w", key, addr, alt, errors.Join(err, altErr))
	}
	a.log.Warn(key+" listens on "+alt+": the host cannot serve "+addr, "err", err)
	return ln, nil
}

// otherLoopback returns the loopback address of the other family with
// addr's port, if addr is a loopback address.
func otherLoopback(addr string) (string, bool) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return "", false
	}
	if ap.Addr().Unmap().Is4() {
		return netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port()).String(), true
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port()).String(), true
}
