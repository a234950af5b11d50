package agent

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The tc hook, for kernels without TCX: a cls_bpf filter in direct-action
// mode on the ingress of the interface's clsact qdisc. There is no link to
// pin: the filter keeps the program (and through it the maps) alive, so the
// datapath outlives the process as the pinned TCX link does. Replacing the
// filter of the same priority and handle swaps the program atomically (the
// kernel replaces the filter's program under RCU), which is how a restart
// takes over; the attach record in the pin directory tells a restarted
// daemon and Remove which filter is ours and whether we created the qdisc.

const (
	// tcPriority and tcHandle place our filter: ahead of filters added
	// without a priority (tc numbers those from 49152 down), and in a slot
	// of its own so it never shares a classifier instance with another
	// tool's filters.
	tcPriority = 0x7c
	tcHandle   = 0x7c
	// tcFilterName marks the filter as ours (TCA_BPF_NAME): a filter in our
	// slot with another name belongs to someone else and is never replaced
	// or removed.
	tcFilterName = "portcullis-steer"
	programPin   = "program"
)

func ourTCFilter(ifindex, progFD int) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    tcHandle,
			Priority:  tcPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		Fd:           progFD,
		Name:         tcFilterName,
		DirectAction: true,
	}
}

// tcAttachment is our cls_bpf filter on the interface's ingress.
type tcAttachment struct {
	nl      *netlink.Handle
	ifindex int
	prog    *ebpf.Program
	// createdQdisc: the clsact qdisc is ours (this Start or an earlier
	// generation created it); addedQdisc: this Start created it.
	createdQdisc, addedQdisc bool
	// replaced is the program our filter ran before this Start replaced
	// it; nil if there was no filter, or it could not be opened (then undo
	// removes the filter instead of restoring it).
	replaced *ebpf.Program
	// tookOver: a filter of ours was already there.
	tookOver bool
}

func (t *tcAttachment) mode() AttachMode { return AttachTC }

func attachTC(nl *netlink.Handle, iface netlink.Link, prog *ebpf.Program, prev *pinnedState) (_ *tcAttachment, err error) {
	ifindex := iface.Attrs().Index
	t := &tcAttachment{nl: nl, ifindex: ifindex, prog: prog}
	if t.addedQdisc, err = ensureClsact(nl, iface); err != nil {
		return nil, err
	}
	defer onError(&err, func() {
		if t.addedQdisc {
			_ = removeClsactIfEmpty(nl, iface)
		}
	})
	t.createdQdisc = t.addedQdisc ||
		(prev.hasRecord && prev.record.mode == AttachTC && prev.record.ifindex == ifindex && prev.record.createdQdisc)

	existing, err := findTCFilter(nl, iface)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		t.tookOver = true
		t.replaced = previousProgram(existing, prev)
	}
	if err := nl.FilterReplace(ourTCFilter(ifindex, prog.FD())); err != nil {
		if t.replaced != nil {
			_ = t.replaced.Close()
		}
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
			// The kernel has no cls_bpf classifier.
			err = fmt.Errorf("%w: cls_bpf (CONFIG_NET_CLS_BPF): %w", ErrUnsupportedKernel, err)
		}
		return nil, fmt.Errorf("tc filter on %s ingress: %w", iface.Attrs().Name, err)
	}
	return t, nil
}

// previousProgram opens the program a filter of ours runs, so a failed
// Start can put it back: the pinned one when it is that program, otherwise
// by ID (which needs CAP_SYS_ADMIN; without it nil is returned).
func previousProgram(f *netlink.BpfFilter, prev *pinnedState) *ebpf.Program {
	if prev.program != nil {
		if info, err := prev.program.Info(); err == nil {
			if id, ok := info.ID(); ok && int(id) == f.Id {
				if p, err := prev.program.Clone(); err == nil {
					return p
				}
			}
		}
	}
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(f.Id))
	if err != nil {
		return nil
	}
	return p
}

func (t *tcAttachment) pin(dir string) error {
	if err := t.prog.Pin(filepath.Join(dir, programPin)); err != nil {
		return fmt.Errorf("pin program: %w", err)
	}
	return writeRecord(dir, attachRecord{mode: AttachTC, ifindex: t.ifindex,
		prio: tcPriority, handle: tcHandle, createdQdisc: t.createdQdisc})
}

func (t *tcAttachment) release() error {
	if t.replaced != nil {
		_ = t.replaced.Close()
		t.replaced = nil
	}
	return nil
}

func (t *tcAttachment) undo() error {
	defer t.release()
	var err error
	if t.replaced != nil {
		// Back to the previous generation's program, atomically as before.
		err = t.nl.FilterReplace(ourTCFilter(t.ifindex, t.replaced.FD()))
	} else {
		err = t.nl.FilterDel(ourTCFilter(t.ifindex, 0))
	}
	if err != nil {
		return fmt.Errorf("undo tc filter: %w", err)
	}
	if t.addedQdisc {
		return removeClsactIfEmpty(t.nl, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: t.ifindex}})
	}
	return nil
}

func (t *tcAttachment) detach() error {
	return removeTC(t.nl, attachRecord{mode: AttachTC, ifindex: t.ifindex, createdQdisc: t.createdQdisc})
}

// removeTC removes our filter from the recorded interface, and the clsact
// qdisc too if we created it and nothing else uses it. A filter, qdisc or
// interface already gone is not an error; a filter in our slot that is not
// ours is left alone.
func removeTC(nl *netlink.Handle, r attachRecord) error {
	iface, err := nl.LinkByIndex(r.ifindex)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("interface %d: %w", r.ifindex, err)
	}
	f, err := findTCFilter(nl, iface)
	if err != nil {
		return err
	}
	if f != nil {
		if err := nl.FilterDel(ourTCFilter(r.ifindex, 0)); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove tc filter from %s: %w", iface.Attrs().Name, err)
		}
	}
	if r.createdQdisc {
		return removeClsactIfEmpty(nl, iface)
	}
	return nil
}

// findTCFilter returns our filter on the interface's ingress, nil if there is
// none, and an error if our slot holds someone else's.
func findTCFilter(nl *netlink.Handle, iface netlink.Link) (*netlink.BpfFilter, error) {
	filters, err := nl.FilterList(iface, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil, nil // no ingress qdisc, so no filter
		}
		return nil, fmt.Errorf("list tc filters on %s: %w", iface.Attrs().Name, err)
	}
	for _, f := range filters {
		a := f.Attrs()
		if a.Priority != tcPriority || a.Handle != tcHandle {
			continue
		}
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Name == tcFilterName {
			return bf, nil
		}
		return nil, fmt.Errorf("tc filter pref %d handle %#x on %s ingress is not Portcullis's (%s): remove it, or set datapath.attach: tcx",
			tcPriority, tcHandle, iface.Attrs().Name, f.Type())
	}
	return nil, nil
}

func clsact(ifindex int) *netlink.Clsact {
	return &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: ifindex,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_CLSACT,
	}}
}

// ensureClsact adds a clsact qdisc unless the interface has one (or an
// ingress qdisc, whose ingress hook takes the same filters), and reports
// whether it added it.
func ensureClsact(nl *netlink.Handle, iface netlink.Link) (added bool, err error) {
	err = nl.QdiscAdd(clsact(iface.Attrs().Index))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return false, nil
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP):
		return false, fmt.Errorf("%w: the clsact qdisc (CONFIG_NET_SCH_INGRESS): %w", ErrUnsupportedKernel, err)
	}
	return false, fmt.Errorf("add clsact qdisc to %s: %w", iface.Attrs().Name, err)
}

// removeClsactIfEmpty deletes the clsact qdisc when no filter is left on it,
// so filters another tool added after ours are never taken down with it.
func removeClsactIfEmpty(nl *netlink.Handle, iface netlink.Link) error {
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		filters, err := nl.FilterList(iface, parent)
		if err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				return nil // no qdisc left
			}
			return fmt.Errorf("list tc filters: %w", err)
		}
		if len(filters) > 0 {
			return nil
		}
	}
	qdiscs, err := nl.QdiscList(iface)
	if err != nil {
		return fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qdiscs {
		if q.Type() == "clsact" {
			if err := nl.QdiscDel(clsact(iface.Attrs().Index)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("remove clsact qdisc: %w", err)
			}
		}
	}
	return nil
}
