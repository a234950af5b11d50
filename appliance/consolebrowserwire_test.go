package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/portcullis-gw/portcullis/appliance/console"
	"github.com/portcullis-gw/portcullis/internal/lab/browser"
)

// TestConsoleE2EInChromium runs the appliance binary in the lab with its
// console on the gateway's LAN address and a policy that blocks downloads
// from the lab origin. curl in the client namespace sends page loads, one
// download and one upload through the transparent proxy; then headless
// Chromium in the client namespace (trusting only the appliance CA) goes
// through the console as its admins and auditors would:
//   - first login: the setup token, a password, two-factor set-up with the
//     secret the page shows; logged out, in again with password and code;
//   - the dashboard counts and plots the traffic just sent, the activity
//     search finds the blocked download by its file name, the event drawer
//     opens;
//   - a policy made in the editor's form (block uploads to the lab
//     origin, curl's client kind included) is dry-run against the
//     recorded events (the upload goes from allow to block, nothing else
//     changes), staged, applied from the tray: the next upload is refused
//     (403); undone from the revisions page and applied: the same upload
//     passes (200);
//   - an auditor added on the accounts page logs in: no page offers it a
//     change (the admin's pages do), and the API and the pages' form posts
//     refuse its changes (403), each in the audit log, while a request
//     without a session gets 401.
//
// axe-core finds no serious or critical violation on any page; a
// screenshot of each goes under PORTCULLIS_SCREENSHOTS (or the test's temp
// dir).
func TestConsoleE2EInChromium(t *testing.T) {
	polDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(polDir, "lab.yaml"), []byte(blockDownloadsPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	const consoleAddr = "198.18.1.1:9443"
	l := newE2ELab(t, fmt.Sprintf("policy:\n  dir: %s\nconsole:\n  listen: %s\n", polDir, consoleAddr))
	l.start()
	l.applianceCA() // writes appliance-ca.pem
	caPEM, err := os.ReadFile(filepath.Join(l.dir, "appliance-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	curl := func(path string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args = append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", filepath.Join(l.dir, "appliance-ca.pem")}, args...)
		out, err := l.Client.Exec(ctx, "curl", append(args, "https://origin.lab"+path)...)
		if err != nil {
			t.Errorf("curl %s: %v: %s", path, err, out)
		}
		return string(out)
	}
	for i := range 5 {
		if got := curl(fmt.Sprintf("/?page=%d", i)); got != "200" {
			t.Errorf("page %d: HTTP %s", i, got)
		}
	}
	if got := curl("/files/report.pdf"); got != "403" {
		t.Errorf("download: HTTP %s, want the block page (403)", got)
	}
	upload := func() string { t.Helper(); return curl("/upload", "--data-binary", "lab notes, for the record") }
	if got := upload(); got != "200" {
		t.Errorf("upload: HTTP %s, want 200", got)
	}
	token, err := console.SetupToken(filepath.Join(l.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}

	b := browser.Start(t, browser.Options{NS: l.Client, TrustPEM: [][]byte{caPEM}})
	tab, _ := b.NewTab(t)
	ctx, cancel := context.WithTimeout(tab, 6*time.Minute) // a bound for a loaded machine; about a minute when quiet
	defer cancel()
	shots := screenshotDir(t)
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		step, cancel := context.WithTimeout(ctx, time.Minute) // a wait for what never comes fails the step, not the rest
		defer cancel()
		if err := chromedp.Do(step, actions...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
			if len(html) > 3000 {
				html = html[:3000]
			}
			t.Fatalf("%s: %v\n%s", what, err, html)
		}
	}
	eval := func(what, expr string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return s
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	page := func(name string) { t.Helper(); checkConsolePage(t, ctx, shots, name) }
	// loaded waits for a navigation to path to finish, so the next one
	// does not abort it.
	loaded := func(path string) chromedp.Action[chromedp.Void] {
		return waitJS(`location.pathname === ` + jsQuote(path) + ` && document.readyState === "complete"`)
	}
	// controls lists what on the page in the tab could change something
	// (form posts but the logout, the editor's buttons, switches).
	controls := func(path string) string {
		t.Helper()
		const sel = `form[method="post"]:not([action="/logout"]), #ed-stage, #ed-save, #pf-add, #tray-apply, #tray-confirm, button[data-toggle], #nu-user`
		return eval("controls on "+path, `[...document.querySelectorAll(`+jsQuote(sel)+`)].map(e => e.outerHTML.slice(0, 120)).join("\n")`)
	}
	base := "https://" + consoleAddr
	const pw = "console-admin-password-1"

	// First login: the setup token and a password, then the account page
	// asks for a second factor.
	run("setup", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	page("00-setup")
	run("setup form", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.SendKeys(chromedp.CSS("#user"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#password"), pw), chromedp.SendKeys(chromedp.CSS("#password2"), pw),
		chromedp.Submit(chromedp.CSS("#password2")), chromedp.WaitVisible(chromedp.CSS(`form[action="/account/totp"] button`)), loaded("/account"))
	run("totp begin", chromedp.Click(chromedp.CSS(`form[action="/account/totp"] button`)), chromedp.WaitVisible(chromedp.CSS("#totp-secret")))
	secret := text("#totp-secret")
	page("01-account-totp-setup")
	codeTime := time.Now()
	code, err := totp.GenerateCode(secret, codeTime)
	if err != nil {
		t.Fatalf("TOTP secret %q from the page: %v", secret, err)
	}
	confirmStep := codeTime.Unix() / 30
	run("totp confirm", chromedp.SendKeys(chromedp.CSS("#totp-code"), code), chromedp.Submit(chromedp.CSS("#totp-code")),
		chromedp.WaitVisible(chromedp.CSS("ul.codes")))
	if n := eval("recovery codes", `String(document.querySelectorAll("ul.codes li").length)`); n != "10" {
		t.Errorf("%s recovery codes shown, want 10", n)
	}
	page("02-account-recovery-codes")
	run("logout", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#password")), loaded("/login"))
	page("03-login")
	run("login", chromedp.SendKeys(chromedp.CSS("#user"), "admin"), chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Submit(chromedp.CSS("#password")), chromedp.WaitVisible(chromedp.CSS("#code")))
	page("04-login-code")
	// A code counts once per 30 s step, and the confirmation used this
	// one's: the next step's code (the console allows one step of skew).
	at := time.Now()
	if at.Unix()/30 <= confirmStep {
		at = time.Unix((confirmStep+1)*30, 0)
	}
	if code, err = totp.GenerateCode(secret, at); err != nil {
		t.Fatal(err)
	}
	run("login code", chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Submit(chromedp.CSS("#code")), loaded("/dashboard"))
	if who := text(".who a"); who != "admin" {
		t.Fatalf("logged in as %q", who)
	}

	// The dashboard counts what was just sent: the store commits within
	// tens of milliseconds, the rollups with it.
	var total, blocked int
	for deadline := time.Now().Add(20 * time.Second); ; {
		run("dashboard", chromedp.Navigate(base+"/dashboard?range=1h"), chromedp.WaitVisible(chromedp.CSS("#stat-total")))
		ts, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#stat-total")))
		bs, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#stat-blocked")))
		total, _ = strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(ts), ",", ""))
		blocked, _ = strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(bs), ",", ""))
		if total >= 7 && blocked >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if total < 7 || blocked != 1 {
		t.Errorf("dashboard: %d requests, %d blocked; want at least the 7 sent, 1 blocked", total, blocked)
	}
	run("charts", chromedp.WaitVisible(chromedp.CSS("#chart-action canvas")), loaded("/dashboard"))
	// What the decision chart plots: one line per action, summed over the
	// range.
	var plotted map[string]float64
	if err := json.Unmarshal([]byte(eval("chart data", `(function(){var c = document.getElementById("chart-action").chart, out = {};
		c.series.slice(1).forEach(function (s, i) { out[s.label] = c.data[i+1].reduce(function (a, v) { return a + (v || 0); }, 0); });
		return JSON.stringify(out); })()`)), &plotted); err != nil {
		t.Fatal(err)
	}
	if plotted["allow"] < 6 || plotted["block"] != 1 {
		t.Errorf("decision chart plots %v, want the 6 allowed requests at least and the 1 blocked", plotted)
	}
	page("05-dashboard")

	run("search", chromedp.Navigate(base+"/activity?q=report.pdf&since=1h"), chromedp.WaitVisible(chromedp.CSS(".events-table tbody tr")), loaded("/activity"))
	rows, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(".events-table tbody tr")).map(r => r.textContent)`))
	if len(rows) != 1 || !strings.Contains(rows[0], "report.pdf") || !strings.Contains(rows[0], "block") {
		t.Errorf("search for report.pdf: %q, want the one blocked download", rows)
	}
	page("06-activity-search")
	run("drawer", chromedp.Click(chromedp.CSS(".events-table tbody tr button[hx-get]")), chromedp.WaitVisible(chromedp.CSS("#drawer-panel")))
	if d := text("#drawer-panel"); !strings.Contains(d, "no-lab-downloads") || !strings.Contains(d, "report.pdf") {
		t.Errorf("event drawer: %q", d)
	}
	page("07-activity-event-drawer")

	// A policy made in the editor's form.
	run("policies", chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(chromedp.CSS(`tr[data-policy="no-lab-downloads"]`)), loaded("/policies"))
	page("08-policies")
	run("editor", chromedp.Navigate(base+"/policies/edit?file=lab.yaml"), chromedp.WaitVisible(chromedp.CSS("#pf-kind")),
		waitJS(`document.getElementById("pf-yaml").textContent !== ""`),
		chromedp.SetValue(chromedp.CSS("#pf-kind"), "session"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("pf-kind").dispatchEvent(new Event("change"))`),
		waitJS(`document.getElementById("pf-yaml").textContent.startsWith("session_policies:")`))
	field := func(label string) string {
		t.Helper()
		id := eval("field "+label, `(function(){var l=[...document.querySelectorAll("#pf-fields label")].find(l=>l.textContent===`+jsQuote(label)+`);return l?"#"+l.htmlFor:""})()`)
		if id == "" {
			t.Fatalf("no form field labelled %q", label)
		}
		return id
	}
	set := func(sel, v string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](`(function(){var e=document.querySelector(` + jsQuote(sel) + `);e.value=` + jsQuote(v) + `;e.dispatchEvent(new Event("input",{bubbles:true}))})()`)
	}
	const polID = "e2e-no-uploads"
	run("fill the form", set(field("Id"), polID), set(field("Name"), "No uploads to the lab"),
		set(field("Message"), "Uploads to the lab origin are blocked by the console test."),
		set("#pf-fields input[data-path='filters.apps.any_of']", "origin-lab"),
		set("#pf-fields input[data-path='filters.client_apps.any_of']", "browser, mobile_desktop"),
		set("#pf-fields input[data-path='activities.any_of']", "upload_file"),
		chromedp.SetValue(chromedp.CSS(field("Control")), "block_activities"),
		chromedp.SetValue(chromedp.CSS(field("Action")), "block"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("pf-fields").dispatchEvent(new Event("change"))`),
		waitJS(`document.getElementById("pf-yaml").textContent.includes("id: `+polID+`") && document.getElementById("pf-yaml").textContent.includes("action: block")`))
	run("add to the file", chromedp.Click(chromedp.CSS("#pf-add")),
		waitJS(`document.getElementById("ed-content").value.includes("id: `+polID+`")`),
		waitJS(`document.getElementById("ed-status").textContent.startsWith("Valid: 0 access and 2 session")`))
	page("09-editor-form")

	// Dry run against the recorded events: the upload was allowed and
	// would be blocked by the new policy; nothing else changes.
	run("dry run", chromedp.Click(chromedp.CSS("#ed-dryrun")), chromedp.WaitVisible(chromedp.CSS("#dry-result")),
		waitJS(`document.querySelectorAll("#dr-samples tbody tr").length > 0`))
	summary := text("#dr-summary")
	m := regexp.MustCompile(`^(\d+) recent events replayed in [0-9.]+ ms: (\d+) decision\(s\) change\.$`).FindStringSubmatch(summary)
	if m == nil {
		t.Fatalf("dry-run summary %q", summary)
	}
	if n, _ := strconv.Atoi(m[1]); n < 7 {
		t.Errorf("dry run replayed %d events, want the 7 recorded at least: %q", n, summary)
	}
	if m[2] != "1" {
		t.Errorf("dry run: %s decisions change, want 1 (the upload): %q", m[2], summary)
	}
	var trans [][]string
	if err := json.Unmarshal([]byte(eval("transitions", `JSON.stringify([...document.querySelectorAll("#dr-trans tbody tr")].map(r => [...r.cells].map(c => c.textContent.trim())))`)), &trans); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(trans) != "[[allow block 1]]" {
		t.Errorf("dry-run transitions %q, want allow → block for 1 event", trans)
	}
	var samples [][]string
	if err := json.Unmarshal([]byte(eval("samples", `JSON.stringify([...document.querySelectorAll("#dr-samples tbody tr")].map(r => [...r.cells].map(c => c.textContent.trim())))`)), &samples); err != nil {
		t.Fatal(err)
	}
	if len(samples) != 1 || len(samples[0]) != 6 || samples[0][2] != "POST origin.lab/upload" || samples[0][3] != "allow" || samples[0][4] != "allow" ||
		!strings.HasPrefix(samples[0][5], "block ("+polID+")") {
		t.Errorf("dry-run samples %q, want the upload, allowed, blocked by %s", samples, polID)
	}
	page("10-editor-dry-run")

	// Staged, applied from the tray: the next request is refused.
	run("stage", chromedp.SendKeys(chromedp.CSS("#ed-summary"), "no uploads"), chromedp.Click(chromedp.CSS("#ed-stage")),
		waitJS(`document.getElementById("ed-status").textContent.startsWith("Added to pending changes")`))
	if got := upload(); got != "200" {
		t.Errorf("staged only: HTTP %s, want 200", got)
	}
	run("tray", chromedp.Navigate(base+"/changes"), chromedp.WaitVisible(chromedp.CSS("article.change")), loaded("/changes"),
		chromedp.Click(chromedp.CSS("article.change details summary")))
	if s := text("article.change .summary"); s != "no uploads — added session policy "+polID+" (block)" {
		t.Errorf("tray summary %q", s)
	}
	page("11-changes-pending")
	// The tray page the apply starts from may already show a flash (after
	// the undo below: "Change added ..."): wait for the apply's own.
	run("apply", chromedp.Click(chromedp.CSS("#tray-apply")), waitJS(`(document.querySelector("p.flash.ok") || {}).textContent?.startsWith("Changes applied")`), loaded("/changes"))
	if got := upload(); got != "403" {
		t.Errorf("after the apply: HTTP %s, want the block page (403)\n%s", got, l.log())
	}

	// Undone from the revisions page: the same request passes again.
	run("revisions", chromedp.Navigate(base+"/policies/revisions?file=lab.yaml"), chromedp.WaitVisible(chromedp.CSS("form.rollback button")), loaded("/policies/revisions"))
	if h := text("section.revision"); !strings.Contains(h, "by admin") || !strings.Contains(h, "no uploads — added session policy "+polID) {
		t.Errorf("newest revision: %q", h)
	}
	page("12-revisions")
	run("undo", chromedp.Click(chromedp.CSS(`form.rollback button[value="before"]`)), chromedp.WaitVisible(chromedp.CSS("article.change")), loaded("/changes"))
	if s := text("article.change .summary"); !strings.Contains(s, "rollback: lab.yaml as before revision") || !strings.Contains(s, "removed policy "+polID) {
		t.Errorf("rollback summary %q", s)
	}
	run("apply rollback", chromedp.Click(chromedp.CSS("#tray-apply")), waitJS(`(document.querySelector("p.flash.ok") || {}).textContent?.startsWith("Changes applied")`), loaded("/changes"))
	if got := upload(); got != "200" {
		t.Errorf("after the rollback: HTTP %s, want 200", got)
	}
	if b, _ := os.ReadFile(filepath.Join(polDir, "lab.yaml")); string(b) != blockDownloadsPolicy {
		t.Errorf("lab.yaml after the rollback:\n%s", b)
	}

	// The other pages, as the admin sees them: with the controls the
	// auditor must not get (the check below would find nothing otherwise).
	for _, p := range []struct{ name, path, sel string }{
		{"13-apps", "/apps", "h1"}, {"14-devices", "/devices", "h1"}, {"15-settings", "/settings", "h1"},
		{"16-audit", "/audit", ".card table tbody tr"}, {"17-accounts", "/users", "#nu-user"},
		{"", "/policies", `tr[data-policy="no-lab-downloads"]`}, {"", "/policies/edit?file=lab.yaml", "#ed-content"},
		{"", "/policies/revisions?file=lab.yaml", "section.revision"},
	} {
		path, _, _ := strings.Cut(p.path, "?")
		run(p.path, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)), loaded(path))
		if found := controls(p.path); found == "" && path != "/audit" {
			t.Errorf("admin on %s is offered no change", p.path)
		}
		if p.name != "" {
			page(p.name)
		}
	}
	run("audit", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS(".card table tbody tr")), loaded("/audit"))
	if a := text(".card table tbody"); !strings.Contains(a, "changes_applied") || !strings.Contains(a, "totp_enrolled") || !strings.Contains(a, "setup") {
		t.Errorf("audit log lacks the set-up, the TOTP enrolment or the apply: %q", a)
	}

	// An auditor, added on the accounts page; a change left pending for it
	// to see.
	const audPW = "console-auditor-password-1"
	run("add auditor", chromedp.Navigate(base+"/users"), chromedp.WaitVisible(chromedp.CSS("#nu-user")), loaded("/users"), chromedp.SendKeys(chromedp.CSS("#nu-user"), "auditor"), chromedp.SetValue(chromedp.CSS("#nu-role"), "auditor"),
		chromedp.SendKeys(chromedp.CSS("#nu-pw"), audPW), chromedp.Submit(chromedp.CSS("#nu-pw")), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")), loaded("/users"))
	if f := text("p.flash.ok"); f != "Account added." {
		t.Errorf("flash after adding the account: %q", f)
	}
	if rows := text("table tbody"); !strings.Contains(rows, "auditor") {
		t.Fatalf("accounts after adding the auditor: %q", rows)
	}
	run("stage monitor-only", chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(chromedp.CSS(`button[data-toggle="monitor"][data-policy="no-lab-downloads"]`)), loaded("/policies"),
		chromedp.Click(chromedp.CSS(`button[data-toggle="monitor"][data-policy="no-lab-downloads"]`)), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")), loaded("/policies"))
	run("logout admin", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#password")), loaded("/login"),
		chromedp.SendKeys(chromedp.CSS("#user"), "auditor"), chromedp.SendKeys(chromedp.CSS("#password"), audPW),
		chromedp.Submit(chromedp.CSS("#password")), loaded("/dashboard"))
	if role := text(".who .role"); role != "auditor" {
		t.Fatalf("logged in with role %q", role)
	}
	// No page offers a change; the editor is read-only.
	for _, p := range []struct{ name, path, sel string }{
		{"20-auditor-policies", "/policies", `tr[data-policy="no-lab-downloads"]`},
		{"21-auditor-editor", "/policies/edit?file=lab.yaml", "#ed-content"},
		{"22-auditor-changes", "/changes", "article.change"},
		{"23-auditor-revisions", "/policies/revisions?file=lab.yaml", "section.revision"},
		{"24-auditor-apps", "/apps", "h1"}, {"25-auditor-devices", "/devices", "h1"}, {"26-auditor-settings", "/settings", "h1"},
		{"27-auditor-accounts", "/users", "table tbody tr"},
	} {
		path, _, _ := strings.Cut(p.path, "?")
		run(p.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)), loaded(path))
		if found := controls(p.path); found != "" {
			t.Errorf("auditor on %s is offered changes:\n%s", p.path, found)
		}
		page(p.name)
	}
	run("editor read-only", chromedp.Navigate(base+"/policies/edit?file=lab.yaml"), chromedp.WaitVisible(chromedp.CSS("#ed-content")), loaded("/policies/edit"))
	if ro := eval("readonly", `String(document.getElementById("ed-content").readOnly)`); ro != "true" {
		t.Error("the editor is writable for an auditor")
	}
	// Changes sent anyway, with the auditor's session and CSRF token: the
	// API and the pages' form posts refuse them; without a session, 401.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`(async () => {
		const csrf = document.querySelector('meta[name="csrf-token"]').content;
		const h = {"Content-Type": "application/json", "X-CSRF-Token": csrf};
		const tray = await (await fetch("/api/v1/tray")).json();
		const out = [tray.changes.length];
		for (const [m, u, b] of [["POST", "/api/v1/tray/apply", {version: tray.version}],
			["POST", "/api/v1/tray/changes", {kind: "policy_enabled", policy: "no-lab-downloads", enabled: false}],
			["PUT", "/api/v1/policies/files/lab.yaml", {content: "session_policies: []\n", base_sha256: ""}],
			["POST", "/api/v1/users", {name: "mallory", password: "mallory-password-1", role: "admin"}]]) {
			out.push((await fetch(u, {method: m, headers: h, body: JSON.stringify(b)})).status);
		}
		const form = new URLSearchParams({csrf: csrf, version: String(tray.version)});
		out.push((await fetch("/changes/apply", {method: "POST", body: form})).status);
		out.push((await fetch("/api/v1/tray", {credentials: "omit"})).status);
		out.push((await fetch("/api/v1/tray/apply", {method: "POST", credentials: "omit", headers: {"Content-Type": "application/json"}, body: "{}"})).status);
		return out;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 403, 403, 403, 403, 403, 401, 401}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("auditor's changes and requests without a session: %v, want %v (pending changes, four API calls, the apply form, no session twice)", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(polDir, "lab.yaml")); string(b) != blockDownloadsPolicy {
		t.Errorf("lab.yaml after the auditor's attempts:\n%s", b)
	}
	if got := curl("/files/report.pdf"); got != "403" {
		t.Errorf("download after the auditor's attempts: HTTP %s, want 403 (the monitor-only change stays pending)", got)
	}
	run("audit as auditor", chromedp.Navigate(base+"/audit?action=forbidden"), chromedp.WaitVisible(chromedp.CSS(".card table tbody tr")), loaded("/audit"))
	if a := text(".card table tbody"); strings.Count(a, "auditor attempted a change") < 5 {
		t.Errorf("audit log of the auditor's attempts: %q", a)
	}
	page("28-auditor-audit")
}

// screenshotDir is PORTCULLIS_SCREENSHOTS, or the test's temp dir.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("PORTCULLIS_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkConsolePage runs axe-core on the page in the tab, failing the test
// for each serious or critical violation, and writes its screenshot to
// dir/e2e-name.png.
func checkConsolePage(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	axeSrc, err := os.ReadFile("console/testdata/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	browser.Axe(t, ctx, string(axeSrc), name)
	browser.Screenshot(t, ctx, dir, "e2e-"+name)
}

// waitJS polls expr in the tab until it is true (15 s at most).
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if ok, err := chromedp.Evaluate[bool](expr)(ctx, t); err == nil && ok {
				return nil
			}
		}
		return fmt.Errorf("never true: %s", expr)
	})
}

func jsQuote(s string) string { b, _ := json.Marshal(s); return string(b) }
