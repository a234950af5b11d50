package console

import (
	"net/http"
	"strings"
	"testing"
)

// The health panel renders every component with its state and counts,
// for admins and auditors, with an error text from a peer kept inert; the
// API gives the same as JSON, and refuses a caller without a session.
func TestDashboardHealthPanel(t *testing.T) {
	comps := []Component{
		{Name: "Datapath", State: "ok", Summary: "attached to lan0 (tcx), fail closed", Counts: []Counter{{Name: "steered flows", Value: 12}}},
		{Name: "Exporter syslog", State: "fail", Summary: `failing since 10:00:00: dial tcp: <script>alert(1)</script> refused`},
		{Name: "SNMP", State: "off", Summary: "no AgentX socket configured"},
	}
	tc := newTestConsole(t, func(o *Options) { o.Components = func() []Component { return comps } })
	admin := tc.setup("admin", adminPW)
	resp, body := admin.get("/dashboard")
	if resp.StatusCode != 200 || !strings.Contains(body, `hx-get="/dashboard/health"`) {
		t.Fatalf("dashboard %d without the health panel's loader", resp.StatusCode)
	}
	resp, body = admin.get("/dashboard/health")
	if resp.StatusCode != 200 {
		t.Fatalf("health panel: %d", resp.StatusCode)
	}
	for _, want := range []string{`data-component="Datapath"`, `data-component="Exporter syslog"`, `data-component="SNMP"`,
		`<span class="hstate fail">fail</span></h2>`, "steered flows", "12", "&lt;script&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("health panel lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>alert") {
		t.Error("a peer's error text became markup")
	}
	if resp, _ := admin.api("POST", "/api/v1/users", map[string]string{"name": "audrey", "password": "auditor-password-1", "role": "auditor"}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create auditor: %d", resp.StatusCode)
	}
	aud, _, _ := tc.login("audrey", "auditor-password-1", nil)
	if resp, body := aud.get("/dashboard/health"); resp.StatusCode != 200 || !strings.Contains(body, "Exporter syslog") {
		t.Errorf("auditor health panel: %d", resp.StatusCode)
	}
	resp, js := aud.api("GET", "/api/v1/health", nil)
	if resp.StatusCode != 200 || js["worst"] != "fail" {
		t.Fatalf("API health: %d %v", resp.StatusCode, js)
	}
	if list, _ := js["components"].([]any); len(list) != 3 {
		t.Errorf("API components %v", js["components"])
	}
	anon := tc.client()
	if resp, _ := anon.api("GET", "/api/v1/health", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API health without a session: %d, want 401", resp.StatusCode)
	}
}
