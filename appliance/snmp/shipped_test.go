package snmp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shippedConf is the snmpd.conf the package ships.
const shippedConf = "../../packaging/snmp/snmpd.conf"

const (
	shipUser     = "nms-reader"
	shipAuth     = "ship-auth-8812"
	shipPriv     = "ship-priv-8812"
	trapUser     = "portcullis-trap"
	trapAuth     = "trap-auth-5531"
	trapPriv     = "trap-priv-5531"
	trapUserLine = `#trapsess -v3 -Ci -l authPriv -u TRAPUSER -a SHA-256 -A "TRAP_AUTH_PASSPHRASE" -x AES -X "TRAP_PRIV_PASSPHRASE" udp:nms.example.net:162`
)

// fillShipped returns the shipped snmpd.conf with what an installer fills
// in replaced, and nothing else: the user placeholders, plus the socket,
// listen address and socket group a test cannot use as shipped (there may
// be no portcullis group here, and the system snmpd may own port 161). Each
// replaced text must occur exactly as often as expected, so the test breaks
// when the shipped file changes under it. A non-empty trapAddr enables the
// shipped trapsess example towards it.
func fillShipped(t *testing.T, sock, addr, trapAddr string) string {
	t.Helper()
	b, err := os.ReadFile(shippedConf)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	sub := func(old, new string, n int) {
		t.Helper()
		if c := strings.Count(s, old); c != n {
			t.Fatalf("shipped snmpd.conf: %q occurs %d times, want %d", old, c, n)
		}
		s = strings.ReplaceAll(s, old, new)
	}
	sub("@SNMP_USER@", shipUser, 2)
	sub("@SNMP_AUTH_PASSPHRASE@", shipAuth, 1)
	sub("@SNMP_PRIV_PASSPHRASE@", shipPriv, 1)
	sub("\nagentXSocket /var/agentx/master\n", "\nagentXSocket "+sock+"\n", 1)
	sub("\nagentXPerms 0660 0750 root portcullis\n", "\nagentXPerms 0660 0750 root root\n", 1)
	sub("\nagentaddress udp:161,udp6:161\n", "\nagentaddress udp:"+addr+"\n", 1)
	if trapAddr != "" {
		line := strings.NewReplacer("#trapsess", "trapsess", "TRAPUSER", trapUser, "TRAP_AUTH_PASSPHRASE", trapAuth,
			"TRAP_PRIV_PASSPHRASE", trapPriv, "udp:nms.example.net:162", "udp:"+trapAddr).Replace(trapUserLine)
		sub(trapUserLine, line, 1)
	}
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && (strings.Contains(f[0], "community") || f[0] == "com2sec") {
			t.Fatalf("shipped snmpd.conf grants community access: %s", l)
		}
	}
	return s
}

func startShippedSnmpd(t *testing.T, trapAddr string) (sock, addr string) {
	dir := t.TempDir()
	sock = filepath.Join(dir, "agentx", "master")
	addr = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	runSnmpd(t, dir, fillShipped(t, sock, addr, trapAddr), sock)
	return sock, addr
}

// startSubagent runs a Subagent until the test ends and waits until it has
// registered with the master.
func startSubagent(t *testing.T, sock string, p Provider) *Subagent {
	t.Helper()
	registered := make(chan struct{}, 4)
	sa := &Subagent{Provider: p, Retry: 200 * time.Millisecond, OnRegistered: func() {
		select {
		case registered <- struct{}{}:
		default:
		}
	}}
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
	return sa
}

func shippedV3(level, addr string) []string {
	args := []string{"-v3", "-l", level, "-u", shipUser, "-t", "1", "-r", "0"}
	switch level {
	case "authPriv":
		args = append(args, "-a", "SHA-256", "-A", shipAuth, "-x", "AES", "-X", shipPriv)
	case "authNoPriv":
		args = append(args, "-a", "SHA-256", "-A", shipAuth)
	}
	return append(args, addr)
}

func sampleProvider() []Var {
	return []Var{
		Scalar(ObjVersion, OctetString("test-1.0")),
		Scalar(ObjUptime, TimeTicks(4200)),
		Scalar(ObjDatapathAttached, TruthValue(true)),
		Scalar(ObjProxyRequests, Counter64(77)),
		Cell(ColAppID, 1, OctetString("dokuwiki")),
		Cell(ColAppRequests, 1, Counter64(5)),
	}
}

// TestShippedConfig starts snmpd with the shipped snmpd.conf and checks
// that it does what its comments promise: the subtree over SNMPv3 authPriv
// with SHA-256/AES, nothing to v2c or to weaker v3 levels, and an AgentX
// socket only its group can use.
func TestShippedConfig(t *testing.T) {
	requireRoot(t)
	sock, addr := startShippedSnmpd(t, "")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o660 {
		t.Errorf("agentx socket mode %o, want 660", perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Gid != 0 {
		t.Errorf("agentx socket group not as configured: %+v", fi.Sys())
	}
	startSubagent(t, sock, sampleProvider)

	out, err := snmpCmd(t, "snmpwalk", append(shippedV3("authPriv", addr), EnterpriseRoot.String())...)
	if err != nil {
		t.Fatalf("snmpwalk authPriv: %v\n%s", err, out)
	}
	for _, want := range []string{
		"." + ObjVersion.String() + `.0 "test-1.0"`,
		"." + ObjProxyRequests.String() + ".0 77",
		"." + ColAppID.String() + `.1 "dokuwiki"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("authPriv walk lacks %q:\n%s", want, out)
		}
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != len(sampleProvider()) {
		t.Errorf("authPriv walk returned %d lines, want %d:\n%s", n, len(sampleProvider()), out)
	}

	refused := func(name string, args ...string) {
		t.Helper()
		start := time.Now()
		out, err := snmpCmd(t, "snmpwalk", append(args, EnterpriseRoot.String())...)
		t.Logf("%s: err=%v after %v: %s", name, err, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
		if strings.Contains(out, EnterpriseRoot.String()+".") {
			t.Errorf("%s got objects:\n%s", name, out)
		}
		if err == nil && !strings.Contains(out, "No Such Object") && !strings.Contains(out, "authorizationError") && strings.TrimSpace(out) != "" {
			t.Errorf("%s: not refused:\n%s", name, out)
		}
	}
	refused("v2c public", "-v2c", "-c", "public", "-t", "1", "-r", "0", addr)
	refused("v1 public", "-v1", "-c", "public", "-t", "1", "-r", "0", addr)
	refused("v3 noAuthNoPriv", shippedV3("noAuthNoPriv", addr)...)
	refused("v3 authNoPriv", shippedV3("authNoPriv", addr)...)
}

// startTrapd runs snmptrapd as the notification receiver, knowing the
// trapsess user; everything it receives is logged to the returned file.
func startTrapd(t *testing.T) (addr, logFile string) {
	t.Helper()
	trapd := requireTool(t, "snmptrapd")
	dir := t.TempDir()
	addr = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	conf := filepath.Join(dir, "snmptrapd.conf")
	cfg := fmt.Sprintf("createUser %s SHA-256 \"%s\" AES \"%s\"\nauthUser log %s priv\n", trapUser, trapAuth, trapPriv, trapUser)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	persist := filepath.Join(dir, "persist")
	if err := os.Mkdir(persist, 0o700); err != nil {
		t.Fatal(err)
	}
	logFile = filepath.Join(dir, "traps.log")
	cmd := exec.Command(trapd, "-f", "-C", "-c", conf, "-On", "-Lf", logFile, "-p", filepath.Join(dir, "trapd.pid"),
		"-M", dir, "-m", "", "udp:"+addr)
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
			t.Logf("snmptrapd log:\n%s", log)
		}
	})
	waitFor(t, 10*time.Second, "snmptrapd to start", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "NET-SNMP version")
	})
	return addr, logFile
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNotifyThroughSnmpd sends a portcullisAlert through AgentX; snmpd,
// configured with the shipped trapsess line, must deliver it as an SNMPv3
// authPriv inform to snmptrapd with every varbind.
func TestNotifyThroughSnmpd(t *testing.T) {
	requireRoot(t)
	trapAddr, trapLog := startTrapd(t)
	sock, _ := startShippedSnmpd(t, trapAddr)
	sa := startSubagent(t, sock, sampleProvider)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := sa.Notify(ctx, TrapAlert, []VarBind{
		Instance(ObjAlertPolicyID, OctetString("no-download-unmanaged")),
		Instance(ObjAlertSeverity, Integer(SeverityHigh)),
		Instance(ObjAlertUser, OctetString("alice@example.com")),
		Instance(ObjAlertApp, OctetString("dokuwiki")),
		Instance(ObjAlertMessage, OctetString("download blocked")),
	})
	if err != nil {
		t.Fatal(err)
	}
	wants := []string{
		"." + SnmpTrapOIDInstance.String() + " = OID: ." + TrapAlert.String(),
		"." + ObjAlertPolicyID.String() + `.0 = STRING: "no-download-unmanaged"`,
		"." + ObjAlertSeverity.String() + ".0 = INTEGER: 4",
		"." + ObjAlertUser.String() + `.0 = STRING: "alice@example.com"`,
		"." + ObjAlertApp.String() + `.0 = STRING: "dokuwiki"`,
		"." + ObjAlertMessage.String() + `.0 = STRING: "download blocked"`,
	}
	waitFor(t, 15*time.Second, "the alert at snmptrapd", func() bool {
		b, _ := os.ReadFile(trapLog)
		for _, w := range wants {
			if !strings.Contains(string(b), w) {
				return false
			}
		}
		return true
	})
	b, _ := os.ReadFile(trapLog)
	t.Logf("snmptrapd received:\n%s", b)
}
