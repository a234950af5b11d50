package snmp

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	itUser = "portcullis"
	itAuth = "authpass-4711"
	itPriv = "privpass-4711"
)

// requireRoot follows the repo rule for privileged tests: skip for a
// developer without root, fail under CI where root is expected.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "" {
			t.Skip("needs root (snmpd)")
		}
		t.Fatal("needs root under CI")
	}
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: apt-get install snmpd snmp", name)
	}
	return p
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startSnmpd runs a private snmpd: AgentX master on a temp socket, SNMP on
// 127.0.0.1 only, one SNMPv3 authPriv user and no community at all.
func startSnmpd(t *testing.T) (sock, addr string) {
	dir := t.TempDir()
	sock = filepath.Join(dir, "agentx.sock")
	addr = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	cfg := fmt.Sprintf(`master agentx
agentXSocket %s
agentaddress udp:%s
createUser %s SHA "%s" AES "%s"
rouser %s priv
`, sock, addr, itUser, itAuth, itPriv, itUser)
	runSnmpd(t, dir, cfg, sock)
	return sock, addr
}

// runSnmpd starts snmpd in the foreground with exactly cfg as its only
// configuration (no system snmpd.conf, no MIB loading, a private persistent
// directory) and waits until it has finished starting. The socket existing
// is not enough: snmpd binds it and only then applies agentXPerms, so a
// test that looks at the socket's mode as soon as it appears can see the
// umask's 0755 (it did, under CI load). snmpd writes its pid file after
// every listener is set up, so that is what this waits for.
func runSnmpd(t *testing.T, dir, cfg, sock string) {
	t.Helper()
	snmpd := requireTool(t, "snmpd")
	conf := filepath.Join(dir, "snmpd.conf")
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	persist := filepath.Join(dir, "persist")
	if err := os.MkdirAll(persist, 0o700); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "snmpd.log")
	cmd := exec.Command(snmpd, "-f", "-C", "-c", conf, "-Lf", logFile, "-p", filepath.Join(dir, "snmpd.pid"), "-M", dir, "-m", "")
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+persist, "SNMPCONFPATH="+dir, "MIBS=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(logFile)
			t.Logf("snmpd log:\n%s", log)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	pidFile := filepath.Join(dir, "snmpd.pid")
	for {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			if _, err := os.Stat(sock); err != nil {
				t.Fatalf("snmpd started without its AgentX socket %s: %v", sock, err)
			}
			return
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("snmpd exited at startup:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("snmpd did not finish starting (no pid file) within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// snmpCmd runs a net-snmp client tool with numeric output and no MIB
// loading, isolated from any user/host snmp.conf.
func snmpCmd(t *testing.T, tool string, args ...string) (string, error) {
	p := requireTool(t, tool)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p, append([]string{"-On", "-Oq", "-m", "", "-M", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), "SNMPCONFPATH="+t.TempDir(), "MIBS=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func v3Args(addr string) []string {
	return []string{"-v3", "-l", "authPriv", "-u", itUser, "-a", "SHA", "-A", itAuth, "-x", "AES", "-X", itPriv, "-t", "2", "-r", "1", addr}
}

func TestIntegrationSnmpd(t *testing.T) {
	requireRoot(t)
	requireTool(t, "snmpget")
	requireTool(t, "snmpwalk")
	sock, addr := startSnmpd(t)

	r := EnterpriseRoot
	provider := func() []Var {
		return []Var{
			{r.Append(1, 0), Integer(1)},
			{r.Append(2, 0), Counter64(1 << 40)},
			{r.Append(3, 0), OctetString("portcullis test")},
			{r.Append(4, 1, 1, 1), Integer(1)},
			{r.Append(4, 1, 1, 2), Integer(2)},
			{r.Append(4, 1, 2, 1), OctetString("web")},
			{r.Append(4, 1, 2, 2), OctetString("mail")},
			{r.Append(4, 1, 3, 1), Counter64(10)},
			{r.Append(4, 1, 3, 2), Counter64(20)},
		}
	}
	registered := make(chan struct{}, 4)
	sa := &Subagent{Provider: provider, Retry: 200 * time.Millisecond, OnRegistered: func() { registered <- struct{}{} }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sa.Run(ctx, sock) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-registered:
	case <-time.After(10 * time.Second):
		t.Fatal("subagent did not register")
	}

	out, err := snmpCmd(t, "snmpget", append(v3Args(addr), r.Append(1, 0).String(), r.Append(2, 0).String(), r.Append(3, 0).String())...)
	if err != nil {
		t.Fatalf("snmpget: %v\n%s", err, out)
	}
	for _, want := range []string{
		".1.3.6.1.4.1.32473.1.0 1",
		".1.3.6.1.4.1.32473.2.0 1099511627776",
		`.1.3.6.1.4.1.32473.3.0 "portcullis test"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("snmpget output lacks %q:\n%s", want, out)
		}
	}

	// snmpwalk uses GetNext; snmpbulkwalk exercises GetBulk.
	for _, tool := range []string{"snmpwalk", "snmpbulkwalk"} {
		out, err = snmpCmd(t, tool, append(v3Args(addr), r.String())...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tool, err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 9 || !strings.Contains(out, `.1.3.6.1.4.1.32473.4.1.2.2 "mail"`) || !strings.Contains(out, ".1.3.6.1.4.1.32473.4.1.3.2 20") {
			t.Errorf("%s: unexpected output:\n%s", tool, out)
		}
	}

	// A set must be refused: the user is read-only (snmpd says noAccess
	// before asking us); our own notWritable is covered by TestFakeMaster.
	out, err = snmpCmd(t, "snmpset", append(v3Args(addr), r.Append(1, 0).String(), "i", "2")...)
	if err == nil || !(strings.Contains(out, "noAccess") || strings.Contains(out, "notWritable")) {
		t.Errorf("snmpset not refused as notWritable (err=%v):\n%s", err, out)
	}

	// No community and no noAuth access: both must get nothing back.
	start := time.Now()
	out, err = snmpCmd(t, "snmpwalk", "-v2c", "-c", "public", "-t", "1", "-r", "0", addr, r.String())
	if err == nil || strings.Contains(out, "32473") {
		t.Errorf("v2c public got an answer (err=%v):\n%s", err, out)
	}
	t.Logf("v2c public: %v: %s", err, strings.TrimSpace(out))
	out, err = snmpCmd(t, "snmpwalk", "-v3", "-l", "noAuthNoPriv", "-u", itUser, "-t", "1", "-r", "0", addr, r.String())
	if err == nil || strings.Contains(out, "32473.") {
		t.Errorf("v3 noAuthNoPriv got an answer (err=%v):\n%s", err, out)
	}
	t.Logf("v3 noAuthNoPriv: %v: %s", err, strings.TrimSpace(out))
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("refusals took %v", d)
	}
}
