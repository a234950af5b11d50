package console

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/internal/lab/browser"
)

// TestDevicesSettingsInChromium drives the devices and settings pages in
// headless Chromium under the console's CSP: a device CA uploaded as a
// file through the page's form, applied from the pending changes, shown
// with its fingerprint; a pass-through entry removed; a setting staged and
// applied; "send test event" through a real JSON lines exporter; an
// auditor sees both pages without any change form. axe-core finds no
// serious or critical violation on either page; screenshots go under the
// test's temp dir (or PORTCULLIS_SCREENSHOTS).
func TestDevicesSettingsInChromium(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(cfgFile, []byte(settingsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	jsonl := filepath.Join(dir, "events.jsonl")
	applCA := newTestCA(t, "Portcullis appliance CA", true, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	pass := &fakePassThrough{entries: []PassThroughEntry{{Host: "pinned.example.com", Family: "okhttp", Expires: time.Now().Add(time.Hour)},
		{Host: "<script>alert(1)</script>.example", Family: "curl", Expires: time.Now().Add(2 * time.Hour)}}}
	var restarts atomic.Int32
	snmpFake := &fakeSNMPUsers{}
	tc := newTestConsole(t, func(o *Options) {
		o.Devices = &DevicesOptions{Dir: filepath.Join(o.StateDir, "devices"), CheckSet: checkSetX509, Live: func() bool { return true },
			ApplianceCA: func() []byte { return applCA.pem }, PassThrough: pass.list, RemovePassThrough: pass.remove, StaticBypass: []string{"*.bank.example"}}
		o.Settings = &SettingsOptions{ConfigFile: cfgFile, Validate: validateLimit, Exporters: func() []string { return []string{"jsonl"} },
			Current: func() []SettingGroup {
				b, _ := os.ReadFile(cfgFile)
				var v string
				if i := strings.Index(string(b), "alert_daily_limit: "); i >= 0 {
					v = strings.Fields(string(b)[i+len("alert_daily_limit: "):])[0]
				}
				return []SettingGroup{{Name: "Alerts", Settings: []Setting{{Key: "activity.alert_daily_limit", Label: "Alerts per policy and UTC day", Value: v, Applies: "reload"}}},
					{Name: "Retention", Settings: []Setting{{Key: "activity.max_age", Label: "Delete events older than", Value: "2160h", Applies: "restart", Hint: "0: keep.", Pending: "720h"}}}}
			},
			RestartHow: func() string { return "Under systemd: the appliance drains and systemd starts it again." },
			Restart:    func() error { restarts.Add(1); return nil }}
		o.SNMPUsers = snmpFake.options()
	})
	ctxExp, cancelExp := context.WithCancel(context.Background())
	expDone := make(chan struct{})
	go func() {
		_ = (&activity.JSONLines{Store: tc.store, Path: jsonl, Poll: 20 * time.Millisecond}).Run(ctxExp)
		close(expDone)
	}()
	t.Cleanup(func() { cancelExp(); <-expDone })
	admin := tc.setup("admin", adminPW)
	if resp, m := admin.api("POST", "/api/v1/users", map[string]any{"name": "audrey", "password": auditorPW, "role": "auditor"}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create auditor: %d %v", resp.StatusCode, m)
	}
	deviceCA := newTestCA(t, "Corp Device CA", true, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	caFile := filepath.Join(dir, "corp-device-ca.pem")
	if err := os.WriteFile(caFile, deviceCA.pem, 0o644); err != nil {
		t.Fatal(err)
	}

	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.srv.Certificate().Raw})
	b := browser.Start(t, browser.Options{TrustPEM: [][]byte{certPEM}})
	tab, _ := b.NewTab(t)
	ctx, cancel := context.WithTimeout(tab, 4*time.Minute)
	defer cancel()
	shots := os.Getenv("PORTCULLIS_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	base := tc.srv.URL
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("%s: %v\n%s", what, err, clipRunes(html, 3000))
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	shot := func(name string) { t.Helper(); screenshot(t, ctx, shots, name) }
	axe := func(page string) { t.Helper(); axeCheck(t, ctx, page) }
	login := func(user, pw string) {
		t.Helper()
		run("login "+user, chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#password")),
			chromedp.SendKeys(chromedp.CSS("#user"), user), chromedp.SendKeys(chromedp.CSS("#password"), pw),
			chromedp.Submit(chromedp.CSS("#password")), chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"]`)))
	}

	login("admin", adminPW)
	run("devices", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(chromedp.CSS("#appliance-ca")))
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script").length`)); n != 0 {
		t.Error("a pass-through host rendered as a script")
	}
	if !strings.Contains(text("#appliance-ca"), fingerprint(applCA.cert.Raw)) {
		t.Errorf("appliance CA facts: %q", text("#appliance-ca"))
	}
	axe("devices")
	shot("devices-01")

	// Upload the CA file through the form, apply it from the tray.
	run("upload", chromedp.SetUploadFiles(chromedp.CSS("#ca-file"), []string{caFile}), chromedp.SendKeys(chromedp.CSS("#ca-note"), "corp laptops"),
		chromedp.Click(chromedp.CSS("#ca-stage")), waitFor(`location.search.includes("done=staged")`))
	if !strings.Contains(text("main"), `corp laptops — device CA "Corp Device CA"`) {
		t.Errorf("pending change not shown on the devices page")
	}
	run("tray", chromedp.Navigate(base+"/changes"), chromedp.WaitVisible(chromedp.CSS("#tray-apply")))
	shot("devices-02-pending")
	run("apply", chromedp.Click(chromedp.CSS("#tray-apply")), waitFor(`location.search.includes("done=applied")`),
		chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(chromedp.CSS("#device-cas")))
	if cas := text("#device-cas tbody"); !strings.Contains(cas, "CN=Corp Device CA") || !strings.Contains(cas, fingerprint(deviceCA.cert.Raw)) || !strings.Contains(cas, "uploaded") {
		t.Errorf("device CAs after apply: %q", cas)
	}
	// Remove a learnt pass-through entry.
	run("remove entry", chromedp.Click(chromedp.CSS(`tr[data-host="pinned.example.com"] button`)), waitFor(`location.search.includes("done=removed")`))
	if strings.Contains(text("#passthrough"), "pinned.example.com") || len(pass.list()) != 1 {
		t.Errorf("entry not removed: %q", text("#passthrough"))
	}
	axe("devices (after upload)")
	shot("devices-03-uploaded")

	// Settings: stage, apply, test event.
	run("settings", chromedp.Navigate(base+"/settings"), chromedp.WaitVisible(chromedp.CSS(`tr[data-key="activity.alert_daily_limit"]`)))
	axe("settings")
	shot("settings-01")
	run("stage setting", chromedp.SetValue(chromedp.CSS(`tr[data-key="activity.alert_daily_limit"] input[name="value"]`), "250"),
		chromedp.Click(chromedp.CSS(`tr[data-key="activity.alert_daily_limit"] button`)), waitFor(`location.search.includes("done=staged")`))
	if !strings.Contains(text(`tr[data-key="activity.alert_daily_limit"]`), "pending: 250") {
		t.Error("staged value not shown")
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('tr[data-key="activity.max_age"] form').length`)); n != 1 ||
		!strings.Contains(text(`tr[data-key="activity.max_age"]`), "at restart") {
		t.Error("a restart-only setting has no form, or is not marked as applying at restart")
	}
	run("apply setting", chromedp.Navigate(base+"/changes"), chromedp.WaitVisible(chromedp.CSS("#tray-apply")), chromedp.Click(chromedp.CSS("#tray-apply")),
		waitFor(`location.search.includes("done=applied")`))
	if b, _ := os.ReadFile(cfgFile); !strings.Contains(string(b), "alert_daily_limit: 250 # was 50") {
		t.Errorf("config after apply:\n%s", b)
	}
	run("test event", chromedp.Navigate(base+"/settings"), chromedp.WaitVisible(chromedp.CSS("#test-jsonl")), chromedp.Click(chromedp.CSS("#test-jsonl")),
		chromedp.WaitVisible(chromedp.CSS("#test-result")))
	if r := text("#test-result"); !strings.Contains(r, "delivered through jsonl") {
		t.Errorf("test event: %q", r)
	}
	axe("settings (test result)")
	shot("settings-02-test-event")

	// SNMPv3 users: added through the form, listed, the passphrases gone.
	run("snmp user", chromedp.Navigate(base+"/settings"), chromedp.WaitVisible(chromedp.CSS("#snmp-add")),
		chromedp.SetValue(chromedp.CSS("#snmp-name"), "nms"), chromedp.SetValue(chromedp.CSS("#snmp-auth"), "SHA-512"),
		chromedp.SetValue(chromedp.CSS("#snmp-authpw"), "nms-auth-passphrase"), chromedp.SetValue(chromedp.CSS("#snmp-privpw"), "nms-priv-passphrase"),
		chromedp.Click(chromedp.CSS("#snmp-add")), waitFor(`location.search.includes("done=snmp-user")`))
	if row := text(`tr[data-snmp-user="nms"]`); !strings.Contains(row, "SHA-512") || !strings.Contains(row, "PORTCULLIS-MIB") {
		t.Errorf("SNMP user row: %q", row)
	}
	if got := snmpFake.added(); len(got) != 1 || got[0].AuthPassphrase != "nms-auth-passphrase" || got[0].PrivPassphrase != "nms-priv-passphrase" || got[0].Auth != "SHA-512" {
		t.Errorf("SNMP user the appliance got: %+v", got)
	}
	if html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, "nms-auth-passphrase") {
		t.Error("the page shows a passphrase after the add")
	}
	if !strings.Contains(text("#restart-pending"), "activity.max_age") {
		t.Error("the pending restart is not shown")
	}
	axe("settings (SNMP users, restart pending)")
	shot("settings-03-snmp-restart")
	run("restart", chromedp.Click(chromedp.CSS("#restart")), waitFor(`location.search.includes("done=restarting")`))
	if restarts.Load() != 1 {
		t.Errorf("restart asked %d times", restarts.Load())
	}

	// The auditor: both pages, no change forms.
	run("logout", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#password")))
	login("audrey", auditorPW)
	for _, p := range []string{"/devices", "/settings"} {
		run("auditor "+p, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.CSS("h1")))
		n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('main form').length`))
		if n != 0 {
			t.Errorf("auditor %s: %d forms", p, n)
		}
		axe("auditor " + p)
		shot(fmt.Sprintf("auditor%s", strings.ReplaceAll(p, "/", "-")))
	}
	// Tablet width: no sideways scroll.
	run("tablet", chromedp.EmulateViewport(820, 1180), chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(chromedp.CSS("#device-cas")))
	shot("devices-tablet")
	if w, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 820 {
		t.Errorf("tablet: devices page is %d px wide", w)
	}
}

// fakeSNMPUsers stands in for the appliance's snmpd fragment (the console
// may not import it; appliance/snmpuserswire_test.go runs the real one
// against snmpd).
type fakeSNMPUsers struct {
	mu  sync.Mutex
	ins []SNMPUserInput
}

func (f *fakeSNMPUsers) added() []SNMPUserInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ins)
}

func (f *fakeSNMPUsers) options() *SNMPUsersOptions {
	return &SNMPUsersOptions{File: "/var/lib/portcullis/snmp-users.conf",
		List: func() ([]SNMPUser, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			var out []SNMPUser
			for _, in := range f.ins {
				out = append(out, SNMPUser{Name: in.Name, Auth: in.Auth, Priv: in.Priv, View: in.View, Added: time.Now().UTC()})
			}
			return out, nil
		},
		Add: func(in SNMPUserInput) (string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.ins = append(f.ins, in)
			return "written", nil
		},
		Remove: func(string) (string, error) { return "", fmt.Errorf("%w: not in this test", ErrSNMPUser) },
	}
}
