package vagrant

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// TestVagrantUp brings the box up with the project's Vagrantfile, as a user
// would (vagrant up --provider=libvirt), with libvirt's qemu driver (TCG),
// isolated networks in 198.18.0.0/15 and a throwaway root key, runs one check
// over Vagrant's SSH (portcullis status) and destroys it. libvirtd and
// virtlogd are started here when not running (the host has no systemd) and
// stopped again if they were. Run by `make box-test` (PORTCULLIS_BOX_TEST=1,
// box from `make box`).
func TestVagrantUp(t *testing.T) {
	if os.Getenv("PORTCULLIS_BOX_TEST") == "" {
		t.Skip("boots the Vagrant box under libvirt: set PORTCULLIS_BOX_TEST=1 (make box-test)")
	}
	lab.RequireRoot(t)
	for _, tool := range []string{"vagrant", "virsh", "libvirtd", "virtlogd", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh installs it)", tool)
		}
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	box := filepath.Join(repo, "bin", "portcullis-appliance.box")
	if _, err := os.Stat(box); err != nil {
		t.Fatalf("no box (make box builds it): %v", err)
	}
	startLibvirt(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "box-test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	// A pool of the test's own, where qemu (as libvirt-qemu) can read.
	pool := "portcullis-box-test"
	poolDir := "/var/lib/libvirt/" + pool
	virsh(t, "pool-destroy", pool)
	virsh(t, "pool-undefine", pool)
	_ = os.RemoveAll(poolDir)
	if err := os.MkdirAll(poolDir, 0o711); err != nil {
		t.Fatal(err)
	}
	if out, err := virsh(t, "pool-create-as", pool, "dir", "--target", poolDir); err != nil {
		t.Fatalf("pool: %v: %s", err, out)
	}
	t.Cleanup(func() {
		virsh(t, "pool-destroy", pool)
		_ = os.RemoveAll(poolDir)
	})
	serial := filepath.Join(poolDir, "serial.log")
	env := append(os.Environ(),
		"VAGRANT_CWD="+repo,
		"VAGRANT_DOTFILE_PATH="+filepath.Join(dir, "dot-vagrant"),
		"VAGRANT_HOME="+filepath.Join(dir, "vagrant-home"),
		"VAGRANT_CHECKPOINT_DISABLE=1",
		"VAGRANT_DEFAULT_PROVIDER=libvirt",
		"PORTCULLIS_SSH_KEY="+key,
		"PORTCULLIS_LIBVIRT_DRIVER=qemu",
		"PORTCULLIS_WAN_MODE=none",
		"PORTCULLIS_WAN_NET=198.18.7.0/24",
		"PORTCULLIS_LAN=198.18.6.10/24",
		"PORTCULLIS_LIBVIRT_POOL="+pool,
		"PORTCULLIS_BOX="+box,
		"PORTCULLIS_SERIAL_LOG="+serial,
	)
	vagrant := func(d time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		cmd := exec.CommandContext(ctx, "vagrant", args...)
		cmd.Env = env
		cmd.Dir = repo
		cmd.WaitDelay = 10 * time.Second
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	t.Cleanup(func() {
		if out, err := vagrant(5*time.Minute, "destroy", "-f"); err != nil {
			t.Logf("vagrant destroy: %v: %s", err, out)
		}
		// What vagrant-libvirt leaves: the box volume (in our pool, gone
		// with it) and the networks it made.
		for _, n := range []string{"portcullis-lan", "portcullis-wan"} {
			virsh(t, "net-destroy", n)
			virsh(t, "net-undefine", n)
		}
		if t.Failed() {
			if b, err := os.ReadFile(serial); err == nil {
				t.Logf("serial console (last 4000 bytes):\n%s", tailString(string(b), 4000))
			}
		}
	})

	start := time.Now()
	if out, err := vagrant(15*time.Minute, "up", "--provider=libvirt"); err != nil {
		t.Fatalf("vagrant up: %v:\n%s", err, out)
	}
	t.Logf("vagrant up: %v", time.Since(start).Round(time.Second))
	out, err := vagrant(3*time.Minute, "ssh", "-c", "portcullis status --config /etc/portcullis/portcullis.yaml")
	if err != nil {
		t.Fatalf("vagrant ssh: portcullis status: %v:\n%s", err, out)
	}
	t.Logf("portcullis status:\n%s", out)
	if !strings.Contains(out, "sk_lookup") {
		t.Errorf("portcullis status does not show the datapath steering by route (sk_lookup):\n%s", out)
	}
	if out, err := vagrant(3*time.Minute, "ssh", "-c", "ip -br addr show lan"); err != nil || !strings.Contains(out, "198.18.6.10/24") {
		t.Errorf("lan address: %v: %s", err, out)
	}
	start = time.Now()
	if out, err := vagrant(5*time.Minute, "destroy", "-f"); err != nil {
		t.Fatalf("vagrant destroy: %v: %s", err, out)
	}
	t.Logf("vagrant destroy: %v", time.Since(start).Round(time.Second))
}

// startLibvirt starts virtlogd and libvirtd (no systemd here) unless libvirtd
// answers already, and stops what it started when the test ends.
func startLibvirt(t *testing.T) {
	t.Helper()
	if _, err := virsh(t, "version"); err == nil {
		return
	}
	for _, d := range []struct{ name, pidfile string }{
		{"virtlogd", "/run/virtlogd.pid"},
		{"libvirtd", "/run/libvirtd.pid"},
	} {
		if out, err := exec.Command(d.name, "-d").CombinedOutput(); err != nil {
			t.Fatalf("%s -d: %v: %s", d.name, err, out)
		}
		pidfile := d.pidfile
		t.Cleanup(func() {
			b, err := os.ReadFile(pidfile)
			if err != nil {
				return
			}
			_ = exec.Command("kill", strings.TrimSpace(string(b))).Run()
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := virsh(t, "version"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("libvirtd does not answer")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func virsh(t *testing.T, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "virsh", append([]string{"-c", "qemu:///system"}, args...)...).CombinedOutput()
	return string(out), err
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
