package agent

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// SetListener refuses, with a reason, every socket the datapath could not
// steer to, instead of leaving SYNs unanswered later.
func TestSetListenerRejectsUnsteerableSockets(t *testing.T) {
	h := newHarness(t, testConfig())
	fdOf := func(t *testing.T, c syscall.Conn) int {
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var fd int
		_ = rc.Control(func(f uintptr) { fd = int(f) })
		return fd
	}
	plainLC := &net.ListenConfig{}
	plainLC.SetMultipathTCP(false)
	plain, err := plainLC.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	mptcp := &net.ListenConfig{}
	mptcp.SetMultipathTCP(true)
	mptcpLn, err := mptcp.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mptcpLn.Close()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	v4 := transparentListener(t, "tcp4", "127.0.0.1:0")
	conn, err := net.Dial("tcp4", v4.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	cases := []struct {
		name string
		fd   int
		ipv6 bool
		why  string
	}{
		{"not transparent", fdOf(t, plain.(*net.TCPListener)), false, "TRANSPARENT"},
		{"wrong family", fdOf(t, v4), true, "not an IPv6 socket"},
		{"UDP", fdOf(t, udp.(*net.UDPConn)), false, "not a TCP socket"},
		{"connected, not listening", fdOf(t, conn.(*net.TCPConn)), false, ""},
		{"not a socket", 0, false, "getsockopt"},
	}
	if isMPTCP(t, fdOf(t, mptcpLn.(*net.TCPListener))) {
		cases = append(cases, struct {
			name string
			fd   int
			ipv6 bool
			why  string
		}{"MPTCP", fdOf(t, mptcpLn.(*net.TCPListener)), false, "MPTCP"})
	}
	for _, tc := range cases {
		err := setListener(h.objs.Listeners, tc.fd, tc.ipv6)
		if !errors.Is(err, ErrNotListener) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %v, want ErrNotListener saying %q", tc.name, err, tc.why)
		}
	}
	if err := setListener(h.objs.Listeners, fdOf(t, v4), false); err != nil {
		t.Errorf("transparent IPv4 listener: %v", err)
	}
}

func isMPTCP(t *testing.T, fd int) bool {
	lab.RequireRoot(t)
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	return err == nil && proto == unix.IPPROTO_MPTCP
}
