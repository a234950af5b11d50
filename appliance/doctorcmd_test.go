package appliance

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// healthyHost is a host where every probe passes.
func healthyHost() doctorProbes {
	return doctorProbes{
		now:       func() time.Time { return time.Now() },
		kernel:    func() string { return "6.12.0-1-amd64" },
		bpffs:     func(string) bool { return true },
		exists:    func(string) bool { return true },
		caps:      func() (uint64, error) { return 1<<unix.CAP_BPF | 1<<unix.CAP_PERFMON | 1<<unix.CAP_NET_ADMIN, nil },
		unsynced:  func() (bool, error) { return false, nil },
		freeBytes: func(string) (uint64, uint64, error) { return 50 << 30, 100 << 30, nil },
		schedCLS:  func() error { return nil },
	}
}

func TestDoctorHealthyHost(t *testing.T) {
	state := t.TempDir()
	cfg := writeConfig(t, "state_dir: "+state+"\n")
	if _, _, err := runCLI(t, "ca", "cert", "--config", cfg); err != nil { // makes the CA
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runDoctor(cfg, &out, healthyHost()); err != nil {
		t.Fatalf("doctor on a healthy host: %v\n%s", err, out.String())
	}
	for _, want := range []string{"OK    config:", "OK    kernel: Linux 6.12.0-1-amd64: TCX", "OK    bpffs", "OK    capabilities",
		"OK    clock", "OK    disk", "OK    ca: " + state + "/ca is 0700", "OK    ca key", "OK    ca cert"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "FAIL") || strings.Contains(out.String(), "WARN") {
		t.Errorf("doctor complains on a healthy host:\n%s", out.String())
	}
}

// Each failure names what to fix, and any FAIL is exit status 1.
func TestDoctorReportsWhatToFix(t *testing.T) {
	state := t.TempDir()
	cfg := writeConfig(t, "state_dir: "+state+"\n")
	if _, _, err := runCLI(t, "ca", "cert", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(state, "ca", "ca.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := healthyHost()
	p.now = func() time.Time { return time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC) }
	p.kernel = func() string { return "5.4.0" }
	p.bpffs = func(string) bool { return false }
	p.caps = func() (uint64, error) { return 0, nil }
	p.freeBytes = func(string) (uint64, uint64, error) { return 10 << 20, 100 << 30, nil }
	var out bytes.Buffer
	err := runDoctor(cfg, &out, p)
	if err == nil || ExitCode(err) != 1 {
		t.Fatalf("doctor passed a broken host: %v\n%s", err, out.String())
	}
	for _, want := range []string{"FAIL  kernel: Linux 5.4.0", "WARN  bpffs", "mount -t bpf bpf /sys/fs/bpf", "FAIL  clock",
		"FAIL  disk", "FAIL  ca key", "chmod 0600 " + state + "/ca/ca.key", "FAIL  ca cert: not valid before"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	bad := writeConfig(t, "datapath:\n  fail_opne: true\n")
	if err := runDoctor(bad, &out, healthyHost()); err == nil || !strings.Contains(out.String(), "FAIL  config:") ||
		!strings.Contains(out.String(), `unknown key "datapath.fail_opne"`) {
		t.Errorf("doctor with a bad config: %v\n%s", err, out.String())
	}
}

func TestDoctorCommandRuns(t *testing.T) {
	// On the real host: whatever it finds, it prints one line per check and
	// exits 0 or 1, never a usage error.
	out, _, err := runCLI(t, "doctor", "--config", writeConfig(t, "state_dir: "+t.TempDir()+"\n"))
	if ExitCode(err) == 2 || !strings.Contains(out, "config:") || !strings.Contains(out, "clock:") {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
}
