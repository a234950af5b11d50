package agent

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Agent is a running datapath: the attached steering program, its maps and
// its policy routing. Its methods are safe for concurrent use.
type Agent struct {
	mu     sync.Mutex
	cfg    Config
	objs   steerObjects
	att    attachment
	info   Attachment
	nl     *netlink.Handle // bound to the network namespace Start ran in
	closed bool
	// reported is what Counters last returned (it never returns less).
	reported Counters
}

// Start builds the datapath, or takes over the one a previous run left
// pinned in cfg.PinDir, and returns once the new program decides every
// packet on cfg.Interface.
//
// It must be called from the network namespace of the interface: the
// program is attached and the routing installed there. The Agent keeps a
// netlink handle in that namespace, so its other methods (Detach included)
// may be called from anywhere.
//
// Before it changes anything Start checks the privileges and kernel
// features it needs (ErrMissingPrivilege, ErrUnsupportedKernel, each naming
// what is missing), and mounts bpffs at /sys/fs/bpf if the pin directory is
// below it and nothing is mounted there.
//
// Taking over is seamless: maps pinned by the previous run are reused when
// their layout still matches (counters and listeners carry over), and the
// new program takes over in one step: a TCX link is attached ahead of the old
// one, which is detached only once the new pins are published; a tc filter
// is replaced in place. If Start fails, the previous datapath, if any, is
// left exactly as it was, and a first start leaves nothing behind.
func Start(cfg Config) (_ *Agent, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	spec, err := loadSteer()
	if err != nil {
		return nil, err
	}
	if err := checkKernel(spec); err != nil {
		return nil, err
	}
	mounted, err := ensureBPFFS(cfg.PinDir)
	if err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer onError(&err, nl.Close)
	iface, err := nl.LinkByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", cfg.Interface, err)
	}
	if err := removeStaleTemps(cfg.PinDir); err != nil {
		return nil, fmt.Errorf("remove stale pins: %w", err)
	}

	prev, err := openPinned(cfg.PinDir, spec)
	if err != nil {
		return nil, err
	}
	// Closing the previous generation's descriptors is what finally detaches
	// its TCX program, once publish has removed its pins; on failure its
	// pins keep it running.
	defer prev.Close()

	objs, byName, err := loadObjects(prev.maps)
	if err != nil {
		return nil, err
	}
	defer onError(&err, func() { _ = objs.Close() })
	if err := writeConfig(&objs.steerMaps, &cfg); err != nil {
		return nil, err
	}

	ipv6 := hostHasIPv6()
	added, err := installRouting(nl, &cfg, ipv6)
	defer onError(&err, func() {
		if added {
			_ = removeRouting(nl, &cfg)
		}
	})
	if err != nil {
		return nil, err
	}

	att, err := attach(nl, &cfg, iface, objs.Steer, prev)
	if err != nil {
		return nil, err
	}
	defer onError(&err, func() { _ = att.undo() })
	if testHookAfterAttach != nil {
		if err := testHookAfterAttach(att.mode()); err != nil {
			return nil, err
		}
	}

	tmp, err := pinAll(cfg.PinDir, att, byName)
	if err != nil {
		return nil, err
	}
	if err := publish(tmp, cfg.PinDir); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	// Published: from here on nothing fails. A tc filter the previous
	// generation left where this one does not use it goes now (a TCX link
	// goes with prev.Close).
	tookOver := prev.hasRecord
	if t, ok := att.(*tcAttachment); ok {
		tookOver = tookOver || t.tookOver
	}
	if prev.hasRecord && prev.record.mode == AttachTC &&
		(att.mode() != AttachTC || prev.record.ifindex != iface.Attrs().Index) {
		_ = removeTC(nl, prev.record)
	}
	if att.mode() == AttachTCX {
		// An orphan filter of ours (its pins lost with a private bpffs) on
		// this interface would run behind the new program: never, but it
		// keeps stale maps alive.
		_ = removeTC(nl, attachRecord{mode: AttachTC, ifindex: iface.Attrs().Index})
	}
	a := &Agent{cfg: cfg, objs: *objs, att: att, nl: nl}
	a.info = Attachment{Mode: att.mode(), Interface: cfg.Interface, TookOver: tookOver, MountedBPFFS: mounted, IPv6: ipv6}
	return a, nil
}

// loadObjects loads the program with the maps pinned by a previous run when
// all of them are still compatible, and with fresh maps otherwise (first
// start, or an upgrade that changed a map). It also returns every map by
// name, for pinning.
func loadObjects(pinned map[string]*ebpf.Map) (*steerObjects, map[string]*ebpf.Map, error) {
	spec, err := loadPerCPU()
	if err != nil {
		return nil, nil, err
	}
	opts := &ebpf.CollectionOptions{}
	if len(pinned) == len(spec.Maps) {
		opts.MapReplacements = pinned
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, *opts)
	if err != nil && opts.MapReplacements != nil && errors.Is(err, ebpf.ErrMapIncompatible) {
		// The old datapath keeps running on its maps until the new one,
		// with fresh maps, replaces it.
		if spec, err = loadPerCPU(); err != nil {
			return nil, nil, err
		}
		coll, err = ebpf.NewCollection(spec)
	}
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			err = fmt.Errorf("%w: %w", ErrUnsupportedKernel, err)
		}
		return nil, nil, fmt.Errorf("load steering program: %w", err)
	}
	byName := maps.Clone(coll.Maps)
	objs := new(steerObjects)
	if err := coll.Assign(objs); err != nil {
		coll.Close()
		return nil, nil, fmt.Errorf("load steering program: %w", err)
	}
	coll.Close() // everything was assigned; nothing is left to close here
	return objs, byName, nil
}

// loadPerCPU loads the program's spec with the maps that hold a region per
// CPU (see enum per_cpu_layout in bpf/steer.c) sized for every possible CPU.
func loadPerCPU() (*ebpf.CollectionSpec, error) {
	spec, err := loadSteer()
	if err != nil {
		return nil, err
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("possible CPUs: %w", err)
	}
	for _, name := range []string{steerMapCounters, steerMapFlowCacheV4, steerMapFlowCacheV6} {
		spec.Maps[name].MaxEntries *= uint32(cpus)
	}
	return spec, nil
}

// onError runs undo if *err is set when the calling function returns: the
// partial work of a failed Start is released in reverse order of creation.
func onError(err *error, undo func()) {
	if *err != nil {
		undo()
	}
}

// SetListener makes the listening socket fd the target of new steered flows
// of its family (replacing any previous one). The socket must be a plain
// TCP listener (not MPTCP) with IP_TRANSPARENT (IPv4) or IPV6_TRANSPARENT
// (IPv6) set. The datapath keeps its own reference: fd may be closed after
// the call, and closing the listening socket itself removes it from the
// datapath (the fail mode then applies).
func (a *Agent) SetListener(fd uintptr, ipv6 bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	return setListener(a.objs.Listeners, int(fd), ipv6)
}

// SetBypass replaces the set of destinations that are never steered. It
// takes effect for the next packet; prefixes in both the old and the new set
// stay bypassed throughout.
func (a *Agent) SetBypass(prefixes []netip.Prefix) error {
	limits, err := mapLimits()
	if err != nil {
		return err
	}
	prefixes, err = normalizePrefixes("bypass prefix", prefixes, limits.bypass)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if err := syncPrefixes(a.objs.BypassV4, a.objs.BypassV6, prefixes); err != nil {
		return fmt.Errorf("bypass prefixes: %w", err)
	}
	// After the map: the settings say whether the program looks it up.
	next := a.cfg
	next.BypassPrefixes = prefixes
	if err := writeSettings(&a.objs.steerMaps, &next); err != nil {
		return err
	}
	a.cfg = next
	return nil
}

// SetFailOpen switches what happens to intercepted traffic when no listener
// is present: forwarded unsteered (true) or refused with a reset (false).
func (a *Agent) SetFailOpen(on bool) error {
	return a.updateSettings(func(c *Config) { c.FailOpen = on })
}

// SetDropQUIC switches dropping UDP from clients to intercepted ports.
func (a *Agent) SetDropQUIC(on bool) error {
	return a.updateSettings(func(c *Config) { c.DropQUIC = on })
}

func (a *Agent) updateSettings(change func(*Config)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	next := a.cfg
	change(&next)
	if err := writeSettings(&a.objs.steerMaps, &next); err != nil {
		return err
	}
	a.cfg = next
	return nil
}

// Update applies a changed configuration without reattaching: client
// prefixes, intercept ports, bypass prefixes, DropQUIC and FailOpen. A change
// to any other field returns ErrRestartRequired and applies nothing.
func (a *Agent) Update(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	switch {
	case cfg.Interface != a.cfg.Interface:
		return fmt.Errorf("%w: interface %s -> %s", ErrRestartRequired, a.cfg.Interface, cfg.Interface)
	case cfg.PinDir != a.cfg.PinDir:
		return fmt.Errorf("%w: pin directory %s -> %s", ErrRestartRequired, a.cfg.PinDir, cfg.PinDir)
	case cfg.Attach != a.cfg.Attach:
		return fmt.Errorf("%w: attach mode %s -> %s", ErrRestartRequired, a.cfg.Attach, cfg.Attach)
	case cfg.Mark != a.cfg.Mark || cfg.Table != a.cfg.Table || cfg.RulePriority != a.cfg.RulePriority:
		return fmt.Errorf("%w: mark, table or rule priority", ErrRestartRequired)
	}
	if err := writeConfig(&a.objs.steerMaps, &cfg); err != nil {
		return err
	}
	a.cfg = cfg
	return nil
}

// Close releases the agent's descriptors and leaves the pinned datapath
// running: with the proxy gone its listeners leave the sockmap, so the
// program goes on applying the fail mode until the next Start takes over.
// Closing twice is harmless.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	return a.release()
}

// Detach tears the whole datapath down: the program is detached, the pins
// are removed and the policy routing is deleted. Afterwards the interface
// forwards as if Portcullis had never been there.
func (a *Agent) Detach() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	a.closed = true
	// Program first, routing last: a marked packet must never meet a host
	// without the routes that deliver it. A tc filter goes by netlink, a
	// TCX link once its pin is gone and its descriptor closed.
	errs := []error{a.att.detach(), removePins(a.cfg.PinDir)}
	nl := a.nl
	a.nl = nil
	errs = append(errs, a.release(), removeRouting(nl, &a.cfg))
	nl.Close()
	return errors.Join(errs...)
}

func (a *Agent) release() error {
	errs := []error{a.att.release(), a.objs.Close()}
	if a.nl != nil {
		a.nl.Close()
	}
	return errors.Join(errs...)
}

// Remove tears down the datapath a stopped (or crashed) process left behind,
// as Detach would: the tc filter the attach record in cfg.PinDir names (and
// the clsact qdisc if Portcullis created it), the pins (removing a TCX
// link's pin detaches it once no process holds it), and the policy routing
// for cfg's mark, table and rule priority. Like Start it must run in the
// interface's network namespace. cfg.Interface may be empty; if it is set, a
// filter of ours on it is removed even without pins (its bpffs gone with a
// mount namespace). Nothing left to remove is not an error.
func Remove(cfg Config) error {
	if err := cfg.validate(false); err != nil {
		return err
	}
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer nl.Close()
	var errs []error
	rec, ok, err := readRecord(cfg.PinDir)
	errs = append(errs, err)
	if ok && rec.mode == AttachTC {
		errs = append(errs, removeTC(nl, rec))
	}
	if cfg.Interface != "" {
		if iface, err := nl.LinkByName(cfg.Interface); err == nil {
			errs = append(errs, removeTC(nl, attachRecord{mode: AttachTC, ifindex: iface.Attrs().Index}))
		}
	}
	return errors.Join(append(errs, removePins(cfg.PinDir), removeRouting(nl, &cfg))...)
}
