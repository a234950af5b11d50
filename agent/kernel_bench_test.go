package agent

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// The program's cost on the real hook, as the kernel accounts it
// (kernel.bpf_stats_enabled: run_time_ns / run_cnt), by decision path: a
// bulk TCP download through the lab gateway, whose client's ACKs (or, for
// the upload, data segments) are what the program on the LAN ingress sees.
// Run with -benchtime 1x; every path moves kernelBenchBytes per iteration.
//
//	go test ./agent -run '^$' -bench BenchmarkDatapathKernel -benchtime 1x
//
// Every path runs once per attach mode (BenchmarkDatapathKernel/tcx/...,
// .../tc/...), each read against the empty program on its own hook.
//
// ns/packet includes the stats' own clock reads: read the paths against
// empty_program, an empty program on the same hook under the same traffic.
// BenchmarkDatapathThroughput compares the transfer rate with the program
// attached against no program at all, for the paths the program only looks at.

const kernelBenchBytes = 200 << 20

// bulkServer accepts connections on ln and, per connection, either sends
// kernelBenchBytes (download) or reads until EOF (upload), as the first
// byte the client sends says.
func bulkServer(tb testing.TB, ln net.Listener) {
	tb.Helper()
	tb.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var op [1]byte
				if _, err := io.ReadFull(c, op[:]); err != nil {
					return
				}
				if op[0] == 'u' {
					_, _ = io.Copy(io.Discard, c)
					_, _ = c.Write([]byte{'k'})
					return
				}
				buf := make([]byte, 256<<10)
				for left := kernelBenchBytes; left > 0; left -= len(buf) {
					if _, err := c.Write(buf[:min(left, len(buf))]); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// bulk moves kernelBenchBytes between the client and addr and returns how
// long it took.
func bulk(tb testing.TB, g *lab.Gateway, addr netip.AddrPort, upload bool) time.Duration {
	tb.Helper()
	c, err := dialFrom(g.Client, "tcp", addr.String())
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	start := time.Now()
	if upload {
		buf := make([]byte, 256<<10)
		buf[0] = 'u'
		for left := kernelBenchBytes; left > 0; left -= len(buf) {
			if _, err := c.Write(buf[:min(left, len(buf))]); err != nil {
				tb.Fatal(err)
			}
		}
		_ = c.(*net.TCPConn).CloseWrite()
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			tb.Fatalf("upload to %s: %v", addr, err)
		}
		return time.Since(start)
	}
	if _, err := c.Write([]byte{'d'}); err != nil {
		tb.Fatal(err)
	}
	n, err := io.CopyBuffer(io.Discard, c, make([]byte, 256<<10))
	if err != nil || n != kernelBenchBytes {
		tb.Fatalf("download from %s: %d bytes, %v", addr, n, err)
	}
	return time.Since(start)
}

// kernelLab is the gateway lab with bulk servers on the origin (ports 443
// and 8443) and behind the proxy's transparent listeners.
type kernelLab struct {
	*lab.Gateway
	ln4, ln6 *net.TCPListener
	// steered4/6 are destinations no one serves: only the proxy answers.
	steered4, steered6 netip.AddrPort
}

func newKernelLab(tb testing.TB) *kernelLab {
	tb.Helper()
	g := lab.NewGateway(tb)
	for _, a := range []netip.Addr{g.Origin4, g.Origin6} {
		for _, port := range []uint16{443, 8443} {
			ln, err := g.Origin.Listen("tcp", netip.AddrPortFrom(a, port).String())
			if err != nil {
				tb.Fatal(err)
			}
			bulkServer(tb, ln)
		}
	}
	k := &kernelLab{
		Gateway:  g,
		ln4:      transparentListenerIn(tb, g.GW, "tcp4", "127.0.0.1:0"),
		ln6:      transparentListenerIn(tb, g.GW, "tcp6", "[::1]:0"),
		steered4: netip.MustParseAddrPort("198.18.2.99:443"),
		steered6: netip.MustParseAddrPort("[fd00:7c:2::99]:443"),
	}
	bulkServer(tb, k.ln4)
	bulkServer(tb, k.ln6)
	return k
}

// kernelPath is one decision path: a transfer and the counter that must
// account for (nearly) all of its packets.
type kernelPath struct {
	name    string
	addr    func(k *kernelLab) netip.AddrPort
	upload  bool
	counter func(c *Counters) uint64
}

var kernelPaths = []kernelPath{
	{"not_intercepted_v4", func(k *kernelLab) netip.AddrPort { return netip.AddrPortFrom(k.Origin4, 8443) }, false,
		func(c *Counters) uint64 { return c.NotIntercepted }},
	{"not_intercepted_v6", func(k *kernelLab) netip.AddrPort { return netip.AddrPortFrom(k.Origin6, 8443) }, false,
		func(c *Counters) uint64 { return c.NotIntercepted }},
	{"bypassed_v4", func(k *kernelLab) netip.AddrPort { return netip.AddrPortFrom(k.Origin4, 443) }, false,
		func(c *Counters) uint64 { return c.Bypassed }},
	{"bypassed_v6", func(k *kernelLab) netip.AddrPort { return netip.AddrPortFrom(k.Origin6, 443) }, false,
		func(c *Counters) uint64 { return c.Bypassed }},
	{"established_v4", func(k *kernelLab) netip.AddrPort { return k.steered4 }, false,
		func(c *Counters) uint64 { return c.Established }},
	{"established_v6", func(k *kernelLab) netip.AddrPort { return k.steered6 }, false,
		func(c *Counters) uint64 { return c.Established }},
	{"established_v4_upload", func(k *kernelLab) netip.AddrPort { return k.steered4 }, true,
		func(c *Counters) uint64 { return c.Established }},
	// The first path measured after Start reads high whatever it is: this
	// repeats it last.
	{"not_intercepted_v4_again", func(k *kernelLab) netip.AddrPort { return netip.AddrPortFrom(k.Origin4, 8443) }, false,
		func(c *Counters) uint64 { return c.NotIntercepted }},
}

// BenchmarkDatapathKernel runs every path once per attach mode (TCX, and the
// tc fallback forced on this kernel), each against its own empty program on
// the same hook.
func BenchmarkDatapathKernel(b *testing.B) {
	k := newKernelLab(b)
	stats, err := EnableProgramStats()
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	for _, mode := range attachModes {
		b.Run(string(mode), func(b *testing.B) { benchmarkKernelPaths(b, k, mode) })
	}
}

func benchmarkKernelPaths(b *testing.B, k *kernelLab, mode AttachMode) {
	b.Run("empty_program", func(b *testing.B) {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type: ebpf.SchedCLS, License: "Dual BSD/GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer prog.Close()
		detach := attachBare(b, k, mode, prog)
		defer detach()
		addr := netip.AddrPortFrom(k.Origin4, 8443)
		bulk(b, k.Gateway, addr, false) // warm-up, not measured
		before, _ := prog.Stats()
		var took time.Duration
		b.ResetTimer()
		for range b.N {
			took += bulk(b, k.Gateway, addr, false)
		}
		after, _ := prog.Stats()
		reportKernelCost(b, after.Runtime-before.Runtime, after.RunCount-before.RunCount, took)
	})

	// The default configuration (every source is a client, ports 443 and
	// 80) with the origin bypassed.
	cfg := Config{Interface: k.LANIf, PinDir: testPinDir(b), DropQUIC: true, Attach: mode,
		BypassPrefixes: []netip.Prefix{netip.PrefixFrom(k.Origin4, 32), netip.PrefixFrom(k.Origin6, 128)}}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	a := startIn(b, k.GW, cfg)
	// Detached before the next mode's run; the cleanup is for a failure.
	defer func() { _ = a.Detach() }()
	b.Cleanup(func() { _ = k.GW.Do(func() error { return Remove(cfg) }) })
	for _, l := range []struct {
		ln   *net.TCPListener
		ipv6 bool
	}{{k.ln4, false}, {k.ln6, true}} {
		if err := withFD(b, l.ln, func(fd uintptr) error { return a.SetListener(fd, l.ipv6) }); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range kernelPaths {
		b.Run(p.name, func(b *testing.B) {
			addr := p.addr(k)
			bulk(b, k.Gateway, addr, p.upload) // warm-up, not measured
			c0, _ := a.Counters()
			rt0, n0, _ := a.ProgramStats()
			var took time.Duration
			b.ResetTimer()
			for range b.N {
				took += bulk(b, k.Gateway, addr, p.upload)
			}
			rt1, n1, _ := a.ProgramStats()
			c1, _ := a.Counters()
			runs := n1 - n0
			if on := p.counter(&c1) - p.counter(&c0); on*10 < runs*9 {
				b.Errorf("only %d of %d packets took the path (counters %+v)", on, runs, diff(c1, c0))
			}
			reportKernelCost(b, rt1-rt0, runs, took)
		})
	}
}

// attachBare hooks prog to the lab gateway's LAN ingress the way mode does,
// without pins or routing, and returns what takes it off again.
func attachBare(b *testing.B, k *kernelLab, mode AttachMode, prog *ebpf.Program) (detach func()) {
	b.Helper()
	var undo func() error
	if err := k.GW.Do(func() error {
		ifi, err := net.InterfaceByName(k.LANIf)
		if err != nil {
			return err
		}
		if mode == AttachTCX {
			lnk, err := link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: prog, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return err
			}
			undo = lnk.Close
			return nil
		}
		nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		iface, err := nl.LinkByIndex(ifi.Index)
		if err != nil {
			nl.Close()
			return err
		}
		att, err := attachTC(nl, iface, prog, &pinnedState{})
		if err != nil {
			nl.Close()
			return err
		}
		undo = func() error { defer nl.Close(); return att.undo() }
		return nil
	}); err != nil {
		b.Fatalf("attach %s: %v", mode, err)
	}
	return func() {
		if err := undo(); err != nil {
			b.Errorf("detach %s: %v", mode, err)
		}
	}
}

func reportKernelCost(b *testing.B, runTime time.Duration, runs uint64, took time.Duration) {
	b.ReportMetric(float64(runTime.Nanoseconds())/float64(max(runs, 1)), "ns/packet")
	b.ReportMetric(float64(runs)/float64(b.N), "packets/op")
	b.ReportMetric(float64(kernelBenchBytes)*float64(b.N)/took.Seconds()/1e6, "MB/s")
}

// BenchmarkDatapathThroughput measures the bulk transfer rate through the
// gateway with no program on the LAN ingress and with the steering program
// (default configuration, origin bypassed; per attach mode), interleaved to share the
// machine's noise, for traffic the program only looks at. It reports the
// ratio of the medians: 1 means the program costs nothing visible.
func BenchmarkDatapathThroughput(b *testing.B) {
	k := newKernelLab(b)
	cfg := Config{Interface: k.LANIf, DropQUIC: true,
		BypassPrefixes: []netip.Prefix{netip.PrefixFrom(k.Origin4, 32), netip.PrefixFrom(k.Origin6, 128)}}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	h := newHarness(b, cfg) // loaded and configured; attached per round
	for _, mode := range attachModes {
		for _, p := range kernelPaths[:4] {
			b.Run(string(mode)+"/"+p.name, func(b *testing.B) {
				addr := p.addr(k)
				var with, without []float64
				for range b.N {
					for range 5 {
						without = append(without, rate(bulk(b, k.Gateway, addr, false)))
						detach := attachBare(b, k, mode, h.objs.Steer)
						with = append(with, rate(bulk(b, k.Gateway, addr, false)))
						detach()
					}
				}
				mw, mo := median(with), median(without)
				b.ReportMetric(mw, "MB/s_with")
				b.ReportMetric(mo, "MB/s_without")
				b.ReportMetric(mw/mo, "ratio")
				b.Logf("with %v\nwithout %v", fmtRates(with), fmtRates(without))
			})
		}
	}
}

func rate(d time.Duration) float64 { return float64(kernelBenchBytes) / d.Seconds() / 1e6 }

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func fmtRates(v []float64) string {
	s := ""
	for _, r := range v {
		s += fmt.Sprintf(" %.0f", r)
	}
	return s
}
