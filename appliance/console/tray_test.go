package console

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-gw/portcullis/policy"
)

// enforcer is what the appliance's reload does with the policy directory:
// parse every file, compile with the capabilities, swap the engine. The
// tests ask it for decisions, so a switch is checked where it matters.
type enforcer struct {
	dir    string
	engine atomic.Pointer[policy.Engine]
	loads  atomic.Int32
}

func (e *enforcer) reload() error {
	files := map[string][]byte{}
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		return err
	}
	for _, f := range ents {
		if strings.HasSuffix(f.Name(), ".yaml") && !strings.HasPrefix(f.Name(), ".") {
			b, err := os.ReadFile(filepath.Join(e.dir, f.Name()))
			if err != nil {
				return err
			}
			files[f.Name()] = b
		}
	}
	set, err := parseSet(files)
	if err != nil {
		return err
	}
	eng, err := policy.CompileFor(set, policy.Capabilities{ControlScript: true})
	if err != nil {
		return err
	}
	e.engine.Store(eng)
	e.loads.Add(1)
	return nil
}

// download is the decision for alice downloading a file from the lab.
func (e *enforcer) download(t *testing.T) string {
	t.Helper()
	d := e.engine.Load().Session(&policy.SessionRequest{Host: "origin.lab", Method: "GET", Path: "/files/report.pdf", Kind: policy.KindDownload,
		Subject: policy.Subject{User: "alice@lab.example", ClientApp: policy.ClientBrowser, SourceIP: netip.MustParseAddr("198.18.1.2")}})
	if w := d.WinningPolicy(); w != nil {
		return d.Action.String() + " by " + w.ID
	}
	return d.Action.String()
}

// newEnforcedConsole is a test console whose reload compiles the directory.
func newEnforcedConsole(t *testing.T, mod func(*Options)) (*testConsole, *enforcer) {
	t.Helper()
	enf := &enforcer{}
	tc := newTestConsole(t, func(o *Options) {
		enf.dir = o.PolicyDir
		o.Reload = enf.reload
		if mod != nil {
			mod(o)
		}
	})
	if err := enf.reload(); err != nil {
		t.Fatal(err)
	}
	return tc, enf
}

func (c *client) tray() map[string]any {
	c.t.Helper()
	resp, m := c.api("GET", "/api/v1/tray", nil)
	if resp.StatusCode != 200 {
		c.t.Fatalf("tray: %d %v", resp.StatusCode, m)
	}
	return m
}

func (c *client) stage(body map[string]any) (int, map[string]any) {
	c.t.Helper()
	resp, m := c.api("POST", "/api/v1/tray/changes", body)
	return resp.StatusCode, m
}

func (c *client) applyTray(note string) (int, map[string]any) {
	c.t.Helper()
	v := c.tray()["version"].(float64)
	resp, m := c.api("POST", "/api/v1/tray/apply", map[string]any{"version": v, "note": note})
	return resp.StatusCode, m
}

func changesOf(m map[string]any) []map[string]any {
	var out []map[string]any
	for _, c := range m["changes"].([]any) {
		out = append(out, c.(map[string]any))
	}
	return out
}

// Enable/disable and monitor-only through the tray: staged changes show
// their diff and summary, change nothing until applied, compose on one
// file, can be discarded one by one; apply writes once, reloads once,
// keeps a revision, and the engine decides differently afterwards.
func TestTraySwitchesChangeEnforcement(t *testing.T) {
	tc, enf := newEnforcedConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	if got := enf.download(t); got != "block by no-lab-downloads" {
		t.Fatalf("before: %s", got)
	}
	code, m := admin.stage(map[string]any{"kind": "monitor_only", "policy": "no-lab-downloads", "on": true, "note": "pilot week"})
	if code != http.StatusCreated || m["file"] != "base.yaml" {
		t.Fatalf("stage monitor-only: %d %v", code, m)
	}
	if code, m = admin.stage(map[string]any{"kind": "policy_enabled", "policy": "no-lab-downloads", "enabled": false}); code != http.StatusCreated {
		t.Fatalf("stage disable: %d %v", code, m)
	}
	ch := changesOf(admin.tray())
	if len(ch) != 2 || ch[0]["summary"] != "pilot week — policy no-lab-downloads: monitor-only on (action block → monitor)" ||
		!strings.Contains(ch[0]["diff"].(string), "-    action: block\n+    action: monitor") ||
		ch[1]["summary"] != "policy no-lab-downloads: disabled" || !strings.Contains(ch[1]["diff"].(string), "+    disabled: true") {
		t.Fatalf("staged: %v", ch)
	}
	// Staged is not applied.
	if b, _ := os.ReadFile(filepath.Join(tc.polDir, "base.yaml")); string(b) != basePolicy || enf.download(t) != "block by no-lab-downloads" {
		t.Fatalf("staging changed the file or the decision: %q", b)
	}
	// Discard the disable; the monitor-only change stays.
	resp, _ := admin.api("DELETE", fmt.Sprintf("/api/v1/tray/changes/%v", ch[1]["id"]), nil)
	if resp.StatusCode != 200 || len(changesOf(admin.tray())) != 1 {
		t.Fatalf("discard: %d", resp.StatusCode)
	}
	// An apply must name the version its admin reviewed.
	if resp, m := admin.api("POST", "/api/v1/tray/apply", map[string]any{"version": 1}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("stale apply: %d %v", resp.StatusCode, m)
	}
	loads := enf.loads.Load()
	code, m = admin.applyTray("")
	if code != 200 || m["reloaded"] != true || len(m["revisions"].([]any)) != 1 || m["savepoint"] != nil {
		t.Fatalf("apply: %d %v", code, m)
	}
	if enf.loads.Load() != loads+1 {
		t.Fatalf("%d reloads", enf.loads.Load()-loads)
	}
	if got := enf.download(t); got != "monitor by no-lab-downloads" {
		t.Fatalf("monitor-only on: %s", got)
	}
	rev := m["revisions"].([]any)[0].(map[string]any)
	if rev["author"] != "admin" || rev["summary"] != "pilot week — policy no-lab-downloads: monitor-only on (action block → monitor)" {
		t.Fatalf("revision: %v", rev)
	}
	// The list shows the switch on, with the action it goes back to.
	_, ov := admin.api("GET", "/api/v1/policies", nil)
	row := ov["session_policies"].([]any)[0].(map[string]any)
	if row["monitor_only"] != true || row["original_action"] != "block" || row["action"] != "monitor" {
		t.Fatalf("row: %v", row)
	}
	// Off again: the action comes back; then disable for real.
	admin.stage(map[string]any{"kind": "monitor_only", "policy": "no-lab-downloads", "on": false})
	admin.stage(map[string]any{"kind": "policy_enabled", "policy": "no-lab-downloads", "enabled": false})
	if code, m := admin.applyTray("both"); code != 200 {
		t.Fatalf("apply 2: %d %v", code, m)
	}
	if got := enf.download(t); got != "allow" {
		t.Fatalf("disabled: %s", got)
	}
	set, err := policy.Parse("base.yaml", mustRead(t, filepath.Join(tc.polDir, "base.yaml")))
	if err != nil || set.SessionPolicies[0].Action != policy.ActionBlock || !set.SessionPolicies[0].Disabled {
		t.Fatalf("file: %v %+v", err, set)
	}
	admin.stage(map[string]any{"kind": "policy_enabled", "policy": "no-lab-downloads", "enabled": true})
	admin.applyTray("")
	if got := enf.download(t); got != "block by no-lab-downloads" {
		t.Fatalf("enabled again: %s", got)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Two admins: a change staged on a file another admin changed since is
// refused at apply (nothing written), an editor change from a stale base
// is refused when staged, and a change that does not validate is never
// staged or applied.
func TestTrayConflictsAndValidation(t *testing.T) {
	tc, enf := newEnforcedConsole(t, nil)
	alice := tc.setup("alice", adminPW)
	if resp, _ := alice.api("POST", "/api/v1/users", map[string]string{"name": "bob", "password": adminPW, "role": "admin"}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create bob: %d", resp.StatusCode)
	}
	bob, resp, _ := tc.login("bob", adminPW, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob login: %d", resp.StatusCode)
	}
	base := digest([]byte(basePolicy))
	// Alice stages a switch; Bob saves the same file from the editor.
	if code, m := alice.stage(map[string]any{"kind": "monitor_only", "policy": "no-lab-downloads", "on": true}); code != http.StatusCreated {
		t.Fatalf("alice stage: %d %v", code, m)
	}
	bobs := strings.Replace(basePolicy, "Downloads are blocked.", "No downloads from the lab.", 1)
	if resp, m := bob.api("PUT", "/api/v1/policies/files/base.yaml", map[string]string{"content": bobs, "base_sha256": base}); resp.StatusCode != 200 {
		t.Fatalf("bob save: %d %v", resp.StatusCode, m)
	}
	tr := alice.tray()
	if ch := changesOf(tr); ch[0]["conflict"] != true || tr["valid"] != false {
		t.Fatalf("conflict not shown: %v", tr)
	}
	code, m := alice.applyTray("")
	if code != http.StatusConflict || fmt.Sprint(m["conflicts"]) != "[1]" {
		t.Fatalf("conflicting apply: %d %v", code, m)
	}
	if string(mustRead(t, filepath.Join(tc.polDir, "base.yaml"))) != bobs || enf.download(t) != "block by no-lab-downloads" {
		t.Fatal("a refused apply wrote the file")
	}
	// Bob's editor still had the old base: staging from it is refused.
	code, m = bob.stage(map[string]any{"kind": "policy_file", "file": "base.yaml", "content": basePolicy, "base_sha256": base})
	if code != http.StatusConflict {
		t.Fatalf("stale editor stage: %d %v", code, m)
	}
	// Alice discards and stages again on the current file.
	alice.api("DELETE", "/api/v1/tray/changes/1", nil)
	if code, m = alice.stage(map[string]any{"kind": "monitor_only", "policy": "no-lab-downloads", "on": true}); code != http.StatusCreated {
		t.Fatalf("restage: %d %v", code, m)
	}
	// Bob adds a change to the shared tray after Alice looked: her apply
	// with the version she saw is refused.
	seen := alice.tray()["version"]
	code, m = bob.stage(map[string]any{"kind": "policy_file", "file": "extra.yaml", "base_sha256": "",
		"content": "access_policies:\n  - id: close-lab\n    filters: {apps: [origin-lab]}\n    action: block\n"})
	if code != http.StatusCreated {
		t.Fatalf("bob stage: %d %v", code, m)
	}
	if resp, m := alice.api("POST", "/api/v1/tray/apply", map[string]any{"version": seen}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("apply of an unseen tray: %d %v", resp.StatusCode, m)
	}
	bob.api("DELETE", fmt.Sprintf("/api/v1/tray/changes/%v", m["id"]), nil)

	// Invalid content is never staged.
	code, m = alice.stage(map[string]any{"kind": "policy_file", "file": "bad.yaml", "base_sha256": "",
		"content": "access_policies:\n  - id: x\n    filters: {apps: [no-such-app]}\n    action: block\n"})
	if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(m["problems"]), `unknown app "no-such-app"`) {
		t.Fatalf("invalid stage: %d %v", code, m)
	}
	// A shadowing change is refused the same way (lint is validation).
	code, m = alice.stage(map[string]any{"kind": "policy_file", "file": "shadow.yaml", "base_sha256": "",
		"content": "access_policies:\n  - id: close-lab\n    filters: {apps: [origin-lab]}\n    action: block\n  - id: watch-alice\n    filters: {apps: [origin-lab], users: [alice@lab.example]}\n    action: monitor\n"})
	if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(m["problems"]), "never decides") {
		t.Fatalf("shadowed stage: %d %v", code, m)
	}
	// A hand edit that breaks the replay of a staged change: refused at apply.
	if err := os.WriteFile(filepath.Join(tc.polDir, "base.yaml"), []byte("session_policies: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, m := alice.applyTray(""); code == 200 {
		t.Fatalf("apply after a hand edit: %v", m)
	}
	if string(mustRead(t, filepath.Join(tc.polDir, "base.yaml"))) != "session_policies: []\n" {
		t.Fatal("hand edit overwritten")
	}
}

// mgmt is a policy file for the app that serves the console (console.lab):
// a change to its access policies is risky.
const mgmt = `apps:
  - id: console-app
    domains: [console.lab]
access_policies:
  - id: console-admins
    filters: {apps: [console-app], groups: [admins]}
    action: allow
`

// newMgmtConsole is an enforced console served as console.lab with mgmt.yaml
// in its policy directory and 3 s to confirm a risky change.
func newMgmtConsole(t *testing.T) (*testConsole, *enforcer) {
	t.Helper()
	tc, enf := newEnforcedConsole(t, func(o *Options) {
		o.ManagementHosts = []string{"console.lab"}
		o.ConfirmTimeout = 3 * time.Second
		_ = os.WriteFile(filepath.Join(o.PolicyDir, "mgmt.yaml"), []byte(mgmt), 0o644)
	})
	if err := enf.reload(); err != nil {
		t.Fatal(err)
	}
	return tc, enf
}

// A risky change (the access policies of the app that serves the
// console's own address) is reverted unless confirmed in time; a confirmed
// one stays. Both leave revisions that say what happened.
func TestTrayAutoRevert(t *testing.T) {
	tc, enf := newMgmtConsole(t)
	admin := tc.setup("admin", adminPW)
	// Not risky: the lab's download policy.
	admin.stage(map[string]any{"kind": "monitor_only", "policy": "no-lab-downloads", "on": true})
	if tr := admin.tray(); tr["risky"] != false {
		t.Fatalf("lab change risky: %v", tr)
	}
	admin.api("DELETE", "/api/v1/tray/changes/1", nil)

	lockout := strings.Replace(mgmt, "action: allow", "action: block", 1)
	code, m := admin.stage(map[string]any{"kind": "policy_file", "file": "mgmt.yaml", "content": lockout, "base_sha256": digest([]byte(mgmt))})
	if code != http.StatusCreated {
		t.Fatalf("stage: %d %v", code, m)
	}
	if tr := admin.tray(); tr["risky"] != true || changesOf(tr)[0]["risky"] != true {
		t.Fatalf("not risky: %v", tr)
	}
	code, m = admin.applyTray("try it")
	if code != 200 || m["savepoint"] == nil {
		t.Fatalf("apply: %d %v", code, m)
	}
	if string(mustRead(t, filepath.Join(tc.polDir, "mgmt.yaml"))) != lockout {
		t.Fatal("not applied")
	}
	// While it waits, nothing else is applied.
	admin.stage(map[string]any{"kind": "monitor_only", "policy": "no-lab-downloads", "on": true})
	if code, _ := admin.applyTray(""); code != http.StatusConflict {
		t.Fatalf("apply during a savepoint: %d", code)
	}
	if resp, m := admin.api("PUT", "/api/v1/policies/files/base.yaml", map[string]string{"content": basePolicy, "base_sha256": digest([]byte(basePolicy))}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("editor save during a savepoint: %d %v", resp.StatusCode, m)
	}
	loads := enf.loads.Load()
	deadline := time.Now().Add(10 * time.Second)
	for string(mustRead(t, filepath.Join(tc.polDir, "mgmt.yaml"))) != mgmt {
		if time.Now().After(deadline) {
			t.Fatal("not reverted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitUntil(t, func() bool { return admin.tray()["savepoint"] == nil && enf.loads.Load() == loads+1 })
	revs, _ := tc.revs.list("mgmt.yaml", 10)
	if len(revs) != 2 || !strings.HasPrefix(revs[0].Summary, "reverted automatically: not confirmed within 3s") || revs[0].After != mgmt {
		t.Fatalf("revisions: %+v", revs)
	}
	if es, _ := tc.audit.search(AuditQuery{Action: auditTrayRevert}); len(es) != 1 {
		t.Fatalf("audit: %v", es)
	}
	// Confirmed in time, it stays.
	admin.api("DELETE", "/api/v1/tray/changes/"+fmt.Sprint(changesOf(admin.tray())[0]["id"]), nil)
	admin.stage(map[string]any{"kind": "policy_file", "file": "mgmt.yaml", "content": lockout, "base_sha256": digest([]byte(mgmt))})
	if code, m := admin.applyTray(""); code != 200 || m["savepoint"] == nil {
		t.Fatalf("apply 2: %d %v", code, m)
	}
	if resp, m := admin.api("POST", "/api/v1/tray/confirm", map[string]any{}); resp.StatusCode != 200 {
		t.Fatalf("confirm: %d %v", resp.StatusCode, m)
	}
	time.Sleep(4 * time.Second)
	if string(mustRead(t, filepath.Join(tc.polDir, "mgmt.yaml"))) != lockout {
		t.Fatal("a confirmed change was reverted")
	}
}

// The editor's "Save and apply now" goes through the tray's apply: a
// risky save starts a savepoint and is reverted unless confirmed, like a
// tray apply; a pending change to another file stays staged; the save is
// refused while the savepoint waits and when the file changed since the
// editor read it.
func TestSaveNowThroughTray(t *testing.T) {
	tc, enf := newMgmtConsole(t)
	admin := tc.setup("admin", adminPW)
	if code, m := admin.stage(map[string]any{"kind": "monitor_only", "policy": "no-lab-downloads", "on": true}); code != http.StatusCreated {
		t.Fatalf("stage: %d %v", code, m)
	}
	lockout := strings.Replace(mgmt, "action: allow", "action: block", 1)
	loads := enf.loads.Load()
	resp, m := admin.api("PUT", "/api/v1/policies/files/mgmt.yaml", map[string]string{"content": lockout, "base_sha256": digest([]byte(mgmt)), "summary": "lock it"})
	if resp.StatusCode != 200 || m["savepoint"] == nil || m["reloaded"] != true {
		t.Fatalf("save now: %d %v", resp.StatusCode, m)
	}
	if sum := m["revision"].(map[string]any)["summary"].(string); sum != "lock it — policy console-admins: action allow → block" {
		t.Errorf("revision summary %q", sum)
	}
	if string(mustRead(t, filepath.Join(tc.polDir, "mgmt.yaml"))) != lockout || enf.loads.Load() != loads+1 {
		t.Fatal("not applied")
	}
	tr := admin.tray()
	if ch := changesOf(tr); len(ch) != 1 || ch[0]["kind"] != "monitor_only" || ch[0]["conflict"] == true || tr["savepoint"] == nil {
		t.Fatalf("tray after save now: %v", tr)
	}
	if resp, m := admin.api("PUT", "/api/v1/policies/files/mgmt.yaml", map[string]string{"content": mgmt, "base_sha256": digest([]byte(lockout))}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("save during a savepoint: %d %v", resp.StatusCode, m)
	}
	waitUntil(t, func() bool {
		return string(mustRead(t, filepath.Join(tc.polDir, "mgmt.yaml"))) == mgmt && admin.tray()["savepoint"] == nil
	})
	if revs, _ := tc.revs.list("mgmt.yaml", 10); len(revs) != 2 || revs[1].Author != "admin" || !strings.HasPrefix(revs[0].Summary, "reverted automatically") {
		t.Fatalf("revisions: %+v", revs)
	}
	if es, _ := tc.audit.search(AuditQuery{Action: auditPolicySave}); len(es) != 1 || !strings.HasPrefix(es[0].Detail, "risky, to confirm by") {
		t.Errorf("audit: %+v", es)
	}
	// Stale: refused, nothing written, the pending change still there.
	if resp, m := admin.api("PUT", "/api/v1/policies/files/mgmt.yaml", map[string]string{"content": lockout, "base_sha256": digest([]byte(lockout))}); resp.StatusCode != http.StatusConflict ||
		!strings.Contains(fmt.Sprint(m["error"]), "mgmt.yaml changed since you opened it") {
		t.Fatalf("stale save: %d %v", resp.StatusCode, m)
	}
	// Invalid: 422 with the problems.
	if resp, m := admin.api("PUT", "/api/v1/policies/files/mgmt.yaml", map[string]string{"content": "access_policies: [", "base_sha256": digest([]byte(mgmt))}); resp.StatusCode != http.StatusUnprocessableEntity || m["problems"] == nil {
		t.Fatalf("invalid save: %d %v", resp.StatusCode, m)
	}
	if ch := changesOf(admin.tray()); len(ch) != 1 {
		t.Fatalf("pending changes: %v", ch)
	}
	if string(mustRead(t, filepath.Join(tc.polDir, "mgmt.yaml"))) != mgmt {
		t.Fatal("a refused save wrote the file")
	}
}

func waitUntil(t *testing.T, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Rollback: a revision's file restored as it was before it, staged and
// applied as a new revision; the decision it changed comes back.
func TestTrayRollback(t *testing.T) {
	tc, enf := newEnforcedConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	admin.stage(map[string]any{"kind": "policy_enabled", "policy": "no-lab-downloads", "enabled": false})
	_, m := admin.applyTray("")
	id := m["revisions"].([]any)[0].(map[string]any)["id"].(float64)
	if enf.download(t) != "allow" {
		t.Fatal("not disabled")
	}
	if code, m := admin.stage(map[string]any{"kind": "restore", "revision": id, "side": "before"}); code != http.StatusCreated {
		t.Fatalf("stage rollback: %d %v", code, m)
	}
	if s := changesOf(admin.tray())[0]["summary"].(string); !strings.Contains(s, "rollback: base.yaml as before revision 1") || !strings.Contains(s, "enabled") {
		t.Fatalf("summary: %s", s)
	}
	_, m = admin.applyTray("")
	if rev := m["revisions"].([]any)[0].(map[string]any); rev["id"].(float64) != id+1 || rev["after"] != basePolicy {
		t.Fatalf("rollback revision: %v", rev)
	}
	if got := enf.download(t); got != "block by no-lab-downloads" {
		t.Fatalf("after rollback: %s", got)
	}
}

// Auditors see the tray, the policy list and the apps, and change none of
// them: 403 from every API change and every form.
func TestTrayAuditorForbidden(t *testing.T) {
	tc, _ := newEnforcedConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	admin.api("POST", "/api/v1/users", map[string]string{"name": "audrey", "password": "auditor-password-1", "role": "auditor"})
	admin.stage(map[string]any{"kind": "policy_enabled", "policy": "no-lab-downloads", "enabled": false})
	aud, _, _ := tc.login("audrey", "auditor-password-1", nil)
	for _, p := range []string{"/api/v1/tray", "/api/v1/apps", "/api/v1/policies"} {
		if resp, _ := aud.api("GET", p, nil); resp.StatusCode != 200 {
			t.Errorf("auditor GET %s: %d", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/policies", "/changes", "/apps"} {
		resp, body := aud.get(p)
		if resp.StatusCode != 200 || strings.Contains(body, `action="/changes`) {
			t.Errorf("auditor page %s: %d, offers a change: %v", p, resp.StatusCode, strings.Contains(body, `action="/changes`))
		}
	}
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v1/tray/changes", map[string]any{"kind": "policy_enabled", "policy": "no-lab-downloads", "enabled": false}},
		{"DELETE", "/api/v1/tray/changes/1", nil},
		{"POST", "/api/v1/tray/apply", map[string]any{"version": 1}},
		{"POST", "/api/v1/tray/confirm", map[string]any{}},
		{"POST", "/api/v1/tray/revert", map[string]any{}},
	} {
		if resp, _ := aud.api(c.method, c.path, c.body); resp.StatusCode != http.StatusForbidden {
			t.Errorf("auditor %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	_, page := aud.get("/changes")
	tok := formToken(t, page)
	for _, p := range []string{"/changes", "/changes/discard", "/changes/apply", "/changes/confirm", "/changes/revert"} {
		if resp, _ := aud.post(p, url.Values{"csrf": {tok}, "kind": {"policy_enabled"}, "policy": {"no-lab-downloads"}, "enabled": {"false"}, "id": {"1"}, "version": {"1"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("auditor form %s: %d", p, resp.StatusCode)
		}
	}
	if n := len(changesOf(admin.tray())); n != 1 {
		t.Fatalf("%d pending changes after the auditor's tries", n)
	}
}

// Apps: onboarding a custom app and adding a discovered domain to an app
// go through the tray into the console's apps file; the catalog shows the
// app as custom, the domain leaves the discovered list, and the engine
// maps it to the app.
func TestTrayApps(t *testing.T) {
	now := time.Now()
	tc, enf := newEnforcedConsole(t, func(o *Options) {
		o.Discovered = func() []DiscoveredDomain {
			return []DiscoveredDomain{{Host: "cdn-origin.example.lab", FirstSeen: now, LastSeen: now, Seen: 3, Via: "origin.lab"},
				{Host: "static.notes.lab", FirstSeen: now, LastSeen: now, Seen: 1, Via: "notes.lab"}}
		}
	})
	admin := tc.setup("admin", adminPW)
	_, av := admin.api("GET", "/api/v1/apps", nil)
	if d := av["discovered"].([]any); len(d) != 2 {
		t.Fatalf("discovered: %v", d)
	}
	code, m := admin.stage(map[string]any{"kind": "app_add", "app": map[string]any{"id": "notes-lab", "name": "Lab notes",
		"domains": []string{"notes.lab"}, "activities": []map[string]string{{"id": "edit_page", "method": "POST", "path": "/doku.php"}}}})
	if code != http.StatusCreated || m["file"] != consoleAppsFile {
		t.Fatalf("stage app: %d %v", code, m)
	}
	if code, m = admin.stage(map[string]any{"kind": "app_domain", "app_id": "origin-lab", "domain": "cdn-origin.example.lab"}); code != http.StatusCreated {
		t.Fatalf("stage domain: %d %v", code, m)
	}
	// A domain of another app is refused with the compiler's message.
	if code, m = admin.stage(map[string]any{"kind": "app_domain", "app_id": "notes-lab", "domain": "origin.lab"}); code != http.StatusUnprocessableEntity ||
		!strings.Contains(fmt.Sprint(m["problems"]), "already belongs") {
		t.Fatalf("conflicting domain: %d %v", code, m)
	}
	if code, m := admin.applyTray("onboard"); code != 200 {
		t.Fatalf("apply: %d %v", code, m)
	}
	_, av = admin.api("GET", "/api/v1/apps", nil)
	var wiki map[string]any
	for _, a := range av["apps"].([]any) {
		if a.(map[string]any)["id"] == "notes-lab" {
			wiki = a.(map[string]any)
		}
	}
	if wiki == nil || wiki["source"] != "custom" || !strings.HasPrefix(wiki["where"].(string), consoleAppsFile+":") || fmt.Sprint(wiki["activities"]) != "[edit_page]" {
		t.Fatalf("catalog: %v", wiki)
	}
	// Both discovered domains now belong to apps (static.notes.lab does not:
	// notes.lab is exact, so it stays).
	if d := av["discovered"].([]any); len(d) != 1 || d[0].(map[string]any)["host"] != "static.notes.lab" {
		t.Fatalf("discovered after: %v", d)
	}
	if a := enf.engine.Load().App("cdn-origin.example.lab"); a == nil || a.ID != "origin-lab" {
		t.Fatalf("engine: %v", a)
	}
	if a, act := enf.engine.Load().Activity("POST", "notes.lab", "/doku.php"); a == nil || act == nil || act.ID != "edit_page" {
		t.Fatalf("engine activity: %v %v", a, act)
	}
	if b := mustRead(t, filepath.Join(tc.polDir, consoleAppsFile)); !strings.HasPrefix(string(b), "# Apps and custom domains onboarded") {
		t.Fatalf("apps file: %s", b)
	}
}

// The policy list's hits come from the store: 7 days of matches and the
// last one.
func TestPolicyListHits(t *testing.T) {
	tc, _ := newEnforcedConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	now := time.Now()
	tc.emit(labEvents(now, 10)...)
	old := labEvents(now.Add(-10*24*time.Hour), 4)
	tc.emit(old...)
	_, ov := admin.api("GET", "/api/v1/policies", nil)
	row := ov["session_policies"].([]any)[0].(map[string]any)
	last, _ := time.Parse(time.RFC3339Nano, row["last_hit"].(string))
	if row["hits_7d"].(float64) != 5 || last.Sub(now.Add(-time.Second)).Abs() > time.Millisecond {
		t.Fatalf("row: %v", row)
	}
	_, page := admin.get("/policies")
	if !strings.Contains(page, `data-toggle="monitor" data-policy="no-lab-downloads"`) || !strings.Contains(page, `<td class="num">5</td>`) {
		t.Fatalf("page lacks the switch or the count:\n%s", page)
	}
}

// Every endpoint of the tray, the policy list and the apps page is in the
// OpenAPI document the console serves.
func TestTrayAPIDocumented(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"get /policies", "get /tray", "post /tray/changes", "delete /tray/changes/{id}", "post /tray/apply",
		"post /tray/confirm", "post /tray/revert", "get /apps"} {
		method, path, _ := strings.Cut(e, " ")
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("openapi.yaml lacks %s", e)
		}
	}
}
