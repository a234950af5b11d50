package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/internal/lab"
	"github.com/portcullis-gw/portcullis/internal/lab/browser"
	"github.com/portcullis-gw/portcullis/internal/lab/idp"
)

// identityPolicies onboard the lab origin with two page activities and
// decide on what the login tells: the groups (alice is in finance, carol
// is not), a device tag from a claim (carol's device_compliant), and a
// step-up for every download.
const identityPolicies = `apps:
  - id: origin-lab
    name: Lab origin
    domains: [origin.lab]
    activities:
      - {id: read_headers, method: GET, path: /headers}
      - {id: echo, method: GET, path: /echo}
access_policies:
  # Native clients are intercepted only where a policy names them.
  - id: native-monitored
    filters: {apps: [origin-lab], client_apps: [mobile_desktop]}
    action: monitor
session_policies:
  - id: finance-no-headers
    filters: {apps: [origin-lab], groups: [finance]}
    control: block_activities
    activities: [read_headers]
    action: block
    message: Finance may not read the headers page.
  - id: compliant-devices-only
    filters: {apps: [origin-lab], device_tags: {none_of: [compliant]}}
    control: block_activities
    activities: [echo]
    action: block
    message: Only compliant devices may use echo.
  - id: downloads-step-up
    filters: {apps: [origin-lab], client_apps: {any_of: [browser, mobile_desktop]}}
    control: download
    action: require_step_up
`

// botAddr is a second address of the client host that identity.source_users
// names "build-bot".
var botAddr = netip.MustParseAddr("198.18.1.77")

// newIdentityLab is the transparent e2e lab with the lab IdPs in the
// origin namespace (op.lab at 198.18.2.5:9443), the appliance's OIDC
// provider set and origin.lab requiring the user.
func newIdentityLab(t *testing.T, policies string) *e2eLab {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secret, []byte("lab-proxy-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	polDir := filepath.Join(dir, "policies")
	if err := os.MkdirAll(polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(polDir, "lab.yaml"), []byte(policies), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`suffix:
  oidc:
    issuer: https://op.lab
    client_id: portcullis
    client_secret_file: %s
    scopes: [openid, profile, email, groups]
identity:
  require_user_for: [origin-lab]
  source_users:
    - {ranges: [%s/32], user: build-bot, groups: [ci]}
  device_claims: {device_compliant: compliant}
  step_up:
    acr: %s
    ttl: 10m
policy:
  dir: %s
hosts:
  origin.lab: [198.18.2.2]
  op.lab: ["%s:9443"]
`, secret, botAddr, idp.StepUpACR, polDir, idpAddr)
	l := newE2ELab(t, "")
	base, err := os.ReadFile(l.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(base), "hosts:\n  origin.lab: [198.18.2.2]\n", "", 1)
	if err := os.WriteFile(l.cfgPath, []byte(text+cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l.Client.IP("addr", "add", botAddr.String()+"/24", "dev", "eth0", "nodad")
	startLabIdP(t, l, dir, "-proxy-redirect-host", "origin.lab")
	return l
}

// startLabIdP runs lab-idp in the origin namespace on idpAddr:9443.
func startLabIdP(t *testing.T, l *e2eLab, dir string, extra ...string) {
	t.Helper()
	l.Origin.IP("addr", "add", idpAddr.String()+"/24", "dev", "eth0")
	l.Origin.SetHosts(map[string]netip.Addr{"idp.lab": idpAddr, "sp.lab": idpAddr, "op.lab": idpAddr, "rp.lab": idpAddr})
	leaf, err := l.labCA.Leaf(lab.LeafOptions{Names: []string{"idp.lab", "sp.lab", "op.lab", "rp.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "idp.crt"), filepath.Join(dir, "idp.key")
	writeLeaf(t, leaf, certFile, keyFile)
	caFile := filepath.Join(dir, "lab-ca.pem")
	if err := os.WriteFile(caFile, l.labCA.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "lab-idp.log"))
	if err != nil {
		t.Fatal(err)
	}
	at := idpAddr.String() + ":9443"
	args := append([]string{"-listen", at,
		"-resolve", "op.lab=" + at, "-resolve", "idp.lab=" + at, "-resolve", "sp.lab=" + at, "-resolve", "rp.lab=" + at,
		"-cert", certFile, "-key", keyFile, "-ca", caFile, "-suffix", "gw.test",
		"-proxy-client-secret", "lab-proxy-secret", "-idp-cert-out", filepath.Join(dir, "idp-signing.pem")}, extra...)
	cmd := l.Origin.DaemonCommand(context.Background(), labIdPBinary(t), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("lab-idp log:\n%s", b)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(logf.Name())
		if bytes.Contains(b, []byte("OIDC app ready")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab-idp not ready:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// identityBrowser is headless Chromium in the client namespace trusting
// the appliance CA (intercepted origin.lab) and the lab CA (op.lab, not
// intercepted, on :9443).
func identityBrowser(t *testing.T, l *e2eLab) *browser.Browser {
	t.Helper()
	l.applianceCA()
	caPEM, err := os.ReadFile(filepath.Join(l.dir, "appliance-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return browser.Start(t, browser.Options{NS: l.Client, TrustPEM: [][]byte{caPEM, l.labCA.PEM},
		HostRules: map[string]string{"origin.lab": originGood.String(), "op.lab": idpAddr.String() + ":9443"}})
}

func step(t *testing.T, l *e2eLab, tab context.Context, name string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(tab, chromedp.Location())
		body, _ := chromedp.Run(tab, chromedp.OuterHTML(chromedp.CSS("html")))
		if len(body) > 2000 {
			body = body[:2000]
		}
		t.Fatalf("%s: %v (page %s)\n%s\n%s", name, err, loc, body, l.log())
	}
}

// signInAt signs user in at the lab OP's form the tab was sent to.
func signInAt(t *testing.T, l *e2eLab, tab context.Context, user, password string) {
	t.Helper()
	step(t, l, tab, "sign in as "+user,
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)))
}

func location(t *testing.T, tab context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(tab, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// pageFetch runs fetch(url) in the page and returns the status and the
// named response header.
func pageFetch(t *testing.T, tab context.Context, url, header string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`fetch(%q).then(r => r.status + " " + (r.headers.get(%q) || ""))`, url, header),
		func(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }))
	if err != nil {
		t.Fatalf("fetch %s: %v", url, err)
	}
	var code int
	var h string
	fmt.Sscanf(out, "%d %s", &code, &h)
	return code, h
}

// events are the activity events of user, newest first.
func events(t *testing.T, l *e2eLab, args ...string) []map[string]any {
	t.Helper()
	out, errOut, err := runCLI(t, append([]string{"activity", "search", "--config", l.cfgPath}, args...)...)
	if err != nil {
		t.Fatalf("activity search: %v\n%s", err, errOut)
	}
	var evs []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		evs = append(evs, m)
	}
	return evs
}

// TestE2ETransparentUsers: in transparent mode, Chromium reaching an app
// that requires the user is sent through the appliance's OIDC login and
// lands on the URL it asked for; the events carry the user and the OIDC
// groups; a fetch without a session gets 401 and X-Portcullis-Login; a
// session policy decides by the groups and another by the device tag
// from carol's claim; curl is never redirected and is anonymous, or the
// source-IP user.
func TestE2ETransparentUsers(t *testing.T) {
	l := newIdentityLab(t, identityPolicies)
	l.start()
	defer l.stop(syscall.SIGTERM)
	b := identityBrowser(t, l)

	alice, _ := b.NewTab(t)
	step(t, l, alice, "open the app", chromedp.Navigate("https://origin.lab/?from=start"))
	if loc := location(t, alice); !strings.HasPrefix(loc, "https://op.lab/login") {
		t.Fatalf("not sent to the OIDC login: %s\n%s", loc, l.log())
	}
	signInAt(t, l, alice, "alice", "alice-pw")
	step(t, l, alice, "back at the app", waitText("hello from lab origin"))
	if loc := location(t, alice); loc != "https://origin.lab/?from=start" {
		t.Fatalf("landed on %s, not the URL asked for", loc)
	}
	line := l.waitAccessLog(t, func(m map[string]any) bool {
		return m["host"] == "origin.lab" && m["path"] == "/" && m["user"] == "alice"
	})
	if line["mode"] != "transparent" {
		t.Errorf("access log: %v", line)
	}
	evs := events(t, l, "--user", "alice", "--limit", "50")
	if len(evs) == 0 || !slices.Equal(toStrings(evs[0]["groups"]), []string{"staff", "finance"}) {
		t.Fatalf("alice's events lack her groups: %v", evs)
	}

	t.Run("group policy", func(t *testing.T) {
		if code, _ := pageFetch(t, alice, "/headers", "x"); code != 403 {
			t.Errorf("alice (finance) read /headers: %d", code)
		}
	})
	t.Run("device tag policy blocks alice", func(t *testing.T) {
		if code, _ := pageFetch(t, alice, "/echo", "x"); code != 403 {
			t.Errorf("alice (no compliant claim) used echo: %d", code)
		}
	})
	t.Run("fetch without a session", func(t *testing.T) {
		if _, err := chromedp.Call(alice, network.DeleteCookies, network.DeleteCookiesParams{Name: "__Host-portcullis", URL: "https://origin.lab/"}); err != nil {
			t.Fatal(err)
		}
		code, login := pageFetch(t, alice, "/?api=1", "X-Portcullis-Login")
		if code != 401 || !strings.HasPrefix(login, "https://origin.lab/.portcullis/login?return=") {
			t.Fatalf("fetch without a session: %d, login header %q", code, login)
		}
	})

	carol, _ := b.NewTab(t)
	step(t, l, carol, "open the app", chromedp.Navigate("https://origin.lab/headers"))
	signInAt(t, l, carol, "carol", "carol-pw")
	step(t, l, carol, "back at the app", waitText("User-Agent"))
	t.Run("carol: groups and device tag allow", func(t *testing.T) {
		if code, _ := pageFetch(t, carol, "/echo", "x"); code != 200 {
			t.Errorf("carol (compliant) echo: %d", code)
		}
		evs := events(t, l, "--user", "carol", "--limit", "50")
		if len(evs) == 0 || !slices.Contains(toStrings(evs[0]["device_tags"]), "compliant") {
			t.Errorf("carol's events lack the compliant device tag: %v", evs)
		}
	})

	t.Run("native clients", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		caFile := filepath.Join(l.dir, "appliance-ca.pem")
		for _, c := range []struct {
			from netip.Addr
			user string
		}{{l.Client4, ""}, {botAddr, "build-bot"}} {
			out, err := l.Client.Exec(ctx, "curl", "-sS", "--interface", c.from.String(), "--cacert", caFile,
				"--resolve", "origin.lab:443:"+originGood.String(), "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "https://origin.lab/bytes/1")
			if err != nil {
				t.Fatalf("curl from %s: %v %s", c.from, err, out)
			}
			// The download policy asks for a step-up; a native client
			// cannot do one, so it is stopped with 401, never redirected.
			line := l.waitAccessLog(t, func(m map[string]any) bool {
				return m["path"] == "/bytes/1" && m["client"] != nil && strings.HasPrefix(fmt.Sprint(m["client"]), c.from.String()+":")
			})
			if got := strings.TrimSpace(string(out)); got != "401" {
				t.Errorf("curl from %s: %q (%v)", c.from, got, line)
			}
			if line["user"] != c.user || line["client_app"] != "mobile_desktop" {
				t.Errorf("curl from %s: %v", c.from, line)
			}
		}
	})
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			out = append(out, fmt.Sprint(e))
		}
	}
	return out
}

// clickLink makes the page follow a link to url, as a user's click would.
func clickLink(url string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const a = document.createElement('a'); a.href = %q; document.body.appendChild(a); a.click(); return true })()`, url))(ctx, tg)
		return err
	})
}

// downloaded waits up to wait for a new, complete file in dir.
func downloaded(dir string, before map[string]bool, wait time.Duration) (string, []byte, bool) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if before[e.Name()] || strings.HasSuffix(e.Name(), ".crdownload") {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
				return e.Name(), b, true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", nil, false
}

func dirNames(dir string) map[string]bool {
	m := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m
}

// TestE2ETransparentStepUp: a download under a require_step_up policy
// sends Chromium to the IdP for the stronger context; abandoned at the
// second step (the code) the download stays blocked; completed, the
// browser comes back to the download URL and the file arrives; within the
// step-up's lifetime the next download needs no step-up.
func TestE2ETransparentStepUp(t *testing.T) {
	l := newIdentityLab(t, identityPolicies)
	l.start()
	defer l.stop(syscall.SIGTERM)
	b := identityBrowser(t, l)
	tab, netlog := b.NewTab(t)
	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(tab, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir,
		BrowserContextID: chromedp.FromContext(tab).BrowserContextID}); err != nil {
		t.Fatal(err)
	}
	step(t, l, tab, "open the app", chromedp.Navigate("https://origin.lab/"))
	signInAt(t, l, tab, "bob", "bob-pw")
	step(t, l, tab, "back at the app", waitText("hello from lab origin"))

	t.Run("abandoned at the second step", func(t *testing.T) {
		before := dirNames(dir)
		step(t, l, tab, "click the download", clickLink("https://origin.lab/bytes/64"))
		// prompt=login: the password again, although bob has an OP session.
		signInAt(t, l, tab, "bob", "bob-pw")
		step(t, l, tab, "the second step", chromedp.WaitVisible(chromedp.CSS(`input[name="code"]`)))
		if name, _, ok := downloaded(dir, before, 2*time.Second); ok {
			t.Fatalf("the download arrived before the step-up: %s", name)
		}
		step(t, l, tab, "back to the app", chromedp.Navigate("https://origin.lab/"), waitText("hello from lab origin"))
		code, link := pageFetch(t, tab, "/bytes/64", "X-Portcullis-Step-Up")
		if code != 401 || !strings.HasPrefix(link, "/.portcullis/step-up?return=") {
			t.Fatalf("download without the step-up: %d, %q", code, link)
		}
	})

	t.Run("completed", func(t *testing.T) {
		before := dirNames(dir)
		step(t, l, tab, "click the download", clickLink("https://origin.lab/bytes/64"))
		signInAt(t, l, tab, "bob", "bob-pw")
		step(t, l, tab, "confirm with the code",
			chromedp.WaitVisible(chromedp.CSS(`input[name="code"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name="code"]`), idp.StepUpCode),
			chromedp.Submit(chromedp.CSS(`input[name="code"]`)))
		name, got, ok := downloaded(dir, before, 20*time.Second)
		if !ok || len(got) != 64 || !bytes.HasPrefix(got, []byte("abcdefghij")) {
			t.Fatalf("no download after the step-up (%q, %d bytes)\n%s", name, len(got), l.log())
		}
		line := l.waitAccessLog(t, func(m map[string]any) bool {
			return m["path"] == "/bytes/64" && m["status"] == float64(200) && m["decision"] == "allow"
		})
		if line["user"] != "bob" || !strings.Contains(fmt.Sprint(line["reason"]), "step-up done (policy downloads-step-up)") {
			t.Errorf("access log of the download: %v", line)
		}
	})

	t.Run("within the lifetime no step-up", func(t *testing.T) {
		step(t, l, tab, "back to the app", chromedp.Navigate("https://origin.lab/"), waitText("hello from lab origin"))
		seen := len(netlog.Entries())
		before := dirNames(dir)
		step(t, l, tab, "click another download", clickLink("https://origin.lab/bytes/32"))
		if _, got, ok := downloaded(dir, before, 20*time.Second); !ok || len(got) != 32 {
			t.Fatalf("second download: %d bytes", len(got))
		}
		for _, e := range netlog.Entries()[seen:] {
			if strings.Contains(e.URL, "op.lab") {
				t.Errorf("the second download went to the IdP: %s", e.URL)
			}
		}
	})
}
