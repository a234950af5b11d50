package agent

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A restart may switch modes (an upgrade to a kernel with TCX, or a forced
// mode): the new hook takes over, the old one goes, state carries over.
func TestTakeoverAcrossAttachModes(t *testing.T) {
	ns := quietNS(t)
	cfg := Config{Interface: "if0", PinDir: testPinDir(t), Attach: AttachTCX}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := startIn(t, ns, cfg)
	if err := a.objs.Counters.Update(counterKey(0, steerCounterCOUNTER_STEERED), uint64(7), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	// Auto with tc steering forced resolves to TCX on this kernel; plain
	// auto is route steering (sk_lookup), taken over from tc and back.
	steps := []struct {
		attach   AttachMode
		steering Steering
		want     AttachMode
	}{
		{AttachTC, SteeringAuto, AttachTC}, {AttachTCX, SteeringAuto, AttachTCX}, {AttachTC, SteeringAuto, AttachTC},
		{AttachAuto, SteeringTC, AttachTCX}, {AttachAuto, SteeringAuto, AttachSkLookup},
		{AttachTC, SteeringAuto, AttachTC}, {AttachAuto, SteeringRoute, AttachSkLookup}, {AttachTCX, SteeringTC, AttachTCX},
	}
	for _, step := range steps {
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		mode, want := step.attach, step.want
		cfg.Attach, cfg.Steering = mode, step.steering
		a = startIn(t, ns, cfg)
		at := a.Attachment()
		if at.Mode != want || !at.TookOver {
			t.Fatalf("%s/%s: attachment %+v, want %s taken over", mode, step.steering, at, want)
		}
		if want == AttachSkLookup {
			waitPrograms(t, ns, "if0", AttachTCX, 0)
			waitLookupPrograms(t, ns, 1)
		} else {
			waitPrograms(t, ns, "if0", want, 1)
			waitLookupPrograms(t, ns, 0)
		}
		// Route steering's rules exist exactly while it runs.
		if rules, _ := routeSteeringLeft(t, ns, cfg); (rules > 0) != (want == AttachSkLookup) {
			t.Errorf("%s: %d route steering rules", want, rules)
		}
		// The qdisc the tc mode created goes with it.
		if tc := tcOf(t, ns, "if0"); tc.clsact != (want == AttachTC) {
			t.Errorf("%s: clsact present %v", mode, tc.clsact)
		}
		if c, err := a.Counters(); err != nil || c.Steered != 7 {
			t.Errorf("%s: counters %+v, %v: want Steered 7 carried over", mode, c, err)
		}
	}
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	requireNothingLeft(t, ns, "if0", cfg)
}

// On a kernel without TCX, auto falls back to tc; a forced tcx is refused
// saying what to do, with nothing left behind.
func TestAutoFallsBackToTCWithoutTCX(t *testing.T) {
	attachTCXLink = func(link.TCXOptions) (link.Link, error) {
		return nil, fmt.Errorf("tcx: %w", ebpf.ErrNotSupported)
	}
	t.Cleanup(func() { attachTCXLink = link.AttachTCX })
	ns := quietNS(t)
	cfg := Config{Interface: "if0", PinDir: testPinDir(t), Attach: AttachTCX}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	err := ns.Do(func() error { _, err := Start(cfg); return err })
	if !errors.Is(err, ErrUnsupportedKernel) || !strings.Contains(err.Error(), "Linux 6.6") || !strings.Contains(err.Error(), "tc") {
		t.Errorf("forced tcx without TCX: %v, want ErrUnsupportedKernel naming Linux 6.6 and the tc mode", err)
	}
	requireNothingLeft(t, ns, "if0", cfg)

	cfg.Attach, cfg.Steering = AttachAuto, SteeringTC
	a := startIn(t, ns, cfg)
	if at := a.Attachment(); at.Mode != AttachTC {
		t.Fatalf("auto without TCX attached %+v, want tc", at)
	}
	waitPrograms(t, ns, "if0", AttachTC, 1)
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	requireNothingLeft(t, ns, "if0", cfg)
}

// Our tc slot holding someone else's filter is refused, and that filter,
// like a clsact qdisc that was there before us and the filters other tools
// keep on it, is never touched.
func TestTCLeavesOthersFiltersAlone(t *testing.T) {
	ns := quietNS(t)
	ns.IP("link", "set", "if1", "up")
	ctx := t.Context()
	if out, err := ns.Exec(ctx, "tc", "qdisc", "add", "dev", "if0", "clsact"); err != nil {
		t.Fatalf("tc qdisc add: %v: %s", err, out)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "Dual BSD/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	foreign := func(prio uint16, name string) *netlink.BpfFilter {
		return &netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{Parent: netlink.HANDLE_MIN_INGRESS, Handle: tcHandle, Priority: prio, Protocol: unix.ETH_P_ALL},
			Fd:          prog.FD(), Name: name, DirectAction: true,
		}
	}
	add := func(f *netlink.BpfFilter) {
		t.Helper()
		if err := ns.Do(func() error {
			l, err := netlink.LinkByName("if0")
			if err != nil {
				return err
			}
			f.LinkIndex = l.Attrs().Index
			return netlink.FilterAdd(f)
		}); err != nil {
			t.Fatal(err)
		}
	}
	add(foreign(tcPriority, "someone-else"))
	cfg := Config{Interface: "if0", PinDir: testPinDir(t), Attach: AttachTC}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	err = ns.Do(func() error { _, err := Start(cfg); return err })
	if err == nil || !strings.Contains(err.Error(), "not Portcullis's") {
		t.Fatalf("Start over a foreign filter in our slot: %v, want a refusal", err)
	}
	if _, err := os.Stat(cfg.PinDir); !os.IsNotExist(err) {
		t.Errorf("pins left after the refusal: %v", err)
	}
	if rules, routes := routingLeft(t, ns, cfg); len(rules)+len(routes) > 0 {
		t.Errorf("routing left after the refusal: %v %v", rules, routes)
	}
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName("if0")
		if err != nil {
			return err
		}
		return netlink.FilterDel(&netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{
			LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_MIN_INGRESS, Handle: tcHandle, Priority: tcPriority, Protocol: unix.ETH_P_ALL}})
	}); err != nil {
		t.Fatal(err)
	}

	// Another tool's filter in another slot of a qdisc that was there first.
	add(foreign(0x1000, "someone-else"))
	a := startIn(t, ns, cfg)
	if at := a.Attachment(); at.Mode != AttachTC {
		t.Fatalf("attachment %+v", at)
	}
	if n := len(tcOf(t, ns, "if0").filters); n != 2 {
		t.Errorf("%d filters, want ours and the other one", n)
	}
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	tc := tcOf(t, ns, "if0")
	if !tc.clsact || len(tc.filters) != 1 || tc.filters[0].(*netlink.BpfFilter).Name != "someone-else" {
		t.Errorf("after Detach: clsact %v, filters %v; want the qdisc and the other filter kept", tc.clsact, tc.filters)
	}
}

// A tc filter whose pins are gone (a private bpffs that went with its mount
// namespace) is still ours: Start takes it over, Remove with the interface
// removes it.
func TestTCFilterWithoutPins(t *testing.T) {
	ns := quietNS(t)
	cfg := Config{Interface: "if0", PinDir: testPinDir(t), Attach: AttachTC}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	first := startIn(t, ns, cfg)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := removePins(cfg.PinDir); err != nil {
		t.Fatal(err)
	}
	waitPrograms(t, ns, "if0", AttachTC, 1) // the filter holds the program
	second := startIn(t, ns, cfg)
	if at := second.Attachment(); !at.TookOver {
		t.Errorf("attachment %+v: want the orphan filter taken over", at)
	}
	waitPrograms(t, ns, "if0", AttachTC, 1)
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if err := removePins(cfg.PinDir); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return Remove(Config{PinDir: cfg.PinDir, Interface: "if0"}) }); err != nil {
		t.Fatal(err)
	}
	waitPrograms(t, ns, "if0", AttachTC, 0)
	// The qdisc stays: with the record gone nothing says it was ours.
	rules, routes := routingLeft(t, ns, cfg)
	if len(rules)+len(routes) > 0 {
		t.Errorf("routing left: %v %v", rules, routes)
	}
}

func TestAttachRecordRoundTrip(t *testing.T) {
	for _, r := range []attachRecord{
		{mode: AttachTCX, ifindex: 4},
		{mode: AttachTC, ifindex: 12, prio: tcPriority, handle: tcHandle, createdQdisc: true},
		{mode: AttachTC, ifindex: 3, prio: tcPriority, handle: tcHandle},
	} {
		got, err := parseRecord(r.String())
		if err != nil || got != r {
			t.Errorf("parse(%q) = %+v, %v; want %+v", r.String(), got, err, r)
		}
	}
	for _, bad := range []string{"", "xdp ifindex=1", "tc ifindex=x"} {
		if _, err := parseRecord(bad); err == nil {
			t.Errorf("parse(%q) succeeded", bad)
		}
	}
}
