package agent

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// Start checks what it needs before it changes anything, so a host that
// cannot run the datapath gets a message naming what is missing and how to
// get it, and nothing is left half attached.

// checkPrivileges reports the capabilities the calling thread lacks:
// loading the program needs CAP_BPF and CAP_PERFMON (without CAP_PERFMON the
// verifier refuses its packet-pointer arithmetic as a possible leak), or
// CAP_SYS_ADMIN for both before Linux 5.8; attaching it, and the routing and
// tc changes, need CAP_NET_ADMIN.
func checkPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(uint(c)%32)) != 0 }
	var missing []string
	if !has(unix.CAP_SYS_ADMIN) {
		if !has(unix.CAP_BPF) {
			missing = append(missing, "CAP_BPF")
		}
		if !has(unix.CAP_PERFMON) {
			missing = append(missing, "CAP_PERFMON")
		}
	}
	if !has(unix.CAP_NET_ADMIN) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if len(missing) == 0 {
		return nil
	}
	list := strings.Join(missing, " and ")
	if len(missing) == 3 {
		list = missing[0] + ", " + missing[1] + " and " + missing[2]
	}
	return fmt.Errorf("%w: the process lacks %s; run it as root or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN "+
		"(systemd: AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN; before Linux 5.8, CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON)",
		ErrMissingPrivilege, list)
}

// The kernel probes; tests replace them to act as an older kernel.
var (
	haveProgramType   = features.HaveProgramType
	haveMapType       = features.HaveMapType
	haveProgramHelper = features.HaveProgramHelper
)

// helperSince names the kernel release that added a helper to tc programs,
// for the message of a kernel that lacks it.
var helperSince = map[asm.BuiltinFunc]string{
	asm.FnSkAssign:          "5.7",
	asm.FnSkcLookupTcp:      "5.2",
	asm.FnTcpCheckSyncookie: "5.2",
	asm.FnSkRelease:         "4.20",
	asm.FnSkbChangeTail:     "4.9",
}

// checkKernel probes the program type, every map type and every helper the
// steering program name (steer or steer_lookup) uses, as the compiled object
// declares them.
func checkKernel(spec *ebpf.CollectionSpec, name string) error {
	prog := spec.Programs[name]
	need := "CONFIG_BPF_SYSCALL, CONFIG_NET_CLS_BPF"
	if prog.Type == ebpf.SkLookup {
		need = "CONFIG_BPF_SYSCALL, Linux 5.9; ingress_ifindex needs 5.17"
	}
	if err := probe(haveProgramType(prog.Type), "BPF programs of type %s (%s)", prog.Type, need); err != nil {
		return err
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range spec.Maps {
			if !yield(n) {
				return
			}
		}
	}) {
		m := spec.Maps[name]
		if err := probe(haveMapType(m.Type), "BPF maps of type %s (map %s)", m.Type, name); err != nil {
			return err
		}
	}
	seen := map[asm.BuiltinFunc]bool{}
	for _, ins := range prog.Instructions {
		if !ins.IsBuiltinCall() {
			continue
		}
		fn := asm.BuiltinFunc(ins.Constant)
		if seen[fn] {
			continue
		}
		seen[fn] = true
		what := "the BPF helper " + helperName(fn) + " for " + prog.Type.String() + " programs"
		if v := helperSince[fn]; v != "" {
			what += " (Linux " + v + " or later)"
		}
		if err := probe(haveProgramHelper(prog.Type, fn), "%s", what); err != nil {
			return err
		}
	}
	return nil
}

func probe(err error, format string, args ...any) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%w: it lacks %s", ErrUnsupportedKernel, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("probe for %s: %w", fmt.Sprintf(format, args...), err)
}

// helperName turns asm's FnSkAssign into the kernel's bpf_sk_assign.
func helperName(fn asm.BuiltinFunc) string {
	var b strings.Builder
	b.WriteString("bpf")
	for _, r := range strings.TrimPrefix(fn.String(), "Fn") {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
