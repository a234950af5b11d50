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
	// steering is the mechanism Start chose; ipv6 whether it routes IPv6.
	steering Steering
	ipv6     bool
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
	steering, err := cfg.steering()
	if err != nil {
		return nil, err
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	spec, err := loadSteer()
	if err != nil {
		return nil, err
	}
	if err := checkKernel(spec, programOf(steering)); err != nil {
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
	cfg.ifindex = iface.Attrs().Index
	if err := removeStaleTemps(cfg.PinDir); err != nil {
		return nil, fmt.Errorf("remove stale pins: %w", err)
	}

	prev, err := openPinned(cfg.PinDir, spec)
	if err != nil {
		return nil, err
	}
	// Closing the previous generation's descriptors is what finally detaches
	// its TCX program or sk_lookup link, once publish has removed its pins;
	// on failure its pins keep it running.
	defer prev.Close()

	objs, byName, err := loadObjects(prev.maps, steering)
	if err != nil {
		return nil, err
	}
	defer onError(&err, func() { _ = objs.Close() })
	if err := writeConfig(&objs.steerMaps, &cfg); err != nil {
		return nil, err
	}

	// Both mechanisms keep the fwmark rule and the local routes: tc
	// steering marks, and a generation of the other mechanism being taken
	// over may still be marking.
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

	var att attachment
	if steering == SteeringRoute {
		att, err = attachLookup(objs.SteerLookup, cfg.ifindex)
	} else {
		att, err = attach(nl, &cfg, iface, objs.Steer, prev)
	}
	if err != nil {
		return nil, err
	}
	defer onError(&err, func() { _ = att.undo() })
	var change routingChange
	defer onError(&err, func() { _ = change.undo(nl) })
	if steering == SteeringRoute {
		// After the program: a SYN the rules deliver finds it there.
		if change, err = addRouteSteering(nl, &cfg, ipv6); err != nil {
			return nil, err
		}
	}
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
	// generation left where this one does not use it goes now (a TCX or
	// sk_lookup link goes with prev.Close), and so do route steering's
	// rules and routes this generation does not want: all of them with tc
	// steering, whose program is attached by now.
	tookOver := prev.hasRecord
	if t, ok := att.(*tcAttachment); ok {
		tookOver = tookOver || t.tookOver
	}
	if prev.hasRecord && prev.record.mode == AttachTC &&
		(att.mode() != AttachTC || prev.record.ifindex != iface.Attrs().Index) {
		_ = removeTC(nl, prev.record)
	}
	if att.mode() != AttachTC {
		// An orphan filter of ours (its pins lost with a private bpffs) on
		// this interface would keep deciding: behind a TCX program never,
		// but it keeps stale maps alive; beside route steering it would
		// still steer every packet.
		_ = removeTC(nl, attachRecord{mode: AttachTC, ifindex: iface.Attrs().Index})
	}
	_ = pruneRouteSteering(nl, &cfg, steering == SteeringRoute, ipv6)
	a := &Agent{cfg: cfg, objs: *objs, att: att, nl: nl, steering: steering, ipv6: ipv6}
	a.info = Attachment{Steering: steering, Mode: att.mode(), Interface: cfg.Interface, TookOver: tookOver, MountedBPFFS: mounted, IPv6: ipv6}
	return a, nil
}

// programOf names the program a mechanism runs.
func programOf(s Steering) string {
	if s == SteeringRoute {
		return steerProgSteerLookup
	}
	return steerProgSteer
}

// loadObjects loads the program with the maps pinned by a previous run when
// all of them are still compatible, and with fresh maps otherwise (first
// start, or an upgrade that changed a map). It also returns every map by
// name, for pinning.
//
// Only the program of the mechanism is loaded: the other may need what this
// kernel lacks (steer_lookup reads ingress_ifindex, Linux 5.17).
func loadObjects(pinned map[string]*ebpf.Map, steering Steering) (*steerObjects, map[string]*ebpf.Map, error) {
	spec, err := loadPerCPU(steering)
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
		if spec, err = loadPerCPU(steering); err != nil {
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
	if err := coll.Assign(&objs.steerMaps); err != nil {
		coll.Close()
		return nil, nil, fmt.Errorf("load steering program: %w", err)
	}
	objs.Steer = coll.DetachProgram(steerProgSteer) // nil unless tc steering
	objs.SteerLookup = coll.DetachProgram(steerProgSteerLookup)
	coll.Close() // everything is held by objs; nothing is left to close here
	return objs, byName, nil
}

// loadPerCPU loads the program's spec with the maps that hold a region per
// CPU (see enum per_cpu_layout in bpf/steer.c) sized for every possible CPU.
// Of the programs, only the one steering runs is kept.
func loadPerCPU(steering Steering) (*ebpf.CollectionSpec, error) {
	spec, err := loadSteer()
	if err != nil {
		return nil, err
	}
	for name := range spec.Programs {
		if name != programOf(steering) {
			delete(spec.Programs, name)
		}
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
	if a.steering == SteeringRoute {
		if err := syncRouteSteering(a.nl, &next, a.ipv6); err != nil {
			return fmt.Errorf("bypass routes: %w", err)
		}
	}
	return nil
}

// SetFailOpen switches what happens to intercepted traffic when no listener
// is present: forwarded unsteered (true) or refused (false). Route
// steering cannot fail open: turning it on there returns ErrRestartRequired
// (a restart with SteeringAuto chooses tc steering) and changes nothing.
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
	if err := a.refuseFailOpen(&next); err != nil {
		return err
	}
	if err := writeSettings(&a.objs.steerMaps, &next); err != nil {
		return err
	}
	a.cfg = next
	if a.steering == SteeringRoute {
		return syncRouteSteering(a.nl, &next, a.ipv6)
	}
	return nil
}

// refuseFailOpen refuses a change to fail-open, or past the rule budget,
// while route steering runs.
func (a *Agent) refuseFailOpen(next *Config) error {
	if a.steering != SteeringRoute {
		return nil
	}
	probe := *next
	probe.Steering = SteeringRoute
	if _, err := probe.steering(); err != nil {
		return fmt.Errorf("%w: %w", ErrRestartRequired, err)
	}
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
	case cfg.Mark != a.cfg.Mark || cfg.Table != a.cfg.Table || cfg.DropTable != a.cfg.DropTable || cfg.RulePriority != a.cfg.RulePriority:
		return fmt.Errorf("%w: mark, tables or rule priority", ErrRestartRequired)
	case cfg.Steering != a.cfg.Steering:
		return fmt.Errorf("%w: steering %s -> %s", ErrRestartRequired, a.cfg.Steering, cfg.Steering)
	}
	cfg.ifindex = a.cfg.ifindex
	if err := a.refuseFailOpen(&cfg); err != nil {
		return err
	}
	if err := writeConfig(&a.objs.steerMaps, &cfg); err != nil {
		return err
	}
	a.cfg = cfg
	if a.steering == SteeringRoute {
		return syncRouteSteering(a.nl, &cfg, a.ipv6)
	}
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
	// TCX link once its pin is gone and its descriptor closed. Route
	// steering's rules go first of all: from then on the kernel forwards
	// what they delivered, and no SYN is delivered to a host whose
	// steer_lookup is gone.
	var errs []error
	if a.steering == SteeringRoute {
		errs = append(errs, pruneRouteSteering(a.nl, &a.cfg, false, a.ipv6))
	}
	errs = append(errs, a.att.detach(), removePins(a.cfg.PinDir))
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
// as Detach would: route steering's rules and routes (cfg's tables and rule
// priority), the tc filter the attach record in cfg.PinDir names (and
// the clsact qdisc if Portcullis created it), the pins (removing a TCX or
// sk_lookup link's pin detaches it once no process holds it), and the policy
// routing for cfg's mark, table and rule priority. Like Start it must run in the
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
	// Route steering's rules first, as Detach does.
	errs := []error{pruneRouteSteering(nl, &cfg, false, true)}
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
