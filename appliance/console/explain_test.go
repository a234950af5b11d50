package console

import (
	"net/http"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Explain decides a hand-written request with the editor's policies and
// the rest of the directory: access and session requests, the change
// being edited taken into account, bad samples and invalid policies
// refused with the reason; auditors may explain (it changes nothing).
func TestPolicyExplain(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	explain := func(c *client, body map[string]any) (int, map[string]any) {
		t.Helper()
		resp, m := c.api("POST", "/api/v1/policies/explain", body)
		return resp.StatusCode, m
	}
	download := map[string]any{"host": "origin.lab", "user": "alice@lab.example", "method": "GET", "path": "/files/report.pdf", "activity": "download_file"}
	status, m := explain(admin, map[string]any{"request": download})
	if status != 200 || m["action"] != "block" || m["type"] != "session" || !strings.Contains(m["explain"].(string), "no-lab-downloads") {
		t.Errorf("download under base.yaml: %d %v", status, m)
	}
	status, m = explain(admin, map[string]any{"request": map[string]any{"host": "origin.lab"}})
	if status != 200 || m["type"] != "access" || m["action"] == "block" {
		t.Errorf("access: %d %v", status, m)
	}
	// The file being edited replaces the one on disk.
	edited := strings.Replace(basePolicy, "action: block", "action: monitor", 1)
	status, m = explain(admin, map[string]any{"file": "base.yaml", "content": edited, "request": download})
	if status != 200 || m["action"] != "monitor" {
		t.Errorf("with the edit: %d %v", status, m)
	}
	status, m = explain(admin, map[string]any{"file": "base.yaml", "content": "access_policies: [{id: x, action: bogus}]", "request": download})
	if status != http.StatusUnprocessableEntity || m["problems"] == nil {
		t.Errorf("invalid policies: %d %v", status, m)
	}
	for _, bad := range []map[string]any{{"host": ""}, {"host": "a.lab", "client_app": "toaster"}, {"host": "a.lab", "kind": "teleport"},
		{"host": "a.lab", "source_ip": "nope"}, {"host": "a.lab", "type": "other"}} {
		if status, m := explain(admin, map[string]any{"request": bad}); status != http.StatusBadRequest || !strings.HasPrefix(m["error"].(string), "request: ") {
			t.Errorf("%v: %d %v", bad, status, m)
		}
	}
	if resp, _ := admin.api("POST", "/api/v1/policies/explain", map[string]any{"request": download, "extra": 1}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown field: %d", resp.StatusCode)
	}
	if resp, _ := admin.api("POST", "/api/v1/users", map[string]string{"name": "audrey", "password": auditorPW, "role": "auditor"}); resp.StatusCode != http.StatusCreated {
		t.Fatal("auditor")
	}
	aud, _, _ := tc.login("audrey", auditorPW, nil)
	if status, m := explain(aud, map[string]any{"request": download}); status != 200 || m["action"] != "block" {
		t.Errorf("auditor explain: %d %v", status, m)
	}
}

// The activity tools' and explain's endpoints are in the OpenAPI document.
func TestActivityToolsDocumented(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"get /events/tail", "get /searches", "post /searches", "delete /searches/{id}", "post /policies/explain"} {
		method, path, _ := strings.Cut(e, " ")
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("openapi.yaml lacks %s", e)
		}
	}
}
