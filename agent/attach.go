package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// AttachMode is how the steering program is hooked to the interface's
// ingress. The program is the same in both modes: a SchedCLS program (section
// "tc") runs unchanged as a TCX link and as a cls_bpf filter in direct-action
// mode, and both hooks offer bpf_sk_assign.
type AttachMode string

const (
	// AttachAuto uses TCX where the kernel has it and tc otherwise.
	AttachAuto AttachMode = "auto"
	// AttachTCX attaches a TCX link (Linux 6.6+), pinned so the program
	// outlives the process.
	AttachTCX AttachMode = "tcx"
	// AttachTC adds a cls_bpf direct-action filter to the interface's clsact
	// qdisc (created if missing): the hook of kernels before 6.6. The filter
	// itself keeps the program attached after the process exits.
	AttachTC AttachMode = "tc"
	// AttachSkLookup is route steering's hook (see Steering), never a
	// Config value: steer_lookup attached to the network namespace's
	// listener lookups by a netns link, pinned like the TCX link.
	AttachSkLookup AttachMode = "sk_lookup"
)

func (m AttachMode) valid() bool { return m == AttachAuto || m == AttachTCX || m == AttachTC }

// Attachment describes how a running Agent's datapath is attached.
type Attachment struct {
	// Steering is the mechanism in use: SteeringRoute or SteeringTC.
	Steering Steering
	// Mode is AttachSkLookup with route steering; with tc steering it is
	// AttachTCX or AttachTC: what auto resolved to, or what was forced.
	Mode      AttachMode
	Interface string
	// TookOver is set when Start replaced a datapath a previous run had left
	// attached (pinned, or a tc filter of ours).
	TookOver bool
	// MountedBPFFS is where Start mounted bpffs because no bpffs was mounted
	// there (a fresh mount namespace, `ip netns exec`); empty otherwise.
	MountedBPFFS string
	// IPv6 says whether marked IPv6 packets are routed for local delivery.
	// It is false on hosts without IPv6 (disabled on the loopback device):
	// IPv6 packets then get the fail mode, as they would without a listener.
	IPv6 bool
}

// Attachment reports how the datapath is attached.
func (a *Agent) Attachment() Attachment {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.info
}

// attachment is the program hooked to the interface by one of the modes.
type attachment interface {
	mode() AttachMode
	// pin records the attachment in dir, a new generation's pin directory:
	// what keeps it attached (the TCX link) and the attach record that tells
	// the next Start or Remove what to take over or remove.
	pin(dir string) error
	// release closes the descriptors and leaves the program attached.
	release() error
	// undo reverses what this Start attached, restoring what it replaced.
	undo() error
	// detach removes the program from the interface for good.
	detach() error
}

// testHookAfterAttach, when set by a test, is called once the program is
// attached; an error it returns fails Start there, to check the undo path.
var testHookAfterAttach func(AttachMode) error

// attachTCXLink is link.AttachTCX; tests replace it to act as a kernel
// without TCX.
var attachTCXLink = link.AttachTCX

// attach hooks prog to the interface in the configured mode. prev is what the
// previous generation left, whose tc filter may be replaced in place.
func attach(nl *netlink.Handle, cfg *Config, iface netlink.Link, prog *ebpf.Program, prev *pinnedState) (attachment, error) {
	ifindex := iface.Attrs().Index
	if cfg.Attach == AttachTCX || cfg.Attach == AttachAuto {
		lnk, err := attachTCXLink(link.TCXOptions{
			Interface: ifindex,
			Program:   prog,
			Attach:    ebpf.AttachTCXIngress,
			// Ahead of a previous generation still attached: its verdicts
			// are final, so from here on the new program decides.
			Anchor: link.Head(),
		})
		switch {
		case err == nil:
			return &tcxAttachment{link: lnk, ifindex: ifindex}, nil
		case errors.Is(err, ebpf.ErrNotSupported) && cfg.Attach == AttachAuto:
			// Before Linux 6.6: the tc hook below.
		case errors.Is(err, ebpf.ErrNotSupported):
			return nil, fmt.Errorf("%w: TCX links need Linux 6.6 or later (set datapath.attach to tc or auto): %w",
				ErrUnsupportedKernel, err)
		default:
			return nil, fmt.Errorf("attach tcx to %s ingress: %w", cfg.Interface, err)
		}
	}
	return attachTC(nl, iface, prog, prev)
}

// attachLookup attaches steer_lookup to the listener lookups of the calling
// thread's network namespace. A previous generation's link stays attached
// behind it until its pins go: programs run in attachment order and the
// last one to select a socket decides, so from here on the new one does
// (both assign the same listener from the shared sockmap).
func attachLookup(prog *ebpf.Program, ifindex int) (attachment, error) {
	ns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open network namespace: %w", err)
	}
	defer ns.Close()
	lnk, err := link.AttachNetNs(int(ns.Fd()), prog)
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			err = fmt.Errorf("%w: sk_lookup netns links need Linux 5.9 or later (set datapath.steering to tc): %w", ErrUnsupportedKernel, err)
		}
		return nil, fmt.Errorf("attach sk_lookup: %w", err)
	}
	return &lookupAttachment{link: lnk, ifindex: ifindex}, nil
}

// lookupAttachment is steer_lookup's netns link, kept attached by its pin
// as a TCX link is.
type lookupAttachment struct {
	link    *link.NetNsLink
	ifindex int // the interface it steers from (the record's, for the status command)
}

func (l *lookupAttachment) mode() AttachMode { return AttachSkLookup }

func (l *lookupAttachment) pin(dir string) error {
	if err := l.link.Pin(filepath.Join(dir, linkPin)); err != nil {
		return fmt.Errorf("pin link: %w", err)
	}
	return writeRecord(dir, attachRecord{mode: AttachSkLookup, ifindex: l.ifindex})
}

func (l *lookupAttachment) release() error { return l.link.Close() }
func (l *lookupAttachment) undo() error    { return l.link.Close() }
func (l *lookupAttachment) detach() error  { return nil }

// tcxAttachment is a TCX link, kept attached by its pin.
type tcxAttachment struct {
	link    link.Link
	ifindex int
}

func (t *tcxAttachment) mode() AttachMode { return AttachTCX }

func (t *tcxAttachment) pin(dir string) error {
	if err := t.link.Pin(filepath.Join(dir, linkPin)); err != nil {
		return fmt.Errorf("pin link: %w", err)
	}
	return writeRecord(dir, attachRecord{mode: AttachTCX, ifindex: t.ifindex})
}

// The link is attached as long as a descriptor or a pin holds it: once the
// pins are gone (Detach removes them after detach, undo's were never
// published), closing the descriptor detaches the program.
func (t *tcxAttachment) release() error { return t.link.Close() }
func (t *tcxAttachment) undo() error    { return t.link.Close() }
func (t *tcxAttachment) detach() error  { return nil }

// attachRecord is what the pin directory says about the attachment, stored
// as the target of the symlink "attach" (bpffs holds no regular files, but
// symlinks, like pins, move with the directory's atomic exchange):
//
//	tcx ifindex=4
//	tc ifindex=4 prio=124 handle=124 qdisc=created
//	sk_lookup ifindex=4
type attachRecord struct {
	mode    AttachMode
	ifindex int
	// tc only: the filter's priority and handle, and whether Portcullis
	// created the clsact qdisc (then the last Detach removes it too).
	prio, handle uint32
	createdQdisc bool
}

const recordPin = "attach"

func (r attachRecord) String() string {
	s := fmt.Sprintf("%s ifindex=%d", r.mode, r.ifindex)
	if r.mode == AttachTC {
		qdisc := "existing"
		if r.createdQdisc {
			qdisc = "created"
		}
		s += fmt.Sprintf(" prio=%d handle=%d qdisc=%s", r.prio, r.handle, qdisc)
	}
	return s
}

func writeRecord(dir string, r attachRecord) error {
	if err := os.Symlink(r.String(), filepath.Join(dir, recordPin)); err != nil {
		return fmt.Errorf("record attach mode: %w", err)
	}
	return nil
}

// readRecord reads the attach record of a pin directory. A directory pinned
// before the record existed has a TCX link and no record: it reads as TCX.
func readRecord(pinDir string) (attachRecord, bool, error) {
	s, err := os.Readlink(filepath.Join(pinDir, recordPin))
	if errors.Is(err, os.ErrNotExist) {
		if _, lerr := os.Lstat(filepath.Join(pinDir, linkPin)); lerr == nil {
			return attachRecord{mode: AttachTCX}, true, nil
		}
		return attachRecord{}, false, nil
	}
	if err != nil {
		return attachRecord{}, false, fmt.Errorf("read attach record: %w", err)
	}
	r, err := parseRecord(s)
	if err != nil {
		return attachRecord{}, false, fmt.Errorf("attach record %q in %s: %w", s, pinDir, err)
	}
	return r, true, nil
}

func parseRecord(s string) (attachRecord, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return attachRecord{}, errors.New("empty")
	}
	r := attachRecord{mode: AttachMode(fields[0])}
	if r.mode != AttachTCX && r.mode != AttachTC && r.mode != AttachSkLookup {
		return attachRecord{}, fmt.Errorf("unknown mode %q", fields[0])
	}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "ifindex":
			r.ifindex, err = strconv.Atoi(v)
		case "prio", "handle":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 32)
			if k == "prio" {
				r.prio = uint32(n)
			} else {
				r.handle = uint32(n)
			}
		case "qdisc":
			r.createdQdisc = v == "created"
		}
		// Unknown keys are a newer version's: ignored, as it would ignore
		// ours.
		if err != nil {
			return attachRecord{}, fmt.Errorf("%s: %w", k, err)
		}
	}
	return r, nil
}
