package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// Helpers for the tests that attach the datapath inside throwaway network
// namespaces.

// testPinDir returns a unique pin directory on bpffs, removed (with any
// temporary siblings) when the test ends.
func testPinDir(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	dir := filepath.Join("/sys/fs/bpf", "portcullis-test-"+hex.EncodeToString(b[:]))
	t.Cleanup(func() { _ = removePins(dir) })
	return dir
}

// quietNS is a namespace with an interface "if0" to attach to, for tests
// that need an interface but no traffic (a veth pair: CI kernels may lack
// the dummy driver).
func quietNS(t testing.TB) *lab.NS {
	t.Helper()
	ns := lab.NewNS(t, "a")
	ns.IP("link", "add", "if0", "type", "veth", "peer", "name", "if1")
	ns.IP("link", "set", "if0", "up")
	return ns
}

// startIn runs Start inside ns, where the interface lives, and closes the
// agent when the test ends.
func startIn(t testing.TB, ns *lab.NS, cfg Config) *Agent {
	t.Helper()
	var a *Agent
	if err := ns.Do(func() (err error) { a, err = Start(cfg); return }); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// attachModes are the hooks every attach test runs with: both work on the
// kernels CI runs (6.6+), so the tc fallback is tested there too.
var attachModes = []AttachMode{AttachTCX, AttachTC}

// steeringModes are the attach modes of both mechanisms: tc steering's two
// hooks and route steering's sk_lookup (see withMode).
var steeringModes = []AttachMode{AttachTCX, AttachTC, AttachSkLookup}

// withMode returns cfg set up to attach in mode: AttachSkLookup is route
// steering.
func withMode(cfg Config, mode AttachMode) Config {
	if mode == AttachSkLookup {
		cfg.Attach, cfg.Steering = AttachAuto, SteeringRoute
		return cfg
	}
	cfg.Attach, cfg.Steering = mode, SteeringTC
	return cfg
}

// waitSteering waits until the datapath attached in mode is there (want 1)
// or gone (want 0): on ifname's ingress for tc steering, and for route
// steering in ns's sk_lookup programs (with no program on ifname).
func waitSteering(t testing.TB, ns *lab.NS, ifname string, mode AttachMode, want int) {
	t.Helper()
	if mode == AttachSkLookup {
		waitPrograms(t, ns, ifname, AttachTCX, 0)
		waitLookupPrograms(t, ns, want)
		return
	}
	waitPrograms(t, ns, ifname, mode, want)
	waitLookupPrograms(t, ns, 0)
}

// tableRules is how many rules into cfg's Table a datapath attached in mode
// keeps (routingLeft): the fwmark rule per family, and route steering's TCP
// rules (per family two /1 halves of the default clients × two port ranges).
func tableRules(mode AttachMode) int {
	if mode == AttachSkLookup {
		return 2 + 8
	}
	return 2
}

// tcxPrograms counts the programs attached to the TCX ingress of ifname.
func tcxPrograms(t testing.TB, ns *lab.NS, ifname string) int {
	t.Helper()
	var n int
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		n = len(res.Programs)
		return nil
	})
	if err != nil {
		t.Fatalf("query tcx programs: %v", err)
	}
	return n
}

// tcState is what tc shows on an interface's ingress: its filters (not the
// classifier heads netlink also lists) and whether a clsact qdisc is there.
type tcState struct {
	filters []netlink.Filter
	clsact  bool
}

func tcOf(t testing.TB, ns *lab.NS, ifname string) tcState {
	t.Helper()
	var st tcState
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		qs, err := netlink.QdiscList(l)
		if err != nil {
			return err
		}
		for _, q := range qs {
			st.clsact = st.clsact || q.Type() == "clsact"
		}
		fs, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if f.Attrs().Handle != 0 {
				st.filters = append(st.filters, f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("query tc: %v", err)
	}
	return st
}

// attachedProgramIDs lists the programs on ifname's ingress, TCX links and
// tc filters alike, and the sk_lookup programs of ns.
func attachedProgramIDs(t testing.TB, ns *lab.NS, ifname string) []ebpf.ProgramID {
	t.Helper()
	var ids []ebpf.ProgramID
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		for _, p := range res.Programs {
			ids = append(ids, p.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("query tcx programs: %v", err)
	}
	for _, f := range tcOf(t, ns, ifname).filters {
		if bf, ok := f.(*netlink.BpfFilter); ok {
			ids = append(ids, ebpf.ProgramID(bf.Id))
		}
	}
	return append(ids, lookupProgramIDs(t, ns)...)
}

// lookupProgramIDs lists the sk_lookup programs attached to ns.
func lookupProgramIDs(t testing.TB, ns *lab.NS) []ebpf.ProgramID {
	t.Helper()
	var ids []ebpf.ProgramID
	err := ns.Do(func() error {
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		defer f.Close()
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachSkLookup})
		if err != nil {
			return err
		}
		for _, p := range res.Programs {
			ids = append(ids, p.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("query sk_lookup programs: %v", err)
	}
	return ids
}

// waitPrograms waits (bounded) until ifname's ingress has want programs of
// the given mode and none of the other: releasing a link happens when its
// last reference goes, which is prompt but not necessarily synchronous with
// close(2).
func waitPrograms(t testing.TB, ns *lab.NS, ifname string, mode AttachMode, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		tcx, tc := tcxPrograms(t, ns, ifname), len(tcOf(t, ns, ifname).filters)
		got := map[AttachMode]int{AttachTCX: tcx, AttachTC: tc}
		other := AttachTC
		if mode == AttachTC {
			other = AttachTCX
		}
		if got[mode] == want && got[other] == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d tcx programs and %d tc filters on ingress, want %d %s", ifname, tcx, tc, want, mode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// routingLeft lists the policy rules and routes of cfg's table in ns.
func routingLeft(t testing.TB, ns *lab.NS, cfg Config) (rules []netlink.Rule, routes []netlink.Route) {
	t.Helper()
	err := ns.Do(func() error {
		for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
			rs, err := netlink.RuleListFiltered(family, &netlink.Rule{Table: cfg.Table}, netlink.RT_FILTER_TABLE)
			if err != nil {
				return err
			}
			rules = append(rules, rs...)
			rts, err := netlink.RouteListFiltered(family, &netlink.Route{Table: cfg.Table}, netlink.RT_FILTER_TABLE)
			if err != nil {
				return err
			}
			routes = append(routes, rts...)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list routing: %v", err)
	}
	return rules, routes
}

// requireNothingLeft checks that no trace of the datapath remains: no pins,
// no program on the interface (TCX or tc) or in the namespace (sk_lookup),
// no clsact qdisc (the tests' interfaces have none of their own), no rules
// or routes.
func requireNothingLeft(t testing.TB, ns *lab.NS, ifname string, cfg Config) {
	t.Helper()
	if _, err := os.Stat(cfg.PinDir); !os.IsNotExist(err) {
		t.Errorf("pin directory %s still there (%v)", cfg.PinDir, err)
	}
	if stale, _ := filepath.Glob(filepath.Join(filepath.Dir(cfg.PinDir), tmpPattern(cfg.PinDir))); len(stale) > 0 {
		t.Errorf("temporary pin directories left: %v", stale)
	}
	waitPrograms(t, ns, ifname, AttachTCX, 0) // and no tc filter
	if tc := tcOf(t, ns, ifname); tc.clsact || len(tc.filters) > 0 {
		t.Errorf("tc left on %s: clsact %v, filters %v", ifname, tc.clsact, tc.filters)
	}
	rules, routes := routingLeft(t, ns, cfg)
	if len(rules) > 0 || len(routes) > 0 {
		t.Errorf("routing left: rules %v routes %v", rules, routes)
	}
	waitLookupPrograms(t, ns, 0)
	if rules, routes := routeSteeringLeft(t, ns, cfg); rules+routes > 0 {
		t.Errorf("route steering left: %d rules, %d routes", rules, routes)
	}
}

// transparentListenerIn listens in ns as the proxy does (see
// transparentListener).
func transparentListenerIn(t testing.TB, ns *lab.NS, network, addr string) *net.TCPListener {
	t.Helper()
	var ln *net.TCPListener
	if err := ns.Do(func() error { ln = transparentListener(t, network, addr); return nil }); err != nil {
		t.Fatal(err)
	}
	return ln
}

// dialTimeout bounds every connection attempt of the end-to-end tests.
const dialTimeout = 3 * time.Second

func dialFrom(ns *lab.NS, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	return ns.Dial(ctx, network, addr)
}
