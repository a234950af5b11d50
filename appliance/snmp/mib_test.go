package snmp

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const mibFile = "../../mibs/PORTCULLIS-MIB.txt"

// smiEnv returns the environment for libsmi tools: the Debian libsmi
// packages ship no IETF modules (they are not DFSG-free), so the base
// modules SNMPv2-SMI, SNMPv2-TC and SNMPv2-CONF come from erlang-snmp,
// which ships them as text. SMIPATH with a leading colon extends, not
// replaces, the path of /etc/smi.conf.
func smiEnv(t *testing.T, tool string) (string, []string) {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: apt-get install smitools", tool)
	}
	dirs, _ := filepath.Glob("/usr/lib/erlang/lib/snmp-*/mibs")
	var base string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "SNMPv2-SMI.mib")); err == nil {
			base = d
		}
	}
	if base == "" {
		t.Fatal("IETF base MIB modules (SNMPv2-SMI, SNMPv2-TC, SNMPv2-CONF) not found: apt-get install erlang-snmp")
	}
	return p, append(os.Environ(), "SMIPATH=:"+base)
}

func runSmi(t *testing.T, tool string, args ...string) string {
	t.Helper()
	p, env := smiEnv(t, tool)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	return string(out)
}

// TestMIBLint runs smilint at its strictest level; any message (error or
// warning) fails the test.
func TestMIBLint(t *testing.T) {
	out := runSmi(t, "smilint", "-l", "9", "-s", mibFile)
	if strings.TrimSpace(out) != "" {
		t.Fatalf("smilint -l 9 reports:\n%s", out)
	}
}

// TestMIBMatchesCode checks every object the code declares (and so every
// OID the subagent serves or sends) against the MIB as libsmi reads it:
// same descriptor at the same OID with a matching kind, and no served
// object of the MIB missing from the code.
func TestMIBMatchesCode(t *testing.T) {
	out := runSmi(t, "smidump", "-f", "identifiers", mibFile)
	type node struct{ kind, oid string }
	mib := map[string]node{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && f[0] == "PORTCULLIS-MIB" {
			mib[f[1]] = node{f[2], f[3]}
		}
	}
	if root, ok := mib["portcullisMIB"]; !ok || root.oid != EnterpriseRoot.String() {
		t.Fatalf("portcullisMIB is %+v in the MIB, EnterpriseRoot is %v", root, EnterpriseRoot)
	}
	smiKind := map[Kind]string{KindScalar: "scalar", KindColumn: "column", KindNotifyOnly: "scalar", KindNotification: "notification"}
	inCode := map[string]bool{}
	for _, o := range Objects {
		inCode[o.Name] = true
		n, ok := mib[o.Name]
		switch {
		case !ok:
			t.Errorf("%s (%v) is not in the MIB", o.Name, o.OID)
		case n.oid != o.OID.String():
			t.Errorf("%s: MIB says %s, code says %v", o.Name, n.oid, o.OID)
		case n.kind != smiKind[o.Kind]:
			t.Errorf("%s: MIB kind %s, code kind %s", o.Name, n.kind, smiKind[o.Kind])
		}
	}
	for name, n := range mib {
		if (n.kind == "scalar" || n.kind == "column" || n.kind == "notification") && !inCode[name] && !strings.HasSuffix(name, "Index") {
			t.Errorf("MIB object %s (%s) has no declaration in mib.go", name, n.oid)
		}
	}
}

// TestNotifyPDU checks the Notify PDU on the wire with a scripted master:
// sysUpTime.0 from the master's clock, then snmpTrapOID.0, then the
// caller's varbinds; and the errors before and after a session.
func TestNotifyPDU(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	m, sa, stop := fakeSession(t, sock)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		errc <- sa.Notify(context.Background(), TrapFailOpen, []VarBind{
			Instance(ObjFailOpenReason, OctetString("no listener")),
			Instance(ObjFailOpenCount, Gauge32(3)),
		})
	}()
	p := m.read()
	if p.Type != PDUNotify || p.SessionID != 42 || len(p.VarBinds) != 4 {
		t.Fatalf("want Notify with 4 varbinds, got %+v", p)
	}
	vb := p.VarBinds
	if vb[0].Name.Compare(SysUpTimeInstance) != 0 || vb[0].Value.Type != TypeTimeTicks || vb[0].Value.Uint < 1000 {
		t.Errorf("first varbind %+v, want sysUpTime.0 >= 1000 (master said 1000 at open)", vb[0])
	}
	if vb[1].Name.Compare(SnmpTrapOIDInstance) != 0 || vb[1].Value.OID.Compare(TrapFailOpen) != 0 {
		t.Errorf("second varbind %+v, want snmpTrapOID.0 = %v", vb[1], TrapFailOpen)
	}
	if string(vb[2].Value.Bytes) != "no listener" || vb[3].Value.Uint != 3 {
		t.Errorf("payload varbinds %+v", vb[2:])
	}
	m.write(&PDU{Header: Header{Type: PDUResponse, SessionID: 42, PacketID: p.PacketID}})
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	// A refusal by the master is an error.
	go func() { errc <- sa.Notify(context.Background(), TrapAlert, nil) }()
	p = m.read()
	m.write(&PDU{Header: Header{Type: PDUResponse, SessionID: 42, PacketID: p.PacketID}, Error: ErrProcessingError})
	if err := <-errc; err == nil {
		t.Fatal("refused Notify returned nil")
	}

	// The session breaking while a Notify waits ends the wait.
	go func() { errc <- sa.Notify(context.Background(), TrapAlert, nil) }()
	m.read()
	m.c.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Notify on a broken session returned nil")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Notify did not return when the session broke")
	}
	if err := sa.Notify(context.Background(), TrapAlert, nil); err != ErrNotConnected {
		t.Fatalf("Notify without a session: %v, want ErrNotConnected", err)
	}
}

// fakeSession runs a Subagent against a scripted master and completes the
// handshake, the master reporting sysUpTime 1000.
func fakeSession(t *testing.T, sock string) (*fakeMaster, *Subagent, func()) {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	sa := &Subagent{Provider: func() []Var { return testVars() }, Retry: time.Hour}
	if err := sa.Notify(context.Background(), TrapAlert, nil); err != ErrNotConnected {
		t.Fatalf("Notify before any session: %v, want ErrNotConnected", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sa.Run(ctx, sock) }()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMaster{t: t, c: c}
	open := m.read()
	m.write(&PDU{Header: Header{Type: PDUResponse, SessionID: 42, PacketID: open.PacketID}, SysUpTime: 1000})
	reg := m.read()
	m.write(&PDU{Header: Header{Type: PDUResponse, SessionID: 42, PacketID: reg.PacketID}})
	// Registered once the subagent answers a Get.
	m.write(&PDU{Header: Header{Type: PDUGet, SessionID: 42, PacketID: 500}, Ranges: []SearchRange{{Start: EnterpriseRoot.Append(1, 0)}}})
	if r := m.read(); r.PacketID != 500 {
		t.Fatalf("want Response to 500, got %+v", r)
	}
	return m, sa, func() {
		cancel()
		ln.Close()
		c.Close()
		<-done
	}
}
