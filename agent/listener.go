package agent

import (
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// setListener puts the listening socket fd into the listeners sockmap under
// its family's key. The map takes its own reference to the socket, not to
// the descriptor.
func setListener(m *ebpf.Map, fd int, ipv6 bool) error {
	if err := checkListener(fd, ipv6); err != nil {
		return err
	}
	key := listenerIPv4
	if ipv6 {
		key = listenerIPv6
	}
	if err := m.Update(key, uint64(fd), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("insert listener: %w", err)
	}
	return nil
}

// checkListener verifies that fd is a socket the datapath can steer to,
// so a mistake fails loudly here instead of as silently unanswered SYNs:
//
//   - a listening TCP socket of the requested family: the sockmap and
//     bpf_sk_assign take nothing else. Go's net.Listen creates MPTCP
//     sockets by default since Go 1.24 where the kernel supports MPTCP;
//     those must be disabled with net.ListenConfig.SetMultipathTCP(false).
//   - transparent: the listener answers SYNs addressed to foreign
//     destinations, and only a transparent socket may send from them.
func checkListener(fd int, ipv6 bool) error {
	getInt := func(level, opt int) (int, error) {
		v, err := unix.GetsockoptInt(fd, level, opt)
		if err != nil {
			return 0, fmt.Errorf("%w: getsockopt: %w", ErrNotListener, err)
		}
		return v, nil
	}
	domain, err := getInt(unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return err
	}
	wantDomain, family, transparentLevel, transparentOpt := unix.AF_INET, "IPv4", unix.SOL_IP, unix.IP_TRANSPARENT
	if ipv6 {
		wantDomain, family, transparentLevel, transparentOpt = unix.AF_INET6, "IPv6", unix.SOL_IPV6, unix.IPV6_TRANSPARENT
	}
	if domain != wantDomain {
		return fmt.Errorf("%w: not an %s socket", ErrNotListener, family)
	}
	typ, err := getInt(unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return err
	}
	proto, err := getInt(unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return err
	}
	switch {
	case proto == unix.IPPROTO_MPTCP:
		return fmt.Errorf("%w: an MPTCP socket (use net.ListenConfig.SetMultipathTCP(false))", ErrNotListener)
	case typ != unix.SOCK_STREAM || proto != unix.IPPROTO_TCP:
		return fmt.Errorf("%w: not a TCP socket", ErrNotListener)
	}
	listening, err := getInt(unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return err
	}
	if listening != 1 {
		return fmt.Errorf("%w: not listening", ErrNotListener)
	}
	transparent, err := getInt(transparentLevel, transparentOpt)
	if err != nil {
		return err
	}
	if transparent != 1 {
		return fmt.Errorf("%w: IP_TRANSPARENT/IPV6_TRANSPARENT is not set", ErrNotListener)
	}
	return nil
}
