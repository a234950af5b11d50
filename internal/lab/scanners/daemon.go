package scanners

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds a scanner's start; clamd with the test database
// needs about a second, a loaded CI machine more.
const startTimeout = 60 * time.Second

// daemon is a started scanner process; exited is closed once it has been
// reaped, and err then holds how it ended.
type daemon struct {
	name   string
	log    string // its stdout and stderr
	exited chan struct{}
	err    error
}

// binary finds a scanner's program. Missing, it fails the test under CI or
// as root (both are expected to have run scripts/deps.sh) and skips it
// elsewhere.
func binary(t testing.TB, name, pkg string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := fmt.Sprintf("scanners: %s not found: install the Debian package %s (scripts/deps.sh does)", name, pkg)
	if os.Getenv("CI") != "" || os.Geteuid() == 0 {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// workDir makes a short private directory (Unix socket paths are limited to
// 108 bytes, and test temp dirs carry the test's name) removed at cleanup.
func workDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("scanners: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// start runs cmd in its own process group, output to dir/<name>.out, and
// registers a cleanup that stops the whole group: SIGTERM, then SIGKILL.
// Cleanups run last-registered first, so a directory made before start is
// removed after the process is gone.
func start(t testing.TB, dir, name string, cmd *exec.Cmd) *daemon {
	t.Helper()
	d := &daemon{name: name, log: filepath.Join(dir, name+".out"), exited: make(chan struct{})}
	out, err := os.Create(d.log)
	if err != nil {
		t.Fatalf("scanners: %v", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("scanners: start %s: %v", name, err)
	}
	go func() { d.err = cmd.Wait(); out.Close(); close(d.exited) }()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			t.Logf("scanners: %s ignored SIGTERM for 5s, killing", name)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			t.Errorf("scanners: %s (pid %d) still running after SIGKILL", name, pgid)
		}
	})
	return d
}

// waitReady polls probe until it succeeds, the daemon exits or the start
// timeout passes.
func waitReady(d *daemon, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var last error
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("%s exited during start: %v", d.name, d.err)
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		last = probe(pctx)
		pcancel()
		if last == nil {
			return nil
		}
		select {
		case <-d.exited:
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v", d.name, startTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail returns the end of the files, for a failed test's log.
func tail(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if len(data) > 4096 {
			data = data[len(data)-4096:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", p, data)
	}
	return b.String()
}
