package agent

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// lookupPrograms counts the sk_lookup programs attached to ns.
func lookupPrograms(t testing.TB, ns *lab.NS) int {
	t.Helper()
	return len(lookupProgramIDs(t, ns))
}

// waitLookupPrograms waits (bounded) for want sk_lookup programs in ns: a
// link goes when its last reference does.
func waitLookupPrograms(t testing.TB, ns *lab.NS, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := lookupPrograms(t, ns)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sk_lookup programs attached, want %d", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// routeSteeringLeft lists route steering's rules (those into Table and
// DropTable with a protocol selector) and DropTable's routes in ns.
func routeSteeringLeft(t testing.TB, ns *lab.NS, cfg Config) (rules, routes int) {
	t.Helper()
	if err := ns.Do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		rs, rts, err := routeSteeringState(h, &cfg)
		rules, routes = len(rs), len(rts)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rules, routes
}

// refusedFailClosed checks a route-steered connection without a listener
// fails closed: IPv6 gets the kernel's reset at once; IPv4's SYN is dropped
// (the kernel cannot reset from a foreign address), so the dial times out.
// Either way nothing reaches the origin (whose banner would answer).
func refusedFailClosed(t *testing.T, g *lab.Gateway, addr netip.AddrPort) {
	t.Helper()
	if addr.Addr().Is6() {
		expectRefused(t, g, addr)
		return
	}
	c, err := dialFrom(g.Client, "tcp", addr.String())
	if err == nil {
		c.Close()
		t.Fatalf("connect to %s succeeded, want it refused", addr)
	}
	var to interface{ Timeout() bool }
	if !errors.As(err, &to) || !to.Timeout() {
		t.Fatalf("connect to %s: %v, want the SYN dropped (a timeout)", addr, err)
	}
}

// TestRouteSteeringEndToEnd: the default configuration (fail-closed, attach
// auto) steers with policy rules and steer_lookup, on the real kernel path.
func TestRouteSteeringEndToEnd(t *testing.T) {
	g := lab.NewGateway(t)
	https4 := netip.AddrPortFrom(g.Origin4, 443)
	https6 := netip.AddrPortFrom(g.Origin6, 443)
	other4 := netip.AddrPortFrom(g.Origin4, 8080)
	other6 := netip.AddrPortFrom(g.Origin6, 8080)
	for _, addr := range []netip.AddrPort{https4, https6, other4, other6} {
		ln, err := g.Origin.Listen("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		serveBanner(t, ln, "origin")
	}
	ln4 := transparentListenerIn(t, g.GW, "tcp4", "127.0.0.1:0")
	ln6 := transparentListenerIn(t, g.GW, "tcp6", "[::1]:0")
	serveBanner(t, ln4, "proxy")
	serveBanner(t, ln6, "proxy")
	// The gateway's own services on an intercepted port: on the wildcard
	// address (which would take any locally delivered connection steer_lookup
	// left alone) and on port 22, which nobody intercepts.
	for _, addr := range []string{"[::]:443", "[::]:22"} {
		var ln net.Listener
		if err := g.GW.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return }); err != nil {
			t.Fatal(err)
		}
		serveBanner(t, ln, "host")
	}

	stats, err := EnableProgramStats()
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()

	cfg := Config{Interface: g.LANIf, PinDir: testPinDir(t), DropQUIC: true}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := startIn(t, g.GW, cfg)
	t.Cleanup(func() {
		_ = a.Close()
		_ = g.GW.Do(func() error { return Remove(cfg) })
	})
	if at := a.Attachment(); at.Steering != SteeringRoute || at.Mode != AttachSkLookup || at.TookOver || !at.IPv6 {
		t.Fatalf("attachment %+v, want fresh route steering with IPv6", at)
	}
	waitLookupPrograms(t, g.GW, 1)
	waitPrograms(t, g.GW, g.LANIf, AttachTCX, 0) // no program on the interface at all
	// Default: 0.0.0.0/0 and ::/0 (two /1 halves each) × ports 80 and 443 ×
	// TCP and UDP.
	if rules, routes := routeSteeringLeft(t, g.GW, cfg); rules != 16 || routes != 2 {
		t.Errorf("route steering: %d rules, %d routes; want 16 and 2 (the blackholes)", rules, routes)
	}
	for _, l := range []struct {
		ln   *net.TCPListener
		ipv6 bool
	}{{ln4, false}, {ln6, true}} {
		if err := withFD(t, l.ln, func(fd uintptr) error { return a.SetListener(fd, l.ipv6) }); err != nil {
			t.Fatalf("SetListener: %v", err)
		}
	}

	t.Run("a SYN to an intercepted port reaches the proxy's listener", func(t *testing.T) {
		expectAnswer(t, g, https4, "proxy "+https4.String())
		expectAnswer(t, g, https6, "proxy "+https6.String())
	})
	t.Run("established flows run no BPF: one program run per connection", func(t *testing.T) {
		_, n0, _ := a.ProgramStats()
		c0, _ := a.Counters()
		for _, addr := range []netip.AddrPort{https4, https6} {
			echoBulk(t, g, addr, 4<<20)
		}
		_, n1, _ := a.ProgramStats()
		c1, _ := a.Counters()
		if n1-n0 != 2 || c1.Steered-c0.Steered != 2 {
			t.Errorf("steer_lookup ran %d times and steered %d for two connections of 4 MiB each, want 2 and 2",
				n1-n0, c1.Steered-c0.Steered)
		}
	})
	t.Run("ports not intercepted reach the origin", func(t *testing.T) {
		expectAnswer(t, g, other4, "origin "+other4.String())
		expectAnswer(t, g, other6, "origin "+other6.String())
	})
	t.Run("bypassed destinations are forwarded by the kernel", func(t *testing.T) {
		_, n0, _ := a.ProgramStats()
		if err := a.SetBypass([]netip.Prefix{netip.PrefixFrom(g.Origin4, 32), netip.PrefixFrom(g.Origin6, 128)}); err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, g, https4, "origin "+https4.String())
		expectAnswer(t, g, https6, "origin "+https6.String())
		if _, n1, _ := a.ProgramStats(); n1 != n0 {
			t.Errorf("steer_lookup ran %d times for bypassed connections, want 0", n1-n0)
		}
		if err := a.SetBypass(nil); err != nil {
			t.Fatal(err)
		}
		if _, routes := routeSteeringLeft(t, g.GW, cfg); routes != 2 {
			t.Errorf("%d routes after the bypass set emptied, want the 2 blackholes", routes)
		}
		expectAnswer(t, g, https4, "proxy "+https4.String())
	})
	t.Run("sources that are not clients are forwarded", func(t *testing.T) {
		others := cfg
		others.ClientPrefixes = []netip.Prefix{netip.MustParsePrefix("198.18.99.0/24"), netip.MustParsePrefix("fd00:7c:99::/64")}
		if err := a.Update(others); err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, g, https4, "origin "+https4.String())
		expectAnswer(t, g, https6, "origin "+https6.String())
		// Not a client either when it reaches the gateway's own address.
		expectAnswer(t, g, netip.AddrPortFrom(g.GWLAN4, 443), "host "+netip.AddrPortFrom(g.GWLAN4, 443).String())
		if err := a.Update(cfg); err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, g, https4, "proxy "+https4.String())
	})
	t.Run("the host's own services are not stolen", func(t *testing.T) {
		// From the gateway itself, to the intercepted port: steer_lookup
		// sees loopback, not the LAN.
		for _, addr := range []string{"127.0.0.1:443", "[::1]:443"} {
			c, err := dialFrom(g.GW, "tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			banner := make([]byte, 4)
			_, err = io.ReadFull(c, banner)
			c.Close()
			if err != nil || string(banner) != "host" {
				t.Errorf("%s from the gateway answered %q, %v; want the host's service", addr, banner, err)
			}
		}
		// From a client to a port nobody intercepts.
		ssh := netip.AddrPortFrom(g.GWLAN4, 22)
		expectAnswer(t, g, ssh, "host "+ssh.String())
		// From a client to the gateway's own address, bypassed (as
		// Config.BypassPrefixes advises for local services).
		own4, own6 := netip.AddrPortFrom(g.GWLAN4, 443), netip.AddrPortFrom(g.GWLAN6, 443)
		if err := a.SetBypass([]netip.Prefix{netip.PrefixFrom(g.GWLAN4, 32), netip.PrefixFrom(g.GWLAN6, 128)}); err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, g, own4, "host "+own4.String())
		expectAnswer(t, g, own6, "host "+own6.String())
		if err := a.SetBypass(nil); err != nil {
			t.Fatal(err)
		}
		// Not bypassed, it is intercepted like any destination (as tc
		// steering does).
		expectAnswer(t, g, own4, "proxy "+own4.String())
	})
	t.Run("QUIC is dropped, and passes when allowed", func(t *testing.T) { testQUICRoute(t, g, a) })
	t.Run("counters and metrics export only what route steering counts", func(t *testing.T) {
		c, err := a.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if c.Steered < 5 || c.AssignErrors != 0 {
			t.Errorf("counters %+v", c)
		}
		got := gather(t, a)
		if got["portcullis_datapath_packets_total,steered"] != float64(c.Steered) {
			t.Errorf("metrics %v do not match counters %+v", got, c)
		}
		for _, result := range []string{"established", "bypassed", "not_intercepted", "quic_dropped", "orphan_refused"} {
			if _, ok := got["portcullis_datapath_packets_total,"+result]; ok {
				t.Errorf("route steering exports packets_total{result=%q}, which it does not count", result)
			}
		}
		if got["portcullis_datapath_attach_mode,sk_lookup"] != 1 || got["portcullis_datapath_listener_present,ipv4"] != 1 {
			t.Errorf("gauges: %v", got)
		}
	})
	t.Run("fail-open is refused", func(t *testing.T) {
		if err := a.SetFailOpen(true); !errors.Is(err, ErrRestartRequired) {
			t.Errorf("SetFailOpen(true): %v, want ErrRestartRequired", err)
		}
		open := cfg
		open.FailOpen = true
		if err := a.Update(open); !errors.Is(err, ErrRestartRequired) {
			t.Errorf("Update to fail-open: %v, want ErrRestartRequired", err)
		}
		forced := cfg
		forced.FailOpen, forced.Steering = true, SteeringRoute
		if err := forced.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "cannot fail open") {
			t.Errorf("route steering with fail-open: %v, want ErrInvalidConfig naming it", err)
		}
		expectAnswer(t, g, https4, "proxy "+https4.String())
	})
	t.Run("a restart takes over without a gap", func(t *testing.T) {
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, g, https4, "proxy "+https4.String()) // between processes
		stop := make(chan struct{})
		failed := make(chan error, 1)
		go func() { failed <- dialUntil(g, https6, stop) }()
		if err := g.GW.Do(func() (err error) { a, err = Start(cfg); return }); err != nil {
			t.Fatalf("Start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
		close(stop)
		if err := <-failed; err != nil {
			t.Errorf("during the restart: %v", err)
		}
		if at := a.Attachment(); at.Steering != SteeringRoute || !at.TookOver {
			t.Errorf("attachment after restart %+v", at)
		}
		waitLookupPrograms(t, g.GW, 1)
		if rules, _ := routeSteeringLeft(t, g.GW, cfg); rules != 16 {
			t.Errorf("%d rules after the restart, want 16", rules)
		}
		expectAnswer(t, g, https4, "proxy "+https4.String())
	})
	t.Run("switching to tc steering and back takes over without a gap", func(t *testing.T) {
		tc := cfg
		tc.Steering = SteeringTC
		for _, next := range []Config{tc, cfg} {
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			failed := make(chan error, 2)
			for _, addr := range []netip.AddrPort{https4, https6} {
				go func() { failed <- dialUntil(g, addr, stop) }()
			}
			if err := g.GW.Do(func() (err error) { a, err = Start(next); return }); err != nil {
				t.Fatalf("Start: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
			close(stop)
			for range 2 {
				if err := <-failed; err != nil {
					t.Errorf("switching to %s steering: %v", next.Steering, err)
				}
			}
			if at := a.Attachment(); !at.TookOver || (at.Steering == SteeringRoute) != (next.Steering == SteeringAuto) {
				t.Errorf("attachment %+v after switching to %s", at, next.Steering)
			}
		}
		waitSteering(t, g.GW, g.LANIf, AttachSkLookup, 1)
		if rules, _ := routeSteeringLeft(t, g.GW, cfg); rules != 16 {
			t.Errorf("%d rules after switching back, want 16", rules)
		}
	})
	t.Run("without a listener, fail-closed: nothing reaches the origin", func(t *testing.T) {
		before, _ := a.Counters()
		_ = ln4.Close()
		_ = ln6.Close()
		refusedFailClosed(t, g, https6)
		refusedFailClosed(t, g, https4)
		expectAnswer(t, g, other4, "origin "+other4.String())
		if c, err := a.Counters(); err != nil || c.NoListenerRefused-before.NoListenerRefused < 2 {
			t.Errorf("counters %+v, %v: want the refusals counted", c, err)
		}
	})
	t.Run("Detach leaves nothing behind", func(t *testing.T) {
		if err := a.Detach(); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		requireNothingLeft(t, g.GW, g.LANIf, cfg)
		waitLookupPrograms(t, g.GW, 0)
		if rules, routes := routeSteeringLeft(t, g.GW, cfg); rules+routes != 0 {
			t.Errorf("route steering left: %d rules, %d routes", rules, routes)
		}
		expectAnswer(t, g, https4, "origin "+https4.String())
	})
}

// echoBulk sends n bytes through addr's echo (after its banner) and reads
// them back.
func echoBulk(t *testing.T, g *lab.Gateway, addr netip.AddrPort, n int) {
	t.Helper()
	c, err := dialFrom(g.Client, "tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	banner := make([]byte, 5)
	if _, err := io.ReadFull(c, banner); err != nil || string(banner) != "proxy" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	go func() {
		buf := bytes.Repeat([]byte{'x'}, 64<<10)
		for left := n; left > 0; left -= len(buf) {
			if _, err := c.Write(buf[:min(left, len(buf))]); err != nil {
				return
			}
		}
	}()
	// The rest of the banner line, then the echo.
	got, err := io.Copy(io.Discard, io.LimitReader(c, int64(len(" "+addr.String()+"\n")+n)))
	if err != nil || got != int64(len(" "+addr.String()+"\n")+n) {
		t.Fatalf("echo through %s: %d bytes, %v", addr, got, err)
	}
}

// dialUntil connects to addr over and over until stop, and reports the
// first connection that did not reach the proxy.
func dialUntil(g *lab.Gateway, addr netip.AddrPort, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		got, err := whoAnswers(g, addr)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(got, "proxy ") {
			return errors.New("answered by " + got)
		}
	}
}

func gather(t *testing.T, a *Agent) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(a.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return got
}

// testQUICRoute: QUIC from a client to an intercepted port meets the drop
// table's blackhole, with no program run; allowed, it is forwarded.
func testQUICRoute(t *testing.T, g *lab.Gateway, a *Agent) {
	for _, quic := range []netip.AddrPort{netip.AddrPortFrom(g.Origin4, 443), netip.AddrPortFrom(g.Origin6, 443)} {
		pc, err := g.Origin.ListenPacket("udp", quic.String())
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		var c net.Conn
		if err := g.Client.Do(func() (err error) { c, err = net.Dial("udp", quic.String()); return }); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		received := func(wait time.Duration) bool {
			if _, err := c.Write([]byte("initial")); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatal(err)
			}
			_ = pc.SetReadDeadline(time.Now().Add(wait))
			_, _, err := pc.ReadFrom(make([]byte, 64))
			return err == nil
		}
		if received(300 * time.Millisecond) {
			t.Errorf("QUIC to %s reached the origin with drop_quic set", quic)
		}
		if err := a.SetDropQUIC(false); err != nil {
			t.Fatal(err)
		}
		if !received(2 * time.Second) {
			t.Errorf("QUIC to %s did not reach the origin with drop_quic off", quic)
		}
		if err := a.SetDropQUIC(true); err != nil {
			t.Fatal(err)
		}
	}
}
