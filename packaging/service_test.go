package packaging

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The packaged unit under a real systemd: a Debian 12 root with systemd
// booted by systemd-nspawn (its own network namespace, so host0 is the LAN
// interface and nothing leaves it; its own bpffs instance as /sys/fs/bpf).
// The service starts as the portcullis user with only the unit's
// capabilities and sandbox, attaches the datapath, says READY=1 (so the unit
// becomes active), reloads on SIGHUP, and on stop leaves the datapath pinned.
func TestServiceUnderSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: systemd-nspawn, bpffs mount")
	}
	for _, tool := range []string{"mmdebstrap", "systemd-nspawn", "nsenter", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs it)", tool)
		}
	}
	start := time.Now()
	v1, _, _ := packages(t)
	tarball := debianRoot(t)
	root := t.TempDir()
	run(t, "", "tar", "-C", root, "-xf", tarball)
	copyFile(t, v1, filepath.Join(root, "root/portcullis.deb"))
	run(t, root, "dpkg", "-i", "/root/portcullis.deb")
	// nspawn's --network-veth names the container's end host0.
	run(t, root, "sed", "-i", "s|^#  interface: lan0$|  interface: host0|", "/etc/portcullis/portcullis.yaml")
	run(t, root, "portcullis", "config", "check", "--config", "/etc/portcullis/portcullis.yaml")

	bpffs := t.TempDir()
	if err := syscall.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(bpffs, syscall.MNT_DETACH) })

	console, err := os.Create(filepath.Join(t.TempDir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Not CommandContext: killing nspawn would orphan the container.
	nspawn := exec.Command("systemd-nspawn", "--quiet", "-D", root, "--boot",
		"--machine=pc-svc-test", "--register=no", "--keep-unit", "--network-veth",
		// What the unit grants must be in the container's bounding set, and
		// nspawn's own seccomp filter lets no bpf() through by default.
		"--capability=CAP_BPF,CAP_PERFMON", "--system-call-filter=bpf",
		"--bind="+bpffs+":/sys/fs/bpf")
	nspawn.Stdout, nspawn.Stderr = console, console
	nspawn.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := nspawn.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = nspawn.Wait(); close(exited) }()
	var init int
	t.Cleanup(func() {
		// Power the container off; if it does not go, kill its init (which
		// takes every process of its PID namespace along) and nspawn.
		if init != 0 {
			_ = exec.Command("nsenter", "-t", strconv.Itoa(init), "-a", "systemctl", "poweroff").Run()
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			if init != 0 {
				_ = syscall.Kill(init, syscall.SIGKILL)
			}
			_ = nspawn.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(console.Name())
			t.Logf("console:\n%s", tail(b, 4000))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	init = containerInit(t, nspawn.Process.Pid)
	in := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(init), "-a"}, args...)...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	must := func(args ...string) string {
		out, err := in(args...)
		if err != nil {
			journal, _ := in("journalctl", "-u", "portcullis", "--no-pager", "-n", "40", "-o", "cat")
			t.Fatalf("%s: %v\n%s\njournal:\n%s", strings.Join(args, " "), err, out, journal)
		}
		return out
	}

	// The unit is enabled, so boot starts it; active means READY=1 arrived.
	var state string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if state, _ = in("systemctl", "is-active", "portcullis"); state == "active" || state == "failed" {
			break
		}
	}
	if state != "active" {
		journal, _ := in("journalctl", "-u", "portcullis", "--no-pager", "-n", "60", "-o", "cat")
		t.Fatalf("portcullis.service is %q, want active:\n%s", state, journal)
	}
	t.Logf("booted and active after %v", time.Since(start).Round(time.Second))
	show := must("systemctl", "show", "portcullis", "-p", "Type,StatusText,WatchdogUSec,MainPID")
	for _, want := range []string{"Type=notify", "StatusText=serving", "WatchdogUSec=30s"} {
		if !strings.Contains(show, want) {
			t.Errorf("systemctl show lacks %q:\n%s", want, show)
		}
	}
	pid := must("systemctl", "show", "-p", "MainPID", "--value", "portcullis")
	procStatus := must("cat", "/proc/"+pid+"/status")
	uid := must("id", "-u", "portcullis")
	if !strings.Contains(procStatus, "\nUid:\t"+uid+"\t") || !strings.Contains(procStatus, "\nNoNewPrivs:\t1") {
		t.Errorf("the daemon does not run as portcullis (uid %s) with no_new_privs:\n%s", uid, procStatus)
	}
	status := must("portcullis", "status", "--config", "/etc/portcullis/portcullis.yaml")
	for _, want := range []string{"daemon:     running", "attached on host0", "ipv4 yes", "health:     OK"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	// The access log is a file of the service user's, not the journal.
	if out := must("stat", "-c", "%a %U %n", "/var/log/portcullis", "/var/log/portcullis/access.log"); out != "750 portcullis /var/log/portcullis\n640 portcullis /var/log/portcullis/access.log" {
		t.Errorf("access log directory and file:\n%s", out)
	}
	pins := filepath.Join(bpffs, "portcullis", "datapath")
	if _, err := os.Stat(filepath.Join(pins, "listeners")); err != nil {
		t.Errorf("no datapath pins in the service's bpffs directory: %v", err)
	}

	must("systemctl", "reload", "portcullis")
	if s, _ := in("systemctl", "is-active", "portcullis"); s != "active" {
		t.Errorf("after reload: %q", s)
	}
	// A restart takes the pinned datapath over.
	must("systemctl", "restart", "portcullis")
	if out := must("portcullis", "status", "--config", "/etc/portcullis/portcullis.yaml"); !strings.Contains(out, "attached on host0") {
		t.Errorf("status after a restart:\n%s", out)
	}

	// Stop: STOPPING=1, a clean exit, and the datapath stays (on_stop: keep).
	must("systemctl", "stop", "portcullis")
	if s, _ := in("systemctl", "is-active", "portcullis"); s != "inactive" {
		t.Errorf("after stop: %q, want inactive (a clean exit)", s)
	}
	if _, err := os.Stat(filepath.Join(pins, "link")); err != nil {
		t.Errorf("stop removed the datapath: %v", err)
	}
	out, err := in("portcullis", "status", "--config", "/etc/portcullis/portcullis.yaml")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(out, "still attached on host0") {
		t.Errorf("status of the stopped service: %v\n%s", err, out)
	}
	t.Logf("service test: %v in all", time.Since(start).Round(time.Second))
}

// containerInit finds the container's PID 1 (systemd), nspawn's child.
func containerInit(t *testing.T, nspawn int) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(nspawn) + "/task/" + strconv.Itoa(nspawn) + "/children")
		if err != nil {
			t.Fatalf("nspawn exited: %v", err)
		}
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			if comm, _ := os.ReadFile("/proc/" + f + "/comm"); strings.TrimSpace(string(comm)) == "systemd" {
				return pid
			}
		}
	}
	t.Fatal("the container's systemd never started")
	return 0
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
