package control

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/klauspost/compress/gzip"

	"github.com/portcullis-gw/portcullis/internal/lab"
	labbrowser "github.com/portcullis-gw/portcullis/internal/lab/browser"
	"github.com/portcullis-gw/portcullis/policy"
)

// The test site: every host serves the same routes; /page takes its rules
// from the query (copy, paste, print = monitor|block; msg), so "no rules"
// is the same page without the script.
const testPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Quarterly report</title>
</head>
<body>
<p id="secret">SECRETPAGETEXT quarterly numbers</p>
<textarea id="ta"></textarea>
</body>
</html>
`

// cspPage has scripts of its own (%s), which must still run next to the
// injected one.
const cspPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>csp</title>
%s
</head><body><p id="secret">SECRETPAGETEXT</p></body></html>
`

const (
	inlineNonceScript = `<script nonce="abc">window.pageScript = 'ran';</script>`
	selfNonceScript   = `<script nonce="abc" src="/self.js"></script>`
	selfScript        = `<script src="/self.js"></script>`
)

// cspControlPage has an inline script without a nonce: under the strict
// policy it must be refused and reported, which shows that violations are
// seen at all.
const cspControlPage = `<!doctype html>
<html><head><title>control</title><script>window.inline = 1;</script></head><body>x</body></html>
`

const hostileMessage = `Blocked </style></script><script>window.pwned=1</script> "quoted" 'single' & <b>bold</b>`

type testSite struct {
	t *testing.T
	c *Controller

	mu         sync.Mutex
	reports    []Report
	cspReports []string
	sentCSP    map[string]string // path -> the CSP header the page went out with
}

func modeParam(v string) Mode {
	switch v {
	case "block":
		return Block
	case "monitor":
		return Monitor
	}
	return Allow
}

func (s *testSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.c.ServeEndpoint(w, r, func(rep Report) {
		s.mu.Lock()
		s.reports = append(s.reports, rep)
		s.mu.Unlock()
	}) {
		return
	}
	q := r.URL.Query()
	rules := Rules{CutCopy: modeParam(q.Get("copy")), Paste: modeParam(q.Get("paste")), Print: modeParam(q.Get("print")), Message: q.Get("msg")}
	switch r.URL.Path {
	case "/page":
		s.serve(w, r, rules, "", testPage, q.Get("gzip") != "")
	case "/csp-strict":
		s.serve(w, r, rules, "script-src 'nonce-abc' 'strict-dynamic'; object-src 'none'; report-uri /csp-report",
			fmt.Sprintf(cspPage, inlineNonceScript+selfNonceScript), false)
	case "/csp-self":
		s.serve(w, r, rules, "script-src 'self'; report-uri /csp-report", fmt.Sprintf(cspPage, selfScript), false)
	case "/csp-default":
		s.serve(w, r, rules, "default-src 'none'; script-src 'nonce-abc' 'self'; img-src 'self'; report-uri /csp-report",
			fmt.Sprintf(cspPage, inlineNonceScript+selfScript), false)
	case "/csp-control":
		s.serve(w, r, Rules{}, "script-src 'nonce-abc' 'strict-dynamic'; report-uri /csp-report", cspControlPage, false)
	case "/self.js":
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, "window.selfScript = 'ran';\n")
	case "/csp-report":
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		s.mu.Lock()
		s.cspReports = append(s.cspReports, string(b))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case "/app":
		app, msg := "app-"+canonicalHost(r.Host), "Monitored on "+canonicalHost(r.Host)+": "+hostileMessage
		if s.c.NeedsNotice(r, app) {
			s.c.RedirectToNotice(w, r, app, msg)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>app</title><p id="app">APP PAGE %s</p>`, r.URL.Query().Get("x"))
	case "/favicon.ico":
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (s *testSite) serve(w http.ResponseWriter, r *http.Request, rules Rules, csp, body string, gz bool) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	if csp != "" {
		h.Set("Content-Security-Policy", csp)
	}
	var raw []byte = []byte(body)
	if gz {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(raw)
		zw.Close()
		raw = b.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", fmt.Sprint(len(raw)))
	rc, err := s.c.Inject(h, io.NopCloser(bytes.NewReader(raw)), r.Host, rules, s.c.Session(w, r))
	if err != nil {
		s.t.Errorf("Inject %s: %v", r.URL, err)
	}
	defer rc.Close()
	s.mu.Lock()
	s.sentCSP[r.URL.Path] = h.Get("Content-Security-Policy")
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	io.Copy(w, rc)
}

// takeReports returns and forgets the reports received so far.
func (s *testSite) takeReports() []Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reports
	s.reports = nil
	return r
}

// waitReport waits for a report of kind and returns every report received.
func (s *testSite) waitReport(t *testing.T, kind policy.ActivityKind, blocked bool) []Report {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		for _, r := range s.reports {
			if r.Kind == kind && r.Blocked == blocked {
				all := s.reports
				s.reports = nil
				s.mu.Unlock()
				return all
			}
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no report of %s (blocked %v) arrived; got %+v", kind, blocked, s.takeReports())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startSite runs the test site over TLS in its own namespace and Chromium
// in another, joined by a veth pair; the browser trusts only the test CA.
func startSite(t *testing.T) (*testSite, *labbrowser.Browser) {
	lab.RequireRoot(t)
	client, origin := lab.NewNS(t, "cc"), lab.NewNS(t, "co")
	lab.Veth(t, client, "eth0", origin, "eth0")
	client.IP("addr", "add", "198.18.44.1/24", "dev", "eth0", "nodad")
	origin.IP("addr", "add", "198.18.44.2/24", "dev", "eth0", "nodad")
	addr := netip.MustParseAddr("198.18.44.2")

	ca, err := lab.NewTestCA("control test CA")
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"app.test", "app2.test", "plain.test"}
	leaf, err := ca.Leaf(lab.LeafOptions{Names: hosts})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	site := &testSite{t: t, c: c, sentCSP: map[string]string{}}
	ln, err := origin.Listen("tcp", "198.18.44.2:443")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: site, TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf}},
		ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	lab.WaitReachable(t, client, addr)

	rules := map[string]string{}
	for _, h := range hosts {
		rules[h] = addr.String()
	}
	return site, labbrowser.Start(t, labbrowser.Options{NS: client, TrustPEM: [][]byte{ca.PEM}, HostRules: rules})
}

// tab opens a tab whose page counts as focused (the asynchronous Clipboard
// API needs focus) and that may use the clipboard on every test host.
func tab(t *testing.T, b *labbrowser.Browser) (context.Context, *labbrowser.NetLog) {
	t.Helper()
	tctx, netlog := b.NewTab(t)
	ctx, cancel := context.WithTimeout(tctx, 60*time.Second)
	t.Cleanup(cancel)
	id := chromedp.FromContext(ctx).BrowserContextID
	for _, origin := range []string{"https://app.test", "https://app2.test", "https://plain.test"} {
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
				Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
				Setting:    browser.PermissionSettingGranted, Origin: origin, BrowserContextID: id,
			}); err != nil {
				t.Fatalf("grant %s to %s: %v", name, origin, err)
			}
		}
	}
	if _, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	return ctx, netlog
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
}

// withUserGesture runs an evaluation as if the user had clicked
// (document.execCommand('copy') needs it).
func withUserGesture(p *runtime.EvaluateParams) { p.UserGesture = ptrTo(true) }

func urlQuery(s string) string { return url.QueryEscape(s) }

// clipboard reads (or with text, writes) the clipboard from an unprotected
// page.
func clipboard(t *testing.T, ctx context.Context, write *string) string {
	t.Helper()
	navigate(t, ctx, "https://plain.test/page")
	if write != nil {
		js, _ := json.Marshal(*write)
		run(t, ctx, chromedp.Evaluate[chromedp.Void](`navigator.clipboard.writeText(`+string(js)+`)`, chromedp.EvalAwaitPromise))
	}
	return run(t, ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
}

func ptrTo[T any](v T) *T { return &v }

func noSpace(s string) string { return strings.Join(strings.Fields(s), "") }

// waitJS evaluates expr until it is true, across navigations (an
// evaluation cut by one is retried).
func waitJS(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true (%v)", expr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// submit clicks a form's button once the current action has returned: the
// navigation it starts must not cut the click's own protocol call short.
func submit(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	run(t, ctx, chromedp.Evaluate[chromedp.Void](`setTimeout(() => document.getElementById('`+id+`').click(), 0)`))
}

const selectSecret = `(() => { const r = document.createRange(); r.selectNodeContents(document.getElementById('secret'));
	const s = getSelection(); s.removeAllRanges(); s.addRange(r); return s.toString(); })()`

func TestBrowserClipboard(t *testing.T) {
	site, b := startSite(t)

	copyAttempts := func(t *testing.T, ctx context.Context, url string) {
		navigate(t, ctx, url)
		if sel := run(t, ctx, chromedp.Evaluate[string](selectSecret)); !strings.Contains(sel, "SECRETPAGETEXT") {
			t.Fatalf("selection %q", sel)
		}
		run(t, ctx, chromedp.Evaluate[bool](`document.execCommand('copy')`, withUserGesture))
		run(t, ctx, chromedp.KeyEvent("c", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	}

	t.Run("copy blocked", func(t *testing.T) {
		ctx, _ := tab(t, b)
		clipboard(t, ctx, ptrTo("BEFORE"))
		site.takeReports()
		copyAttempts(t, ctx, "https://app.test/page?copy=block&msg=No+copying")
		reports := site.waitReport(t, policy.KindCutCopy, true)
		time.Sleep(300 * time.Millisecond)
		reports = append(reports, site.takeReports()...)
		if len(reports) != 2 {
			t.Errorf("reports %+v, want two (execCommand and Ctrl+C)", reports)
		}
		for _, r := range reports {
			if r.Kind != policy.KindCutCopy || !r.Blocked || r.Host != "app.test" || !strings.HasPrefix(r.URL, "https://app.test/page?") || r.SessionID == "" {
				t.Errorf("report %+v", r)
			}
		}
		if got := run(t, ctx, chromedp.Evaluate[string](`document.getElementById('__portcullis-banner').textContent`)); !strings.Contains(got, "No copying") {
			t.Errorf("banner %q", got)
		}
		if got := clipboard(t, ctx, nil); got != "BEFORE" {
			t.Errorf("clipboard after blocked copies = %q, want BEFORE", got)
		}
	})
	t.Run("copy monitored", func(t *testing.T) {
		ctx, _ := tab(t, b)
		clipboard(t, ctx, ptrTo("BEFORE"))
		site.takeReports()
		copyAttempts(t, ctx, "https://app.test/page?copy=monitor")
		site.waitReport(t, policy.KindCutCopy, false)
		if got := clipboard(t, ctx, nil); !strings.Contains(got, "SECRETPAGETEXT") {
			t.Errorf("clipboard after a monitored copy = %q", got)
		}
	})
	t.Run("copy without rules", func(t *testing.T) {
		ctx, _ := tab(t, b)
		clipboard(t, ctx, ptrTo("BEFORE"))
		site.takeReports()
		navigate(t, ctx, "https://app.test/page")
		run(t, ctx, chromedp.Evaluate[string](selectSecret))
		run(t, ctx, chromedp.KeyEvent("c", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
		if got := clipboard(t, ctx, nil); !strings.Contains(got, "SECRETPAGETEXT") {
			t.Errorf("clipboard after a plain copy = %q", got)
		}
		if r := site.takeReports(); len(r) != 0 {
			t.Errorf("reports without rules: %+v", r)
		}
	})
	t.Run("async clipboard write blocked", func(t *testing.T) {
		ctx, _ := tab(t, b)
		clipboard(t, ctx, ptrTo("BEFORE"))
		site.takeReports()
		navigate(t, ctx, "https://app.test/page?copy=block")
		err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`navigator.clipboard.writeText('LEAK')`, chromedp.EvalAwaitPromise))
		if err == nil || !strings.Contains(err.Error(), "NotAllowedError") {
			t.Errorf("writeText under a copy block: %v", err)
		}
		site.waitReport(t, policy.KindCutCopy, true)
		if got := clipboard(t, ctx, nil); got != "BEFORE" {
			t.Errorf("clipboard = %q", got)
		}
	})

	t.Run("copy blocked in a frame the page builds", func(t *testing.T) {
		// Rich text editors edit in about:blank frames, which never pass
		// through the proxy: the parent's script guards them.
		ctx, _ := tab(t, b)
		clipboard(t, ctx, ptrTo("BEFORE"))
		site.takeReports()
		navigate(t, ctx, "https://app.test/page?copy=block")
		run(t, ctx, chromedp.Evaluate[string](`(() => {
			const f = document.createElement('iframe');
			document.body.appendChild(f);
			const d = f.contentDocument;
			d.body.innerHTML = '<p id="s">FRAMETEXT</p>';
			f.contentWindow.focus();
			const r = d.createRange(); r.selectNodeContents(d.getElementById('s'));
			const sel = f.contentWindow.getSelection(); sel.removeAllRanges(); sel.addRange(r);
			return sel.toString(); })()`))
		run(t, ctx, chromedp.KeyEvent("c", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
		site.waitReport(t, policy.KindCutCopy, true)
		if got := clipboard(t, ctx, nil); got != "BEFORE" {
			t.Errorf("clipboard after a copy in the frame = %q, want BEFORE", got)
		}
	})

	paste := func(t *testing.T, url string) (string, []Report) {
		ctx, _ := tab(t, b)
		clipboard(t, ctx, ptrTo("PASTEME"))
		site.takeReports()
		navigate(t, ctx, url)
		run(t, ctx, chromedp.Focus("#ta"))
		run(t, ctx, chromedp.KeyEvent("v", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
		time.Sleep(300 * time.Millisecond)
		return run(t, ctx, chromedp.Evaluate[string](`document.getElementById('ta').value`)), site.takeReports()
	}
	t.Run("paste blocked", func(t *testing.T) {
		got, reports := paste(t, "https://app.test/page?paste=block")
		if got != "" {
			t.Errorf("textarea after a blocked paste = %q", got)
		}
		if len(reports) != 1 || reports[0].Kind != policy.KindPaste || !reports[0].Blocked {
			t.Errorf("reports %+v", reports)
		}
	})
	t.Run("paste monitored", func(t *testing.T) {
		got, reports := paste(t, "https://app.test/page?paste=monitor")
		if got != "PASTEME" || len(reports) != 1 || reports[0].Kind != policy.KindPaste || reports[0].Blocked {
			t.Errorf("textarea %q, reports %+v", got, reports)
		}
	})
	t.Run("paste without rules", func(t *testing.T) {
		if got, reports := paste(t, "https://app.test/page"); got != "PASTEME" || len(reports) != 0 {
			t.Errorf("textarea %q, reports %+v", got, reports)
		}
	})
}

// pdfText prints the tab's page to PDF and extracts its text.
func pdfText(t *testing.T, ctx context.Context) string {
	t.Helper()
	res, err := chromedp.Call(ctx, page.PrintToPDF, page.PrintToPDFParams{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatalf("pdftotext not found (Debian package poppler-utils; scripts/deps.sh installs it): %v", err)
	}
	file := filepath.Join(t.TempDir(), "page.pdf")
	if err := os.WriteFile(file, res.Data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-enc", "UTF-8", file, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v: %s", err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

func TestBrowserPrint(t *testing.T) {
	site, b := startSite(t)
	t.Run("blocked", func(t *testing.T) {
		ctx, _ := tab(t, b)
		site.takeReports()
		navigate(t, ctx, "https://app.test/page?print=block&gzip=1&msg="+urlQuery(hostileMessage))
		run(t, ctx, chromedp.Evaluate[chromedp.Void](`window.print()`))
		site.waitReport(t, policy.KindPrint, true)
		run(t, ctx, chromedp.KeyEvent("p", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
		site.waitReport(t, policy.KindPrint, true)
		text := pdfText(t, ctx)
		if !strings.Contains(noSpace(text), noSpace(hostileMessage)) || strings.Contains(text, "SECRETPAGETEXT") {
			t.Errorf("printed text %q: want the message and not the page", text)
		}
		if run(t, ctx, chromedp.Evaluate[bool](`typeof window.pwned !== 'undefined'`)) {
			t.Error("the hostile message ran as script")
		}
	})
	t.Run("monitored", func(t *testing.T) {
		// window.print goes on to the real print (which keeps this tab
		// busy printing).
		ctx, _ := tab(t, b)
		site.takeReports()
		navigate(t, ctx, "https://app.test/page?print=monitor")
		run(t, ctx, chromedp.Evaluate[chromedp.Void](`setTimeout(() => window.print(), 0)`))
		site.waitReport(t, policy.KindPrint, false)
	})
	t.Run("monitored from the browser", func(t *testing.T) {
		// Printing that no script starts (the browser's menu, here the
		// DevTools print) is reported from beforeprint, and prints the page.
		ctx, _ := tab(t, b)
		site.takeReports()
		navigate(t, ctx, "https://app.test/page?print=monitor")
		if text := pdfText(t, ctx); !strings.Contains(text, "SECRETPAGETEXT") {
			t.Errorf("printed text %q", text)
		}
		site.waitReport(t, policy.KindPrint, false)
	})
	t.Run("without rules", func(t *testing.T) {
		ctx, _ := tab(t, b)
		navigate(t, ctx, "https://app.test/page")
		if text := pdfText(t, ctx); !strings.Contains(text, "SECRETPAGETEXT") {
			t.Errorf("printed text %q", text)
		}
	})
	t.Run("scripts off", func(t *testing.T) {
		// The print stylesheet needs no script: with JavaScript disabled
		// the page still prints as the message.
		ctx, _ := tab(t, b)
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatal(err)
		}
		navigate(t, ctx, "https://app.test/page?print=block&msg=Print+blocked")
		if text := pdfText(t, ctx); !strings.Contains(text, "Print blocked") || strings.Contains(text, "SECRETPAGETEXT") {
			t.Errorf("printed text %q", text)
		}
	})
}

// consoleLog collects the tab's Log domain entries (where Chromium logs CSP
// violations).
func consoleLog(t *testing.T, ctx context.Context) func() []string {
	var mu sync.Mutex
	var entries []string
	target := chromedp.FromContext(ctx).Target
	lctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	events := cdp.Events(lctx, target, cdplog.EntryAdded)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			if ev.Entry != nil {
				mu.Lock()
				entries = append(entries, string(ev.Entry.Source)+": "+ev.Entry.Text)
				mu.Unlock()
			}
		}
	}()
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), entries...)
	}
}

func TestBrowserCSP(t *testing.T) {
	site, b := startSite(t)
	cspReports := func() []string {
		site.mu.Lock()
		defer site.mu.Unlock()
		r := site.cspReports
		site.cspReports = nil
		return r
	}

	t.Run("violations are seen", func(t *testing.T) {
		ctx, _ := tab(t, b)
		logs := consoleLog(t, ctx)
		navigate(t, ctx, "https://app.test/csp-control")
		time.Sleep(time.Second)
		if r := cspReports(); len(r) == 0 {
			t.Error("a refused inline script produced no CSP report: the check below would prove nothing")
		}
		if !strings.Contains(strings.Join(logs(), "\n"), "Content Security Policy") {
			t.Errorf("no CSP message in the console log: %q", logs())
		}
	})
	for _, tc := range []struct{ path, wantCSP, pageScripts string }{
		{"/csp-strict", "script-src 'nonce-abc' 'strict-dynamic' 'nonce-%s'; object-src 'none'; report-uri /csp-report", "ran,ran"},
		{"/csp-self", "script-src 'self' 'nonce-%s'; report-uri /csp-report", ",ran"},
		{"/csp-default", "default-src 'none' 'nonce-%s' https://app.test/.portcullis/report; script-src 'nonce-abc' 'self' 'nonce-%[1]s'; img-src 'self'; report-uri /csp-report", "ran,ran"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			ctx, _ := tab(t, b)
			logs := consoleLog(t, ctx)
			cspReports()
			site.takeReports()
			navigate(t, ctx, "https://app.test"+tc.path+"?copy=block&print=block")
			if !run(t, ctx, chromedp.Evaluate[bool](`!!window.__portcullis`)) {
				t.Error("the control script did not run")
			}
			if got := run(t, ctx, chromedp.Evaluate[string](`(window.pageScript || '') + ',' + (window.selfScript || '')`)); got != tc.pageScripts {
				t.Errorf("the page's own scripts: %q", got)
			}
			// The nonce'd stylesheet applies: in print media the body goes.
			if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
				t.Fatal(err)
			}
			if d := run(t, ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).display`)); d != "none" {
				t.Errorf("body display in print media = %q", d)
			}
			// And a report gets through connect-src.
			run(t, ctx, chromedp.Evaluate[string](selectSecret))
			run(t, ctx, chromedp.KeyEvent("c", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
			site.waitReport(t, policy.KindCutCopy, true)
			time.Sleep(500 * time.Millisecond)
			if r := cspReports(); len(r) != 0 {
				t.Errorf("CSP violations: %q", r)
			}
			for _, l := range logs() {
				if strings.Contains(l, "Content Security Policy") || strings.Contains(l, "Refused") {
					t.Errorf("console: %s", l)
				}
			}
			site.mu.Lock()
			sent := site.sentCSP[tc.path]
			site.mu.Unlock()
			nonce := run(t, ctx, chromedp.Evaluate[string](`document.querySelector('script[data-portcullis]').nonce`))
			if want := fmt.Sprintf(tc.wantCSP, nonce); sent != want {
				t.Errorf("CSP sent:\n %s\nwant\n %s", sent, want)
			}
		})
	}
}

func TestBrowserNotice(t *testing.T) {
	site, b := startSite(t)
	_ = site
	ctx, netlog := tab(t, b)
	count := func(path string) int {
		n := 0
		for _, e := range netlog.Entries() {
			if strings.Contains(e.URL, path) {
				n++
			}
		}
		return n
	}

	navigate(t, ctx, "https://app.test/app?x=1")
	if loc := run(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, "https://app.test/.portcullis/notice?s=") {
		t.Fatalf("first navigation ended at %s, want the notice", loc)
	}
	msg := run(t, ctx, chromedp.Evaluate[string](`document.getElementById('message').textContent`))
	if want := "Monitored on app.test: " + hostileMessage; msg != want {
		t.Errorf("notice message %q, want %q", msg, want)
	}
	if run(t, ctx, chromedp.Evaluate[bool](`!!document.querySelector('script, b') || typeof window.pwned !== 'undefined'`)) {
		t.Error("the hostile message became markup")
	}

	// Continue with a broken CSRF token is refused.
	run(t, ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('input[name=csrf]').value = 'forged'`))
	submit(t, ctx, "continue")
	waitJS(t, ctx, `!!document.body && document.body.textContent.includes('Forbidden')`)
	found := false
	for _, e := range netlog.Entries() {
		found = found || e.Method == "POST" && strings.HasSuffix(e.URL, "/.portcullis/notice") && e.Status == 403
	}
	if !found {
		t.Error("no 403 for the forged Continue")
	}

	navigate(t, ctx, "https://app.test/app?x=1")
	submit(t, ctx, "continue")
	waitJS(t, ctx, `location.href === 'https://app.test/app?x=1' && !!document.getElementById('app')`)
	if got := run(t, ctx, chromedp.Text("#app")); got != "APP PAGE 1" {
		t.Errorf("app page %q", got)
	}

	before := count("/.portcullis/notice")
	navigate(t, ctx, "https://app.test/app?x=2")
	if loc := run(t, ctx, chromedp.Location()); loc != "https://app.test/app?x=2" || count("/.portcullis/notice") != before {
		t.Errorf("second navigation went to %s (notice requests %d -> %d)", loc, before, count("/.portcullis/notice"))
	}

	navigate(t, ctx, "https://app2.test/app")
	if loc := run(t, ctx, chromedp.Location()); !strings.HasPrefix(loc, "https://app2.test/.portcullis/notice?s=") {
		t.Fatalf("another host: ended at %s, want its own notice", loc)
	}
	if msg := run(t, ctx, chromedp.Evaluate[string](`document.getElementById('message').textContent`)); !strings.HasPrefix(msg, "Monitored on app2.test") {
		t.Errorf("app2's notice says %q", msg)
	}
	netlog.AssertAllHostsUnder(t, "test")
}
