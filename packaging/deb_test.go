package packaging

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// builtDebs are the packages built once per test binary: v1 twice (to
// compare the bytes) and v2, the same sources with a bumped version.
var (
	buildOnce sync.Once
	debs      struct {
		v1, v1again, v2 string
		took            time.Duration
		err             error
	}
	debDir string
)

const (
	version1 = "1.0.0~test1"
	version2 = "1.0.0~test2"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if debDir != "" {
		os.RemoveAll(debDir)
	}
	os.Exit(code)
}

func buildDeb(t *testing.T, version, out string) string {
	t.Helper()
	cmd := exec.Command("./build-deb.sh", out)
	cmd.Env = append(os.Environ(), "VERSION="+version)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		debs.err = err
		t.Fatalf("build-deb.sh %s: %v\n%s", version, err, stderr.String())
	}
	return strings.TrimSpace(string(b))
}

func packages(t *testing.T) (v1, v1again, v2 string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is needed to date the package from the last commit")
	}
	buildOnce.Do(func() {
		start := time.Now()
		var err error
		if debDir, err = os.MkdirTemp("", "portcullis-debs-"); err != nil {
			t.Fatal(err)
		}
		debs.v1 = buildDeb(t, version1, filepath.Join(debDir, "a"))
		// A second build elsewhere, at another time, with another umask.
		old := umask(0o077)
		debs.v1again = buildDeb(t, version1, filepath.Join(debDir, "b"))
		umask(old)
		debs.v2 = buildDeb(t, version2, filepath.Join(debDir, "c"))
		debs.took = time.Since(start)
		t.Logf("three builds took %v", debs.took.Round(time.Second))
	})
	if debs.err != nil || debs.v2 == "" {
		t.Fatal("the package build failed (see the first test that built it)")
	}
	return debs.v1, debs.v1again, debs.v2
}

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestDebIsReproducible(t *testing.T) {
	v1, again, v2 := packages(t)
	if a, b := sha(t, v1), sha(t, again); a != b {
		t.Errorf("two builds of the same commit differ:\n%s %s\n%s %s", a, v1, b, again)
	}
	if sha(t, v1) == sha(t, v2) {
		t.Error("a bumped version built the same bytes")
	}
}

// What the package holds, with owners and modes.
func TestDebContents(t *testing.T) {
	v1, _, _ := packages(t)
	out, err := exec.Command("dpkg-deb", "--contents", v1).Output()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{} // path -> "mode owner"
	var mtimes = map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		files[strings.TrimPrefix(f[len(f)-1], ".")] = f[0] + " " + f[1]
		mtimes[f[3]+" "+f[4]] = true
	}
	for path, want := range map[string]string{
		"/usr/bin/portcullis":                                   "-rwxr-xr-x root/root",
		"/etc/portcullis/portcullis.yaml":                       "-rw-r----- root/root",
		"/usr/lib/systemd/system/portcullis.service":            "-rw-r--r-- root/root",
		"/usr/lib/systemd/system/portcullis-snmp-users.path":    "-rw-r--r-- root/root",
		"/usr/lib/systemd/system/portcullis-snmp-users.service": "-rw-r--r-- root/root",
		"/usr/lib/sysusers.d/portcullis.conf":                   "-rw-r--r-- root/root",
		"/usr/lib/tmpfiles.d/portcullis.conf":                   "-rw-r--r-- root/root",
		"/etc/snmp/snmpd.conf.d/portcullis.conf":                "-rw-r--r-- root/root",
		"/usr/share/snmp/mibs/PORTCULLIS-MIB.txt":               "-rw-r--r-- root/root",
		"/usr/share/portcullis/grafana-dashboard.json":          "-rw-r--r-- root/root",
		"/usr/share/man/man1/portcullis.1.gz":                   "-rw-r--r-- root/root",
		"/usr/share/man/man1/portcullis-run.1.gz":               "-rw-r--r-- root/root",
		"/usr/share/man/man1/portcullis-status.1.gz":            "-rw-r--r-- root/root",
		"/usr/share/man/man1/portcullis-doctor.1.gz":            "-rw-r--r-- root/root",
		"/usr/share/bash-completion/completions/portcullis":     "-rw-r--r-- root/root",
		"/usr/share/zsh/vendor-completions/_portcullis":         "-rw-r--r-- root/root",
		"/usr/share/fish/vendor_completions.d/portcullis.fish":  "-rw-r--r-- root/root",
		"/usr/share/doc/portcullis/copyright":                   "-rw-r--r-- root/root",
		"/usr/share/doc/portcullis/changelog.gz":                "-rw-r--r-- root/root",
		"/usr/share/doc/portcullis/examples/snmpd.conf":         "-rw-r--r-- root/root",
		"/usr/share/man/man1/":                                  "drwxr-xr-x root/root",
		"/usr/share/doc/portcullis/examples/README.snmp.md.gz":  "-rw-r--r-- root/root",
	} {
		if got := files[path]; got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	if len(mtimes) != 1 {
		t.Errorf("files carry %d different times, want one (SOURCE_DATE_EPOCH): %v", len(mtimes), mtimes)
	}
	conffiles, err := exec.Command("dpkg-deb", "--info", v1, "conffiles").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(conffiles)); strings.Join(got, " ") != "/etc/portcullis/portcullis.yaml /etc/snmp/snmpd.conf.d/portcullis.conf" {
		t.Errorf("conffiles: %q", got)
	}
}

func TestDebLintianClean(t *testing.T) {
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Skip("lintian not installed (scripts/deps.sh installs it)")
	}
	v1, _, _ := packages(t)
	start := time.Now()
	cmd := exec.Command("lintian", "--fail-on", "error", "--allow-root", v1)
	out, err := cmd.CombinedOutput()
	t.Logf("lintian (%v):\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("lintian --fail-on error: %v", err)
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for portcullis\.service: ([0-9.]+)`)

// The unit's least privilege, as systemd measures it.
func TestUnitSecurityExposure(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", "systemd/portcullis.service").CombinedOutput()
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure %.1f", score)
	if score > 3.0 {
		t.Errorf("exposure %.1f > 3.0:\n%s", score, out)
	}
}

func TestUnitRunsTheDaemonAsNotifyService(t *testing.T) {
	b, err := os.ReadFile("systemd/portcullis.service")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			set[k] = append(set[k], v)
		}
	}
	for k, want := range map[string]string{
		"Type":                    "notify",
		"ExecStart":               "/usr/bin/portcullis run --config /etc/portcullis/portcullis.yaml",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"Restart":                 "on-failure",
		"RestartForceExitStatus":  "75", // the console's restart (appliance.exitRestart)
		"User":                    "portcullis",
		"StateDirectory":          "portcullis",
		"AmbientCapabilities":     "CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
	} {
		if got := strings.Join(set[k], " | "); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
}
