package image

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// vm is one qemu process running the appliance image from a throwaway
// overlay, its first NIC (wan) in one lab namespace and its second (lan) in
// another, its serial console written to a file.
type vm struct {
	t       *testing.T
	cfg     vmConfig
	serial  string
	args    []string // qemu's command line
	taps    [2]string
	log     *os.File // qemu's output, all boots
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	started time.Time
	mu      sync.Mutex
	// powerCycles counts the boots retried after the guest kernel
	// panicked before starting init under TCG (see bootPanic).
	powerCycles int
	// routed, when set, adds the lab's routes through the taps again after
	// a power cycle (they went with the old taps).
	routed func()
}

type vmConfig struct {
	image            string
	dir              string
	wan, lan         *lab.NS           // namespaces the wan and lan taps join
	wanPeer, lanPeer string            // their addresses there (CIDR)
	creds            map[string]string // systemd credentials, passed as SMBIOS type 11 strings
	accel            string            // "kvm" or "tcg"
	memory           string
}

// accel picks qemu's accelerator: PORTCULLIS_VM_ACCEL when set, KVM when a
// hardware KVM module is loaded and /dev/kvm opens, TCG otherwise. (Here
// /dev/kvm is kvm_pvm, a software nested module under which current Debian
// kernels die in the decompressor: see VM-NOTES.md.)
func accel() string {
	if a := os.Getenv("PORTCULLIS_VM_ACCEL"); a != "" {
		return a
	}
	for _, m := range []string{"kvm_intel", "kvm_amd"} {
		if _, err := os.Stat("/sys/module/" + m); err != nil {
			continue
		}
		if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
			f.Close()
			return "kvm"
		}
	}
	return "tcg"
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startVM boots the image. Everything it made (qemu, taps, overlay) is gone
// when the test ends, whatever happened.
func startVM(t *testing.T, c vmConfig) *vm {
	t.Helper()
	overlay := filepath.Join(c.dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", c.image, overlay).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	id := randHex(3)
	wanTap, lanTap := "pcvw"+id, "pcvl"+id
	v := &vm{t: t, cfg: c, serial: filepath.Join(c.dir, "serial.log"), taps: [2]string{wanTap, lanTap}}
	v.args = []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
		"-machine", "pc", "-m", c.memory, "-smp", "2",
		// Appended, so a power cycle (powerCycle) keeps what earlier boots printed.
		"-chardev", "file,id=console,path=" + v.serial + ",append=on",
		"-serial", "chardev:console",
		"-drive", "file=" + overlay + ",if=virtio,format=qcow2,cache=unsafe",
		// wan first, lan second in PCI order: the image names them so.
		"-netdev", "tap,id=wan,ifname=" + wanTap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=wan,addr=0x4,mac=52:54:00:18:42:01",
		"-netdev", "tap,id=lan,ifname=" + lanTap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=lan,addr=0x5,mac=52:54:00:18:41:01",
		"-device", "virtio-rng-pci",
	}
	if c.accel == "kvm" {
		v.args = append(v.args, "-accel", "kvm", "-cpu", "host")
	} else {
		v.args = append(v.args, "-accel", "tcg,thread=multi")
	}
	for name, value := range c.creds {
		// The binary form keeps commas and spaces out of qemu's option syntax.
		v.args = append(v.args, "-smbios", "type=11,value=io.systemd.credential.binary:"+name+"="+base64.StdEncoding.EncodeToString([]byte(value)))
	}
	var err error
	if v.log, err = os.Create(filepath.Join(c.dir, "qemu.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.kill()
		v.log.Close()
		v.deleteTaps()
		if t.Failed() {
			if b, err := os.ReadFile(v.serial); err == nil {
				t.Logf("serial console (last 6000 bytes):\n%s", tail(string(b), 6000))
			}
			if b, err := os.ReadFile(filepath.Join(c.dir, "qemu.log")); err == nil && len(b) > 0 {
				t.Logf("qemu: %s", b)
			}
		}
	})
	v.launch()
	return v
}

// deleteTaps removes the taps wherever they are (qemu's go with it, but a
// failed start can leave one in the host namespace).
func (v *vm) deleteTaps() {
	for _, tap := range v.taps {
		_ = exec.Command("ip", "link", "del", tap).Run()
		_ = exec.Command("ip", "-n", v.cfg.wan.Name, "link", "del", tap).Run()
		_ = exec.Command("ip", "-n", v.cfg.lan.Name, "link", "del", tap).Run()
	}
}

// launch starts qemu and puts its taps into their namespaces.
func (v *vm) launch() {
	t, c := v.t, v.cfg
	t.Helper()
	v.cmd = exec.Command("qemu-system-x86_64", v.args...)
	v.cmd.Stdout, v.cmd.Stderr = v.log, v.log
	done := make(chan struct{})
	v.done = done
	v.started = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	cmd := v.cmd
	go func() {
		err := cmd.Wait()
		v.mu.Lock()
		v.exitErr = err
		v.mu.Unlock()
		close(done)
	}()
	// qemu creates the taps; each moves into its namespace once it exists.
	for _, p := range []struct {
		tap  string
		ns   *lab.NS
		addr string
	}{{v.taps[0], c.wan, c.wanPeer}, {v.taps[1], c.lan, c.lanPeer}} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat("/sys/class/net/" + p.tap); err == nil {
				break
			}
			if v.exited() || time.Now().After(deadline) {
				t.Fatalf("tap %s never appeared (qemu exited: %v)", p.tap, v.exited())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if out, err := exec.Command("ip", "link", "set", p.tap, "netns", p.ns.Name).CombinedOutput(); err != nil {
			t.Fatalf("move %s: %v: %s", p.tap, err, out)
		}
		p.ns.IP("addr", "add", p.addr, "dev", p.tap)
		p.ns.IP("link", "set", p.tap, "up")
	}
}

// bootPanic is the line of a guest kernel panic in console output that
// came before the kernel started init (so before anything of the image but
// the kernel and its command line ran), or "". Under multi-threaded TCG the
// kernel's live text patching (int3 breakpoints, text_poke_bp) can be seen
// stale by the other vCPU: "Oops: int3" in sched_clock_cpu while the
// sched_clock static key flips, then "Kernel panic - not syncing: Fatal
// exception in interrupt" about 3.4 s into the boot. That is the emulator
// not keeping the vCPUs' code coherent, not the appliance.
func bootPanic(console string) string {
	p, at := kernelPanicAt(console)
	if p == "" || strings.Contains(console[:at], "Run /init as init process") || strings.Contains(console[:at], "Run /sbin/init as init process") {
		return ""
	}
	return p
}

// kernelPanic is the first kernel panic line in console output, or "".
func kernelPanic(console string) string {
	p, _ := kernelPanicAt(console)
	return p
}

// kernelPanicAt is kernelPanic and where in console the line starts.
func kernelPanicAt(console string) (string, int) {
	i := strings.Index(console, "Kernel panic - not syncing")
	if i < 0 {
		return "", 0
	}
	line, _, _ := strings.Cut(console[i:], "\n")
	return strings.TrimSpace(line), i
}

// powerCycle stops qemu and boots the same disk again.
func (v *vm) powerCycle() {
	v.t.Helper()
	v.kill()
	v.deleteTaps()
	v.powerCycles++
	v.launch()
	if v.routed != nil {
		v.routed()
	}
}

func (v *vm) exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// kill stops qemu (SIGTERM, then SIGKILL) and waits for it, bounded.
func (v *vm) kill() {
	if v.cmd == nil || v.cmd.Process == nil || v.exited() {
		return
	}
	_ = v.cmd.Process.Signal(os.Interrupt)
	select {
	case <-v.done:
	case <-time.After(5 * time.Second):
		_ = v.cmd.Process.Kill()
		select {
		case <-v.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// waitExit waits for the guest to power qemu off.
func (v *vm) waitExit(d time.Duration) bool {
	select {
	case <-v.done:
		return true
	case <-time.After(d):
		return false
	}
}

// console is what the serial console printed so far.
func (v *vm) console() string {
	b, _ := os.ReadFile(v.serial)
	return string(b)
}

// waitConsole waits for re on the serial console and returns its submatches.
func (v *vm) waitConsole(re *regexp.Regexp, d time.Duration) ([]string, error) {
	deadline := time.Now().Add(d)
	for {
		if m := re.FindStringSubmatch(v.console()); m != nil {
			return m, nil
		}
		if v.exited() {
			return nil, fmt.Errorf("qemu exited (%v) before the console printed %q", v.exitErr, re)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("console did not print %q in %v", re, d)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// ssh runs a shell command on the appliance as root from the client
// namespace, with the test's key and host-key checking against the keys
// first seen (so a reboot must keep them).
type sshClient struct {
	ns         *lab.NS
	key, known string
	host       string
}

func (s sshClient) run(ctx context.Context, stdin, command string) (string, error) {
	cmd := s.ns.Command(ctx, "ssh", "-i", s.key, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+s.known, "-o", "StrictHostKeyChecking=accept-new",
		"-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", "LogLevel=ERROR",
		"root@"+s.host, command)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
