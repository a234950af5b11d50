package appliance

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/snmp"
	"github.com/portcullis-gw/portcullis/internal/lab"
)

// snmpV3 runs a net-snmp tool (snmpget, snmpwalk) -v3 authPriv as user
// (AES privacy), numeric output, no MIB loading, no snmp.conf.
func snmpV3(t *testing.T, tool, addr, user, auth, authPW, privPW, oid string) (string, error) {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: apt-get install snmp", tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p, "-On", "-Oq", "-m", "", "-M", t.TempDir(), "-v3", "-l", "authPriv", "-u", user,
		"-a", auth, "-A", authPW, "-x", "AES", "-X", privPW, "-t", "2", "-r", "1", addr, oid)
	cmd.Env = append(os.Environ(), "SNMPCONFPATH="+t.TempDir(), "MIBS=")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func snmpV3Get(t *testing.T, addr, user, auth, authPW, privPW, oid string) (string, error) {
	t.Helper()
	return snmpV3(t, "snmpget", addr, user, auth, authPW, privPW, oid)
}

// TestConsoleSNMPUsers runs a real snmpd that includes the appliance's
// users fragment (snmp.users_file) and the appliance binary as its AgentX
// subagent. Users added through the console's API read PORTCULLIS-MIB
// with snmpget -v3 authPriv (SHA-512 and SHA-256, AES) within the reload
// the appliance asked of snmpd; the view limits what they read; the
// passphrases are nowhere (fragment, API, audit); a removed user's
// passphrases are refused at once, and its name can be taken again with
// new ones.
func TestConsoleSNMPUsers(t *testing.T) {
	lab.RequireRoot(t)
	addr := freeUDP(t)
	sock := filepath.Join(t.TempDir(), "master")
	users := filepath.Join(t.TempDir(), "portcullis-users.conf")
	if err := os.WriteFile(users, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	snmpdDir := startDaemon(t, "snmpd", fmt.Sprintf("master agentx\nagentXSocket %s\nagentaddress udp:%s\nincludeFile %s\n", sock, addr, users),
		nil, func(string) bool { _, err := os.Stat(sock); return err == nil })
	const consoleAddr = "198.18.1.1:9443"
	l := newE2ELab(t, fmt.Sprintf("snmp:\n  agentx_socket: %s\n  reconnect: 200ms\n  users_file: %s\n  snmpd_pid_file: %s\nconsole:\n  listen: %s\n",
		sock, users, filepath.Join(snmpdDir, "pid"), consoleAddr))
	l.start()
	c := newConsoleClient(t, l, consoleAddr)
	c.setupAdmin(filepath.Join(l.dir, "state"), "admin", "console-admin-password-1")

	const (
		opsAuth, opsPriv = "ops-auth-passphrase", "ops-priv-passphrase"
		nmsAuth, nmsPriv = "nms-auth-passphrase", "nms-priv-passphrase"
	)
	attached := "." + snmp.ObjDatapathAttached.String() + ".0"
	const sysUpTime = ".1.3.6.1.2.1.1.3.0"
	if out, err := snmpV3Get(t, addr, "ops", "SHA-512", opsAuth, opsPriv, attached); err == nil {
		t.Fatalf("ops reads before it exists: %s", out)
	}
	if code, m := c.api("POST", "/api/v1/snmp/users", map[string]any{"name": "ops", "auth": "SHA-512", "auth_passphrase": "short", "priv_passphrase": opsPriv}); code != http.StatusBadRequest ||
		!strings.Contains(fmt.Sprint(m["error"]), "at least 8 characters") {
		t.Errorf("short passphrase: %d %v", code, m)
	}
	code, m := c.api("POST", "/api/v1/snmp/users", map[string]any{"name": "ops", "auth": "SHA-512", "auth_passphrase": opsAuth, "priv_passphrase": opsPriv})
	if code != http.StatusCreated || !strings.Contains(fmt.Sprint(m["snmpd"]), "reloaded") {
		t.Fatalf("add ops: %d %v", code, m)
	}
	if code, m := c.api("POST", "/api/v1/snmp/users", map[string]any{"name": "nms", "view": "all", "auth_passphrase": nmsAuth, "priv_passphrase": nmsPriv}); code != http.StatusCreated {
		t.Fatalf("add nms: %d %v", code, m)
	}
	if code, m := c.api("POST", "/api/v1/snmp/users", map[string]any{"name": "ops", "auth_passphrase": opsAuth, "priv_passphrase": opsPriv}); code != http.StatusBadRequest {
		t.Errorf("ops twice: %d %v", code, m)
	}
	var out string
	waitFor(t, "ops reading pcDatapathAttached over SNMPv3 authPriv", 15*time.Second, func() bool {
		var err error
		out, err = snmpV3Get(t, addr, "ops", "SHA-512", opsAuth, opsPriv, attached)
		return err == nil && out == attached+" 1"
	})
	if out, err := snmpV3Get(t, addr, "nms", "SHA-256", nmsAuth, nmsPriv, sysUpTime); err != nil || !strings.HasPrefix(out, sysUpTime+" ") {
		t.Errorf("nms (view all) reading sysUpTime: %v %s", err, out)
	}
	// ops reads PORTCULLIS-MIB only.
	if out, _ := snmpV3Get(t, addr, "ops", "SHA-512", opsAuth, opsPriv, sysUpTime); strings.HasPrefix(out, sysUpTime+" ") && !strings.Contains(out, "No Such") {
		t.Errorf("ops (view portcullis) read sysUpTime: %s", out)
	}
	if out, err := snmpV3Get(t, addr, "ops", "SHA-512", opsAuth, "wrong-priv-passphrase", attached); err == nil && strings.Contains(out, attached+" 1") {
		t.Errorf("a wrong privacy passphrase read: %s", out)
	}

	frag, _ := os.ReadFile(users)
	_, list := c.do("GET", "/api/v1/snmp/users", "", nil)
	_, audit := c.do("GET", "/api/v1/audit", "", nil)
	_, page := c.do("GET", "/settings", "", nil)
	for _, pw := range []string{opsAuth, opsPriv, nmsAuth, nmsPriv} {
		for where, text := range map[string]string{"fragment": string(frag), "list": list, "audit": audit, "page": page, "appliance log": l.log()} {
			if strings.Contains(text, pw) {
				t.Errorf("a passphrase is in the %s", where)
			}
		}
	}
	if !strings.Contains(list, `"name":"ops"`) || !strings.Contains(list, `"auth":"SHA-512"`) || strings.Contains(list, "0x") {
		t.Errorf("list: %s", list)
	}
	if !strings.Contains(audit, "snmp_user_added") || !strings.Contains(page, `data-snmp-user="nms"`) {
		t.Error("the add is not audited, or the page does not list the user")
	}
	if fi, _ := os.Stat(users); fi.Mode().Perm() != 0o640 {
		t.Errorf("fragment mode %v, want 0640 kept", fi.Mode().Perm())
	}

	if code, m := c.api("DELETE", "/api/v1/snmp/users/ops", nil); code != http.StatusOK {
		t.Fatalf("remove ops: %d %v", code, m)
	}
	waitFor(t, "snmpd refusing the removed user", 15*time.Second, func() bool {
		out, err := snmpV3Get(t, addr, "ops", "SHA-512", opsAuth, opsPriv, attached)
		return err != nil && strings.Contains(out, "Authentication failure")
	})
	if out, err := snmpV3Get(t, addr, "nms", "SHA-256", nmsAuth, nmsPriv, attached); err != nil || out != attached+" 1" {
		t.Errorf("nms after ops went: %v %s", err, out)
	}
	if code, _ := c.api("DELETE", "/api/v1/snmp/users/ops", nil); code != http.StatusBadRequest {
		t.Errorf("remove ops twice: %d", code)
	}
	// The name again, with new passphrases: the new ones work, the old do not.
	if code, m := c.api("POST", "/api/v1/snmp/users", map[string]any{"name": "ops", "auth_passphrase": "ops-new-auth-1", "priv_passphrase": "ops-new-priv-1"}); code != http.StatusCreated {
		t.Fatalf("re-add ops: %d %v", code, m)
	}
	waitFor(t, "the re-added user reading", 15*time.Second, func() bool {
		out, err := snmpV3Get(t, addr, "ops", "SHA-256", "ops-new-auth-1", "ops-new-priv-1", attached)
		return err == nil && out == attached+" 1"
	})
	if out, err := snmpV3Get(t, addr, "ops", "SHA-512", opsAuth, opsPriv, attached); err == nil {
		t.Errorf("the old passphrases of a re-added user still read: %s", out)
	}
	if _, audit := c.do("GET", "/api/v1/audit", "", nil); !strings.Contains(audit, "snmp_user_removed") {
		t.Error("the removal is not audited")
	}
}
