package appliance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// login signs in an existing console account (after a restart).
func (c *consoleClient) login(user, password string) {
	c.t.Helper()
	_, page := c.do("GET", "/login", "", nil)
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		c.t.Fatalf("login page without a form: %s", page)
	}
	form := url.Values{"csrf": {m[1]}, "user": {user}, "password": {password}}
	if code, body := c.do("POST", "/login", "application/x-www-form-urlencoded", strings.NewReader(form.Encode())); code != http.StatusSeeOther {
		c.t.Fatalf("login: %d %s", code, body)
	}
	_, s := c.api("GET", "/api/v1/session", nil)
	c.csrf, _ = s["csrf_token"].(string)
}

// setting is one setting of GET /api/v1/settings.
func (c *consoleClient) setting(key string) (map[string]any, map[string]any) {
	c.t.Helper()
	code, sv := c.api("GET", "/api/v1/settings", nil)
	if code != http.StatusOK {
		c.t.Fatalf("settings: %d %v", code, sv)
	}
	for _, g := range sv["groups"].([]any) {
		for _, s := range g.(map[string]any)["settings"].([]any) {
			if m := s.(map[string]any); m["key"] == key {
				return m, sv
			}
		}
	}
	c.t.Fatalf("no setting %s", key)
	return nil, nil
}

func (c *consoleClient) stageSetting(key, value string) {
	c.t.Helper()
	if code, m := c.api("POST", "/api/v1/settings", map[string]any{"key": key, "value": value}); code != http.StatusCreated {
		c.t.Fatalf("stage %s=%s: %d %v", key, value, code, m)
	}
}

// collector is a TCP syslog collector in the gateway namespace keeping
// everything it receives.
type collector struct {
	ln  net.Listener
	mu  sync.Mutex
	buf strings.Builder
}

func (c *collector) text() string { c.mu.Lock(); defer c.mu.Unlock(); return c.buf.String() }

func listenInGW(t *testing.T, l *e2eLab) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := l.GW.Do(func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func newCollector(t *testing.T, l *e2eLab) *collector {
	c := &collector{ln: listenInGW(t, l)}
	go func() {
		for {
			conn, err := c.ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				b := make([]byte, 32<<10)
				for {
					n, err := conn.Read(b)
					c.mu.Lock()
					c.buf.Write(b[:n])
					c.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return c
}

// TestConsoleSettingsLive runs the appliance binary with a syslog exporter
// aimed at a collector that is down and a JSON lines exporter, and changes
// them through the console's tray while it runs: the events recorded while
// the collector was down reach the new collector after the apply (the
// swapped exporter resumes from the old one's cursor), the JSON lines
// exporter writes its new file, the new retention deletes at once; a
// setting read at start is written and shown pending until the restart the
// console asks for, which under systemd (NOTIFY_SOCKET) drains the
// appliance and exits with status 75; the next start takes the value.
func TestConsoleSettingsLive(t *testing.T) {
	const consoleAddr = "198.18.1.1:9443"
	l := newE2ELab(t, "")
	down := listenInGW(t, l)
	downAddr := down.Addr().String()
	down.Close() // nothing listens there: the syslog exporter cannot deliver
	up := newCollector(t, l)
	jsonA, jsonB := filepath.Join(l.dir, "a.jsonl"), filepath.Join(l.dir, "b.jsonl")
	cfg, err := os.ReadFile(l.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf(`# exporters (this comment stays)
activity:
  syslog:
    addr: %s # the collector
    network: tcp
    format: rfc5424
  jsonl:
    path: %s
console:
  listen: %s
session:
  inspection_timeout: 30s
`, downAddr, jsonA, consoleAddr)...)
	if err := os.WriteFile(l.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	l.start()
	l.applianceCA()
	curl := func(tag string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := l.Client.Exec(ctx, "curl", "-sS", "-o", "/dev/null", "--cacert", filepath.Join(l.dir, "appliance-ca.pem"), "https://origin.lab/"+tag); err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
	}
	fileHas := func(path, s string) bool { b, _ := os.ReadFile(path); return strings.Contains(string(b), s) }
	for i := range 3 {
		curl(fmt.Sprintf("settings-queued-%d", i))
	}
	waitFor(t, "events in the first JSON lines file", 10*time.Second, func() bool { return fileHas(jsonA, "settings-queued-2") })

	c := newConsoleClient(t, l, consoleAddr)
	c.setupAdmin(filepath.Join(l.dir, "state"), "admin", "console-admin-password-1")
	if s, _ := c.setting("activity.syslog.addr"); s["applies"] != "reload" || s["editable"] != true || s["value"] != downAddr {
		t.Fatalf("syslog addr: %v", s)
	}
	c.stageSetting("activity.syslog.addr", up.ln.Addr().String())
	c.stageSetting("activity.jsonl.path", jsonB)
	// The loader refuses a negative retention: never staged.
	if code, m := c.api("POST", "/api/v1/settings", map[string]any{"key": "activity.max_age", "value": "-1h"}); code != http.StatusUnprocessableEntity {
		t.Errorf("negative max_age: %d %v", code, m)
	}
	c.apply()
	waitFor(t, "the events queued while the collector was down, at the new collector", 15*time.Second, func() bool {
		return strings.Contains(up.text(), "settings-queued-0") && strings.Contains(up.text(), "settings-queued-2")
	})
	if code, m := c.api("POST", "/api/v1/settings/exporters/jsonl/test", nil); code != http.StatusOK || !fileHas(jsonB, fmt.Sprint(m["host"])) || fileHas(jsonA, fmt.Sprint(m["host"])) {
		t.Errorf("test event through the new JSON lines file: %d %v", code, m)
	}
	if code, m := c.api("POST", "/api/v1/settings/exporters/syslog/test", nil); code != http.StatusOK || !strings.Contains(up.text(), fmt.Sprint(m["host"])) {
		t.Errorf("test event through the new syslog collector: %d %v", code, m)
	}
	b, _ := os.ReadFile(l.cfgPath)
	if !strings.Contains(string(b), "# exporters (this comment stays)") || !strings.Contains(string(b), "addr: "+up.ln.Addr().String()+" # the collector") {
		t.Errorf("the written file lost its comments:\n%s", b)
	}

	// Retention set on reload deletes at once.
	events := func() int {
		_, m := c.api("GET", "/api/v1/events?host=origin.lab", nil)
		ev, _ := m["events"].([]any)
		return len(ev)
	}
	if n := events(); n != 3 {
		t.Fatalf("%d events before retention, want 3", n)
	}
	time.Sleep(1100 * time.Millisecond)
	c.stageSetting("activity.max_age", "1s")
	c.apply()
	waitFor(t, "retention set on reload deleting the events", 10*time.Second, func() bool { return events() == 0 })

	// A setting read at start: written, pending, not in force.
	c.stageSetting("session.inspection_timeout", "45s")
	c.apply()
	s, sv := c.setting("session.inspection_timeout")
	if s["applies"] != "restart" || s["value"] != "30s" || s["pending"] != "45s" || !strings.Contains(fmt.Sprint(sv["restart_pending"]), "session.inspection_timeout") || sv["can_restart"] != false {
		t.Fatalf("restart setting after apply: %v; view %v", s, sv)
	}
	if code, m := c.api("POST", "/api/v1/restart", nil); code != http.StatusConflict || !strings.Contains(fmt.Sprint(m["error"]), "does not run under systemd") {
		t.Errorf("restart outside systemd: %d %v", code, m)
	}
	_, page := c.do("GET", "/settings", "", nil)
	if !strings.Contains(page, `id="restart-pending"`) || strings.Contains(page, `id="restart"`) {
		t.Error("the page does not show the pending restart, or offers a restart it cannot do")
	}

	// Under systemd: the console's restart drains and exits 75.
	l.stop(syscall.SIGTERM)
	sock := filepath.Join(l.dir, "notify.sock")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var notes strings.Builder
	var nmu sync.Mutex
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := nc.Read(b)
			if err != nil {
				return
			}
			nmu.Lock()
			notes.Write(b[:n])
			notes.WriteString("\n")
			nmu.Unlock()
		}
	}()
	t.Setenv("NOTIFY_SOCKET", sock)
	l.start()
	c = newConsoleClient(t, l, consoleAddr)
	c.login("admin", "console-admin-password-1")
	if _, sv := c.setting("session.inspection_timeout"); sv["can_restart"] != true {
		t.Fatalf("under systemd the console cannot restart: %v", sv)
	}
	// The start read the file: 45s is in force, nothing pending.
	if s, sv := c.setting("session.inspection_timeout"); s["value"] != "45s" || s["pending"] != nil || sv["restart_pending"] != nil {
		t.Fatalf("after the start: %v %v", s, sv)
	}
	c.stageSetting("session.inspection_timeout", "50s")
	c.apply()
	_, page = c.do("GET", "/settings", "", nil)
	if !strings.Contains(page, `id="restart"`) {
		t.Error("no restart button under systemd")
	}
	if code, m := c.api("POST", "/api/v1/restart", nil); code != http.StatusAccepted {
		t.Fatalf("restart: %d %v", code, m)
	}
	select {
	case <-l.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the appliance did not exit after the restart request")
	}
	var ee *exec.ExitError
	if !errors.As(l.procErr, &ee) || ee.ExitCode() != exitRestart {
		t.Fatalf("exit: %v, want status %d\n%s", l.procErr, exitRestart, l.log())
	}
	nmu.Lock()
	got := notes.String()
	nmu.Unlock()
	if !strings.Contains(got, "READY=1") || !strings.Contains(got, "STOPPING=1") {
		t.Errorf("notifications: %q", got)
	}
	if !strings.Contains(l.log(), "restart requested from the console") {
		t.Error("the log does not say why the appliance stopped")
	}
	// What systemd does next: start it again; the new value is in force.
	l.start()
	c = newConsoleClient(t, l, consoleAddr)
	c.login("admin", "console-admin-password-1")
	if s, _ := c.setting("session.inspection_timeout"); s["value"] != "50s" || s["pending"] != nil {
		t.Errorf("after the restart: %v", s)
	}
	if _, audit := c.api("GET", "/api/v1/audit", nil); !strings.Contains(fmt.Sprint(audit), "restart") {
		t.Error("no audit entry for the restart")
	}
}
