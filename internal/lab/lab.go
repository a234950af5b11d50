// Package lab builds throwaway network topologies for tests: network
// namespaces joined by veth pairs, with test addresses from 198.18.0.0/15 and
// fd00:7c::/32 assigned inside them. Everything a test creates is removed by
// t.Cleanup, even when the test fails. It is imported by tests only.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireRoot skips a test outside CI when it lacks the privileges it needs.
// Under CI (CI=true) a missing privilege is a failure, never a skip.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN) and CI runs as root")
	}
	t.Skip("needs root: CAP_NET_ADMIN, CAP_BPF and CAP_SYS_ADMIN to create namespaces and attach BPF")
}

// NS is a network namespace created for one test.
type NS struct {
	Name string
	t    testing.TB
}

// NewNS creates a uniquely named namespace ("pc<role><random>") with loopback
// up, and removes it (and its /etc/netns entry) when the test ends.
func NewNS(t testing.TB, role string) *NS {
	t.Helper()
	RequireRoot(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("pc%s%s", role, hex.EncodeToString(b[:]))
	if len(name) > 15 {
		name = name[:15]
	}
	sweepOnce.Do(sweepStale)
	run(t, "ip", "netns", "add", name)
	ns := &NS{Name: name, t: t}
	// Record the owner so a later run removes this namespace even if this
	// process dies before its cleanups run (a test timeout panics past them).
	_ = os.MkdirAll(ownersDir, 0o755)
	_ = os.WriteFile(filepath.Join(ownersDir, name), []byte(strconv.Itoa(os.Getpid())), 0o644)
	t.Cleanup(func() { removeNS(name) })
	ns.IP("link", "set", "lo", "up")
	return ns
}

// ownersDir maps each lab namespace to the PID of the process that made it.
const ownersDir = "/run/portcullis-lab/owners"

var sweepOnce sync.Once

// sweepStale removes lab namespaces whose owning process is gone.
func sweepStale() {
	entries, _ := os.ReadDir(ownersDir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(ownersDir, e.Name()))
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || perr != nil || unix.Kill(pid, 0) == unix.ESRCH {
			removeNS(e.Name())
		}
	}
}

func removeNS(name string) {
	killAll(name)
	_ = exec.Command("ip", "netns", "del", name).Run()
	_ = os.RemoveAll(filepath.Join("/etc/netns", name))
	_ = os.Remove(filepath.Join(ownersDir, name))
}

// killAll kills the processes left in the namespace, never the test itself:
// a goroutine that entered the namespace on a locked OS thread (NS.Do) may
// have been the main thread, and then `ip netns pids` lists this process.
func killAll(name string) {
	out, _ := exec.Command("ip", "netns", "pids", name).Output()
	self := strconv.Itoa(os.Getpid())
	for _, f := range strings.Fields(string(out)) {
		if f == self {
			continue
		}
		_ = exec.Command("kill", "-9", f).Run()
	}
}

// Path is the namespace's file under /run/netns.
func (n *NS) Path() string { return "/run/netns/" + n.Name }

// IP runs an ip(8) command inside the namespace and fails the test on error.
func (n *NS) IP(args ...string) string {
	n.t.Helper()
	return run(n.t, "ip", append([]string{"-n", n.Name}, args...)...)
}

// Exec runs a program inside the namespace the way "ip netns exec" does (so it
// resolves names from /etc/netns/<ns>/hosts) and returns its combined output.
func (n *NS) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	return n.Command(ctx, name, args...).CombinedOutput()
}

// Command prepares a program to run with "ip netns exec".
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// DaemonCommand prepares a program to run in the namespace's network stack
// but the caller's mount namespace (nsenter --net): the appliance needs the
// host's /sys/fs/bpf, where its datapath is pinned, which "ip netns exec"
// would hide behind a fresh /sys.
func (n *NS) DaemonCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path(), "--", name}, args...)...)
}

// Do runs fn on an OS thread switched into the namespace. Sockets created by fn
// stay in the namespace for their whole life, whichever thread uses them later.
// The thread is switched back afterwards; if that fails it stays locked, so
// the runtime retires it instead of reusing it in the wrong namespace.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(n.Path())
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// Listen opens a listener inside the namespace.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() (err error) { ln, err = net.Listen(network, addr); return })
	return ln, err
}

// ListenPacket opens a packet socket inside the namespace.
func (n *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() (err error) { pc, err = net.ListenPacket(network, addr); return })
	return pc, err
}

// Dial connects from inside the namespace.
func (n *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return
	})
	return c, err
}

// SetHosts writes /etc/netns/<ns>/hosts so programs run with "ip netns exec"
// resolve the lab's names.
func (n *NS) SetHosts(lines map[string]netip.Addr) {
	n.t.Helper()
	dir := filepath.Join("/etc/netns", n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		n.t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n::1 localhost\n")
	for name, a := range lines {
		fmt.Fprintf(&b, "%s %s\n", a, name)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// Veth joins two namespaces with a veth pair named aIf (in a) and bIf (in b),
// both brought up.
func Veth(t testing.TB, a *NS, aIf string, b *NS, bIf string) {
	t.Helper()
	run(t, "ip", "link", "add", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	a.IP("link", "set", aIf, "up")
	b.IP("link", "set", bIf, "up")
}

// Gateway is the standard three-host lab: client ── gateway ── origin, with
// the gateway routing between a LAN and a WAN segment.
type Gateway struct {
	Client, GW, Origin *NS
	// LANIf and WANIf are the gateway's interfaces; the client's is "eth0" and
	// the origin's is "eth0" too.
	LANIf, WANIf string

	Client4, GWLAN4, GWWAN4, Origin4 netip.Addr
	Client6, GWLAN6, GWWAN6, Origin6 netip.Addr
}

// NewGateway builds client, gateway and origin namespaces with IPv4 and IPv6
// addresses and routes, and IP forwarding on the gateway.
func NewGateway(t testing.TB) *Gateway {
	t.Helper()
	g := &Gateway{
		Client: NewNS(t, "c"), GW: NewNS(t, "g"), Origin: NewNS(t, "o"),
		LANIf: "lan0", WANIf: "wan0",
		Client4: netip.MustParseAddr("198.18.1.2"), GWLAN4: netip.MustParseAddr("198.18.1.1"),
		GWWAN4: netip.MustParseAddr("198.18.2.1"), Origin4: netip.MustParseAddr("198.18.2.2"),
		Client6: netip.MustParseAddr("fd00:7c:1::2"), GWLAN6: netip.MustParseAddr("fd00:7c:1::1"),
		GWWAN6: netip.MustParseAddr("fd00:7c:2::1"), Origin6: netip.MustParseAddr("fd00:7c:2::2"),
	}
	Veth(t, g.Client, "eth0", g.GW, g.LANIf)
	Veth(t, g.Origin, "eth0", g.GW, g.WANIf)
	for _, c := range []struct {
		ns   *NS
		dev  string
		addr string
	}{
		{g.Client, "eth0", "198.18.1.2/24"}, {g.Client, "eth0", "fd00:7c:1::2/64"},
		{g.GW, g.LANIf, "198.18.1.1/24"}, {g.GW, g.LANIf, "fd00:7c:1::1/64"},
		{g.GW, g.WANIf, "198.18.2.1/24"}, {g.GW, g.WANIf, "fd00:7c:2::1/64"},
		{g.Origin, "eth0", "198.18.2.2/24"}, {g.Origin, "eth0", "fd00:7c:2::2/64"},
	} {
		c.ns.IP("addr", "add", c.addr, "dev", c.dev, "nodad")
	}
	g.Client.IP("route", "add", "default", "via", "198.18.1.1")
	g.Client.IP("-6", "route", "add", "default", "via", "fd00:7c:1::1")
	g.Origin.IP("route", "add", "default", "via", "198.18.2.1")
	g.Origin.IP("-6", "route", "add", "default", "via", "fd00:7c:2::1")
	for _, k := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"} {
		if out, err := g.GW.Exec(context.Background(), "sysctl", "-qw", k); err != nil {
			t.Fatalf("sysctl %s: %v: %s", k, err, out)
		}
	}
	// Neighbour discovery must settle before the first test packet, or the
	// first SYN over IPv6 can be lost and a test waits for a retransmit.
	WaitReachable(t, g.Client, g.Origin6, g.Origin4)
	return g
}

// WaitReachable pings each address from ns until it answers (bounded).
func WaitReachable(t testing.TB, ns *NS, addrs ...netip.Addr) {
	t.Helper()
	for _, a := range addrs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := ns.Exec(ctx, "ping", "-c1", "-W1", a.String())
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s cannot reach %s: %v", ns.Name, a, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
