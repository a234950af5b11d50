package appliance

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/appliance/console"
)

// The dashboard's health panel reports what is really wrong: a JSON lines
// exporter that cannot open its file and a syslog exporter whose receiver
// refuses fail with their errors and the events still to deliver; SNMP
// without snmpd fails with why; no datapath is "off"; the store commits.
// Once the receiver listens, the syslog exporter recovers to "ok".
func TestConsoleHealthComponents(t *testing.T) {
	state := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	syslogAddr := ln.Addr().String()
	ln.Close() // refused until the receiver below listens
	cfgPath := writeConfig(t, fmt.Sprintf(`state_dir: %s
management: {listen: %q}
transparent: {enabled: false}
activity:
  jsonl: {path: %s}
  syslog: {network: tcp, addr: %q}
snmp: {agentx_socket: %s, reconnect: 200ms}
`, state, freeAddr(t), filepath.Join(state, "no-such-dir", "events.jsonl"), syslogAddr, filepath.Join(state, "no-snmpd.sock")))
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a := runAppliance(t, cfg)
	for i := range 3 {
		if err := a.activity.store.Emit(activity.Event{Mode: activity.ModeTransparent, Host: "origin.lab", Path: fmt.Sprintf("/%d", i), Action: "allow"}); err != nil {
			t.Fatal(err)
		}
	}
	byName := func() map[string]console.Component {
		out := map[string]console.Component{}
		for _, c := range a.consoleComponents() {
			out[c.Name] = c
		}
		return out
	}
	wait := func(what string, ok func(map[string]console.Component) bool) map[string]console.Component {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := byName()
			if ok(got) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: components %+v", what, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	got := wait("failures reported", func(m map[string]console.Component) bool {
		return m["Exporter jsonl"].State == "fail" && m["Exporter syslog"].State == "fail" && m["SNMP"].State == "fail"
	})
	if s := got["Exporter jsonl"].Summary; !strings.Contains(s, "no such file or directory") {
		t.Errorf("jsonl summary %q does not say why", s)
	}
	if s := got["Exporter syslog"].Summary; !strings.Contains(s, "refused") {
		t.Errorf("syslog summary %q does not say why", s)
	}
	for _, name := range []string{"Exporter jsonl", "Exporter syslog"} {
		if c := got[name]; len(c.Counts) == 0 || c.Counts[0].Name != "events to deliver" || c.Counts[0].Value != 3 {
			t.Errorf("%s counts %+v, want 3 events to deliver", name, c.Counts)
		}
	}
	if s := got["SNMP"].Summary; !strings.Contains(s, "not connected to snmpd") {
		t.Errorf("SNMP summary %q", s)
	}
	if got["Datapath"].State != "off" || got["Event store"].State != "ok" || got["Fail-open"].State != "ok" {
		t.Errorf("datapath %+v, store %+v, fail-open %+v", got["Datapath"], got["Event store"], got["Fail-open"])
	}

	// The receiver comes up: the exporter delivers and is ok again.
	recv, err := net.Listen("tcp", syslogAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	go func() {
		for {
			c, err := recv.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = c.Read(make([]byte, 64<<10)); select {} }()
		}
	}()
	got = wait("syslog recovered", func(m map[string]console.Component) bool { return m["Exporter syslog"].State == "ok" })
	if c := got["Exporter syslog"]; c.Counts[0].Value != 0 || !strings.HasPrefix(c.Summary, "last delivery") {
		t.Errorf("recovered syslog exporter %+v", c)
	}
	if _, err := os.Stat(filepath.Join(state, "no-such-dir")); err == nil {
		t.Error("the jsonl exporter made its directory; the test needs it missing")
	}
}
