package appliance

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/policy"
)

// errDoctorFailed is doctor's verdict when a check failed (exit 1).
var errDoctorFailed = errors.New("doctor: some checks failed")

func doctorCommand(env Env) *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check this machine and configuration for what the appliance needs",
		Long: `Check what the appliance needs from this machine: kernel features (bpffs,
BTF, TCX or tc), capabilities, clock, free disk in state_dir, the CA files'
permissions and validity, and the configuration (with its policies). Each
check prints OK, WARN or FAIL with what to do about it.

Exit status: 0 when nothing failed (warnings allowed), 1 otherwise.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			return runDoctor(cfgPath, env.Stdout, doctorProbes{})
		},
	}
	configFlag(c, &cfgPath)
	return c
}

type checkLevel int

const (
	checkOK checkLevel = iota
	checkWarn
	checkFail
)

func (l checkLevel) String() string { return [...]string{"OK", "WARN", "FAIL"}[l] }

// doctorProbes are the host facts doctor reads; tests replace them. Nil
// fields read the real host.
type doctorProbes struct {
	now       func() time.Time
	kernel    func() string          // uname release
	bpffs     func(path string) bool // is path a bpffs mount
	exists    func(path string) bool // for /sys/kernel/btf/vmlinux
	caps      func() (eff uint64, err error)
	unsynced  func() (bool, error) // adjtimex STA_UNSYNC
	freeBytes func(path string) (free, total uint64, err error)
	schedCLS  func() error // BPF_PROG_TYPE_SCHED_CLS probe
}

func (p doctorProbes) withDefaults() doctorProbes {
	if p.now == nil {
		p.now = time.Now
	}
	if p.kernel == nil {
		p.kernel = func() string {
			var u unix.Utsname
			if unix.Uname(&u) != nil {
				return ""
			}
			return unix.ByteSliceToString(u.Release[:])
		}
	}
	if p.bpffs == nil {
		p.bpffs = func(path string) bool {
			var st unix.Statfs_t
			return unix.Statfs(path, &st) == nil && st.Type == unix.BPF_FS_MAGIC
		}
	}
	if p.exists == nil {
		p.exists = func(path string) bool { _, err := os.Stat(path); return err == nil }
	}
	if p.caps == nil {
		p.caps = func() (uint64, error) {
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var data [2]unix.CapUserData
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				return 0, err
			}
			return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
		}
	}
	if p.unsynced == nil {
		p.unsynced = func() (bool, error) {
			var tx unix.Timex // modes 0: read only
			if _, err := unix.Adjtimex(&tx); err != nil {
				return false, err
			}
			return tx.Status&unix.STA_UNSYNC != 0, nil
		}
	}
	if p.freeBytes == nil {
		p.freeBytes = func(path string) (uint64, uint64, error) {
			var st unix.Statfs_t
			if err := unix.Statfs(path, &st); err != nil {
				return 0, 0, err
			}
			return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
		}
	}
	if p.schedCLS == nil {
		p.schedCLS = func() error { return features.HaveProgramType(ebpf.SchedCLS) }
	}
	return p
}

type doctor struct {
	w      io.Writer
	failed int
}

func (d *doctor) report(l checkLevel, what, detail, fix string) {
	line := fmt.Sprintf("%-4s  %s: %s", l, what, detail)
	if fix != "" && l != checkOK {
		line += "\n      fix: " + fix
	}
	fmt.Fprintln(d.w, line)
	if l == checkFail {
		d.failed++
	}
}

func runDoctor(cfgPath string, w io.Writer, p doctorProbes) error {
	p = p.withDefaults()
	d := &doctor{w: w}

	// The configuration first: the rest checks what it names.
	name := cfgPath
	if name == "" {
		name = "the embedded default configuration"
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		d.report(checkFail, "config", name+": "+strings.ReplaceAll(err.Error(), "\n", "; "),
			"correct the file (`portcullis config default` lists every key); the checks below use the default")
		if cfg, err = LoadConfig(""); err != nil {
			return err
		}
	} else {
		d.report(checkOK, "config", name+" is valid", "")
		d.checkPolicies(cfg)
	}

	datapath := cfg.Transparent.Enabled && cfg.Datapath.Enabled
	d.checkKernel(p, cfg, datapath)
	d.checkCapabilities(p, datapath)
	d.checkClock(p)
	d.checkDisk(p, cfg.StateDir)
	d.checkCA(p, filepath.Join(cfg.StateDir, "ca"))

	if d.failed > 0 {
		fmt.Fprintf(w, "%d check(s) failed\n", d.failed)
		return errDoctorFailed
	}
	return nil
}

func (d *doctor) checkPolicies(cfg *Config) {
	if cfg.Policy.Dir == "" {
		d.report(checkOK, "policies", "none configured (policy.dir empty): every connection intercepted, every request allowed and logged", "")
		return
	}
	set, files, err := loadPolicyDir(cfg.Policy.Dir)
	if set != nil {
		err = errors.Join(err, policy.CheckFor(set, cfg.Session.capabilities()))
	}
	err, warnings := policy.SplitWarnings(err)
	if err == nil && len(warnings) > 0 {
		d.report(checkWarn, "policies", fmt.Sprintf("%s: %d file(s) OK, %d warning(s)", cfg.Policy.Dir, files, len(warnings)),
			"run `portcullis policy check --config FILE "+cfg.Policy.Dir+"` to see them")
		return
	}
	if err != nil {
		n := strings.Count(err.Error(), "\n") + 1
		d.report(checkFail, "policies", fmt.Sprintf("%s: %d problem(s)", cfg.Policy.Dir, n),
			"run `portcullis policy check --config FILE "+cfg.Policy.Dir+"` for each one with its position")
		return
	}
	d.report(checkOK, "policies", fmt.Sprintf("%s: %d file(s) OK", cfg.Policy.Dir, files), "")
}

func (d *doctor) checkKernel(p doctorProbes, cfg *Config, datapath bool) {
	need := checkFail
	if !datapath {
		need = checkWarn // reported, but nothing uses it
	}
	rel := p.kernel()
	major, minor := kernelVersion(rel)
	switch {
	case major > 6 || major == 6 && minor >= 6:
		d.report(checkOK, "kernel", "Linux "+rel+": TCX attach available", "")
	case major > 5 || major == 5 && minor >= 7:
		d.report(checkOK, "kernel", "Linux "+rel+": no TCX (6.6+), the datapath uses tc clsact + cls_bpf", "")
	default:
		d.report(need, "kernel", "Linux "+rel+": bpf_sk_assign needs 5.7 or later", "run a kernel of Linux 5.7 or later (6.6+ for TCX)")
	}
	if err := p.schedCLS(); err != nil {
		switch {
		case errors.Is(err, ebpf.ErrNotSupported):
			d.report(need, "bpf", "the kernel cannot load tc (sched_cls) BPF programs", "enable CONFIG_BPF_SYSCALL and CONFIG_NET_CLS_BPF")
		case errors.Is(err, unix.EPERM):
			d.report(checkWarn, "bpf", "could not probe BPF program loading (not privileged)", "run doctor as root for this check")
		default:
			d.report(checkWarn, "bpf", "BPF probe: "+err.Error(), "")
		}
	} else {
		d.report(checkOK, "bpf", "tc (sched_cls) BPF programs load", "")
	}
	pinParent := filepath.Dir(cfg.Datapath.PinDir)
	switch {
	case p.bpffs("/sys/fs/bpf"):
		d.report(checkOK, "bpffs", "mounted at /sys/fs/bpf", "")
	case strings.HasPrefix(pinParent, "/sys/fs/bpf") || pinParent == "/sys/fs":
		d.report(checkWarn, "bpffs", "not mounted at /sys/fs/bpf: the daemon mounts it only if it has CAP_SYS_ADMIN, which the packaged service does not",
			"mount -t bpf bpf /sys/fs/bpf (systemd does this at boot: sys-fs-bpf.mount)")
	default:
		d.report(checkWarn, "bpffs", "not mounted at /sys/fs/bpf; datapath.pin_dir is "+cfg.Datapath.PinDir, "make sure "+pinParent+" is on bpffs")
	}
	if p.exists("/sys/kernel/btf/vmlinux") {
		d.report(checkOK, "btf", "kernel BTF present (/sys/kernel/btf/vmlinux)", "")
	} else {
		d.report(checkWarn, "btf", "no kernel BTF: the datapath loads without it, but bpftool cannot show typed maps",
			"a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's are)")
	}
}

// kernelVersion parses "6.1.0-18-amd64" as 6, 1.
func kernelVersion(rel string) (int, int) {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return major, minor
}

func (d *doctor) checkCapabilities(p doctorProbes, datapath bool) {
	eff, err := p.caps()
	if err != nil {
		d.report(checkWarn, "capabilities", "cannot read: "+err.Error(), "")
		return
	}
	has := func(c int) bool { return eff&(1<<uint(c)) != 0 }
	var missing []string
	if !has(unix.CAP_BPF) && !has(unix.CAP_SYS_ADMIN) {
		missing = append(missing, "CAP_BPF")
	}
	// Without CAP_PERFMON the verifier treats the loader as unprivileged
	// and refuses the steering program's pointer arithmetic.
	if !has(unix.CAP_PERFMON) && !has(unix.CAP_SYS_ADMIN) {
		missing = append(missing, "CAP_PERFMON")
	}
	if !has(unix.CAP_NET_ADMIN) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	switch {
	case len(missing) == 0:
		d.report(checkOK, "capabilities", "this process has CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (the service gets them from its unit)", "")
	case !datapath:
		d.report(checkOK, "capabilities", "lacks "+strings.Join(missing, ", ")+", which only the datapath (disabled) needs", "")
	default:
		level := checkFail
		if os.Geteuid() != 0 {
			// An admin's shell, not the service: the unit grants them.
			level = checkWarn
		}
		d.report(level, "capabilities", "this process lacks "+strings.Join(missing, " and ")+", which the datapath needs",
			"run as root, or under the packaged unit (AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN)")
	}
}

func (d *doctor) checkClock(p doctorProbes) {
	now := p.now()
	if now.Year() < 2024 {
		d.report(checkFail, "clock", "the date is "+now.UTC().Format(time.RFC3339)+": certificates cannot be verified or minted correctly",
			"set the clock (timedatectl set-ntp true, or date -s)")
		return
	}
	unsynced, err := p.unsynced()
	switch {
	case err != nil:
		d.report(checkWarn, "clock", now.UTC().Format(time.RFC3339)+", synchronisation unknown: "+err.Error(), "")
	case unsynced:
		d.report(checkWarn, "clock", now.UTC().Format(time.RFC3339)+", not synchronised (adjtimex: STA_UNSYNC)",
			"enable NTP: timedatectl set-ntp true (systemd-timesyncd) or install chrony")
	default:
		d.report(checkOK, "clock", now.UTC().Format(time.RFC3339)+", synchronised", "")
	}
}

func (d *doctor) checkDisk(p doctorProbes, stateDir string) {
	dir := stateDir
	for dir != "/" {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	free, total, err := p.freeBytes(dir)
	if err != nil {
		d.report(checkWarn, "disk", stateDir+": "+err.Error(), "")
		return
	}
	detail := fmt.Sprintf("%s free of %s in %s", humanBytes(int64(free)), humanBytes(int64(total)), dir)
	if dir != stateDir {
		detail += " (" + stateDir + " does not exist yet)"
	}
	switch {
	case free < 256<<20:
		d.report(checkFail, "disk", detail+": the activity store refuses sessions (audit-strict) when it cannot write",
			"free space, or set activity.max_bytes / activity.max_age for retention")
	case free < 2<<30 || total > 0 && free*20 < total:
		d.report(checkWarn, "disk", detail, "free space, or set activity.max_bytes for retention")
	default:
		d.report(checkOK, "disk", detail, "")
	}
}

func (d *doctor) checkCA(p doctorProbes, dir string) {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		d.report(checkOK, "ca", dir+" does not exist yet: the CA is generated on first start", "")
		return
	}
	if err != nil {
		d.report(checkFail, "ca", err.Error(), "")
		return
	}
	if m := st.Mode().Perm(); m != 0o700 {
		d.report(checkFail, "ca", fmt.Sprintf("%s is mode %04o, must be 0700", dir, m), "chmod 0700 "+dir)
	} else {
		d.report(checkOK, "ca", dir+" is 0700", "")
	}
	key := filepath.Join(dir, "ca.key")
	if ks, err := os.Stat(key); err != nil {
		d.report(checkFail, "ca key", err.Error(), "restore ca.key from backup, or remove "+dir+" to generate a new CA (clients must trust it again)")
	} else if m := ks.Mode().Perm(); m != 0o600 {
		d.report(checkFail, "ca key", fmt.Sprintf("%s is mode %04o, must be 0600", key, m), "chmod 0600 "+key)
	} else {
		d.report(checkOK, "ca key", key+" is 0600", "")
	}
	crtPath := filepath.Join(dir, "ca.crt")
	data, err := os.ReadFile(crtPath)
	if err != nil {
		d.report(checkFail, "ca cert", err.Error(), "")
		return
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		d.report(checkFail, "ca cert", crtPath+" holds no PEM block", "")
		return
	}
	crt, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		d.report(checkFail, "ca cert", crtPath+": "+err.Error(), "")
		return
	}
	now := p.now()
	switch {
	case now.Before(crt.NotBefore):
		d.report(checkFail, "ca cert", "not valid before "+crt.NotBefore.UTC().Format(time.RFC3339)+" (is the clock right?)", "fix the clock")
	case now.After(crt.NotAfter):
		d.report(checkFail, "ca cert", "expired "+crt.NotAfter.UTC().Format(time.RFC3339), "generate a new CA (move "+dir+" away and restart) and distribute it")
	case crt.NotAfter.Sub(now) < 30*24*time.Hour:
		d.report(checkWarn, "ca cert", "expires "+crt.NotAfter.UTC().Format(time.RFC3339), "plan a new CA and distribute it to clients")
	case !crt.IsCA:
		d.report(checkFail, "ca cert", crtPath+" is not a CA certificate", "")
	default:
		d.report(checkOK, "ca cert", fmt.Sprintf("%q valid until %s", crt.Subject.CommonName, crt.NotAfter.UTC().Format("2006-01-02")), "")
	}
}
