package console

import (
	"context"
	_ "embed"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/portcullis-gw/portcullis/internal/lab/browser"
)

//go:embed testdata/axe.min.js
var axeSource string

// TestConsoleInChromium drives the console in headless Chromium under its
// real CSP: first login with the setup token, TOTP enrolment (codes
// computed here), the dashboard's charts drawn by uPlot, a search and the
// event drawer through htmx, a policy validated, dry-run and saved in the
// editor; axe-core finds no serious or critical violation on any page;
// screenshots of each page at 1280×800 and at tablet width go under the
// test's temp dir.
func TestConsoleInChromium(t *testing.T) {
	tc := newTestConsole(t, nil)
	now := time.Now()
	tc.emit(append(labEvents(now, 40), hostileEvent(now))...)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.srv.Certificate().Raw})
	b := browser.Start(t, browser.Options{TrustPEM: [][]byte{certPEM}})
	tab, _ := b.NewTab(t)
	ctx, cancel := context.WithTimeout(tab, 3*time.Minute)
	defer cancel()
	// PORTCULLIS_SCREENSHOTS keeps them somewhere that outlives the test.
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
			t.Fatalf("%s: %v\n%s", what, clipRunes(html, 3000), err)
		}
	}
	shot := func(name string) {
		t.Helper()
		screenshot(t, ctx, shots, name)
	}
	axe := func(page string) { t.Helper(); axeCheck(t, ctx, page) }
	// A CSP violation would mean an asset or script the page needs is refused.
	cspClean := func(page string) {
		t.Helper()
		n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__cspViolations || 0`))
		if n > 0 {
			t.Errorf("%s: %d CSP violations", page, n)
		}
	}
	watchCSP := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`window.__cspViolations = 0; document.addEventListener("securitypolicyviolation", () => window.__cspViolations++); true`)(ctx, t)
		return err
	})

	token, err := SetupToken(tc.state)
	if err != nil {
		t.Fatal(err)
	}
	run("setup page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	axe("setup")
	shot("01-setup")
	run("create admin", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.SendKeys(chromedp.CSS("#user"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#password"), adminPW), chromedp.SendKeys(chromedp.CSS("#password2"), adminPW),
		chromedp.Submit(chromedp.CSS("#password2")), chromedp.WaitVisible(chromedp.CSS("#totp-h")))
	run("begin totp", chromedp.Click(chromedp.CSS(`form[action="/account/totp"] button`)), chromedp.WaitVisible(chromedp.CSS("#totp-secret")))
	secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#totp-secret")))
	if err != nil {
		t.Fatal(err)
	}
	axe("account (enrolment)")
	shot("02-totp-enrolment")
	code, _ := totp.GenerateCode(strings.TrimSpace(secret), time.Now())
	run("confirm totp", chromedp.SendKeys(chromedp.CSS("#totp-code"), code), chromedp.Submit(chromedp.CSS("#totp-code")),
		chromedp.WaitVisible(chromedp.CSS("ul.codes")))

	// Log out and in again with password and code.
	run("logout", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#password")))
	axe("login")
	run("login", chromedp.SendKeys(chromedp.CSS("#user"), "admin"), chromedp.SendKeys(chromedp.CSS("#password"), adminPW),
		chromedp.Submit(chromedp.CSS("#password")), chromedp.WaitVisible(chromedp.CSS("#code")))
	// The enrolment used this step's code; wait for the next one.
	time.Sleep(time.Until(time.Unix((time.Now().Unix()/30+1)*30, 0)) + 500*time.Millisecond)
	code, _ = totp.GenerateCode(strings.TrimSpace(secret), time.Now())
	run("second factor", chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitVisible(chromedp.CSS("#chart-action canvas")))

	// Dashboard: charts drawn, numbers there, live refresh swaps in place.
	run("dashboard", watchCSP, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#chart-action canvas")), chromedp.WaitVisible(chromedp.CSS("#chart-mode canvas")), watchCSP)
	total, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#stat-total")))
	if total != "41" {
		t.Errorf("dashboard total %q, want 41", total)
	}
	time.Sleep(5500 * time.Millisecond) // one htmx poll
	cspClean("dashboard")
	axe("dashboard")
	shot("03-dashboard")

	// Activity: search a blocked download by file name, open the drawer.
	run("activity", watchCSP, chromedp.Navigate(base+"/activity?action=block&q=report.pdf"), chromedp.WaitVisible(chromedp.CSS(".events-table tbody tr")), watchCSP)
	rows, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".events-table tbody tr").length`))
	if rows != 20 {
		t.Errorf("%d rows for blocked report.pdf downloads, want 20", rows)
	}
	run("drawer", chromedp.Click(chromedp.CSS(".events-table tbody tr button")), chromedp.WaitVisible(chromedp.CSS("#drawer-panel")))
	focused, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	if focused != "drawer-panel" {
		t.Errorf("focus after opening the drawer: %q", focused)
	}
	cspClean("activity")
	axe("activity")
	shot("04-activity-drawer")
	// The hostile event renders as text, and no script of its ran.
	run("hostile", chromedp.Navigate(base+"/activity?q=script"), chromedp.WaitVisible(chromedp.CSS(".events-table tbody tr button")),
		chromedp.Click(chromedp.CSS(".events-table tbody tr button")), chromedp.WaitVisible(chromedp.CSS("#drawer-panel")))
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script, main img, main b").length`)); n != 0 {
		t.Errorf("hostile event produced %d elements", n)
	}
	shot("05-activity-hostile")

	// Policies: the list, then a new file in the editor.
	run("policies", chromedp.Navigate(base+"/policies"), chromedp.WaitVisible(chromedp.CSS("#sp-h")))
	axe("policies")
	shot("06-policies")
	run("editor", watchCSP, chromedp.Navigate(base+"/policies/edit"), chromedp.WaitVisible(chromedp.CSS("#ed-content")), watchCSP,
		chromedp.SendKeys(chromedp.CSS("#ed-file"), "console.yaml"),
		chromedp.SetValue(chromedp.CSS("#ed-content"), "access_policies:\n  - id: close-lab\n    filters:\n      apps: [origin-lab]\n    action: bogus\n"),
		chromedp.SendKeys(chromedp.CSS("#ed-content"), " "), waitFor(`document.querySelectorAll("#ed-problems li").length > 0`))
	prob, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#ed-problems li")))
	if !strings.Contains(prob, "console.yaml:5") {
		t.Errorf("problem %q does not point at console.yaml:5", prob)
	}
	run("fix", chromedp.SetValue(chromedp.CSS("#ed-content"), monitorPages), chromedp.SendKeys(chromedp.CSS("#ed-content"), "\n"),
		waitFor(`document.getElementById("ed-status").textContent.startsWith("Valid")`),
		chromedp.Click(chromedp.CSS("#ed-dryrun")), chromedp.WaitVisible(chromedp.CSS("#dr-samples tbody tr")))
	summary, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#dr-summary")))
	// The hostile event's host is no app's: its decision stays.
	if !strings.Contains(summary, "41 recent events replayed") || !strings.Contains(summary, "40 decision(s) change") {
		t.Errorf("dry run: %q", summary)
	}
	axe("editor")
	shot("07-editor-dry-run")
	run("save", chromedp.Click(chromedp.CSS("#ed-save")), waitFor(`document.getElementById("ed-status").textContent.startsWith("Saved as revision 1 and applied")`))
	cspClean("editor")
	if b, _ := os.ReadFile(filepath.Join(tc.polDir, "console.yaml")); strings.TrimSpace(string(b)) != strings.TrimSpace(monitorPages) {
		t.Errorf("saved file: %q", b)
	}
	for i, p := range []string{"/policies/revisions", "/audit", "/users", "/account"} {
		run(p, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.CSS("h1")))
		axe(p)
		shot(fmt.Sprintf("%02d-%s", 8+i, strings.ReplaceAll(strings.Trim(p, "/"), "/", "-")))
	}
	// Tablet width.
	run("tablet", chromedp.EmulateViewport(820, 1180), chromedp.Navigate(base+"/dashboard"), chromedp.WaitVisible(chromedp.CSS("#chart-action canvas")))
	axe("dashboard (tablet)")
	shot("12-dashboard-tablet")
	run("tablet activity", chromedp.Navigate(base+"/activity"), chromedp.WaitVisible(chromedp.CSS(".events-table")))
	shot("13-activity-tablet")
	if w, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 820 {
		t.Errorf("tablet: page is %d px wide, scrolls sideways", w)
	}
}

func waitFor(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if ok, err := chromedp.Evaluate[bool](expr)(ctx, t); err == nil && ok {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return fmt.Errorf("never true: %s", expr)
	})
}
