package appliance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/appliance/console"
	"github.com/portcullis-gw/portcullis/internal/lab/browser"
)

// TestConsoleE2EInChromium runs the appliance binary in the lab with its
// console on the gateway's LAN address and a policy that blocks downloads
// from the lab origin. curl in the client namespace sends page loads and
// one download through the transparent proxy; then headless Chromium in
// the client namespace (trusting only the appliance CA) creates the first
// admin with the setup token, finds the traffic on the dashboard (the
// request count, the blocked one) and the blocked download by its file
// name in the activity search. axe-core on both pages; screenshots under
// the test output.
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
	curl := func(path string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := l.Client.Exec(ctx, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", filepath.Join(l.dir, "appliance-ca.pem"), "https://origin.lab"+path)
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
	axeSrc, err := os.ReadFile("console/testdata/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	token, err := console.SetupToken(filepath.Join(l.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}

	b := browser.Start(t, browser.Options{NS: l.Client, TrustPEM: [][]byte{caPEM}})
	tab, _ := b.NewTab(t)
	ctx, cancel := context.WithTimeout(tab, 3*time.Minute)
	defer cancel()
	shots := os.Getenv("PORTCULLIS_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
			if len(html) > 3000 {
				html = html[:3000]
			}
			t.Fatalf("%s: %v\n%s", what, err, html)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(shots, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
	}
	axe := func(page string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](string(axeSrc)+";true")); err != nil {
			t.Fatalf("inject axe on %s: %v", page, err)
		}
		res, err := chromedp.Run(ctx, chromedp.Evaluate[[]map[string]any](`axe.run(document, {resultTypes: ["violations"]}).then(r =>
			r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({id: v.id, impact: v.impact, help: v.help})))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("axe on %s: %v", page, err)
		}
		for _, v := range res {
			t.Errorf("axe %s: %v %v: %v", page, v["impact"], v["id"], v["help"])
		}
	}
	base := "https://" + consoleAddr
	const pw = "console-admin-password-1"
	run("setup", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.SendKeys(chromedp.CSS("#user"), "admin"),
		chromedp.SendKeys(chromedp.CSS("#password"), pw), chromedp.SendKeys(chromedp.CSS("#password2"), pw),
		chromedp.Submit(chromedp.CSS("#password2")), chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"]`)))

	// The dashboard counts what was just sent: the store commits within
	// tens of milliseconds, the rollups with it.
	var total, blocked int
	for deadline := time.Now().Add(20 * time.Second); ; {
		run("dashboard", chromedp.Navigate(base+"/dashboard?range=1h"), chromedp.WaitVisible(chromedp.CSS("#stat-total")))
		ts, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#stat-total")))
		bs, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#stat-blocked")))
		total, _ = strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(ts), ",", ""))
		blocked, _ = strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(bs), ",", ""))
		if total >= 6 && blocked >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if total < 6 || blocked != 1 {
		t.Errorf("dashboard: %d requests, %d blocked; want at least the 6 sent, 1 blocked", total, blocked)
	}
	run("charts", chromedp.WaitVisible(chromedp.CSS("#chart-action canvas")))
	axe("dashboard")
	shot("e2e-01-dashboard")

	run("search", chromedp.Navigate(base+"/activity?q=report.pdf&since=1h"), chromedp.WaitVisible(chromedp.CSS(".events-table tbody tr")))
	rows, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(".events-table tbody tr")).map(r => r.textContent)`))
	if len(rows) != 1 || !strings.Contains(rows[0], "report.pdf") || !strings.Contains(rows[0], "block") {
		t.Errorf("search for report.pdf: %q, want the one blocked download", rows)
	}
	axe("activity")
	shot("e2e-02-activity-search")
}
