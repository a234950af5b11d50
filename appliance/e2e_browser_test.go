package appliance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/internal/lab/browser"
)

// chromium is a tab of headless Chromium in the client namespace that
// trusts only the appliance CA and resolves every *.gw.test name to the
// appliance.
type chromium struct {
	ctx context.Context
	log *browser.NetLog
}

func startChromium(t *testing.T, l *e2eLab, caPEM []byte) *chromium {
	t.Helper()
	rules := map[string]string{}
	for _, h := range []string{"sp.lab", "idp.lab", "rp.lab", "op.lab"} {
		rules[h+".gw.test"] = suffixListen.Addr().String()
	}
	b := browser.Start(t, browser.Options{NS: l.Client, TrustPEM: [][]byte{caPEM}, HostRules: rules})
	ctx, log := b.NewTab(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	return &chromium{ctx: ctx, log: log}
}

// assertLoaded fails on any request the browser saw fail: a network error
// or an error status. The apps' missing favicon is not the proxy's doing.
func assertLoaded(t *testing.T, log *browser.NetLog) {
	t.Helper()
	for _, e := range log.Entries() {
		if strings.HasSuffix(e.URL, "/favicon.ico") || e.Canceled {
			continue
		}
		if e.Failure != "" || e.Status >= 400 {
			t.Errorf("request failed: %s %s (%s): status %d %s", e.Method, e.URL, e.ResourceType, e.Status, e.Failure)
		}
	}
}

func (c *chromium) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(c.ctx, actions...); err != nil {
		loc, _ := chromedp.Run(c.ctx, chromedp.Location())
		body, _ := chromedp.Run(c.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if len(body) > 3000 {
			body = body[:3000]
		}
		t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
	}
}

// waitText waits until the page body contains s. Evaluations that race a
// navigation (the page is replaced under them) are retried.
func waitText(s string) chromedp.Action[chromedp.Void] {
	expr := fmt.Sprintf("!!(document.body && document.body.innerText.includes(%q))", s)
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		deadline := time.Now().Add(20 * time.Second)
		var last error
		for time.Now().Before(deadline) {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, t)
			if err == nil && ok {
				return nil
			}
			last = err
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		return fmt.Errorf("page never showed %q (last error: %v)", s, last)
	})
}

// TestE2EBrowserSSOThroughSuffix is the full SAML and OIDC login in
// headless Chromium through the suffix proxy, then page loads; the
// browser's own network log shows every request went to a .gw.test host
// and none failed.
func TestE2EBrowserSSOThroughSuffix(t *testing.T) {
	l := newSSOLab(t, "")
	l.start()
	defer l.stop(syscall.SIGTERM)
	l.applianceCA()
	caPEM, err := os.ReadFile(filepath.Join(l.dir, "appliance-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("saml", func(t *testing.T) {
		b := startChromium(t, l.e2eLab, caPEM)
		b.run(t, "SAML login", chromedp.Navigate("https://sp.lab.gw.test/"),
			chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), "alice"),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "alice-pw"),
			chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
			waitText("Hello alice@lab.example"))
		// The page's script fetches an API with absolute URLs and opens a
		// WebSocket; give them time, then load a page again.
		b.run(t, "page loads", chromedp.Sleep(time.Second), chromedp.Navigate("https://sp.lab.gw.test/"),
			waitText("Hello alice@lab.example"), chromedp.Sleep(time.Second))
		b.log.AssertAllHostsUnder(t, "gw.test")
		assertLoaded(t, b.log)
		kinds := map[string]int{}
		for _, e := range b.log.Entries() {
			kinds[e.ResourceType]++
		}
		if kinds["Document"] < 3 || kinds["Fetch"]+kinds["XHR"] == 0 || kinds["WebSocket"] == 0 || kinds["Script"] == 0 || kinds["Image"] == 0 {
			t.Errorf("the network log lacks the page's subresources, API call or WebSocket: %v", kinds)
		}
		line := l.waitAccessLog(t, func(m map[string]any) bool { return m["host"] == "sp.lab" && m["user"] == "alice@lab.example" })
		if line["mode"] != "suffix" {
			t.Errorf("access log: %v", line)
		}
	})

	t.Run("oidc", func(t *testing.T) {
		b := startChromium(t, l.e2eLab, caPEM)
		b.run(t, "OIDC login", chromedp.Navigate("https://rp.lab.gw.test/"),
			chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "alice"),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "alice-pw"),
			chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
			waitText("Hello alice"))
		b.run(t, "page loads", chromedp.Sleep(time.Second), chromedp.Navigate("https://rp.lab.gw.test/"),
			waitText("Hello alice"), chromedp.Sleep(time.Second))
		b.log.AssertAllHostsUnder(t, "gw.test")
		assertLoaded(t, b.log)
	})
}
