package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

const inPagePolicies = `session_policies:
  - id: wiki-notice
    filters: {apps: [dokuwiki]}
    control: monitor
    action: monitor
    notice: true
    message: This wiki session is monitored by Portcullis.
  - id: no-copy-print
    filters: {apps: [dokuwiki]}
    control: block_activities
    activities: [cut_copy, print]
    action: block
    message: Copying and printing wiki pages is not allowed.
`

// TestE2EInPageControlsDokuWiki puts the control script and the monitoring
// notice in front of the real DokuWiki in headless Chromium, transparently
// and through the suffix proxy: the first navigation shows the notice with
// the admin's message and Continue leads to the wiki; under the policy a
// copy (execCommand and Ctrl+C) leaves the clipboard as it was and print
// media shows the message instead of the page; every attempt is an event
// in the activity log. With the policy removed (SIGHUP), both work.
func TestE2EInPageControlsDokuWiki(t *testing.T) {
	for _, suffix := range []bool{false, true} {
		name := map[bool]string{false: "transparent", true: "suffix"}[suffix]
		t.Run(name, func(t *testing.T) { testInPageControls(t, suffix) })
	}
}

func testInPageControls(t *testing.T, suffix bool) {
	wl := newWikiLab(t, suffix, inPagePolicies, "")
	pageDir := filepath.Join(wl.wiki.DataDir, "pages", "lab")
	if err := os.MkdirAll(pageDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pageDir, "secret.txt"), []byte("====== Secret ======\n\nSECRETWIKITEXT is on this page.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chown(pageDir, 33, 33)
	wl.start()
	defer wl.stop(syscall.SIGTERM)
	b := wl.browser(t)
	tab, _ := b.NewTab(t)
	plain := "https://origin.lab/" // an app no in-page policy covers: the clipboard is read there
	host := "wiki.lab"
	if suffix {
		plain, host = "https://origin.lab.gw.test/", "wiki.lab.gw.test"
	}
	id := chromedp.FromContext(tab).BrowserContextID
	for _, origin := range []string{strings.TrimSuffix(plain, "/"), "https://" + host} {
		for _, perm := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := chromedp.CallBrowser(tab, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
				Permission: &cdpbrowser.PermissionDescriptor{Name: perm, AllowWithoutSanitization: true},
				Setting:    cdpbrowser.PermissionSettingGranted, Origin: origin, BrowserContextID: id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := chromedp.Call(tab, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	secretPage := wl.base + "doku.php?id=lab:secret"

	wl.step(t, tab, "the first navigation shows the notice", chromedp.Navigate(secretPage),
		waitText("This wiki session is monitored by Portcullis."))
	if loc, _ := chromedp.Run(tab, chromedp.Location()); !strings.Contains(loc, "/.portcullis/notice") {
		t.Fatalf("notice shown at %s", loc)
	}
	wl.step(t, tab, "continue to the wiki", chromedp.Click(chromedp.CSS(`#continue`)), waitText("SECRETWIKITEXT"))

	clipboard := func(write string) string {
		t.Helper()
		var got string
		wl.step(t, tab, "use the clipboard on an unprotected page", chromedp.Navigate(plain), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if write != "" {
				js, _ := json.Marshal(write)
				if _, err := chromedp.Evaluate[chromedp.Void](`navigator.clipboard.writeText(`+string(js)+`)`, chromedp.EvalAwaitPromise)(ctx, tg); err != nil {
					return err
				}
			}
			v, err := chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise)(ctx, tg)
			got = v
			return err
		}))
		return got
	}
	copyOnWiki := func() {
		t.Helper()
		wl.step(t, tab, "copy the wiki text", chromedp.Navigate(secretPage), waitText("SECRETWIKITEXT"),
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				sel, err := chromedp.Evaluate[string](`(() => { const r = document.createRange(); r.selectNodeContents(document.querySelector('.page'));
					const s = getSelection(); s.removeAllRanges(); s.addRange(r); return s.toString(); })()`)(ctx, tg)
				if err != nil || !strings.Contains(sel, "SECRETWIKITEXT") {
					return fmt.Errorf("selection %q: %v", sel, err)
				}
				_, err = chromedp.Evaluate[bool](`document.execCommand('copy')`, func(p *runtime.EvaluateParams) { p.UserGesture = new(true) })(ctx, tg)
				return err
			}),
			chromedp.KeyEvent("c", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
			chromedp.Sleep(300*time.Millisecond),
		)
	}

	clipboard("BEFORE")
	copyOnWiki()
	if got := clipboard(""); got != "BEFORE" {
		t.Errorf("clipboard after a blocked copy = %q, want it unchanged", got)
	}
	text := printedText(t, wl, tab, secretPage)
	if !strings.Contains(text, "Copying and printing wiki pages is not allowed.") || strings.Contains(text, "SECRETWIKITEXT") {
		t.Errorf("print media under the policy shows %q", text)
	}
	wl.step(t, tab, "window.print() is stopped and reported", chromedp.Navigate(secretPage), waitText("SECRETWIKITEXT"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[chromedp.Void](`window.print()`)(ctx, tg)
			return err
		}), chromedp.Sleep(300*time.Millisecond))

	// The attempts are activities.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _, err := runCLI(t, "activity", "search", "--config", wl.cfgPath, "--policy", "no-copy-print", "--action", "block")
		if err == nil && strings.Contains(out, `"activity":"cut_copy"`) && strings.Contains(out, `"activity":"print"`) {
			if !strings.Contains(out, `"app":"dokuwiki"`) {
				t.Errorf("report events lack the app:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no block events for cut_copy and print: %v\n%s\n%s", err, out, wl.log())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Without the policy, copy and print work.
	if err := os.WriteFile(filepath.Join(wl.polDir, "lab.yaml"), []byte(strings.SplitN(inPagePolicies, "  - id: no-copy-print", 2)[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = wl.proc.Process.Signal(syscall.SIGHUP)
	waitLog(t, wl.e2eLab, "policies reloaded")
	clipboard("BEFORE")
	copyOnWiki()
	if got := clipboard(""); !strings.Contains(got, "SECRETWIKITEXT") {
		t.Errorf("clipboard without the policy = %q, want the wiki text", got)
	}
	if text := printedText(t, wl, tab, secretPage); !strings.Contains(text, "SECRETWIKITEXT") {
		t.Errorf("print media without the policy shows %q", text)
	}

	wl.stop(syscall.SIGTERM)
	st, err := activity.Open(filepath.Join(wl.dir, "state", "activity.db"), activity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if p, _ := st.Search(activity.Query{Activity: "cut_copy", Action: "block"}); len(p.Events) < 2 {
		t.Errorf("%d blocked copy events, want the execCommand and the Ctrl+C", len(p.Events))
	}
}

// printedText is the text of url as Chromium prints it (print media).
func printedText(t *testing.T, wl *wikiLab, tab context.Context, url string) string {
	t.Helper()
	var pdf []byte
	wl.step(t, tab, "print to PDF", chromedp.Navigate(url), waitText("Secret"), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := chromedp.Call(ctx, page.PrintToPDF, page.PrintToPDFParams{})
		if err != nil {
			return err
		}
		pdf = res.Data
		return nil
	}))
	file := filepath.Join(t.TempDir(), "print.pdf")
	if err := os.WriteFile(file, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-enc", "UTF-8", file, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v: %s", err, out)
	}
	return string(out)
}
