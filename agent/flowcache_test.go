package agent

import (
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// The flow cache (bpf/steer.c): an established flow's segments are marked
// on the cache's word once a lookup has found its socket; the word holds for
// the settings it was given under and for FLOW_CACHE_TTL; a SYN is always
// judged afresh. Proven on loopback connections, whose sockets the program's
// lookup finds from prog.Run, by killing the sockets under a cached flow.
func TestProgramFlowCache(t *testing.T) {
	lab.RequireRoot(t)
	for _, fam := range []struct {
		network, addr string
		clients       netip.Prefix
	}{
		{"tcp4", "127.0.0.1:0", netip.MustParsePrefix("127.0.0.0/8")},
		{"tcp6", "[::1]:0", netip.MustParsePrefix("::1/128")},
	} {
		t.Run(fam.network, func(t *testing.T) {
			onOneCPU(t)
			ln, err := net.Listen(fam.network, fam.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			server := netip.MustParseAddrPort(ln.Addr().String())
			cfg := testConfig()
			cfg.ClientPrefixes = []netip.Prefix{fam.clients}
			cfg.InterceptPorts = []uint16{server.Port()}
			h := newHarness(t, cfg)
			data := tcpSeg{ack: true, seq: 1, ackNum: 1, payload: []byte("x")}
			expect := func(step string, frame []byte, want Counters) {
				t.Helper()
				if _, _, got := h.run(t, frame); got != want {
					t.Errorf("%s: counters %+v, want %+v", step, got, want)
				}
			}

			client, kill := loopbackConn(t, fam.network, ln)
			seg := tcpFrame(t, client, server, data)
			expect("first segment, socket looked up", seg, Counters{Established: 1})
			if n := h.cached(t, client, server); n == 0 {
				t.Fatal("the flow is not in the cache after its socket was found")
			}
			expect("next segment", seg, Counters{Established: 1})
			// A slot's hits about to overflow move to the counters map:
			// nothing is lost or counted twice.
			h.setHits(t, 0xffffffff)
			expect("hits overflowing", seg, Counters{Established: 1})
			expect("after the overflow", seg, Counters{Established: 1})
			// A fresh lookup just before the socket goes, so a slow machine
			// cannot let FLOW_CACHE_TTL (256 jiffies from the lookup) run
			// out between the first lookup and the check below.
			h.ageCache(t)
			expect("looked up again after the TTL", seg, Counters{Established: 1})
			kill()
			// The socket is gone, the word stays for the TTL: proof that the
			// cache, not a lookup, answered.
			expect("cached after the socket went", seg, Counters{Established: 1})
			h.ageCache(t)
			expect("after the TTL the lookup finds no socket", seg, Counters{OrphanRefused: 1})
			expect("and keeps finding none", seg, Counters{OrphanRefused: 1})

			// A configuration change applies to the next segment of a cached
			// flow.
			client, kill = loopbackConn(t, fam.network, ln)
			defer kill()
			seg = tcpFrame(t, client, server, data)
			expect("second flow", seg, Counters{Established: 1})
			bypassing := cfg
			bypassing.BypassPrefixes = []netip.Prefix{netip.PrefixFrom(server.Addr(), server.Addr().BitLen())}
			if err := writeConfig(&h.objs.steerMaps, &bypassing); err != nil {
				t.Fatal(err)
			}
			expect("its destination bypassed", seg, Counters{Bypassed: 1})
			if err := writeConfig(&h.objs.steerMaps, &cfg); err != nil {
				t.Fatal(err)
			}
			expect("bypass removed again", seg, Counters{Established: 1})
			expect("cached again", seg, Counters{Established: 1})

			// A SYN on the tuple of a cached flow whose socket is gone is a
			// new flow: judged afresh (no listener here, fail-closed: reset),
			// and the word is cleared.
			kill()
			expect("cached, socket gone", seg, Counters{Established: 1})
			syn := tcpFrame(t, client, server, tcpSeg{syn: true, seq: 7})
			expect("SYN on the old tuple", syn, Counters{NoListenerRefused: 1})
			expect("segment after the SYN", seg, Counters{OrphanRefused: 1})
			if n := h.cached(t, client, server); n != 0 {
				t.Errorf("%d cache words still hold the flow", n)
			}
		})
	}
}

// onOneCPU keeps the test on its OS thread and that thread on one CPU until
// the test ends, so every prog.Run meets the same per-CPU cache words.
func onOneCPU(t testing.TB) {
	t.Helper()
	runtime.LockOSThread()
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for i := range 1024 {
		if was.IsSet(i) {
			cpu = i
			break
		}
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.SchedSetaffinity(0, &was)
		runtime.UnlockOSThread()
	})
}

// loopbackConn connects to ln and returns the client's address and a
// function that closes both ends abortively (SO_LINGER 0: a reset, no
// TIME_WAIT), so no socket owns the tuple any more.
func loopbackConn(t *testing.T, network string, ln net.Listener) (netip.AddrPort, func()) {
	t.Helper()
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if killed {
			return
		}
		killed = true
		for _, conn := range []net.Conn{s, c} {
			_ = conn.(*net.TCPConn).SetLinger(0)
			_ = conn.Close()
		}
	}
	t.Cleanup(kill)
	return netip.MustParseAddrPort(c.LocalAddr().String()), kill
}

// cached counts the flow cache words (over every CPU) that hold the flow
// from client to server under the current settings.
func (h *harness) cached(t *testing.T, client, server netip.AddrPort) int {
	t.Helper()
	var s steerRuntimeSettings
	if err := h.objs.Settings.Lookup(uint32(0), &s); err != nil {
		t.Fatal(err)
	}
	ports := uint32(client.Port()>>8|client.Port()<<8) | uint32(server.Port()>>8|server.Port()<<8)<<16
	n := 0
	if client.Addr().Is4() {
		want := steerFlowV4{Saddr: addrWord(client.Addr(), 0), Daddr: addrWord(server.Addr(), 0), Ports: ports}
		eachSlot(t, h.objs.FlowCacheV4, func(e *steerFlowV4) {
			if e.Gen == s.Gen && e.Saddr == want.Saddr && e.Daddr == want.Daddr && e.Ports == want.Ports {
				n++
			}
		})
		return n
	}
	var sa, da [4]uint32
	for i := range 4 {
		sa[i], da[i] = addrWord(client.Addr(), i), addrWord(server.Addr(), i)
	}
	eachSlot(t, h.objs.FlowCacheV6, func(e *steerFlowV6) {
		if e.Gen == s.Gen && e.Saddr == sa && e.Daddr == da && e.Ports == ports {
			n++
		}
	})
	return n
}

// ageCache makes every word of the flow cache as old as the TTL.
func (h *harness) ageCache(t *testing.T) {
	t.Helper()
	const ttl = 256 // FLOW_CACHE_TTL
	updateSlots(t, h.objs.FlowCacheV4, func(e *steerFlowV4) { e.Checked -= ttl })
	updateSlots(t, h.objs.FlowCacheV6, func(e *steerFlowV6) { e.Checked -= ttl })
}

// setHits sets the hits of every flow cache slot that holds a flow.
func (h *harness) setHits(t *testing.T, hits uint32) {
	t.Helper()
	updateSlots(t, h.objs.FlowCacheV4, func(e *steerFlowV4) { e.Hits = hits })
	updateSlots(t, h.objs.FlowCacheV6, func(e *steerFlowV6) { e.Hits = hits })
}

// addrWord is the i-th 32-bit word of a as the program loads it from the
// packet (network byte order in memory, read on a little-endian CPU).
func addrWord(a netip.Addr, i int) uint32 {
	b := a.AsSlice()[4*i:]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// eachSlot calls fn with every slot of a flow cache map, every CPU's region.
func eachSlot[E any](t *testing.T, m *ebpf.Map, fn func(*E)) {
	t.Helper()
	var (
		key uint32
		e   E
	)
	it := m.Iterate()
	for it.Next(&key, &e) {
		fn(&e)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
}

// updateSlots rewrites every slot of a flow cache map that holds a flow.
func updateSlots[E any](t *testing.T, m *ebpf.Map, fn func(*E)) {
	t.Helper()
	var (
		key  uint32
		e    E
		zero E
	)
	var keys []uint32
	var vals []E
	it := m.Iterate()
	for it.Next(&key, &e) {
		if any(e) != any(zero) {
			fn(&e)
			keys, vals = append(keys, key), append(vals, e)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if err := m.Update(keys[i], vals[i], ebpf.UpdateExist); err != nil {
			t.Fatal(err)
		}
	}
}
