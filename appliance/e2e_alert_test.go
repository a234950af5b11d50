package appliance

import (
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/appliance/snmp"
	"github.com/portcullis-gw/portcullis/internal/lab"
)

const alertPolicy = `session_policies:
  - id: watch-lab-downloads
    filters:
      apps: [origin-lab]
      # The test drives native clients (Go, curl): a policy without
      # client_apps would apply to browsers only.
      client_apps: [browser, mobile_desktop]
    control: block_activities
    activities: [download_file]
    action: monitor
    alert: true
    severity: high
    message: A report was downloaded from the lab origin.
`

// TestE2EAlertsWithDailyLimit: a policy with alert: true produces an alert
// record, a syslog message and an SNMP notification per match, up to the
// per-policy daily limit; matches past it are counted, not sent.
func TestE2EAlertsWithDailyLimit(t *testing.T) {
	lab.RequireRoot(t)
	trapAddr, trapLog := startTestTrapd(t)
	sock, _ := startTestSnmpd(t, trapAddr)
	l := newE2ELab(t, "")
	polDir := filepath.Join(l.dir, "policies")
	if err := os.MkdirAll(polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(polDir, "alerts.yaml"), []byte(alertPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	msgs := l.syslogReceiver(t)
	b, _ := os.ReadFile(l.cfgPath)
	extra := "policy:\n  dir: " + polDir + "\nactivity:\n  alert_daily_limit: 2\n  syslog:\n    addr: 127.0.0.1:6514\n    roots: [" +
		filepath.Join(l.dir, "lab-ca.pem") + "]\nsnmp:\n  agentx_socket: " + sock + "\n  reconnect: 200ms\n"
	if err := os.WriteFile(l.cfgPath, append(b, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	l.start()
	c := l.client(netip.AddrPortFrom(originGood, 443), pool(l.applianceCA()), false)
	for range 3 {
		resp, body := fetch(t, c, "https://origin.lab/files/report.pdf")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("monitored download: %d %s", resp.StatusCode, body)
		}
	}

	// Two syslog alert messages, no third.
	var alerts int
	deadline := time.After(10 * time.Second)
collect:
	for alerts < 3 {
		select {
		case m := <-msgs:
			if m.MsgID == "alert" {
				alerts++
				if !strings.Contains(strings.Join(flatten(m.SD), " "), "watch-lab-downloads") {
					t.Errorf("alert message without the policy: %+v", m)
				}
			}
		case <-deadline:
			break collect
		}
	}
	if alerts != 2 {
		t.Errorf("%d syslog alert messages, want 2 (daily limit)", alerts)
	}
	// Two SNMP notifications naming the policy.
	want := "." + snmp.ObjAlertPolicyID.String() + `.0 = STRING: "watch-lab-downloads"`
	waitForFile(t, trapLog, 10*time.Second, []string{want})
	time.Sleep(500 * time.Millisecond)
	tl, _ := os.ReadFile(trapLog)
	if n := strings.Count(string(tl), want); n != 2 {
		t.Errorf("%d SNMP alert notifications, want 2:\n%s", n, tl)
	}
	l.stop(syscall.SIGTERM)

	st, err := activity.Open(filepath.Join(l.dir, "state", "activity.db"), activity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.SearchAlerts(activity.AlertQuery{PolicyID: "watch-lab-downloads"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Alerts) != 2 || page.Alerts[0].Severity != "high" || page.Alerts[0].App != "origin-lab" {
		t.Errorf("alert records: %+v", page.Alerts)
	}
}

func flatten(sd map[string]map[string]string) []string {
	var out []string
	for id, params := range sd {
		out = append(out, id)
		for k, v := range params {
			out = append(out, k+"="+v)
		}
	}
	return out
}
