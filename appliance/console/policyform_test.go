package console

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/internal/lab/browser"
	"github.com/portcullis-gw/portcullis/policy"
)

func fn(anyOf string, none ...string) FormNames {
	if none == nil {
		none = []string{}
	}
	return FormNames{AnyOf: any2(anyOf), NoneOf: none}
}

func any2(s string) []string { return strings.Split(s, ",") }

func fullFilters() FormFilters {
	return FormFilters{Apps: fn("origin-lab,chat-lab", "other-lab"), Users: fn("alice@lab.example", "bob@lab.example"),
		Groups: fn("staff", "contractors"), DeviceTags: fn("compliant", "valid_client_certificate"),
		ClientApps: fn("browser,mobile_desktop"), UserAgentTags: fn("outdated_os", "outdated_browser"),
		IPRanges: fn("198.18.0.0/15", "198.18.9.0/24"), IPTags: fn("corp", "vpn")}
}

var emptyNames = FormNames{AnyOf: []string{}, NoneOf: []string{}}

// formRoundTrip renders p, checks the YAML parses with the policy package
// and holds the enums by name, and parses it back into the same form.
func formRoundTrip(t *testing.T, admin *client, kind string, p FormPolicy, want ...string) string {
	t.Helper()
	resp, m := admin.api("POST", "/api/v1/policies/form/render", map[string]any{"kind": kind, "policy": p})
	if resp.StatusCode != 200 {
		t.Fatalf("render %s: %d %v", kind, resp.StatusCode, m)
	}
	y, _ := m["yaml"].(string)
	if !strings.HasPrefix(y, policyKey(kind)+":\n") {
		t.Errorf("render %s: YAML does not start with %s:\n%s", kind, policyKey(kind), y)
	}
	for _, w := range want {
		if !strings.Contains(y, w) {
			t.Errorf("render %s: YAML lacks %q:\n%s", kind, w, y)
		}
	}
	set, err := policy.Parse("form.yaml", []byte(y))
	if err != nil || set == nil || len(set.AccessPolicies)+len(set.SessionPolicies) != 1 {
		t.Fatalf("rendered YAML does not parse to one policy: %v\n%s", err, y)
	}
	resp, m = admin.api("POST", "/api/v1/policies/form/parse", map[string]any{"content": y, "id": p.ID})
	if resp.StatusCode != 200 || m["kind"] != kind {
		t.Fatalf("parse %s: %d %v", kind, resp.StatusCode, m)
	}
	b, _ := json.Marshal(m["policy"])
	var back FormPolicy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Errorf("round trip of the %s policy:\n got %+v\nwant %+v\nYAML:\n%s", kind, back, p, y)
	}
	return y
}

func TestPolicyFormRoundTrip(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)

	access := FormPolicy{ID: "lab-access", Name: "Lab access", Description: "who may reach the lab", Disabled: true,
		Filters: fullFilters(), Action: "block", Message: "No.", Severity: "high", Alert: true,
		Activities: emptyNames, Files: FormFiles{Names: emptyNames, Extensions: emptyNames, MIMETypes: emptyNames, Labels: emptyNames, Label: "any"},
		Content: FormContent{Detectors: []FormDetector{}, Match: "any"}}
	formRoundTrip(t, admin, "access", access, "action: block", "severity: high", "none_of:", "disabled: true")

	session := FormPolicy{ID: "lab-files", Name: "Lab files", Description: "protect lab files", Disabled: true,
		Filters: fullFilters(), Control: "download", Activities: fn("download_file", "print"),
		Files: FormFiles{Names: fn("*.pdf,report-*", "public-*"), Extensions: fn("pdf,docx", "txt"), MIMETypes: fn("application/pdf", "text/*"),
			MinSize: "1KiB", MaxSize: "10MiB", Label: "present", Labels: fn("Confidential", "Public")},
		Content: FormContent{Detectors: []FormDetector{{ID: "credit_card", MinCount: 3}, {ID: "iban"}}, Match: "all"},
		Action:  "protect", Message: "Protected.", Protect: FormProtect{Label: "Confidential", Encrypt: true, Unsupported: "allow"},
		Malware: true, Notice: true, ApplyIfUnscannable: true, Severity: "medium", Alert: true}
	formRoundTrip(t, admin, "session", session, "control: download", "action: protect", "label: present", "match: all",
		"min_size: 1KiB", "unsupported: allow", "min_count: 3")

	// Hostile strings stay strings: quoted, one policy, same text back.
	hostile := access
	hostile.ID = "evil: [x]"
	hostile.Name = "x\n  - id: injected\naction: allow"
	hostile.Message = "'; #{} & *ref !!python/object"
	hostile.Filters.Users = fn("- alice,key: value")
	y := formRoundTrip(t, admin, "access", hostile)
	if strings.Contains(y, "\n  - id: injected") {
		t.Errorf("a newline in the name became YAML structure:\n%s", y)
	}

	// Bad input: 400 with a reason naming the field.
	for _, bad := range []struct {
		body any
		want string
	}{
		{map[string]any{"kind": "other", "policy": map[string]any{"id": "x"}}, "kind"},
		{map[string]any{"kind": "access", "policy": map[string]any{"id": ""}}, "id"},
		{map[string]any{"kind": "access", "policy": map[string]any{"id": "x", "action": "explode"}}, "action"},
		{map[string]any{"kind": "session", "policy": map[string]any{"id": "x", "control": "nope"}}, "control"},
		{map[string]any{"kind": "session", "policy": map[string]any{"id": "x", "files": map[string]any{"max_size": "lots"}}}, "max_size"},
		{map[string]any{"kind": "access", "policy": map[string]any{"id": "x", "control": "download"}}, "session"},
		{map[string]any{"kind": "access", "policy": map[string]any{"id": "x", "bogus": 1}}, "bogus"},
		{"not an object", "body"},
	} {
		resp, m := admin.api("POST", "/api/v1/policies/form/render", bad.body)
		if msg, _ := m["error"].(string); resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, bad.want) {
			t.Errorf("render %v: %d %v, want 400 naming %q", bad.body, resp.StatusCode, m, bad.want)
		}
	}
	if resp, m := admin.api("POST", "/api/v1/policies/form/parse", map[string]any{"content": basePolicy, "id": "missing"}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("parse of a missing id: %d %v", resp.StatusCode, m)
	}
	if resp, m := admin.api("POST", "/api/v1/policies/form/add", map[string]any{"kind": "access", "policy": map[string]any{"id": "y"},
		"file": "x.yaml", "content": "access_policies: [\n"}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("add to a file that is not YAML: %d %v", resp.StatusCode, m)
	}

	// Add: a file without the key keeps its text and gets the policy
	// appended; a file with the key gets it in its list; both validate.
	simple := map[string]any{"id": "form-block", "filters": map[string]any{"apps": map[string]any{"any_of": []string{"origin-lab"}}}, "action": "block"}
	resp, m := admin.api("POST", "/api/v1/policies/form/add", map[string]any{"kind": "access", "policy": simple, "file": "base.yaml", "content": basePolicy})
	if resp.StatusCode != 200 || m["valid"] != true {
		t.Fatalf("add: %d %v", resp.StatusCode, m)
	}
	got, _ := m["content"].(string)
	if !strings.HasPrefix(got, basePolicy) || !strings.Contains(got, "access_policies:\n  - id: form-block") {
		t.Errorf("add to a file without access_policies:\n%s", got)
	}
	resp, m = admin.api("POST", "/api/v1/policies/form/add", map[string]any{"kind": "access", "policy": map[string]any{"id": "second", "filters": map[string]any{"users": map[string]any{"any_of": []string{"bob@lab.example"}}}, "action": "monitor"},
		"file": "base.yaml", "content": "# kept\n" + got})
	got2, _ := m["content"].(string)
	set, err := policy.Parse("base.yaml", []byte(got2))
	if resp.StatusCode != 200 || m["valid"] != true || err != nil || len(set.AccessPolicies) != 2 || set.AccessPolicies[1].ID != "second" || !strings.Contains(got2, "# kept") {
		t.Errorf("add to a file with access_policies: %d %v %v\n%s", resp.StatusCode, m["problems"], err, got2)
	}
	// A duplicate id is the validator's finding, not a silent success.
	resp, m = admin.api("POST", "/api/v1/policies/form/add", map[string]any{"kind": "access", "policy": simple, "file": "base.yaml", "content": got})
	if resp.StatusCode != 200 || m["valid"] != false {
		t.Errorf("add of a duplicate id: %d %v", resp.StatusCode, m)
	}

	// Auditors render and parse (read-only) but cannot add, and their
	// page has no Add button.
	if resp, m := admin.api("POST", "/api/v1/users", map[string]any{"name": "audrey", "password": auditorPW, "role": "auditor"}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create auditor: %d %v", resp.StatusCode, m)
	}
	auditor, _, _ := tc.login("audrey", auditorPW, nil)
	if resp, m := auditor.api("POST", "/api/v1/policies/form/render", map[string]any{"kind": "access", "policy": simple}); resp.StatusCode != 200 || m["yaml"] == nil {
		t.Errorf("auditor render: %d %v", resp.StatusCode, m)
	}
	if resp, _ := auditor.api("POST", "/api/v1/policies/form/parse", map[string]any{"content": basePolicy, "id": "no-lab-downloads"}); resp.StatusCode != 200 {
		t.Errorf("auditor parse: %d", resp.StatusCode)
	}
	if resp, _ := auditor.api("POST", "/api/v1/policies/form/add", map[string]any{"kind": "access", "policy": simple, "file": "base.yaml", "content": basePolicy}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor add: %d, want 403", resp.StatusCode)
	}
	_, page := auditor.get("/policies/edit?file=base.yaml")
	if !strings.Contains(page, `id="pf-kind"`) || strings.Contains(page, `id="pf-add"`) {
		t.Errorf("auditor's editor page: the form must be there without its Add button")
	}
}

// In Chromium: the form renders a live YAML preview, a policy of the file
// opens in it, and "Add to the file" puts the policy in the editor, whose
// validation then says Valid; "Save and apply now" applies the file through
// the tray.
func TestPolicyFormInChromium(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.srv.Certificate().Raw})
	b := browser.Start(t, browser.Options{TrustPEM: [][]byte{certPEM}})
	tab, _ := b.NewTab(t)
	ctx, cancel := context.WithTimeout(tab, 2*time.Minute)
	defer cancel()
	base := tc.srv.URL
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			dbg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify([document.getElementById("pf-status").textContent, document.getElementById("pf-yaml").textContent,
				[...document.querySelectorAll("#pf-fields [data-path]")].map(e => e.dataset.path + "=" + e.value).join(" "), document.getElementById("ed-status").textContent])`))
			t.Fatalf("%s: %v\n%s", what, err, dbg)
		}
	}
	field := func(label string) string {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(function(){var l=[...document.querySelectorAll("#pf-fields label")].find(l=>l.textContent===`+jsString(label)+`);return l?"#"+l.htmlFor:""})()`))
		if v == "" {
			t.Fatalf("no form field labelled %q", label)
		}
		return v
	}
	run("login", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), "admin"), chromedp.SendKeys(chromedp.CSS("#password"), adminPW),
		chromedp.Submit(chromedp.CSS("#password")), chromedp.WaitVisible(chromedp.CSS("#chart-action")))
	run("editor", chromedp.Navigate(base+"/policies/edit?file=base.yaml"), chromedp.WaitVisible(chromedp.CSS("#pf-kind")),
		waitFor(`document.getElementById("pf-yaml").textContent.startsWith("access_policies:")`))

	// Open the file's session policy in the form.
	run("open", chromedp.SetValue(chromedp.CSS("#pf-open"), "no-lab-downloads"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("pf-open").dispatchEvent(new Event("change"))`),
		waitFor(`document.getElementById("pf-kind").value === "session" && document.getElementById("pf-yaml").textContent.includes("id: no-lab-downloads")`))
	if v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(field("Control")))); v != "block_activities" {
		t.Errorf("opened policy's control %q", v)
	}

	// A new access policy from the form.
	run("kind", chromedp.SetValue(chromedp.CSS("#pf-kind"), "access"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("pf-kind").dispatchEvent(new Event("change"))`))
	id := field("Id")
	set := func(sel, v string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](`(function(){var e=document.querySelector(` + jsString(sel) + `);e.value=` + jsString(v) + `;e.dispatchEvent(new Event("input",{bubbles:true}))})()`)
	}
	run("fill", set(id, "form-made"), set(field("Name"), "Made: in the form"), set(field("Message"), ""),
		set("#pf-fields input[data-path='filters.users.any_of']", "bob@lab.example, carol@lab.example"),
		set("#pf-fields input[data-path='filters.apps.any_of']", "origin-lab"),
		chromedp.SetValue(chromedp.CSS(field("Action")), "monitor"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("pf-fields").dispatchEvent(new Event("change"))`),
		waitFor(`document.getElementById("pf-yaml").textContent.includes("action: monitor") && document.getElementById("pf-yaml").textContent.includes("id: form-made")`))
	y, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#pf-yaml")))
	for _, w := range []string{"access_policies:", "users:\n        - bob@lab.example\n        - carol@lab.example\n", `name: 'Made: in the form'`, "apps:\n        - origin-lab\n"} {
		if !strings.Contains(y, w) {
			t.Errorf("preview lacks %q:\n%s", w, y)
		}
	}
	run("add", chromedp.Click(chromedp.CSS("#pf-add")),
		waitFor(`document.getElementById("ed-content").value.includes("id: form-made")`),
		waitFor(`document.getElementById("ed-status").textContent.startsWith("Valid: 1 access and 1 session")`))
	res, err := chromedp.Run(ctx, chromedp.Evaluate[[]map[string]any](axeSource+`;axe.run(document.getElementById("pf"), {resultTypes: ["violations"]}).then(r =>
		r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({id: v.id, help: v.help})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res {
		t.Errorf("axe on the form: %v", v)
	}
	content, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#ed-content")))
	ps, err := policy.Parse("base.yaml", []byte(content))
	if err != nil || len(ps.AccessPolicies) != 1 || ps.AccessPolicies[0].Action != policy.ActionMonitor || len(ps.SessionPolicies) != 1 {
		t.Errorf("editor content after add (%v):\n%s", err, content)
	}
	// Save and apply now: through the tray, one revision, one reload.
	run("save now", chromedp.SendKeys(chromedp.CSS("#ed-summary"), "made in the form"), chromedp.Click(chromedp.CSS("#ed-save")),
		waitFor(`document.getElementById("ed-status").textContent.startsWith("Saved as revision")`))
	if st, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#ed-status"))); st != "Saved as revision 1 and applied: made in the form — added access policy form-made (monitor)" {
		t.Errorf("status after save: %q", st)
	}
	if b := mustRead(t, filepath.Join(tc.polDir, "base.yaml")); string(b) != content && string(b) != content+"\n" {
		t.Errorf("base.yaml after save:\n%s", b)
	}
	if revs, _ := tc.revs.list("base.yaml", 10); len(revs) != 1 || revs[0].Author != "admin" || tc.reloads.Load() != 1 {
		t.Errorf("revisions %+v, %d reloads", revs, tc.reloads.Load())
	}
	if tr := changesOf(admin.tray()); len(tr) != 0 {
		t.Errorf("pending after save now: %v", tr)
	}
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestPolicyFormDocumented(t *testing.T) {
	var doc struct {
		Paths      map[string]map[string]any `yaml:"paths"`
		Components struct {
			Schemas map[string]any `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/policies/form/render", "/policies/form/add", "/policies/form/parse"} {
		if _, ok := doc.Paths[p]["post"]; !ok {
			t.Errorf("openapi.yaml lacks post %s", p)
		}
	}
	if doc.Components.Schemas["PolicyForm"] == nil {
		t.Errorf("openapi.yaml lacks the PolicyForm schema")
	}
}
