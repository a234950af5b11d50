package console

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

const settingsConfig = `# my appliance
state_dir: /var/lib/portcullis
activity:
  # alerts per policy and day
  alert_daily_limit: 100 # was 50
  max_age: 2160h
`

type settingsFixture struct {
	tc      *testConsole
	file    string
	jsonl   string
	syslog  net.Listener
	admin   *client
	auditor *client
}

// validateLimit stands in for the appliance's loader (the console may not
// import it): the YAML must parse and alert_daily_limit be at least 1.
func validateLimit(b []byte) error {
	var doc struct {
		Activity struct {
			Limit *int `yaml:"alert_daily_limit"`
		} `yaml:"activity"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	if doc.Activity.Limit != nil && *doc.Activity.Limit < 1 {
		return fmt.Errorf("portcullis.yaml: activity.alert_daily_limit: must be at least 1")
	}
	return nil
}

func newSettingsFixture(t *testing.T) *settingsFixture {
	t.Helper()
	dir := t.TempDir()
	f := &settingsFixture{file: filepath.Join(dir, "portcullis.yaml"), jsonl: filepath.Join(dir, "events.jsonl")}
	if err := os.WriteFile(f.file, []byte(settingsConfig), 0o640); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.syslog, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := f.syslog.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { f.syslog.Close() })
	f.tc = newTestConsole(t, func(o *Options) {
		o.Settings = &SettingsOptions{ConfigFile: f.file, Validate: validateLimit,
			Exporters:  func() []string { return []string{"jsonl", "syslog", "syslog-down"} },
			RestartHow: func() string { return "Not under systemd: stop it and start it again." },
			Current: func() []SettingGroup {
				b, _ := os.ReadFile(f.file)
				var doc struct {
					Activity struct {
						Limit  int    `yaml:"alert_daily_limit"`
						MaxAge string `yaml:"max_age"`
					} `yaml:"activity"`
				}
				_ = yaml.Unmarshal(b, &doc)
				return []SettingGroup{{Name: "Alerts", Settings: []Setting{{Key: "activity.alert_daily_limit", Label: "Alerts per policy and day", Value: fmt.Sprint(doc.Activity.Limit), Applies: "reload"}}},
					{Name: "Retention", Settings: []Setting{{Key: "activity.max_age", Label: "Delete events older than", Value: doc.Activity.MaxAge, Applies: "restart"},
						{Key: "suffix.saml", Label: "SAML IdPs", Value: "[]", Applies: "restart", Derived: true}}}}
			}}
	})
	// Real exporters on the test store, each with its own cursor.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	exps := []func(context.Context) error{
		(&activity.JSONLines{Store: f.tc.store, Path: f.jsonl, Poll: 20 * time.Millisecond}).Run,
		(&activity.Syslog{Store: f.tc.store, Network: "tcp", Addr: f.syslog.Addr().String(), Format: "rfc5424"}).Run,
		// A collector that is not there: nothing listens on this port.
		(&activity.Syslog{Store: f.tc.store, Sink: "syslog-down", Network: "tcp", Addr: closedPort(t), Format: "rfc5424"}).Run,
	}
	for _, run := range exps {
		go func() { _ = run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range exps {
			<-done
		}
	})
	f.admin = f.tc.setup("admin", adminPW)
	resp, m := f.admin.api("POST", "/api/v1/users", map[string]any{"name": "audrey", "password": auditorPW, "role": "auditor"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create auditor: %d %v", resp.StatusCode, m)
	}
	var r *http.Response
	if f.auditor, r, _ = f.tc.login("audrey", auditorPW, nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("auditor login: %d", r.StatusCode)
	}
	return f
}

func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A setting the appliance applies on reload is staged, validated, written
// with the rest of the file (comments included) kept, and reloaded; a value
// the loader refuses never reaches the file; a restart-only setting is
// staged with its summary saying so, and a derived one is not editable; a
// hand edit after staging is a conflict; auditors change nothing.
func TestSettingsThroughTray(t *testing.T) {
	f := newSettingsFixture(t)
	admin := f.admin
	_, sv := admin.api("GET", "/api/v1/settings", nil)
	groups := sv["groups"].([]any)
	lim := groups[0].(map[string]any)["settings"].([]any)[0].(map[string]any)
	age := groups[1].(map[string]any)["settings"].([]any)[0].(map[string]any)
	secret := groups[1].(map[string]any)["settings"].([]any)[1].(map[string]any)
	if lim["editable"] != true || lim["value"] != "100" || age["editable"] != true || age["applies"] != "restart" || secret["editable"] != false {
		t.Fatalf("settings: %v", groups)
	}
	if resp, m := admin.api("POST", "/api/v1/settings", map[string]any{"key": "suffix.saml", "value": "[]"}); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(fmt.Sprint(m["error"]), "cannot be edited") {
		t.Errorf("derived setting: %d %v", resp.StatusCode, m)
	}
	// The console cannot restart this appliance: 409 with how to.
	if resp, m := admin.api("POST", "/api/v1/restart", nil); resp.StatusCode != http.StatusConflict || !strings.Contains(fmt.Sprint(m["error"]), "stop it and start it") {
		t.Errorf("restart: %d %v", resp.StatusCode, m)
	}
	if resp, m := admin.api("POST", "/api/v1/settings", map[string]any{"key": "activity.alert_daily_limit", "value": "0"}); resp.StatusCode != http.StatusUnprocessableEntity ||
		!strings.Contains(fmt.Sprint(m["error"]), "activity.alert_daily_limit: must be at least 1") {
		t.Errorf("invalid value: %d %v", resp.StatusCode, m)
	}
	if resp, m := admin.api("POST", "/api/v1/settings", map[string]any{"key": "activity.alert_daily_limit", "value": "[1, 2"}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed value: %d %v", resp.StatusCode, m)
	}
	for _, c := range []struct{ method, path string }{{"POST", "/api/v1/settings"}, {"POST", "/api/v1/settings/exporters/jsonl/test"}, {"POST", "/api/v1/restart"}} {
		if resp, _ := f.auditor.api(c.method, c.path, map[string]any{"key": "activity.alert_daily_limit", "value": "7"}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("auditor %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	_, page := f.auditor.get("/settings")
	if strings.Contains(page, `action="/settings"`) || strings.Contains(page, "Send test event") {
		t.Error("the auditor's settings page has change forms")
	}
	if b, _ := os.ReadFile(f.file); string(b) != settingsConfig {
		t.Fatalf("file changed before apply: %s", b)
	}

	resp, m := admin.api("POST", "/api/v1/settings", map[string]any{"key": "activity.alert_daily_limit", "value": "250", "note": "busy week"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("stage: %d %v", resp.StatusCode, m)
	}
	tv := admin.tray()
	ch := changesOf(tv)[0]
	if ch["summary"] != "busy week — setting activity.alert_daily_limit: 100 → 250" || !strings.Contains(ch["diff"].(string), "+  alert_daily_limit: 250 # was 50") {
		t.Errorf("staged: %v\n%s", ch["summary"], ch["diff"])
	}
	_, page = admin.get("/settings")
	if !strings.Contains(page, "pending: 250") {
		t.Error("the settings page does not show the pending value")
	}
	reloads := f.tc.reloads.Load()
	if code, m := admin.applyTray(""); code != http.StatusOK {
		t.Fatalf("apply: %d %v", code, m)
	}
	if f.tc.reloads.Load() != reloads+1 {
		t.Error("no reload")
	}
	b, _ := os.ReadFile(f.file)
	for _, want := range []string{"# my appliance", "# alerts per policy and day", "alert_daily_limit: 250 # was 50", "max_age: 2160h", "state_dir: /var/lib/portcullis"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("written file lacks %q:\n%s", want, b)
		}
	}
	if fi, _ := os.Stat(f.file); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the file's 0640 kept", fi.Mode().Perm())
	}

	// Staged, then the file is edited by hand: the apply is refused.
	if resp, m := admin.api("POST", "/api/v1/settings", map[string]any{"key": "activity.alert_daily_limit", "value": "300"}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("stage: %d %v", resp.StatusCode, m)
	}
	hand := strings.Replace(string(b), "max_age: 2160h", "max_age: 720h", 1)
	if err := os.WriteFile(f.file, []byte(hand), 0o640); err != nil {
		t.Fatal(err)
	}
	if code, m := admin.applyTray(""); code != http.StatusConflict {
		t.Errorf("apply over a hand edit: %d %v", code, m)
	}
	if b, _ := os.ReadFile(f.file); string(b) != hand {
		t.Error("the hand edit was overwritten")
	}
	for _, ch := range changesOf(admin.tray()) {
		if resp, _ := admin.api("DELETE", fmt.Sprintf("/api/v1/tray/changes/%v", ch["id"]), nil); resp.StatusCode >= 300 {
			t.Fatalf("discard: %d", resp.StatusCode)
		}
	}
	if resp, m := admin.api("POST", "/api/v1/settings", map[string]any{"key": "activity.max_age", "value": "24h"}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("stage a restart setting: %d %v", resp.StatusCode, m)
	}
	if ch := changesOf(admin.tray())[0]; ch["summary"] != "setting activity.max_age: 720h → 24h (applies at restart)" {
		t.Errorf("restart setting summary: %v", ch["summary"])
	}
	if code, m := admin.applyTray(""); code != http.StatusOK {
		t.Fatalf("apply: %d %v", code, m)
	}
	if b, _ := os.ReadFile(f.file); !strings.Contains(string(b), "max_age: 24h") {
		t.Errorf("restart setting not written:\n%s", b)
	}
}

// "Send test event" goes through the real exporter and reports whether it
// was delivered.
func TestSettingsTestEvent(t *testing.T) {
	testExporterTimeout = 3 * time.Second
	t.Cleanup(func() { testExporterTimeout = 15 * time.Second })
	f := newSettingsFixture(t)
	resp, m := f.admin.api("POST", "/api/v1/settings/exporters/jsonl/test", nil)
	if resp.StatusCode != http.StatusOK || m["delivered"] != true {
		t.Fatalf("jsonl test: %d %v", resp.StatusCode, m)
	}
	if b, _ := os.ReadFile(f.jsonl); !strings.Contains(string(b), m["host"].(string)) || !strings.Contains(string(b), m["event_id"].(string)) {
		t.Errorf("the test event %v is not in the exported file:\n%s", m, b)
	}
	if resp, m := f.admin.api("POST", "/api/v1/settings/exporters/syslog/test", nil); resp.StatusCode != http.StatusOK || m["delivered"] != true {
		t.Errorf("syslog test: %d %v", resp.StatusCode, m)
	}
	resp, m = f.admin.api("POST", "/api/v1/settings/exporters/syslog-down/test", nil)
	if resp.StatusCode != http.StatusBadGateway || m["delivered"] != false || !strings.Contains(fmt.Sprint(m["error"]), "not delivered within 3s") {
		t.Errorf("test through a collector that is down: %d %v", resp.StatusCode, m)
	}
	if resp, _ := f.admin.api("POST", "/api/v1/settings/exporters/kafka/test", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unconfigured exporter: %d", resp.StatusCode)
	}
	// The page's button reports the same.
	_, page := f.admin.get("/settings")
	resp, body := f.admin.post("/settings/test-exporter", map[string][]string{"csrf": {formToken(t, page)}, "exporter": {"jsonl"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "delivered through jsonl") {
		t.Errorf("page test: %d", resp.StatusCode)
	}
	if _, audit := f.admin.api("GET", "/api/v1/audit", nil); !strings.Contains(fmt.Sprint(audit), "exporter_test") {
		t.Error("no audit entry for the test")
	}
}
