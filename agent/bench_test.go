package agent

import (
	"net/netip"
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
	cases := []struct {
		name  string
		frame func(testing.TB) []byte
	}{
		{"not_intercepted", func(t testing.TB) []byte {
			return tcpFrame(t, client4, netip.AddrPortFrom(origin4.Addr(), 22), syn)
		}},
		{"bypassed_v4", func(t testing.TB) []byte { return tcpFrame(t, client4, bypass4, syn) }},
		{"bypassed_v6", func(t testing.TB) []byte { return tcpFrame(t, client6, bypass6, syn) }},
		{"quic_dropped", func(t testing.TB) []byte { return udpFrame(t, client4, origin4, make([]byte, 1200)) }},
		{"syn_no_listener_v4", func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, syn) }},
		{"data_no_socket_v4", func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, data) }},
		{"data_no_socket_v6", func(t testing.TB) []byte { return tcpFrame(t, client6, origin6, data) }},
	}
	cfg := testConfig()
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
			b.ResetTimer()
			_, perRun, err := h.objs.Steer.Benchmark(frame, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(perRun.Nanoseconds()), "ns/packet")
		})
	}
}
