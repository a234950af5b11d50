package packaging

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The package's life in a clean Debian 12 (minbase) root: install, the
// service user and modes, a CA made by the service user, an edited conffile
// kept across an upgrade with the state, remove keeping configuration and
// state, purge deleting both. dpkg runs under chroot; no systemd runs there,
// so the maintainer scripts enable the unit without starting it.
func TestDebInstallUpgradeRemovePurge(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chroot, mounts and dpkg in a Debian root")
	}
	for _, tool := range []string{"mmdebstrap", "chroot", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs it)", tool)
		}
	}
	start := time.Now()
	v1, _, v2 := packages(t)
	tarball := debianRoot(t)
	root := t.TempDir()
	run(t, "", "tar", "-C", root, "-xf", tarball)
	// Without systemd-sysusers, postinst falls back to adduser (the booted
	// test, TestServiceUnderSystemd, goes through systemd-sysusers).
	if err := os.Rename(filepath.Join(root, "usr/bin/systemd-sysusers"), filepath.Join(root, "usr/bin/systemd-sysusers.away")); err != nil {
		t.Fatal(err)
	}
	mountIn(t, root, "proc", "proc", "/proc")
	t.Logf("root ready after %v", time.Since(start).Round(time.Second))

	for _, deb := range []string{v1, v2} {
		data, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "tmp", filepath.Base(deb)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := func(args ...string) string { return run(t, root, args...) }

	// Install.
	in("dpkg", "-i", "/tmp/"+filepath.Base(v1))
	if got := in("dpkg-query", "-W", "-f", "${Status} ${Version}", "portcullis"); got != "install ok installed "+version1 {
		t.Fatalf("after install: %q", got)
	}
	pw := passwd(t, root, "portcullis")
	if pw == nil || pw[5] != "/var/lib/portcullis" || !strings.HasSuffix(pw[6], "nologin") {
		t.Fatalf("service user: %v", pw)
	}
	if pw[2] == "0" || pw[3] == "0" {
		t.Fatalf("service user is root: %v", pw)
	}
	uid := pw[2]
	gid := pw[3]
	checkMode(t, root, "/var/lib/portcullis", 0o750, uid, gid, true)
	checkMode(t, root, "/etc/portcullis/portcullis.yaml", 0o640, "0", gid, false)
	checkMode(t, root, "/usr/bin/portcullis", 0o755, "0", "0", false)
	checkMode(t, root, "/usr/lib/systemd/system/portcullis.service", 0o644, "0", "0", false)
	// bookworm's deb-systemd-helper links through /lib (merged with /usr/lib).
	if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/portcullis.service")); err != nil ||
		strings.TrimPrefix(target, "/usr") != "/lib/systemd/system/portcullis.service" {
		t.Errorf("unit not enabled: %q %v", target, err)
	}
	in("portcullis", "config", "check", "--config", "/etc/portcullis/portcullis.yaml")
	// The service user reads the configuration and makes its CA.
	cert1 := in("chroot", "--userspec=portcullis:portcullis", "/", "portcullis", "ca", "cert", "--config", "/etc/portcullis/portcullis.yaml")
	checkMode(t, root, "/var/lib/portcullis/ca", 0o700, uid, gid, true)
	checkMode(t, root, "/var/lib/portcullis/ca/ca.key", 0o600, uid, gid, false)
	if man := in("sh", "-c", "zcat /usr/share/man/man1/portcullis-status.1.gz | head -c 4000"); !strings.Contains(man, "portcullis-status") {
		t.Errorf("man page: %.200q", man)
	}

	// The admin edits the conffile; an upgrade keeps the edit and the state.
	conf := filepath.Join(root, "etc/portcullis/portcullis.yaml")
	appendFile(t, conf, "\ntimeouts:\n  idle: 90s\n")
	in("dpkg", "-i", "/tmp/"+filepath.Base(v2))
	if got := in("dpkg-query", "-W", "-f", "${Status} ${Version}", "portcullis"); got != "install ok installed "+version2 {
		t.Fatalf("after upgrade: %q", got)
	}
	if b, _ := os.ReadFile(conf); !strings.Contains(string(b), "idle: 90s") {
		t.Error("the upgrade replaced the edited conffile")
	}
	if _, err := os.Stat(conf + ".dpkg-dist"); err == nil {
		t.Error("the upgrade left a .dpkg-dist: the packaged conffile changed between versions")
	}
	if cert2 := in("chroot", "--userspec=portcullis:portcullis", "/", "portcullis", "ca", "cert", "--config", "/etc/portcullis/portcullis.yaml"); cert2 != cert1 {
		t.Error("the upgrade lost the CA")
	}
	if got := passwd(t, root, "portcullis"); got == nil || got[2] != uid {
		t.Errorf("the upgrade changed the service user: %v", got)
	}

	// Remove: the program goes, configuration and state stay.
	in("dpkg", "-r", "portcullis")
	if got := in("dpkg-query", "-W", "-f", "${Status}", "portcullis"); got != "deinstall ok config-files" {
		t.Errorf("after remove: %q", got)
	}
	for _, gone := range []string{"usr/bin/portcullis", "usr/lib/systemd/system/portcullis.service"} {
		if _, err := os.Stat(filepath.Join(root, gone)); err == nil {
			t.Errorf("remove left /%s", gone)
		}
	}
	for _, kept := range []string{"etc/portcullis/portcullis.yaml", "var/lib/portcullis/ca/ca.key", "var/lib/portcullis/ca/ca.crt"} {
		if _, err := os.Stat(filepath.Join(root, kept)); err != nil {
			t.Errorf("remove deleted /%s", kept)
		}
	}

	// Purge: configuration and state go.
	in("dpkg", "-P", "portcullis")
	for _, gone := range []string{"etc/portcullis", "var/lib/portcullis", "etc/snmp/snmpd.conf.d/portcullis.conf",
		"etc/systemd/system/multi-user.target.wants/portcullis.service"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("purge left /%s", gone)
		}
	}
	if out, err := exec.Command("chroot", root, "dpkg-query", "-W", "portcullis").CombinedOutput(); err == nil {
		t.Errorf("purge left the package known to dpkg: %s", out)
	}
	t.Logf("install, upgrade, remove, purge: %v in all", time.Since(start).Round(time.Second))
}

// debianRoot returns a tarball of a minimal Debian 12 root with systemd
// (not running: under chroot it is only the tools, as in an image build) and
// adduser. Both tests use it, so one mmdebstrap serves them.
func debianRoot(t *testing.T) string {
	return cachedRoot(t, "bookworm-systemd", "systemd,systemd-sysv,dbus,procps,iproute2,adduser")
}

// cachedRoot returns a tarball of a minbase Debian 12 root with the include
// packages, made by mmdebstrap from the mirror apt uses here and cached in
// the temporary directory for later runs.
func cachedRoot(t *testing.T, name, include string) string {
	t.Helper()
	cache := filepath.Join(os.TempDir(), "portcullis-deb-test")
	tarball := filepath.Join(cache, name+".tar")
	stamp := tarball + ".include"
	if b, err := os.ReadFile(stamp); err == nil && string(b) == include {
		if _, err := os.Stat(tarball); err == nil {
			return tarball
		}
	}
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tmp := tarball + ".tmp"
	cmd := exec.Command("mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar",
		"--include="+include, "bookworm", tmp, debianMirror())
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("mmdebstrap: %v\n%s", err, tail(out, 3000))
	}
	if err := os.Rename(tmp, tarball); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stamp, []byte(include), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("mmdebstrap %s took %v", name, time.Since(start).Round(time.Second))
	return tarball
}

// debianMirror is the first Debian archive apt's sources name.
func debianMirror() string {
	if b, err := os.ReadFile("/etc/apt/sources.list.d/debian.sources"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if u, ok := strings.CutPrefix(line, "URIs:"); ok {
				if f := strings.Fields(u); len(f) > 0 && !strings.Contains(f[0], "security") {
					return f[0]
				}
			}
		}
	}
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == "deb" && f[2] == "bookworm" {
				return f[1]
			}
		}
	}
	return "http://deb.debian.org/debian"
}

// run runs a command, in the root through chroot when root is set, and
// returns its trimmed stdout.
func run(t *testing.T, root string, args ...string) string {
	t.Helper()
	if root != "" {
		args = append([]string{"chroot", root}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func mountIn(t *testing.T, root, fstype, source, target string) {
	t.Helper()
	dir := filepath.Join(root, target)
	if err := syscall.Mount(source, dir, fstype, 0, ""); err != nil {
		t.Fatalf("mount %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// passwd returns the fields of user's line in the root's /etc/passwd.
func passwd(t *testing.T, root, user string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Split(sc.Text(), ":"); len(fields) == 7 && fields[0] == user {
			return fields
		}
	}
	return nil
}

func checkMode(t *testing.T, root, path string, mode os.FileMode, uid, gid string, dir bool) {
	t.Helper()
	st, err := os.Stat(filepath.Join(root, path))
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	got := fmt.Sprintf("%04o %d:%d dir=%v", st.Mode().Perm(), sys.Uid, sys.Gid, st.IsDir())
	want := fmt.Sprintf("%04o %s:%s dir=%v", mode, uid, gid, dir)
	if got != want {
		t.Errorf("%s: %s, want %s", path, got, want)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
