package console

import (
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

func labEvents(now time.Time, n int) []activity.Event {
	var out []activity.Event
	for i := range n {
		ev := activity.Event{Time: now.Add(-time.Duration(i) * time.Second), Mode: activity.ModeTransparent, User: "alice@lab.example",
			SourceIP: netip.MustParseAddr("198.18.1.2"), ClientApp: "browser", App: "origin-lab", Host: "origin.lab",
			Method: "GET", Path: "/", Action: "allow"}
		if i%2 == 1 {
			ev.Path, ev.Activity, ev.Action, ev.Policies, ev.Reason = "/files/report.pdf", "download_file", "block", []string{"no-lab-downloads"}, "no-lab-downloads"
		}
		out = append(out, ev)
	}
	return out
}

const monitorPages = `access_policies:
  - id: block-lab
    filters:
      apps: [origin-lab]
    action: block
    message: The lab is closed.
`

// Validation as the editor does it, the dry-run of a change against the
// recorded events, a refused stale save, a save that writes the file,
// reloads, and keeps a revision whose summary says what changed.
func TestPolicyValidateDryRunSave(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	tc.emit(labEvents(time.Now(), 10)...)

	resp, m := admin.api("POST", "/api/v1/policies/validate", map[string]string{"file": "new.yaml",
		"content": "access_policies:\n  - id: x\n    action: explode\n"})
	probs, _ := m["problems"].([]any)
	if resp.StatusCode != 200 || m["valid"] != false || len(probs) == 0 ||
		!strings.Contains(probs[0].(map[string]any)["text"].(string), "new.yaml:3") {
		t.Fatalf("invalid policy: %d %v", resp.StatusCode, m)
	}
	resp, m = admin.api("POST", "/api/v1/policies/validate", map[string]string{"file": "new.yaml", "content": monitorPages})
	if resp.StatusCode != 200 || m["valid"] != true {
		t.Fatalf("valid policy: %d %v", resp.StatusCode, m)
	}

	resp, m = admin.api("POST", "/api/v1/policies/dry-run", map[string]any{"file": "new.yaml", "content": monitorPages, "events": 100})
	if resp.StatusCode != 200 {
		t.Fatalf("dry-run: %d %v", resp.StatusCode, m)
	}
	// The five page views go from allow to block; the five downloads were
	// blocked already but by another policy now.
	if m["events"].(float64) != 10 || m["changed"].(float64) != 10 {
		t.Fatalf("dry-run counts: %v", m)
	}
	trans := m["transitions"].([]any)
	if len(trans) != 2 {
		t.Fatalf("transitions: %v", trans)
	}
	samples := m["samples"].([]any)
	s0 := samples[0].(map[string]any)
	if !strings.Contains(s0["after"].(string), "block (block-lab)") || !strings.Contains(s0["explain"].(string), "block-lab") {
		t.Fatalf("sample: %v", s0)
	}

	// A save must name the file's state when it was read.
	resp, m = admin.api("PUT", "/api/v1/policies/files/base.yaml", map[string]string{"content": strings.Replace(basePolicy, "action: block", "action: monitor", 1),
		"base_sha256": strings.Repeat("0", 64)})
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("stale save: %d %v", resp.StatusCode, m)
	}
	resp, m = admin.api("PUT", "/api/v1/policies/files/base.yaml", map[string]string{"content": "session_policies: [",
		"base_sha256": digest([]byte(basePolicy))})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("invalid save: %d %v", resp.StatusCode, m)
	}
	resp, m = admin.api("PUT", "/api/v1/policies/files/base.yaml", map[string]string{"content": strings.Replace(basePolicy, "action: block", "action: monitor", 1),
		"base_sha256": digest([]byte(basePolicy)), "summary": "let downloads through"})
	if resp.StatusCode != 200 || m["reloaded"] != true {
		t.Fatalf("save: %d %v", resp.StatusCode, m)
	}
	rev := m["revision"].(map[string]any)
	if sum := rev["summary"].(string); !strings.Contains(sum, "policy no-lab-downloads: action block → monitor") || !strings.HasPrefix(sum, "let downloads through") {
		t.Errorf("revision summary %q", sum)
	}
	if !strings.Contains(rev["diff"].(string), "-    action: block\n+    action: monitor") {
		t.Errorf("diff:\n%s", rev["diff"])
	}
	if tc.reloads.Load() != 1 {
		t.Errorf("reloads: %d", tc.reloads.Load())
	}
	b, _ := os.ReadFile(filepath.Join(tc.polDir, "base.yaml"))
	if !strings.Contains(string(b), "action: monitor") {
		t.Fatal("file not written")
	}
	// A new file, then the revisions page and the policies list.
	resp, _ = admin.api("PUT", "/api/v1/policies/files/new.yaml", map[string]string{"content": monitorPages})
	if resp.StatusCode != 200 {
		t.Fatalf("new file: %d", resp.StatusCode)
	}
	_, page := admin.get("/policies/revisions")
	if !strings.Contains(page, "Revision 2") || !strings.Contains(page, "added access policy block-lab (block)") || !strings.Contains(page, `class="add"`) {
		t.Errorf("revisions page:\n%s", page)
	}
	resp, m = admin.api("GET", "/api/v1/policies", nil)
	if resp.StatusCode != 200 || len(m["access_policies"].([]any)) != 1 || len(m["files"].([]any)) != 2 {
		t.Fatalf("policies: %v", m)
	}
	sp := m["session_policies"].([]any)[0].(map[string]any)
	if sp["hits_7d"].(float64) != 5 {
		t.Errorf("hits: %v", sp)
	}
	// A reload the appliance refuses puts the old file back.
	tc2 := newTestConsole(t, func(o *Options) { o.Reload = func() error { return os.ErrPermission } })
	a2 := tc2.setup("admin", adminPW)
	resp, _ = a2.api("PUT", "/api/v1/policies/files/base.yaml", map[string]string{"content": monitorPages, "base_sha256": digest([]byte(basePolicy))})
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("refused reload: %d", resp.StatusCode)
	}
	if b, _ := os.ReadFile(filepath.Join(tc2.polDir, "base.yaml")); string(b) != basePolicy {
		t.Fatal("file not restored after a refused reload")
	}
}

func TestUnifiedDiff(t *testing.T) {
	got := unifiedDiff("f", "a\nb\nc\nd\ne\nf\ng\nh\ni\n", "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\n")
	want := "--- a/f\n+++ b/f\n@@ -1,9 +1,10 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n i\n+j\n"
	far := unifiedDiff("f", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "X\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\nY\n")
	if strings.Count(far, "@@ -") != 2 {
		t.Errorf("distant changes in one hunk:\n%s", far)
	}
	if got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
}
