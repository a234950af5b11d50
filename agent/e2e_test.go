package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// End to end through the real hook: client ── gateway (datapath on lan0) ──
// origin, each in its own namespace. Which socket answers a connection tells
// where the datapath sent it: the gateway's transparent listener says
// "proxy <local address>", the origin says "origin <local address>".

// serveBanner answers each connection with "<name> <local address>\n" and
// then echoes whatever it reads.
func serveBanner(t testing.TB, ln net.Listener, name string) {
	t.Helper()
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := fmt.Fprintf(c, "%s %s\n", name, c.LocalAddr()); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

// whoAnswers connects from the client to addr and returns the banner of
// whoever accepted, after an echo round trip that exercises the established
// fast path.
func whoAnswers(g *lab.Gateway, addr netip.AddrPort) (string, error) {
	c, err := dialFrom(g.Client, "tcp", addr.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	banner, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read banner: %w", err)
	}
	const ping = "ping through the datapath\n"
	if _, err := io.WriteString(c, ping); err != nil {
		return "", err
	}
	if echo, err := r.ReadString('\n'); err != nil || echo != ping {
		return "", fmt.Errorf("echo %q, %v", echo, err)
	}
	return strings.TrimSpace(banner), nil
}

func expectAnswer(t *testing.T, g *lab.Gateway, addr netip.AddrPort, want string) {
	t.Helper()
	got, err := whoAnswers(g, addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	if got != want {
		t.Fatalf("connect to %s: answered by %q, want %q", addr, got, want)
	}
}

func expectRefused(t *testing.T, g *lab.Gateway, addr netip.AddrPort) {
	t.Helper()
	start := time.Now()
	c, err := dialFrom(g.Client, "tcp", addr.String())
	if err == nil {
		c.Close()
		t.Fatalf("connect to %s succeeded, want refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to %s: %v, want connection refused", addr, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v: the client waited instead of being reset", d)
	}
}

// TestDatapathEndToEnd runs once per attach mode: TCX, and the tc fallback
// of kernels before 6.6 forced on this one.
func TestDatapathEndToEnd(t *testing.T) {
	for _, mode := range attachModes {
		t.Run(string(mode), func(t *testing.T) { testDatapathEndToEnd(t, mode) })
	}
}

func testDatapathEndToEnd(t *testing.T, mode AttachMode) {
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
	// The proxy's listeners: transparent, on loopback, on ports nothing
	// else uses. Only steering can bring a client here.
	ln4 := transparentListenerIn(t, g.GW, "tcp4", "127.0.0.1:0")
	ln6 := transparentListenerIn(t, g.GW, "tcp6", "[::1]:0")
	serveBanner(t, ln4, "proxy")
	serveBanner(t, ln6, "proxy")

	stats, err := EnableProgramStats()
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()

	cfg := Config{Interface: g.LANIf, PinDir: testPinDir(t), DropQUIC: true, Attach: mode}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := startIn(t, g.GW, cfg)
	t.Cleanup(func() {
		_ = a.Close() // the agent of the last restart
		_ = g.GW.Do(func() error { return Remove(cfg) })
	})
	if at := a.Attachment(); at.Mode != mode || at.TookOver || !at.IPv6 || at.Interface != g.LANIf {
		t.Fatalf("attachment %+v, want a fresh %s one with IPv6", at, mode)
	}
	waitPrograms(t, g.GW, g.LANIf, mode, 1)
	for _, l := range []struct {
		ln   *net.TCPListener
		ipv6 bool
	}{{ln4, false}, {ln6, true}} {
		if err := withFD(t, l.ln, func(fd uintptr) error { return a.SetListener(fd, l.ipv6) }); err != nil {
			t.Fatalf("SetListener: %v", err)
		}
	}

	t.Run("steers ipv4 to the listener with the original destination", func(t *testing.T) {
		expectAnswer(t, g, https4, "proxy "+https4.String())
	})
	t.Run("steers ipv6 to the listener with the original destination", func(t *testing.T) {
		expectAnswer(t, g, https6, "proxy "+https6.String())
	})
	t.Run("ports not intercepted reach the origin", func(t *testing.T) {
		expectAnswer(t, g, other4, "origin "+other4.String())
		expectAnswer(t, g, other6, "origin "+other6.String())
	})
	t.Run("bypassed destinations reach the origin", func(t *testing.T) {
		bypass := []netip.Prefix{netip.PrefixFrom(g.Origin4, 32), netip.PrefixFrom(g.Origin6, 128)}
		if err := a.SetBypass(bypass); err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, g, https4, "origin "+https4.String())
		expectAnswer(t, g, https6, "origin "+https6.String())
		if err := a.SetBypass(nil); err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, g, https4, "proxy "+https4.String())
	})
	t.Run("QUIC is dropped, and passes when allowed", func(t *testing.T) { testQUIC(t, g, a) })
	t.Run("truncated frames are left to the kernel", func(t *testing.T) { testTruncatedFrames(t, g, a) })
	t.Run("counters, metrics and program stats", func(t *testing.T) {
		c, err := a.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if c.Steered < 3 || c.Established == 0 || c.Bypassed == 0 || c.NotIntercepted == 0 || c.AssignErrors != 0 {
			t.Errorf("counters %+v", c)
		}
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
		if got["portcullis_datapath_packets_total,steered"] != float64(c.Steered) {
			t.Errorf("metrics %v do not match counters %+v", got, c)
		}
		if got["portcullis_datapath_listener_present,ipv4"] != 1 || got["portcullis_datapath_listener_present,ipv6"] != 1 {
			t.Errorf("listener gauges: %v", got)
		}
		if got["portcullis_datapath_attach_mode,"+string(mode)] != 1 {
			t.Errorf("attach mode gauge: %v, want %s 1", got, mode)
		}
		runTime, runs, err := a.ProgramStats()
		if err != nil || runs == 0 || runTime == 0 {
			t.Errorf("program stats: %v over %d runs, %v", runTime, runs, err)
		}
		t.Logf("program: %d runs, %v mean", runs, runTime/time.Duration(max(runs, 1)))
	})
	t.Run("a restart takes over the running datapath", func(t *testing.T) {
		before, err := a.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		// Between processes the pinned program keeps steering.
		expectAnswer(t, g, https4, "proxy "+https4.String())
		// Started here, closed by the parent test: the later subtests use it.
		if err := g.GW.Do(func() (err error) { a, err = Start(cfg); return }); err != nil {
			t.Fatalf("Start: %v", err)
		}
		after, err := a.Counters()
		if err != nil || after.Steered <= before.Steered {
			t.Errorf("counters did not carry over: before %+v after %+v (%v)", before, after, err)
		}
		waitPrograms(t, g.GW, g.LANIf, mode, 1)
		if at := a.Attachment(); at.Mode != mode || !at.TookOver {
			t.Errorf("attachment after restart %+v, want %s taken over", at, mode)
		}
		// The listeners are still open, so still in the reused sockmap.
		expectAnswer(t, g, https6, "proxy "+https6.String())
	})
	t.Run("without a listener, fail-closed refuses at once", func(t *testing.T) {
		_ = ln4.Close()
		_ = ln6.Close()
		expectRefused(t, g, https4)
		expectRefused(t, g, https6)
		expectAnswer(t, g, other4, "origin "+other4.String())
		if c, err := a.Counters(); err != nil || c.NoListenerRefused < 2 {
			t.Errorf("counters %+v, %v: want the refusals counted", c, err)
		}
	})
	t.Run("without a listener, fail-open forwards to the origin", func(t *testing.T) {
		if err := a.SetFailOpen(true); err != nil {
			t.Fatal(err)
		}
		expectAnswer(t, g, https4, "origin "+https4.String())
		expectAnswer(t, g, https6, "origin "+https6.String())
	})
	t.Run("Detach leaves nothing behind", func(t *testing.T) {
		if err := a.Detach(); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		requireNothingLeft(t, g.GW, g.LANIf, cfg)
		if err := a.Detach(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Detach: %v, want ErrClosed", err)
		}
		expectAnswer(t, g, https4, "origin "+https4.String())
	})
}

func testQUIC(t *testing.T, g *lab.Gateway, a *Agent) {
	quic := netip.AddrPortFrom(g.Origin4, 443)
	pc, err := g.Origin.ListenPacket("udp4", quic.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var c net.Conn
	if err := g.Client.Do(func() (err error) { c, err = net.Dial("udp4", quic.String()); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	received := func(wait time.Duration) bool {
		if _, err := c.Write([]byte("initial")); err != nil {
			t.Fatal(err)
		}
		_ = pc.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 64)
		_, _, err := pc.ReadFrom(buf)
		return err == nil
	}
	before, _ := a.Counters()
	if received(300 * time.Millisecond) {
		t.Error("QUIC reached the origin with drop_quic set")
	}
	if after, _ := a.Counters(); after.QUICDropped <= before.QUICDropped {
		t.Errorf("QUIC drop not counted: %+v", after)
	}
	if err := a.SetDropQUIC(false); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.SetDropQUIC(true) }()
	if !received(2 * time.Second) {
		t.Error("QUIC did not reach the origin with drop_quic off")
	}
}

// testTruncatedFrames sends frames cut inside their IP header from the
// client's interface with a packet socket: the program must count them as
// malformed and leave them alone, and the gateway must go on working.
func testTruncatedFrames(t *testing.T, g *lab.Gateway, a *Agent) {
	var gwMAC net.HardwareAddr
	if err := g.GW.Do(func() error {
		ifi, err := net.InterfaceByName(g.LANIf)
		if err == nil {
			gwMAC = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	frame := func(ethertype uint16, rest ...byte) []byte {
		f := append(append(append([]byte{}, gwMAC...), clientMAC...), byte(ethertype>>8), byte(ethertype))
		return append(f, rest...)
	}
	frames := [][]byte{
		frame(0x0800),
		frame(0x0800, 0x45, 0, 0, 40, 0, 0),
		frame(0x86dd, 0x60, 0, 0, 0, 0, 20, 6, 64),
	}
	before, _ := a.Counters()
	err := g.Client.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], gwMAC)
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, to); err != nil {
				return fmt.Errorf("send %x: %w", f, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		after, err := a.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if after.Malformed-before.Malformed >= uint64(len(frames)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("malformed counted %d times, want %d", after.Malformed-before.Malformed, len(frames))
		}
		time.Sleep(20 * time.Millisecond)
	}
	expectAnswer(t, g, netip.AddrPortFrom(g.Origin4, 443), "proxy "+netip.AddrPortFrom(g.Origin4, 443).String())
}
