package agent

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// BenchmarkDatapathLabMix is the steering program's cost per packet over the
// lab mix of make bench (appliance.BenchmarkLab: a bypassed, a not
// intercepted and an intercepted download, pooled by packet), on the real
// TCX hook with kernel run-time statistics, against an empty program that
// runs on the same hook for the very same packets: it is attached ahead of
// the steering program and returns TCX_NEXT, so every packet runs both, and
// the baseline shares the run's load, caches and clock-read costs.
//
// Both mechanisms run in every round, alternating which goes first: tc
// steering (steer on every packet) and route steering (steer_lookup on
// listener lookups only; route_* metrics), whose cost per packet is its
// program's run time over the packets the empty program saw. Route
// steering's rule walk and local delivery are kernel costs outside any
// program, which bpf stats do not see (BenchmarkDatapathThroughput
// compares transfer rates for that).
//
//	go test ./agent -run '^$' -bench BenchmarkDatapathLabMix -benchtime 1x
//
// Each round moves kernelBenchBytes per path; the report is the median over
// labMixRounds rounds (and the best round, which is the least disturbed by
// the neighbours of a shared machine). ns/packet includes the statistics'
// own clock reads, which the empty program measures.
func BenchmarkDatapathLabMix(b *testing.B) {
	k := newKernelLab(b)
	stats, err := EnableProgramStats()
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	// The two mechanisms on the same configuration: tc steering on its TCX
	// hook, and route steering (rules and steer_lookup). Each round runs
	// every path under one, then the other, taking the datapath over
	// between them as a restart would (the maps, listeners included, carry
	// over).
	tcCfg := Config{Interface: k.LANIf, PinDir: testPinDir(b), DropQUIC: true, Attach: AttachTCX,
		BypassPrefixes: []netip.Prefix{netip.PrefixFrom(k.Origin4, 32), netip.PrefixFrom(k.Origin6, 128)}}
	if err := tcCfg.Validate(); err != nil {
		b.Fatal(err)
	}
	routeCfg := tcCfg
	routeCfg.Attach, routeCfg.Steering = AttachAuto, SteeringRoute
	b.Cleanup(func() { _ = k.GW.Do(func() error { return Remove(tcCfg) }) })
	var a *Agent
	var empty *ebpf.Program
	var emptyLink link.Link
	startAs := func(cfg Config) {
		if a != nil {
			if err := a.Close(); err != nil {
				b.Fatal(err)
			}
		}
		if err := k.GW.Do(func() (err error) { a, err = Start(cfg); return }); err != nil {
			b.Fatalf("Start: %v", err)
		}
		for _, l := range []struct {
			ln   *net.TCPListener
			ipv6 bool
		}{{k.ln4, false}, {k.ln6, true}} {
			if err := withFD(b, l.ln, func(fd uintptr) error { return a.SetListener(fd, l.ipv6) }); err != nil {
				b.Fatal(err)
			}
		}
		// A new tc generation attaches at the head, and its verdicts are
		// final: the empty program goes back ahead of it.
		if emptyLink != nil {
			_ = emptyLink.Close()
		}
		empty, emptyLink = emptyAhead(b, k, empty)
	}
	startAs(tcCfg)
	b.Cleanup(func() { _ = a.Close(); _ = emptyLink.Close() })

	// The lab mix first (BenchmarkLab's three IPv4 downloads), then the
	// other paths, each reported on its own.
	paths := []kernelPath{kernelPaths[2], kernelPaths[0], kernelPaths[4], kernelPaths[3], kernelPaths[1], kernelPaths[5], kernelPaths[6]}
	const mixPaths = 3
	// steerNs: the steering program's run time (tc: steer; route:
	// steer_lookup); emptyNs and packets: the empty program's, which runs
	// on every packet of the LAN ingress under both.
	type sample struct{ steerNs, emptyNs, packets, steerRuns float64 }
	type mechanism struct {
		name    string
		cfg     Config
		perPath [][]sample
		mix     []sample
		// short: shortConns short connections to the proxy (not in the
		// mix): where route steering's one run per connection weighs most.
		short []sample
	}
	mechs := []*mechanism{{name: "tc", cfg: tcCfg}, {name: "route", cfg: routeCfg}}
	for _, m := range mechs {
		m.perPath = make([][]sample, len(paths))
	}
	for i := range paths {
		bulk(b, k.Gateway, paths[i].addr(k), paths[i].upload) // warm-up, not measured
	}
	b.ResetTimer()
	for round := range b.N * labMixRounds {
		// Alternate which goes first, so neither always follows a takeover.
		order := mechs
		if round%2 == 1 {
			order = []*mechanism{mechs[1], mechs[0]}
		}
		for _, mech := range order {
			startAs(mech.cfg)
			route := mech.name == "route"
			var m sample
			for i, p := range paths {
				c0, _ := a.Counters()
				rt0, n0, _ := a.ProgramStats()
				e0, _ := empty.Stats()
				bulk(b, k.Gateway, p.addr(k), p.upload)
				e1, _ := empty.Stats()
				rt1, n1, _ := a.ProgramStats()
				c1, _ := a.Counters()
				runs, packets := n1-n0, e1.RunCount-e0.RunCount
				switch {
				case route:
					// One run per connection the rules deliver (the
					// intercepted ones), none for the rest.
					want := uint64(0)
					if p.counter(&Counters{Established: 1}) == 1 {
						want = 1
					}
					if runs != want {
						b.Errorf("route %s: steer_lookup ran %d times over %d packets, want %d", p.name, runs, packets, want)
					}
				default:
					if on := p.counter(&c1) - p.counter(&c0); on*10 < runs*9 {
						b.Errorf("%s: only %d of %d packets took the path (counters %+v)", p.name, on, runs, diff(c1, c0))
					}
					if packets != runs {
						b.Errorf("%s: the empty program ran %d times, the steering program %d", p.name, packets, runs)
					}
				}
				s := sample{float64(rt1 - rt0), float64(e1.Runtime - e0.Runtime), float64(packets), float64(runs)}
				mech.perPath[i] = append(mech.perPath[i], s)
				if i < mixPaths {
					m.steerNs += s.steerNs
					m.emptyNs += s.emptyNs
					m.packets += s.packets
					m.steerRuns += s.steerRuns
				}
			}
			mech.mix = append(mech.mix, m)

			rt0, n0, _ := a.ProgramStats()
			e0, _ := empty.Stats()
			shortConns(b, k.Gateway, k.steered4, shortConnsPerRound)
			e1, _ := empty.Stats()
			rt1, n1, _ := a.ProgramStats()
			if route && n1-n0 != shortConnsPerRound {
				b.Errorf("route: steer_lookup ran %d times for %d short connections", n1-n0, shortConnsPerRound)
			}
			mech.short = append(mech.short, sample{float64(rt1 - rt0), float64(e1.Runtime - e0.Runtime),
				float64(e1.RunCount - e0.RunCount), float64(n1 - n0)})
		}
	}
	b.StopTimer()

	perPacket := func(v []sample) (steer, empty, best, bestEmpty, lo, hi float64) {
		var st, em []float64
		bestAt := 0
		for i, s := range v {
			st = append(st, s.steerNs/max(s.packets, 1))
			em = append(em, s.emptyNs/max(s.packets, 1))
			if st[i]-em[i] < st[bestAt]-em[bestAt] {
				bestAt = i
			}
		}
		return median(st), median(em), st[bestAt], em[bestAt], slices.Min(st), slices.Max(st)
	}
	var log strings.Builder
	for _, mech := range mechs {
		prefix := ""
		if mech.name == "route" {
			prefix = "route_"
		}
		for i, p := range paths {
			st, em, _, _, _, _ := perPacket(mech.perPath[i])
			b.ReportMetric(st, prefix+p.name+"_ns/packet")
			fmt.Fprintf(&log, "%-5s %-24s steer %7.2f  empty %6.1f  excess %7.2f ns/packet  (%.0f packets, %.0f program runs in round 1)\n",
				mech.name, p.name, st, em, st-em, mech.perPath[i][0].packets, mech.perPath[i][0].steerRuns)
		}
		st, em, best, bestEmpty, lo, hi := perPacket(mech.mix)
		b.ReportMetric(st, prefix+"mix_ns/packet")
		b.ReportMetric(st/em, prefix+"mix_ratio_to_empty")
		if mech.name == "tc" {
			b.ReportMetric(em, "mix_empty_ns/packet")
			b.ReportMetric(best, "mix_best_ns/packet")
			b.ReportMetric(bestEmpty, "mix_best_empty_ns/packet")
		}
		fmt.Fprintf(&log, "%-5s lab mix: steer %.2f (rounds %.2f-%.2f), empty %.1f ns/packet (ratio %.3f, excess %.2f); best round %.2f vs %.1f\n",
			mech.name, st, lo, hi, em, st/em, st-em, best, bestEmpty)
		st, em, _, _, lo, hi = perPacket(mech.short)
		b.ReportMetric(st, prefix+"short_ns/packet")
		fmt.Fprintf(&log, "%-5s %d short connections: steer %.1f (rounds %.1f-%.1f), empty %.1f ns/packet, %.1f packets a connection\n",
			mech.name, shortConnsPerRound, st, lo, hi, em, mech.short[0].packets/shortConnsPerRound)
		if mech.name == "route" {
			var ns, runs float64
			for _, m := range mech.short {
				ns, runs = ns+m.steerNs, runs+m.steerRuns
			}
			b.ReportMetric(ns/max(runs, 1), "route_short_ns/lookup")
		}
		if mech.name == "route" {
			// What one connection costs it: the mix's per-packet figure
			// depends on how many packets a connection carries.
			var ns, runs float64
			for _, m := range mech.mix {
				ns, runs = ns+m.steerNs, runs+m.steerRuns
			}
			b.ReportMetric(ns/max(runs, 1), "route_ns/lookup")
			fmt.Fprintf(&log, "route steer_lookup: %.0f ns per run (per intercepted connection), %.0f runs\n", ns/max(runs, 1), runs)
		}
	}
	b.Log("\n" + log.String())
}

// shortConnsPerRound is how many short connections a round makes.
const shortConnsPerRound = 100

// shortConns makes n connections from the client to addr (a bulkServer),
// each sending one byte and reading the one-byte answer: a handful of
// packets each.
func shortConns(b *testing.B, g *lab.Gateway, addr netip.AddrPort, n int) {
	b.Helper()
	for range n {
		c, err := dialFrom(g.Client, "tcp", addr.String())
		if err != nil {
			b.Fatalf("dial %s: %v", addr, err)
		}
		var one [1]byte
		if _, err := c.Write([]byte{'u'}); err != nil {
			b.Fatal(err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		if _, err := io.ReadFull(c, one[:]); err != nil {
			b.Fatalf("short connection to %s: %v", addr, err)
		}
		c.Close()
	}
}

// labMixRounds is how many rounds of every path one iteration runs.
const labMixRounds = 7

// emptyAhead attaches prog (a new program if nil) that does nothing but
// pass the packet on (TCX_NEXT) at the head of the lab gateway's LAN
// ingress, ahead of the steering program.
func emptyAhead(b *testing.B, k *kernelLab, prog *ebpf.Program) (*ebpf.Program, link.Link) {
	b.Helper()
	if prog == nil {
		var err error
		prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "empty_ahead", Type: ebpf.SchedCLS, License: "Dual BSD/GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()}, // TCX_NEXT
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = prog.Close() })
	}
	var lnk link.Link
	if err := k.GW.Do(func() error {
		ifi, err := net.InterfaceByName(k.LANIf)
		if err != nil {
			return err
		}
		lnk, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: prog,
			Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
		return err
	}); err != nil {
		b.Fatalf("attach the empty program: %v", err)
	}
	return prog, lnk
}
