package agent

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// BenchmarkProgram measures the steering program per packet in the kernel
// (BPF_PROG_TEST_RUN with repeat), by decision path. Only paths that leave
// the frame as it was can be repeated on one frame. The baseline is an empty
// program run the same way: read the paths as their excess over it.
func BenchmarkProgram(b *testing.B) {
	syn := tcpSeg{syn: true, seq: 1}
	data := tcpSeg{ack: true, seq: 1, ackNum: 1, payload: make([]byte, 1400)}
	established4 := loopbackFlow(b, "tcp4", "127.0.0.1:0")
	established6 := loopbackFlow(b, "tcp6", "[::1]:0")
	cases := []struct {
		name  string
		frame func(testing.TB) []byte
		path  func(*Counters) uint64 // the counter the frame must count in
	}{
		{"not_intercepted", func(t testing.TB) []byte {
			return tcpFrame(t, client4, netip.AddrPortFrom(origin4.Addr(), 22), syn)
		}, func(c *Counters) uint64 { return c.NotIntercepted }},
		{"bypassed_v4", func(t testing.TB) []byte { return tcpFrame(t, client4, bypass4, syn) }, func(c *Counters) uint64 { return c.Bypassed }},
		{"bypassed_v6", func(t testing.TB) []byte { return tcpFrame(t, client6, bypass6, syn) }, func(c *Counters) uint64 { return c.Bypassed }},
		{"quic_dropped", func(t testing.TB) []byte { return udpFrame(t, client4, origin4, make([]byte, 1200)) }, func(c *Counters) uint64 { return c.QUICDropped }},
		{"syn_no_listener_v4", func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, syn) }, func(c *Counters) uint64 { return c.NoListenerPassed }},
		{"data_no_socket_v4", func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, data) }, func(c *Counters) uint64 { return c.OrphanPassed }},
		{"data_no_socket_v6", func(t testing.TB) []byte { return tcpFrame(t, client6, origin6, data) }, func(c *Counters) uint64 { return c.OrphanPassed }},
		// Segments of established flows: after the first repetition the
		// flow cache answers (one prog.Run runs on one CPU).
		{"bypassed_v4_established", func(t testing.TB) []byte { return tcpFrame(t, client4, bypass4, data) }, func(c *Counters) uint64 { return c.Bypassed }},
		{"bypassed_v6_established", func(t testing.TB) []byte { return tcpFrame(t, client6, bypass6, data) }, func(c *Counters) uint64 { return c.Bypassed }},
		{"established_v4", func(t testing.TB) []byte {
			return tcpFrame(t, established4.client, established4.server, data)
		}, func(c *Counters) uint64 { return c.Established }},
		{"established_v6", func(t testing.TB) []byte {
			return tcpFrame(t, established6.client, established6.server, data)
		}, func(c *Counters) uint64 { return c.Established }},
	}
	cfg := testConfig()
	cfg.ClientPrefixes = append(cfg.ClientPrefixes, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	cfg.InterceptPorts = append(slices.Clone(DefaultInterceptPorts), established4.server.Port(), established6.server.Port())
	cfg.FailOpen = true // frames pass unchanged, so every repetition takes the same path
	h := newHarness(b, cfg)
	b.Run("baseline_empty_program", func(b *testing.B) {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:         ebpf.SchedCLS,
			License:      "Dual BSD/GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer prog.Close()
		frame := cases[0].frame(b)
		b.ResetTimer()
		_, perRun, err := prog.Benchmark(frame, b.N, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(perRun.Nanoseconds()), "ns/packet")
	})
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			frame := tc.frame(b)
			if _, _, got := h.run(b, bytes.Clone(frame)); tc.path(&got) != 1 {
				b.Fatalf("the frame took another path: counters %+v", got)
			}
			b.ResetTimer()
			_, perRun, err := h.objs.Steer.Benchmark(frame, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(perRun.Nanoseconds()), "ns/packet")
		})
	}
}

// loopbackFlow is an established loopback connection, open until the
// benchmark ends: the sockets a segment from client to server belongs to.
func loopbackFlow(b *testing.B, network, addr string) (f struct{ client, server netip.AddrPort }) {
	b.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	s, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	f.client = netip.MustParseAddrPort(c.LocalAddr().String())
	f.server = netip.MustParseAddrPort(ln.Addr().String())
	return f
}
