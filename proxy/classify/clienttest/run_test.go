package clienttest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// clientBudget bounds each client: start, handshake, request, exit.
const clientBudget = 30 * time.Second

// requireRoot skips outside CI when not root. The captures run two browsers
// without their sandboxes (which is only sound in the throwaway CI machine,
// as root) and need the clients scripts/deps.sh installs as root; CI runs as
// root, so there a missing privilege fails instead of skipping.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("client captures need root (browsers run unsandboxed; clients installed by scripts/deps.sh); CI runs as root")
	}
	t.Skip("client captures need root: they run Chromium and Firefox without their sandboxes, which is done only in the root CI machine")
}

// lookPath fails the test, never skips it, when a client is missing: the
// captures are the evidence behind the data file.
func lookPath(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (Debian package %s; scripts/deps.sh installs it): %v", name, pkg, err)
	}
	return p
}

// command builds a client process in its own process group with a private
// HOME (a new one when home is ""), killed (the whole group) when ctx ends.
func command(ctx context.Context, t *testing.T, home string, env []string, name string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	if home == "" {
		home = t.TempDir()
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append([]string{
		"HOME=" + home,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"TMPDIR=" + home,
		"LANG=C.UTF-8",
		"no_proxy=*", "NO_PROXY=*",
	}, env...)
	cmd.Dir = home
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// run runs a client to completion within the budget. Its exit status is
// only logged: a client may well complain about the test server's answer
// (git expects a repository) after the hello and request were captured.
func run(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientBudget)
	defer cancel()
	cmd, out := command(ctx, t, "", env, name, args...)
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("%s did not finish within %v: %s", name, clientBudget, tail(out.String()))
		return
	}
	if err != nil {
		t.Logf("%s exited with %v (fine once the hello is captured): %s", name, err, tail(out.String()))
	}
}

// start starts a long-running client (a browser) with the given HOME and
// kills its process group when the budget is spent or the test ends.
func start(t *testing.T, home string, env []string, name string, args ...string) *bytes.Buffer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientBudget)
	cmd, out := command(ctx, t, home, env, name, args...)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	return out
}

// version returns the first line a client prints about itself, skipping
// the shell noise of wrapper scripts (Debian's chromium launcher prints a
// "[: … unexpected operator" line first).
func version(name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent"}
	out, _ := cmd.CombinedOutput()
	for line := range strings.SplitSeq(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "/") {
			return line
		}
	}
	return "unknown version"
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

func goVersion() string { return strings.TrimPrefix(runtime.Version(), "go") }

// trustCA creates an NSS database in dir (a Firefox profile, or
// $HOME/.pki/nssdb where Chromium on Linux reads the user's roots) that
// trusts caFile for TLS servers.
func trustCA(t *testing.T, dir, caFile string) {
	t.Helper()
	certutil := lookPath(t, "certutil", "libnss3-tools")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + dir, "--empty-password"},
		{"-A", "-d", "sql:" + dir, "-n", "classify capture CA", "-t", "C,,", "-a", "-i", caFile},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v: %s", args, err, out)
		}
	}
}
