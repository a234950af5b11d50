package agent

import (
	"bytes"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// BenchmarkProgramCold is BenchmarkProgram with the data caches emptied
// before every packet: on the gateway the program runs between copies of
// bulk data, which evict the lines it touches, so there its cost is mostly
// the cache lines it needs (BenchmarkProgram, with every line hot, counts
// instructions). Each packet is one BPF_PROG_TEST_RUN after a sweep over
// coldSweepBytes (more than the L2 cache) on the same CPU; ns/packet is the
// median over b.N packets, to be read against the empty program's.
func BenchmarkProgramCold(b *testing.B) {
	data := tcpSeg{ack: true, seq: 1, ackNum: 1, payload: make([]byte, 64)}
	established4 := loopbackFlow(b, "tcp4", "127.0.0.1:0")
	established6 := loopbackFlow(b, "tcp6", "[::1]:0")
	cases := []struct {
		name  string
		frame func(testing.TB) []byte
		path  func(*Counters) uint64
	}{
		{"not_intercepted", func(t testing.TB) []byte {
			return tcpFrame(t, client4, netip.AddrPortFrom(origin4.Addr(), 22), data)
		}, func(c *Counters) uint64 { return c.NotIntercepted }},
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
	cfg.FailOpen = true
	h := newHarness(b, cfg)
	empty, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "Dual BSD/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer empty.Close()
	sweep := make([]byte, coldSweepBytes())
	cold := func(b *testing.B, prog *ebpf.Program, frame []byte) {
		onOneCPU(b)
		ns := make([]float64, 0, b.N)
		b.ResetTimer()
		for range b.N {
			for i := 0; i < len(sweep); i += 64 {
				sweep[i]++
			}
			_, perRun, err := prog.Benchmark(frame, 1, nil)
			if err != nil {
				b.Fatal(err)
			}
			ns = append(ns, float64(perRun.Nanoseconds()))
		}
		b.StopTimer()
		sort.Float64s(ns)
		b.ReportMetric(ns[len(ns)/2], "ns/packet")
	}
	b.Run("baseline_empty_program", func(b *testing.B) { cold(b, empty, cases[0].frame(b)) })
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			frame := tc.frame(b)
			if _, _, got := h.run(b, bytes.Clone(frame)); tc.path(&got) != 1 {
				b.Fatalf("the frame took another path: counters %+v", got)
			}
			cold(b, h.objs.Steer, frame)
		})
	}
}

// coldSweepBytes is how much is written between packets: by default 1 MiB
// (more than L1, a quarter of the lab machine's 4 MiB L2 a core: about what
// the bulk copies between two ACKs of the lab mix move), else
// $COLD_SWEEP_KIB KiB.
func coldSweepBytes() int {
	if kib, err := strconv.Atoi(os.Getenv("COLD_SWEEP_KIB")); err == nil && kib > 0 {
		return kib << 10
	}
	return 1 << 20
}
