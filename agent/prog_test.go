package agent

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// Unit tests of the steering program through BPF_PROG_TEST_RUN (prog.Run).
//
// What prog.Run can and cannot show: the test skb is not at TC ingress, so
// bpf_sk_assign refuses every socket there (the kernel allows it only on
// ingress). A packet that finds its listener is therefore seen here as one
// AssignErrors followed by the fail mode's result; that an assignment really
// delivers to the socket is proven by the end-to-end tests. A packet of an
// established flow needs no assignment (it is only marked), so it is seen
// here as it is on the hook. Everything else (parsing, maps, verdicts, the reset the
// program builds) is fully visible.

// TC verdicts (linux/pkt_cls.h).
const (
	tcActOK       = 0
	tcActShot     = 2
	tcActRedirect = 7
)

var (
	client4   = netip.MustParseAddrPort("198.18.1.2:40000")
	origin4   = netip.MustParseAddrPort("198.18.2.2:443")
	bypass4   = netip.MustParseAddrPort("198.18.9.9:443")
	stranger4 = netip.MustParseAddrPort("198.18.5.5:40000")
	client6   = netip.MustParseAddrPort("[fd00:7c:1::2]:40000")
	origin6   = netip.MustParseAddrPort("[fd00:7c:2::2]:443")
	bypass6   = netip.MustParseAddrPort("[fd00:7c:9::9]:443")
)

func testConfig() Config {
	return Config{
		Interface:      "lan0",
		ClientPrefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("fd00:7c:1::/64")},
		BypassPrefixes: []netip.Prefix{netip.MustParsePrefix("198.18.9.0/24"), netip.MustParsePrefix("fd00:7c:9::/48")},
		DropQUIC:       true,
	}
}

// harness is the program and its maps, loaded but attached nowhere.
type harness struct {
	objs *steerObjects
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	lab.RequireRoot(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	objs, _, err := loadObjects(nil, SteeringTC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = objs.Close() })
	if err := writeConfig(&objs.steerMaps, &cfg); err != nil {
		t.Fatal(err)
	}
	return &harness{objs: objs}
}

// run runs the program on frame and returns the verdict, the frame as the
// program left it, and the counters the run added.
func (h *harness) run(t testing.TB, frame []byte) (uint32, []byte, Counters) {
	t.Helper()
	before, err := readCounters(&h.objs.steerMaps)
	if err != nil {
		t.Fatal(err)
	}
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	verdict, err := h.objs.Steer.Run(opts)
	if err != nil {
		t.Fatalf("prog.Run: %v", err)
	}
	after, err := readCounters(&h.objs.steerMaps)
	if err != nil {
		t.Fatal(err)
	}
	return verdict, opts.DataOut, diff(after, before)
}

func diff(a, b Counters) Counters {
	var d Counters
	for _, f := range counterFields {
		*f.field(&d) = *f.field(&a) - *f.field(&b)
	}
	return d
}

// transparentListener listens on loopback with IP(V6)_TRANSPARENT, as the
// proxy's listener does, and without MPTCP, which the sockmap refuses.
func transparentListener(t testing.TB, network, addr string) *net.TCPListener {
	t.Helper()
	lc := &net.ListenConfig{Control: func(network string, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if network == "tcp6" {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
				return
			}
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln.(*net.TCPListener)
}

func withFD(t testing.TB, ln *net.TCPListener, fn func(fd uintptr) error) error {
	t.Helper()
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(fd) }); err != nil {
		t.Fatal(err)
	}
	return ferr
}

func (h *harness) addListeners(t testing.TB) {
	t.Helper()
	for _, l := range []struct {
		network, addr string
		ipv6          bool
	}{{"tcp4", "127.0.0.1:0", false}, {"tcp6", "[::1]:0", true}} {
		ln := transparentListener(t, l.network, l.addr)
		if err := withFD(t, ln, func(fd uintptr) error { return setListener(h.objs.Listeners, int(fd), l.ipv6) }); err != nil {
			t.Fatal(err)
		}
	}
}

// checkReset decodes out and checks it is the reset answering in, sent back
// to the client it came from.
func checkReset(t *testing.T, in, out []byte) {
	t.Helper()
	pin := gopacket.NewPacket(in, layers.LayerTypeEthernet, gopacket.Default)
	pout := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	ethIn, ethOut := pin.Layer(layers.LayerTypeEthernet).(*layers.Ethernet), pout.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(ethOut.DstMAC, ethIn.SrcMAC) || !bytes.Equal(ethOut.SrcMAC, ethIn.DstMAC) {
		t.Errorf("reset MACs %s -> %s, want %s -> %s", ethOut.SrcMAC, ethOut.DstMAC, ethIn.DstMAC, ethIn.SrcMAC)
	}
	tcpIn, _ := pin.Layer(layers.LayerTypeTCP).(*layers.TCP)
	tcpOut, ok := pout.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok || tcpIn == nil {
		t.Fatalf("no TCP in the reset: %v", pout)
	}
	var srcIn, dstIn, srcOut, dstOut netip.Addr
	wantLen := 14 + 20 + 20
	if ip, ok := pout.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		srcOut, _ = netip.AddrFromSlice(ip.SrcIP)
		dstOut, _ = netip.AddrFromSlice(ip.DstIP)
		if checksum(out[14:34], 0) != 0 {
			t.Error("IPv4 header checksum is wrong")
		}
		if ip.TTL == 0 || ip.Length != 40 {
			t.Errorf("IPv4 TTL %d length %d", ip.TTL, ip.Length)
		}
		ipIn := pin.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		srcIn, _ = netip.AddrFromSlice(ipIn.SrcIP)
		dstIn, _ = netip.AddrFromSlice(ipIn.DstIP)
	} else {
		ip := pout.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		srcOut, _ = netip.AddrFromSlice(ip.SrcIP)
		dstOut, _ = netip.AddrFromSlice(ip.DstIP)
		ipIn := pin.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		srcIn, _ = netip.AddrFromSlice(ipIn.SrcIP)
		dstIn, _ = netip.AddrFromSlice(ipIn.DstIP)
		wantLen = 14 + 40 + 20
	}
	if len(out) != wantLen {
		t.Errorf("reset is %d bytes, want %d", len(out), wantLen)
	}
	if srcOut != dstIn || dstOut != srcIn {
		t.Errorf("reset %s -> %s, want %s -> %s", srcOut, dstOut, dstIn, srcIn)
	}
	if tcpOut.SrcPort != tcpIn.DstPort || tcpOut.DstPort != tcpIn.SrcPort {
		t.Errorf("reset ports %d -> %d", tcpOut.SrcPort, tcpOut.DstPort)
	}
	if !tcpOut.RST || tcpOut.SYN || tcpOut.FIN {
		t.Errorf("reset flags: %+v", tcpOut)
	}
	if tcpIn.ACK {
		// RFC 9293: <SEQ=SEG.ACK><CTL=RST>
		if tcpOut.ACK || tcpOut.Seq != tcpIn.Ack {
			t.Errorf("reset to an ACK: seq %d ack flag %v, want seq %d and no ACK", tcpOut.Seq, tcpOut.ACK, tcpIn.Ack)
		}
	} else {
		// RFC 9293: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
		want := tcpIn.Seq + uint32(len(tcpIn.Payload))
		if tcpIn.SYN {
			want++
		}
		if !tcpOut.ACK || tcpOut.Seq != 0 || tcpOut.Ack != want {
			t.Errorf("reset to a SYN: seq %d ack %d (flag %v), want seq 0 ack %d", tcpOut.Seq, tcpOut.Ack, tcpOut.ACK, want)
		}
	}
	if !validTCPChecksum(srcOut, dstOut, out[len(out)-20:]) {
		t.Error("TCP checksum of the reset is wrong")
	}
}

func TestProgramDecisions(t *testing.T) {
	syn := tcpSeg{syn: true, seq: 1000}
	data := tcpSeg{ack: true, seq: 5000, ackNum: 9000, payload: []byte("GET / HTTP/1.1\r\n\r\n")}
	type want struct {
		verdict  uint32
		counters Counters
		reset    bool // the frame was turned into a reset; otherwise it must be untouched
	}
	cases := []struct {
		name     string
		failOpen bool
		dropQUIC bool
		listener bool
		frame    func(t testing.TB) []byte
		want     want
	}{
		{
			name: "ipv4 SYN finds the listener, fail-closed", listener: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, syn) },
			want:  want{tcActRedirect, Counters{AssignErrors: 1, NoListenerRefused: 1}, true},
		},
		{
			name: "ipv4 SYN finds the listener, fail-open", listener: true, failOpen: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, syn) },
			want:  want{tcActOK, Counters{AssignErrors: 1, NoListenerPassed: 1}, false},
		},
		{
			name: "ipv6 SYN finds the listener, fail-closed", listener: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client6, origin6, syn) },
			want:  want{tcActRedirect, Counters{AssignErrors: 1, NoListenerRefused: 1}, true},
		},
		{
			name: "ipv6 SYN finds the listener, fail-open", listener: true, failOpen: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client6, origin6, syn) },
			want:  want{tcActOK, Counters{AssignErrors: 1, NoListenerPassed: 1}, false},
		},
		{
			name:  "ipv4 SYN without listener, fail-closed: reset",
			frame: func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, syn) },
			want:  want{tcActRedirect, Counters{NoListenerRefused: 1}, true},
		},
		{
			name:  "ipv6 SYN without listener, fail-closed: reset",
			frame: func(t testing.TB) []byte { return tcpFrame(t, client6, origin6, syn) },
			want:  want{tcActRedirect, Counters{NoListenerRefused: 1}, true},
		},
		{
			name: "ipv4 SYN without listener, fail-open", failOpen: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, syn) },
			want:  want{tcActOK, Counters{NoListenerPassed: 1}, false},
		},
		{
			name: "ipv6 SYN without listener, fail-open", failOpen: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client6, origin6, syn) },
			want:  want{tcActOK, Counters{NoListenerPassed: 1}, false},
		},
		{
			name: "ipv4 segment no socket owns, fail-closed: reset", listener: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, data) },
			want:  want{tcActRedirect, Counters{OrphanRefused: 1}, true},
		},
		{
			name: "ipv6 segment no socket owns, fail-closed: reset", listener: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client6, origin6, data) },
			want:  want{tcActRedirect, Counters{OrphanRefused: 1}, true},
		},
		{
			name: "ipv4 segment no socket owns, fail-open", listener: true, failOpen: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, data) },
			want:  want{tcActOK, Counters{OrphanPassed: 1}, false},
		},
		{
			name:  "reset no socket owns is never answered",
			frame: func(t testing.TB) []byte { return tcpFrame(t, client4, origin4, tcpSeg{rst: true, seq: 7}) },
			want:  want{tcActShot, Counters{OrphanRefused: 1}, false},
		},
		{
			name:  "ipv6 SYN behind a destination-options header is judged, not answered",
			frame: func(t testing.TB) []byte { return ipv6WithDestOpts(t, client6, origin6) },
			want:  want{tcActShot, Counters{NoListenerRefused: 1}, false},
		},
		{
			name: "ipv4 bypass", listener: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client4, bypass4, syn) },
			want:  want{tcActOK, Counters{Bypassed: 1}, false},
		},
		{
			name: "ipv6 bypass", listener: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, client6, bypass6, syn) },
			want:  want{tcActOK, Counters{Bypassed: 1}, false},
		},
		{
			name: "port not intercepted", listener: true,
			frame: func(t testing.TB) []byte {
				return tcpFrame(t, client4, netip.AddrPortFrom(origin4.Addr(), 22), syn)
			},
			want: want{tcActOK, Counters{NotIntercepted: 1}, false},
		},
		{
			name: "source not a client", listener: true,
			frame: func(t testing.TB) []byte { return tcpFrame(t, stranger4, origin4, syn) },
			want:  want{tcActOK, Counters{NotIntercepted: 1}, false},
		},
		{
			name: "ipv4 QUIC dropped", dropQUIC: true,
			frame: func(t testing.TB) []byte { return udpFrame(t, client4, origin4, []byte{0xc3, 0, 0, 0, 1}) },
			want:  want{tcActShot, Counters{QUICDropped: 1}, false},
		},
		{
			name: "ipv6 QUIC dropped", dropQUIC: true,
			frame: func(t testing.TB) []byte { return udpFrame(t, client6, origin6, []byte{0xc3, 0, 0, 0, 1}) },
			want:  want{tcActShot, Counters{QUICDropped: 1}, false},
		},
		{
			name:  "QUIC passes without drop_quic",
			frame: func(t testing.TB) []byte { return udpFrame(t, client4, origin4, []byte{0xc3}) },
			want:  want{tcActOK, Counters{NotIntercepted: 1}, false},
		},
		{
			name: "QUIC to a bypassed destination passes", dropQUIC: true,
			frame: func(t testing.TB) []byte { return udpFrame(t, client6, bypass6, []byte{0xc3}) },
			want:  want{tcActOK, Counters{Bypassed: 1}, false},
		},
		{
			name: "DNS passes", dropQUIC: true,
			frame: func(t testing.TB) []byte {
				return udpFrame(t, client4, netip.AddrPortFrom(origin4.Addr(), 53), []byte{1, 2})
			},
			want: want{tcActOK, Counters{NotIntercepted: 1}, false},
		},
		{
			name:  "first fragment to an intercepted port is dropped",
			frame: func(t testing.TB) []byte { return ipv4Fragment(t, client4, origin4, 0, true) },
			want:  want{tcActShot, Counters{FragmentDropped: 1}, false},
		},
		{
			name:  "later fragment passes",
			frame: func(t testing.TB) []byte { return ipv4Fragment(t, client4, origin4, 3, false) },
			want:  want{tcActOK, Counters{NotIntercepted: 1}, false},
		},
		{
			name: "ARP passes",
			frame: func(t testing.TB) []byte {
				eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
				arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
					ProtAddressSize: 4, Operation: layers.ARPRequest, SourceHwAddress: clientMAC,
					SourceProtAddress: client4.Addr().AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: origin4.Addr().AsSlice()}
				return serialize(t, eth, arp)
			},
			want: want{tcActOK, Counters{NotIntercepted: 1}, false},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.FailOpen, cfg.DropQUIC = tc.failOpen, tc.dropQUIC
			h := newHarness(t, cfg)
			if tc.listener {
				h.addListeners(t)
			}
			in := tc.frame(t)
			verdict, out, got := h.run(t, bytes.Clone(in))
			if verdict != tc.want.verdict {
				t.Errorf("verdict %d, want %d", verdict, tc.want.verdict)
			}
			if got != tc.want.counters {
				t.Errorf("counters %+v, want %+v", got, tc.want.counters)
			}
			if tc.want.reset {
				checkReset(t, in, out)
			} else if !bytes.Equal(out, in) {
				t.Errorf("frame modified:\n got %x\nwant %x", out, in)
			}
		})
	}
}

// Truncated and inconsistent frames are left to the kernel, untouched.
// BPF_PROG_TEST_RUN itself refuses frames shorter than their IP header, so
// those are sent through the real hook by the end-to-end test instead.
func TestProgramLeavesMalformedFramesAlone(t *testing.T) {
	h := newHarness(t, testConfig())
	syn4 := tcpFrame(t, client4, origin4, tcpSeg{syn: true})
	syn6 := tcpFrame(t, client6, origin6, tcpSeg{syn: true})
	edit := func(frame []byte, fn func(b []byte)) []byte { b := bytes.Clone(frame); fn(b); return b }
	cases := map[string][]byte{
		"truncated tcp header":     edit(syn4[:14+20+10], func(b []byte) { b[16], b[17] = 0, 30 }),
		"ipv4 length beyond frame": edit(syn4, func(b []byte) { b[16], b[17] = 0x05, 0xdc }),
		"ipv4 ihl below 5":         edit(syn4, func(b []byte) { b[14] = 0x44 }),
		"ipv4 version 5":           edit(syn4, func(b []byte) { b[14] = 0x55 }),
		"tcp data offset below 5":  edit(syn4, func(b []byte) { b[14+20+12] = 0x40 }),
		"tcp data offset beyond":   edit(syn4, func(b []byte) { b[14+20+12] = 0xf0 }),
		"ipv6 length beyond frame": edit(syn6, func(b []byte) { b[18], b[19] = 0x05, 0xdc }),
		"ipv6 version 4":           edit(syn6, func(b []byte) { b[14] = 0x40 }),
		"ipv6 extension past end":  edit(syn6[:14+40+4], func(b []byte) { b[20] = 60; b[18], b[19] = 0, 4 }),
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			verdict, out, got := h.run(t, bytes.Clone(frame))
			if verdict != tcActOK || got != (Counters{Malformed: 1}) {
				t.Errorf("verdict %d counters %+v, want OK and Malformed", verdict, got)
			}
			if !bytes.Equal(out, frame) {
				t.Error("frame modified")
			}
		})
	}
}

// Random bytes behind IPv4 and IPv6 ethertypes never make the program fail
// or count a packet twice.
func TestProgramSurvivesGarbage(t *testing.T) {
	h := newHarness(t, testConfig())
	h.addListeners(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		// At least the IP header: BPF_PROG_TEST_RUN refuses shorter frames.
		frame := make([]byte, 14+[]int{20, 40}[i%2]+rng.IntN(100))
		for j := range frame {
			frame[j] = byte(rng.Uint32())
		}
		frame[12], frame[13] = 0x08, 0x00
		if i%2 == 1 {
			frame[12], frame[13] = 0x86, 0xdd
		}
		frame[14] = frame[14]&0x0f | []byte{0x40, 0x60}[i%2]
		verdict, _, got := h.run(t, frame)
		switch verdict {
		case tcActOK, tcActShot, tcActRedirect:
		default:
			t.Fatalf("frame %x: verdict %d", frame, verdict)
		}
		got.AssignErrors = 0
		var total uint64
		for _, f := range counterFields {
			total += *f.field(&got)
		}
		if total != 1 {
			t.Fatalf("frame %x counted %d times: %+v", frame, total, got)
		}
	}
}

// The fast path finds an established socket by the packet's tuple: the same
// segment that is an orphan without the connection is matched, and marked for
// local delivery, with it.
func TestProgramFindsEstablishedSocket(t *testing.T) {
	lab.RequireRoot(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server := netip.MustParseAddrPort(ln.Addr().String())
	cfg := testConfig()
	cfg.ClientPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.InterceptPorts = []uint16{server.Port()}
	h := newHarness(t, cfg)

	c, err := net.Dial("tcp4", server.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := netip.MustParseAddrPort(c.LocalAddr().String())
	seg := tcpSeg{ack: true, seq: 1, ackNum: 1, payload: []byte("x")}

	verdict, _, got := h.run(t, tcpFrame(t, client, server, seg))
	if verdict != tcActOK || got != (Counters{Established: 1}) {
		t.Errorf("segment of the connection: verdict %d counters %+v, want OK and the socket found (Established 1)", verdict, got)
	}
	stranger := netip.AddrPortFrom(client.Addr(), client.Port()+1)
	_, _, got = h.run(t, tcpFrame(t, stranger, server, seg))
	if got != (Counters{OrphanRefused: 1}) {
		t.Errorf("segment of no connection: counters %+v, want only OrphanRefused", got)
	}
}

// The shortcuts the settings flags allow (every source a client, no bypass
// prefix of a family) and the port bitmap follow configuration changes.
func TestProgramFollowsConfigChanges(t *testing.T) {
	cfg := Config{Interface: "lan0", FailOpen: true} // every source a client, no bypass
	h := newHarness(t, cfg)
	syn := tcpSeg{syn: true, seq: 1}
	alt4 := netip.AddrPortFrom(origin4.Addr(), 8443)
	alt6 := netip.AddrPortFrom(origin6.Addr(), 8443)
	expect := func(step string, frame []byte, want Counters) {
		t.Helper()
		if _, _, got := h.run(t, frame); got != want {
			t.Errorf("%s: counters %+v, want %+v", step, got, want)
		}
	}
	apply := func(change func(c *Config)) {
		t.Helper()
		change(&cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := writeConfig(&h.objs.steerMaps, &cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, src := range []netip.AddrPort{stranger4, client4} {
		expect("default clients "+src.String(), tcpFrame(t, src, origin4, syn), Counters{NoListenerPassed: 1})
	}
	expect("default clients v6", tcpFrame(t, client6, origin6, syn), Counters{NoListenerPassed: 1})

	apply(func(c *Config) {
		c.BypassPrefixes = []netip.Prefix{netip.MustParsePrefix("198.18.2.0/24"), netip.MustParsePrefix("fd00:7c:2::/48")}
	})
	expect("bypass v4", tcpFrame(t, client4, origin4, syn), Counters{Bypassed: 1})
	expect("bypass v6", tcpFrame(t, client6, origin6, syn), Counters{Bypassed: 1})
	expect("not bypassed v4", tcpFrame(t, client4, bypass4, syn), Counters{NoListenerPassed: 1})

	apply(func(c *Config) { c.BypassPrefixes = c.BypassPrefixes[1:] }) // IPv6 only
	expect("v4 bypass removed", tcpFrame(t, client4, origin4, syn), Counters{NoListenerPassed: 1})
	expect("v6 bypass kept", tcpFrame(t, client6, origin6, syn), Counters{Bypassed: 1})

	apply(func(c *Config) { c.InterceptPorts = []uint16{8443, 1, 65535} })
	expect("port no longer intercepted", tcpFrame(t, client4, origin4, syn), Counters{NotIntercepted: 1})
	expect("new port v4", tcpFrame(t, client4, alt4, syn), Counters{NoListenerPassed: 1})
	expect("new port v6", tcpFrame(t, client6, alt6, syn), Counters{Bypassed: 1})
	for _, port := range []uint16{1, 65535} {
		expect(fmt.Sprintf("port %d", port), tcpFrame(t, client4, netip.AddrPortFrom(origin4.Addr(), port), syn), Counters{NoListenerPassed: 1})
	}
	for _, port := range []uint16{2, 8442, 8444, 65534} {
		expect(fmt.Sprintf("port %d", port), tcpFrame(t, client4, netip.AddrPortFrom(origin4.Addr(), port), syn), Counters{NotIntercepted: 1})
	}

	apply(func(c *Config) {
		c.ClientPrefixes = []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("::/0")}
	})
	expect("not a client any more", tcpFrame(t, stranger4, alt4, syn), Counters{NotIntercepted: 1})
	expect("still a client", tcpFrame(t, client4, alt4, syn), Counters{NoListenerPassed: 1})
	if s := settingsOf(&cfg); s.Flags&(settingAllClientsV4|settingAllClientsV6|settingBypassV4|settingBypassV6) != settingAllClientsV6|settingBypassV6 {
		t.Errorf("settings flags %#x", s.Flags)
	}
}
