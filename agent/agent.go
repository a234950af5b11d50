package agent

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Agent is a running datapath: the attached steering program, its maps and
// its policy routing. Its methods are safe for concurrent use.
type Agent struct {
	mu     sync.Mutex
	cfg    Config
	objs   steerObjects
	link   link.Link
	nl     *netlink.Handle // bound to the network namespace Start ran in
	closed bool
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
// Taking over is seamless: maps pinned by the previous run are reused when
// their layout still matches (counters and listeners carry over), the new
// program is attached ahead of the old one, and the old one is detached only
// once the new pins are published. If Start fails, the previous datapath, if
// any, is left exactly as it was.
func Start(cfg Config) (_ *Agent, err error) {
	if err := cfg.Validate(); err != nil {
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

	spec, err := loadSteer()
	if err != nil {
		return nil, err
	}
	prev, err := openPinned(cfg.PinDir, spec)
	if err != nil {
		return nil, err
	}
	// Closing the previous generation's descriptors is what finally detaches
	// its program, once publish has removed its pins; on failure its pins
	// keep it running.
	defer prev.Close()

	objs, byName, err := loadObjects(prev.maps)
	if err != nil {
		return nil, err
	}
	defer onError(&err, func() { _ = objs.Close() })
	if err := writeConfig(&objs.steerMaps, &cfg); err != nil {
		return nil, err
	}

	added, err := installRouting(nl, &cfg)
	defer onError(&err, func() {
		if added {
			_ = removeRouting(nl, &cfg)
		}
	})
	if err != nil {
		return nil, err
	}

	lnk, err := link.AttachTCX(link.TCXOptions{
		Interface: iface.Attrs().Index,
		Program:   objs.Steer,
		Attach:    ebpf.AttachTCXIngress,
		// Ahead of a previous generation still attached: its verdicts are
		// final, so from here on the new program decides.
		Anchor: link.Head(),
	})
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			err = fmt.Errorf("%w: %w", ErrUnsupportedKernel, err)
		}
		return nil, fmt.Errorf("attach to %s ingress: %w", cfg.Interface, err)
	}
	defer onError(&err, func() { _ = lnk.Close() })

	tmp, err := pinAll(cfg.PinDir, lnk, byName)
	if err != nil {
		return nil, err
	}
	if err := publish(tmp, cfg.PinDir); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	return &Agent{cfg: cfg, objs: *objs, link: lnk, nl: nl}, nil
}

// loadObjects loads the program with the maps pinned by a previous run when
// all of them are still compatible, and with fresh maps otherwise (first
// start, or an upgrade that changed a map). It also returns every map by
// name, for pinning.
func loadObjects(pinned map[string]*ebpf.Map) (*steerObjects, map[string]*ebpf.Map, error) {
	spec, err := loadSteer()
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
		if spec, err = loadSteer(); err != nil {
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
	if err := a.objs.Settings.Update(uint32(0), settingsOf(&next), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("settings: %w", err)
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
	if err := a.objs.Settings.Update(uint32(0), settingsOf(&next), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("settings: %w", err)
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
	// without the routes that deliver it.
	errs := []error{removePins(a.cfg.PinDir)}
	nl := a.nl
	a.nl = nil
	errs = append(errs, a.release(), removeRouting(nl, &a.cfg))
	nl.Close()
	return errors.Join(errs...)
}

func (a *Agent) release() error {
	errs := []error{a.link.Close(), a.objs.Close()}
	if a.nl != nil {
		a.nl.Close()
	}
	return errors.Join(errs...)
}

// Remove tears down the datapath a stopped (or crashed) process left behind,
// as Detach would: it removes the pins in cfg.PinDir, which detaches the
// program once no process holds it, and the policy routing for cfg's mark,
// table and rule priority. Like Start it must run in the interface's network
// namespace; cfg.Interface may be empty. Nothing left to remove is not an
// error.
func Remove(cfg Config) error {
	if err := cfg.validate(false); err != nil {
		return err
	}
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer nl.Close()
	return errors.Join(removePins(cfg.PinDir), removeRouting(nl, &cfg))
}
