package proxy

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenTransparent opens a TCP listener with IP_TRANSPARENT (IPV6_TRANSPARENT
// for IPv6) so it can accept connections the datapath assigned to it for
// addresses that are not the appliance's own. An accepted connection's
// LocalAddr is the client's original destination.
//
// network is "tcp4" or "tcp6"; an IPv6 listener is v6-only so the datapath can
// hand each family its own socket.
func ListenTransparent(ctx context.Context, network, addr string) (*net.TCPListener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if network == "tcp6" {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1); serr != nil {
					return
				}
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
				return
			}
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	// Go defaults listeners to MPTCP; the datapath's sockmap accepts plain TCP
	// sockets only.
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("transparent listen %s %s: %w", network, addr, err)
	}
	return ln.(*net.TCPListener), nil
}
