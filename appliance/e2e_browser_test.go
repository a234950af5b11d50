package appliance

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromium runs headless Chromium in the client namespace, trusting only
// the appliance CA (in a throwaway NSS database: no certificate errors are
// ignored), with every *.gw.test name resolving to the appliance.
type chromium struct {
	ctx context.Context
	log *netLog
}

type netEntry struct {
	URL, Method, Type, Failure string
	Status                     int64
}

// netLog is the browser's own record of the requests a page made.
type netLog struct {
	mu      sync.Mutex
	byID    map[network.RequestID]*netEntry
	entries []*netEntry
}

func (l *netLog) listen(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		n := &netEntry{URL: e.Request.URL, Method: e.Request.Method, Type: string(e.Type)}
		l.byID[e.RequestID] = n
		l.entries = append(l.entries, n)
	case *network.EventResponseReceived:
		if n := l.byID[e.RequestID]; n != nil {
			n.Status = e.Response.Status
		}
	case *network.EventLoadingFailed:
		if n := l.byID[e.RequestID]; n != nil && !e.Canceled {
			n.Failure = e.ErrorText
		}
	case *network.EventWebSocketCreated:
		l.entries = append(l.entries, &netEntry{URL: e.URL, Method: "GET", Type: "WebSocket"})
	}
}

func (l *netLog) snapshot() []netEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]netEntry, len(l.entries))
	for i, e := range l.entries {
		out[i] = *e
	}
	return out
}

// check asserts every request went to a host under suffix and none failed
// (a missing favicon aside).
func (l *netLog) check(t *testing.T, suffix string) {
	t.Helper()
	entries := l.snapshot()
	if len(entries) == 0 {
		t.Fatal("the browser made no requests")
	}
	for _, e := range entries {
		u, err := url.Parse(e.URL)
		if err != nil || u.Scheme == "data" || u.Scheme == "about" || u.Scheme == "blob" {
			continue
		}
		if !strings.HasSuffix(u.Hostname(), "."+suffix) {
			t.Errorf("request left the suffix domain: %s %s (%s)", e.Method, e.URL, e.Type)
		}
		if e.Failure != "" || e.Status >= 400 && !strings.HasSuffix(u.Path, "/favicon.ico") {
			t.Errorf("request failed: %s %s: status %d %s", e.Method, e.URL, e.Status, e.Failure)
		}
	}
}

func startChromium(t *testing.T, l *e2eLab, caPEM []byte) *chromium {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not installed (scripts/deps.sh installs it)")
	}
	home := t.TempDir()
	nss := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(nss, 0o700); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(home, "appliance-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + nss, "--empty-password"},
		{"-A", "-d", "sql:" + nss, "-n", "portcullis-test", "-t", "C,,", "-i", caFile},
	} {
		if out, err := exec.Command("certutil", args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v: %s", args, err, out)
		}
	}
	wrapper := filepath.Join(home, "chromium-in-netns")
	script := fmt.Sprintf("#!/bin/sh\nexec nsenter --net=%s -- %s \"$@\"\n", l.Client.Path(), bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(wrapper),
		chromedp.NoSandbox,
		chromedp.Flag("headless", "new"),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("host-resolver-rules", "MAP *.gw.test "+suffixListen.Addr().String()),
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.Env("HOME="+home),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	log := &netLog{byID: map[network.RequestID]*netEntry{}}
	if err := chromedp.Listen(ctx, log.listen); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &chromium{ctx: ctx, log: log}
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
		b.log.check(t, "gw.test")
		kinds := map[string]int{}
		for _, e := range b.log.snapshot() {
			kinds[e.Type]++
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
		b.log.check(t, "gw.test")
	})
}
