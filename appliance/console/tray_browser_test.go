package console

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/internal/lab/browser"
)

// TestTrayInChromium drives the policy list, the pending-changes tray and
// the apps page in headless Chromium under the real CSP, with the policy
// engine compiled from the directory on every apply: the monitor-only
// switch turns a block into monitor and back, a disable and a discard, a
// conflict with another admin's save, a rollback from the revisions page,
// a risky change from the editor reverted when nobody confirms it, and an
// app onboarded with a discovered domain added to it. axe-core finds no
// serious or critical violation on the new pages; screenshots go under
// PORTCULLIS_SCREENSHOTS (or the test's temp dir).
func TestTrayInChromium(t *testing.T) {
	mgmt := "apps:\n  - id: console-app\n    domains: [console.lab]\naccess_policies:\n  - id: console-admins\n    filters: {apps: [console-app], groups: [admins]}\n    action: allow\n"
	now := time.Now()
	tc, enf := newEnforcedConsole(t, func(o *Options) {
		o.ManagementHosts = []string{"console.lab"}
		o.ConfirmTimeout = 12 * time.Second // long enough for a loaded machine to see the banner
		_ = os.WriteFile(filepath.Join(o.PolicyDir, "mgmt.yaml"), []byte(mgmt), 0o644)
		o.Discovered = func() []DiscoveredDomain {
			return []DiscoveredDomain{{Host: "cdn.labstatic.example", FirstSeen: now, LastSeen: now, Seen: 7, Via: "origin.lab"}}
		}
	})
	if err := enf.reload(); err != nil {
		t.Fatal(err)
	}
	tc.emit(labEvents(now, 10)...)
	admin := tc.setup("admin", adminPW)
	admin.api("POST", "/api/v1/users", map[string]string{"name": "bob", "password": adminPW, "role": "admin"})
	bob, _, _ := tc.login("bob", adminPW, nil)

	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.srv.Certificate().Raw})
	b := browser.Start(t, browser.Options{TrustPEM: [][]byte{certPEM}})
	tab, _ := b.NewTab(t)
	ctx, cancel := context.WithTimeout(tab, 8*time.Minute) // a bound for a machine shared by many builds; 30-60 s when quiet
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
		return strings.TrimSpace(s)
	}
	shot := func(name string) { t.Helper(); screenshot(t, ctx, shots, name) }
	axe := func(page string) { t.Helper(); axeCheck(t, ctx, page) }
	watchCSP := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`window.__cspViolations = 0; document.addEventListener("securitypolicyviolation", () => window.__cspViolations++); true`)(ctx, t)
		return err
	})
	cspClean := func(page string) {
		t.Helper()
		if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__cspViolations || 0`)); n > 0 {
			t.Errorf("%s: %d CSP violations", page, n)
		}
	}
	sw := func(kind, policy string) chromedp.CSS {
		return chromedp.CSS(`button[data-toggle="` + kind + `"][data-policy="` + policy + `"]`)
	}
	applyAll := func(what string) {
		t.Helper()
		run(what, chromedp.Navigate(base+"/changes"), chromedp.WaitVisible(chromedp.CSS("#tray-apply")),
			chromedp.Click(chromedp.CSS("#tray-apply")), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")))
	}

	run("login", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#password")),
		chromedp.SendKeys(chromedp.CSS("#user"), "admin"), chromedp.SendKeys(chromedp.CSS("#password"), adminPW),
		chromedp.Submit(chromedp.CSS("#password")),
		// The dashboard must have finished loading, or the next navigation aborts it (and itself).
		waitFor(`location.pathname === "/dashboard" && document.readyState === "complete"`))

	// The list: order, hits, switches.
	run("policies", watchCSP, chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(sw("monitor", "no-lab-downloads")), watchCSP)
	if got := text(`tr[data-policy="no-lab-downloads"] td.num:nth-of-type(8)`); got != "5" {
		t.Errorf("hits: %q", got)
	}
	axe("policies")
	shot("20-policies-list")

	// Monitor-only: staged, shown in the tray, applied: the decision changes.
	run("monitor-only on", chromedp.Click(sw("monitor", "no-lab-downloads")), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")),
		waitFor(`document.getElementById("tray-count").textContent === "1"`))
	if enf.download(t) != "block by no-lab-downloads" {
		t.Fatal("staging changed the decision")
	}
	run("tray", watchCSP, chromedp.Navigate(base+"/changes"), chromedp.WaitVisible(chromedp.CSS("article.change")), watchCSP,
		chromedp.Click(chromedp.CSS("article.change details summary")))
	if s := text("article.change .summary"); s != "policy no-lab-downloads: monitor-only on (action block → monitor)" {
		t.Errorf("summary: %q", s)
	}
	cspClean("tray")
	axe("changes (pending)")
	shot("21-changes-pending")
	applyAll("apply monitor-only")
	if got := enf.download(t); got != "monitor by no-lab-downloads" {
		t.Fatalf("after monitor-only: %s", got)
	}
	run("list shows it", chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(sw("monitor", "no-lab-downloads")))
	if on, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('button[data-toggle="monitor"][data-policy="no-lab-downloads"]').getAttribute("aria-checked")`)); on != "true" {
		t.Errorf("monitor switch aria-checked %q", on)
	}
	shot("22-policies-monitor-only")

	// Disable, then discard: nothing changes. Disable again and apply.
	run("disable", chromedp.Click(sw("enabled", "no-lab-downloads")), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")),
		chromedp.Navigate(base+"/changes"), chromedp.WaitVisible(chromedp.CSS("article.change")),
		chromedp.Click(chromedp.CSS(`form[action="/changes/discard"] button`)), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")))
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("article.change").length`)); n != 0 || enf.download(t) != "monitor by no-lab-downloads" {
		t.Fatalf("discard: %d changes left, decision %s", n, enf.download(t))
	}
	run("disable for real", chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(sw("enabled", "no-lab-downloads")),
		chromedp.Click(sw("enabled", "no-lab-downloads")), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")))
	applyAll("apply disable")
	if got := enf.download(t); got != "allow" {
		t.Fatalf("disabled: %s", got)
	}
	// One switch per page load: after the first click the page already
	// shows a flash, so waiting for one after the second click would not
	// wait for its navigation (and the next step aborted it).
	run("enable", chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(sw("enabled", "no-lab-downloads")),
		chromedp.Click(sw("enabled", "no-lab-downloads")), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")))
	run("monitor-only off", chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(sw("monitor", "no-lab-downloads")),
		chromedp.Click(sw("monitor", "no-lab-downloads")), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")))
	applyAll("apply enable")
	if got := enf.download(t); got != "block by no-lab-downloads" {
		t.Fatalf("enabled, monitor-only off: %s", got)
	}

	// Another admin saves the file while a change to it is pending.
	run("stage before bob", chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(sw("monitor", "no-lab-downloads")),
		chromedp.Click(sw("monitor", "no-lab-downloads")), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")))
	cur := mustRead(t, filepath.Join(tc.polDir, "base.yaml"))
	bobs := strings.Replace(string(cur), "Downloads are blocked.", "Bob says no.", 1)
	if resp, m := bob.api("PUT", "/api/v1/policies/files/base.yaml", map[string]string{"content": bobs, "base_sha256": digest(cur)}); resp.StatusCode != 200 {
		t.Fatalf("bob's save: %d %v", resp.StatusCode, m)
	}
	run("conflict shown", chromedp.Navigate(base+"/changes"), chromedp.WaitVisible(chromedp.CSS("article.change")))
	if h := text("article.change h3"); !strings.Contains(h, "conflict: the file changed since") {
		t.Errorf("no conflict badge: %q", h)
	}
	if dis, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("tray-apply").disabled`)); !dis {
		t.Error("apply offered on a conflict")
	}
	shot("23-changes-conflict")
	// Forced through anyway, the server refuses and writes nothing.
	run("forced apply", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`document.getElementById("tray-apply-form").submit(); true`)(ctx, t)
		return err
	}), chromedp.WaitVisible(chromedp.CSS("p.flash.err")))
	if e := text("p.flash.err"); !strings.Contains(e, "changed on disk since the change was staged") {
		t.Errorf("conflict message: %q", e)
	}
	if string(mustRead(t, filepath.Join(tc.polDir, "base.yaml"))) != bobs {
		t.Fatal("conflicting apply wrote the file")
	}
	run("discard conflict", chromedp.Click(chromedp.CSS(`form[action="/changes/discard"] button`)), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")))

	// Rollback of Bob's revision from the revisions page.
	run("revisions", chromedp.Navigate(base+"/policies/revisions?file=base.yaml"), chromedp.WaitVisible(chromedp.CSS("form.rollback button")))
	axe("revisions")
	shot("24-revisions-rollback")
	run("undo bob", chromedp.Click(chromedp.CSS(`form.rollback button[value="before"]`)), chromedp.WaitVisible(chromedp.CSS("article.change")))
	if s := text("article.change .summary"); !strings.Contains(s, "rollback: base.yaml as before revision") {
		t.Errorf("rollback summary: %q", s)
	}
	applyAll("apply rollback")
	if string(mustRead(t, filepath.Join(tc.polDir, "base.yaml"))) != string(cur) {
		t.Fatal("rollback did not restore the file")
	}

	// A risky change from the editor, not confirmed: reverted.
	lockout := strings.Replace(mgmt, "action: allow", "action: block", 1)
	run("editor stage", chromedp.Navigate(base+"/policies/edit?file=mgmt.yaml"), chromedp.WaitVisible(chromedp.CSS("#ed-stage")),
		chromedp.SetValue(chromedp.CSS("#ed-content"), lockout), chromedp.Click(chromedp.CSS("#ed-stage")),
		waitFor(`document.getElementById("ed-status").textContent.startsWith("Added to pending changes")`))
	run("risky tray", chromedp.Navigate(base+"/changes"), chromedp.WaitVisible(chromedp.CSS("article.change")))
	if h := text("article.change h3"); !strings.Contains(h, "risky: needs confirmation") {
		t.Errorf("not marked risky: %q", h)
	}
	run("apply risky", watchCSP, chromedp.Click(chromedp.CSS("#tray-apply")), chromedp.WaitVisible(chromedp.CSS("#countdown")), watchCSP)
	if string(mustRead(t, filepath.Join(tc.polDir, "mgmt.yaml"))) != lockout {
		t.Fatal("risky change not applied")
	}
	run("countdown runs", waitFor(`parseInt(document.getElementById("countdown").textContent, 10) < 12`))
	axe("changes (waiting for confirmation)")
	shot("25-changes-countdown")
	run("banner elsewhere", chromedp.Navigate(base+"/apps"), waitFor(`!document.getElementById("savepoint-banner").hidden`))
	cspClean("apps")
	shot("26-banner-on-other-page")
	for deadline := time.Now().Add(30 * time.Second); string(mustRead(t, filepath.Join(tc.polDir, "mgmt.yaml"))) != mgmt; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("risky change not reverted 30 s after its apply")
		}
	}
	run("after revert", chromedp.Navigate(base+"/changes"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#countdown").length`)); n != 0 {
		t.Error("savepoint still shown after the revert")
	}
	if revs, _ := tc.revs.list("mgmt.yaml", 1); len(revs) != 1 || !strings.HasPrefix(revs[0].Summary, "reverted automatically") {
		t.Errorf("revert revision: %+v", revs)
	}

	// Apps: onboard one, add the discovered domain to it.
	run("apps", chromedp.Navigate(base+"/apps"), chromedp.WaitVisible(chromedp.CSS(`tr[data-domain="cdn.labstatic.example"]`)))
	axe("apps")
	shot("27-apps")
	run("onboard", chromedp.SendKeys(chromedp.CSS("#app-id"), "lab-notes"), chromedp.SendKeys(chromedp.CSS("#app-name"), "Lab notes"),
		chromedp.SendKeys(chromedp.CSS("#app-domains"), "notes.lab, *.notes.lab"),
		chromedp.SendKeys(chromedp.CSS("#app-acts"), "save_note POST /api/notes"),
		chromedp.Click(chromedp.CSS("#app-stage")), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")))
	applyAll("apply app")
	run("add domain", chromedp.Navigate(base+"/apps"), chromedp.WaitVisible(chromedp.CSS(`tr[data-domain="cdn.labstatic.example"] select`)),
		chromedp.SetValue(chromedp.CSS(`tr[data-domain="cdn.labstatic.example"] select`), "lab-notes"),
		chromedp.Click(chromedp.CSS(`tr[data-domain="cdn.labstatic.example"] button`)), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")))
	applyAll("apply domain")
	run("catalog", chromedp.Navigate(base+"/apps"), chromedp.WaitVisible(chromedp.CSS(`tr[data-app="lab-notes"]`)))
	if d := text(`tr[data-app="lab-notes"] td.wide`); d != "notes.lab, *.notes.lab, cdn.labstatic.example" {
		t.Errorf("lab-notes domains: %q", d)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('tr[data-domain]').length`)); n != 0 {
		t.Errorf("%d discovered domains left", n)
	}
	if a := enf.engine.Load().App("cdn.labstatic.example"); a == nil || a.ID != "lab-notes" {
		t.Errorf("engine: %v", a)
	}
	shot("28-apps-onboarded")
	// Tablet width.
	run("tablet", chromedp.EmulateViewport(820, 1180), chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(chromedp.CSS("h1")))
	shot("29-policies-tablet")
}
