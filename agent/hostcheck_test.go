package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// The hosts the datapath meets: a mount namespace without bpffs, a process
// without the capabilities, a kernel without a feature, a host without IPv6.

// In a fresh mount namespace with nothing mounted at /sys/fs/bpf (as under
// `ip netns exec`), Start mounts bpffs there and works; the host's bpffs is
// not touched. The namespace is a child process's (the test binary again,
// run with CLONE_NEWNS, which Go follows by making every mount private), so
// it goes when the child exits.
func TestStartMountsBPFFSWhereMissing(t *testing.T) {
	ns := quietNS(t)
	cfg := Config{Interface: "if0", PinDir: testPinDir(t)}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := runHelper(t, ns, self, "bpffs", cfg, &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS})
	for _, mode := range attachModes {
		if !strings.Contains(out, "ok: "+string(mode)) {
			t.Errorf("%s in a mount namespace without bpffs: %s", mode, out)
		}
	}
	if on, err := onBPFFS(bpffsRoot); err != nil || !on {
		t.Fatalf("the host's %s is no longer bpffs (%v)", bpffsRoot, err)
	}
	requireNothingLeft(t, ns, "if0", cfg)
}

// bpffsHelper runs in the child of TestStartMountsBPFFSWhereMissing, in a
// mount namespace of its own: it unmounts /sys/fs/bpf, then starts and
// detaches the datapath in each mode.
func bpffsHelper(cfg Config) error {
	if err := unix.Unmount(bpffsRoot, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("umount %s: %w", bpffsRoot, err)
	}
	if on, err := onBPFFS(bpffsRoot); err != nil || on {
		return fmt.Errorf("%s still bpffs (%v) after umount", bpffsRoot, err)
	}
	for i, mode := range attachModes {
		cfg.Attach = mode
		a, err := Start(cfg)
		if err != nil {
			return fmt.Errorf("%s: Start: %w", mode, err)
		}
		at := a.Attachment()
		// Mounted by the first Start; the second finds it.
		wantMount := ""
		if i == 0 {
			wantMount = bpffsRoot
		}
		if at.MountedBPFFS != wantMount || at.Mode != mode {
			_ = a.Detach()
			return fmt.Errorf("%s: attachment %+v, want bpffs mounted at %q", mode, at, wantMount)
		}
		if on, err := onBPFFS(bpffsRoot); err != nil || !on {
			_ = a.Detach()
			return fmt.Errorf("%s: %s not bpffs after Start (%v)", mode, bpffsRoot, err)
		}
		if _, err := os.Lstat(filepath.Join(cfg.PinDir, recordPin)); err != nil {
			_ = a.Detach()
			return fmt.Errorf("%s: no pins in the mounted bpffs: %w", mode, err)
		}
		if err := a.Detach(); err != nil {
			return fmt.Errorf("%s: Detach: %w", mode, err)
		}
		fmt.Printf("ok: %s\n", mode)
	}
	return nil
}

// The test binary run as a child (runHelper) does one job, named by
// helperEnv, on the JSON-encoded Config in helperConfigEnv, and reports on
// stdout.
const (
	helperEnv       = "PORTCULLIS_AGENT_HELPER"
	helperConfigEnv = "PORTCULLIS_AGENT_HELPER_CONFIG"
)

func TestMain(m *testing.M) {
	if job := os.Getenv(helperEnv); job != "" {
		os.Exit(runHelperJob(job, os.Getenv(helperConfigEnv)))
	}
	os.Exit(m.Run())
}

func runHelperJob(job, cfgJSON string) int {
	var cfg Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Println("bad helper config:", err)
		return 2
	}
	switch job {
	case "bpffs":
		if err := bpffsHelper(cfg); err != nil {
			fmt.Println("failed:", err)
			return 1
		}
		return 0
	case "start":
		a, err := Start(cfg)
		if err != nil {
			fmt.Printf("start failed: missing-privilege=%v: %v\n", errors.Is(err, ErrMissingPrivilege), err)
			return 1
		}
		fmt.Printf("started: %s\n", a.Attachment().Mode)
		if err := a.Detach(); err != nil {
			fmt.Println("detach failed:", err)
			return 1
		}
		return 0
	}
	fmt.Println("unknown helper job", job)
	return 2
}

// runHelper runs the test binary exe in ns (forked from a thread there) to
// do job on cfg, with attr, and returns its output.
func runHelper(t *testing.T, ns *lab.NS, exe, job string, cfg Config, attr *syscall.SysProcAttr) string {
	t.Helper()
	b, _ := json.Marshal(cfg)
	var out []byte
	err := ns.Do(func() error {
		cmd := exec.CommandContext(t.Context(), exe)
		cmd.Env = []string{helperEnv + "=" + job, helperConfigEnv + "=" + string(b)}
		cmd.SysProcAttr = attr
		var err error
		out, err = cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("run helper: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Without CAP_BPF, CAP_PERFMON or CAP_NET_ADMIN, Start says which is missing
// and how to grant it, and leaves nothing; with the three (and not root) it
// works. (CAP_PERFMON because the verifier refuses the program's pointer
// arithmetic without it.)
func TestStartNamesMissingPrivileges(t *testing.T) {
	ns := quietNS(t)
	exe := worldExecutableCopy(t)
	cfg := Config{Interface: "if0", PinDir: filepath.Join(traversableBPFFS(t), "pins")}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		caps []uintptr
		want string
	}{
		{"none", nil, "lacks CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN; run it as root or grant"},
		{"CAP_NET_ADMIN only", []uintptr{unix.CAP_NET_ADMIN}, "lacks CAP_BPF and CAP_PERFMON;"},
		{"CAP_BPF only", []uintptr{unix.CAP_BPF}, "lacks CAP_PERFMON and CAP_NET_ADMIN;"},
		{"CAP_PERFMON missing", []uintptr{unix.CAP_BPF, unix.CAP_NET_ADMIN}, "lacks CAP_PERFMON;"},
		{"CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN", []uintptr{unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_NET_ADMIN}, ""},
	}
	// Both hooks of tc steering, and route steering (sk_lookup).
	for _, mode := range append(slices.Clone(attachModes), AttachSkLookup) {
		for _, c := range cases {
			t.Run(string(mode)+"/"+c.name, func(t *testing.T) {
				cfg := cfg
				cfg.Attach = mode
				if mode == AttachSkLookup {
					cfg.Attach, cfg.Steering = AttachAuto, SteeringRoute
				}
				// As nobody, with exactly c.caps (as ambient capabilities).
				out := runHelper(t, ns, exe, "start", cfg, &syscall.SysProcAttr{
					Credential:  &syscall.Credential{Uid: 65534, Gid: 65534},
					AmbientCaps: c.caps,
				})
				if c.want == "" {
					if !strings.Contains(out, "started: "+string(mode)) {
						t.Errorf("with %s: %s", c.name, out)
					}
				} else if !strings.Contains(out, "missing-privilege=true") || !strings.Contains(out, c.want) {
					t.Errorf("with %s: %q, want ErrMissingPrivilege saying %q", c.name, out, c.want)
				}
				requireNothingLeft(t, ns, "if0", cfg)
			})
		}
	}
}

// traversableBPFFS mounts a bpffs instance of its own that an unprivileged
// user may use (world-writable, sticky, as /tmp), for the capability tests: the host's /sys/fs/bpf is
// often mode 0700 (systemd's default, and ensureBPFFS's), which no
// capability the datapath needs lets a non-root user into.
func traversableBPFFS(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "portcullis-bpffs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", dir, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777"); err != nil {
		_ = os.Remove(dir)
		t.Fatalf("mount a bpffs for the test: %v", err)
	}
	t.Cleanup(func() {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		_ = os.Remove(dir)
	})
	return dir
}

// worldExecutableCopy copies the test binary where an unprivileged user can
// run it (go test builds it in a directory only root may enter).
func worldExecutableCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "portcullis-agent-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "agent.test")
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, src); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// A kernel without something the program uses is refused before anything
// is attached, naming what it lacks.
func TestStartNamesMissingKernelFeatures(t *testing.T) {
	ns := quietNS(t)
	cfg := Config{Interface: "if0", PinDir: testPinDir(t), Steering: SteeringTC}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	realType, realMap, realHelper := haveProgramType, haveMapType, haveProgramHelper
	t.Cleanup(func() { haveProgramType, haveMapType, haveProgramHelper = realType, realMap, realHelper })
	missing := fmt.Errorf("probe: %w", ebpf.ErrNotSupported)
	cases := []struct {
		name  string
		older func()
		want  []string
	}{
		{"bpf_sk_assign", func() {
			haveProgramHelper = func(pt ebpf.ProgramType, fn asm.BuiltinFunc) error {
				if fn == asm.FnSkAssign {
					return missing
				}
				return realHelper(pt, fn)
			}
		}, []string{"the BPF helper bpf_sk_assign for SchedCLS programs", "Linux 5.7 or later"}},
		{"sockmap", func() {
			haveMapType = func(mt ebpf.MapType) error {
				if mt == ebpf.SockMap {
					return missing
				}
				return realMap(mt)
			}
		}, []string{"BPF maps of type SockMap (map listeners)"}},
		{"sched_cls", func() { haveProgramType = func(ebpf.ProgramType) error { return missing } },
			[]string{"BPF programs of type SchedCLS"}},
		// Route steering probes its own program.
		{"route/sk_lookup", func() {
			haveProgramType = func(pt ebpf.ProgramType) error {
				if pt == ebpf.SkLookup {
					return missing
				}
				return realType(pt)
			}
		}, []string{"BPF programs of type SkLookup", "Linux 5.9"}},
		{"route/bpf_sk_assign", func() {
			haveProgramHelper = func(pt ebpf.ProgramType, fn asm.BuiltinFunc) error {
				if fn == asm.FnSkAssign && pt == ebpf.SkLookup {
					return missing
				}
				return realHelper(pt, fn)
			}
		}, []string{"the BPF helper bpf_sk_assign for SkLookup programs"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			haveProgramType, haveMapType, haveProgramHelper = realType, realMap, realHelper
			c.older()
			cfg := cfg
			if strings.HasPrefix(c.name, "route/") {
				cfg.Steering = SteeringRoute
			}
			err := ns.Do(func() error { _, err := Start(cfg); return err })
			if !errors.Is(err, ErrUnsupportedKernel) {
				t.Fatalf("Start: %v, want ErrUnsupportedKernel", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Start: %q does not say %q", err, w)
				}
			}
			requireNothingLeft(t, ns, "if0", cfg)
		})
	}
}

// On a host with IPv6 disabled the datapath starts with IPv4 routing only
// (the kernel refuses IPv6 routes there), with either mechanism.
func TestStartOnHostWithoutIPv6(t *testing.T) {
	ns := quietNS(t)
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.lo.disable_ipv6=1"} {
		if out, err := ns.Exec(t.Context(), "sysctl", "-qw", k); err != nil {
			t.Fatalf("sysctl %s: %v: %s", k, err, out)
		}
	}
	for _, mode := range steeringModes {
		t.Run(string(mode), func(t *testing.T) {
			cfg := withMode(Config{Interface: "if0", PinDir: testPinDir(t)}, mode)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			a := startIn(t, ns, cfg)
			if at := a.Attachment(); at.IPv6 || at.Mode != mode {
				t.Errorf("attachment %+v, want %s without IPv6", at, mode)
			}
			rules, routes := routingLeft(t, ns, cfg)
			// The fwmark rule, and with route steering its IPv4 rules (two
			// /1 halves × two port ranges).
			wantRules := tableRules(mode) / 2
			if len(rules) != wantRules || len(routes) != 1 || routes[0].Family != unix.AF_INET {
				t.Errorf("routing %v %v, want %d IPv4 rules and the IPv4 route only", rules, routes, wantRules)
			}
			for _, r := range rules {
				if r.Family != unix.AF_INET {
					t.Errorf("rule %v is not IPv4", r)
				}
			}
			if err := a.Detach(); err != nil {
				t.Fatal(err)
			}
			requireNothingLeft(t, ns, "if0", cfg)
		})
	}
}
