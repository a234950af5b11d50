package appliance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/appliance/console"
	"github.com/portcullis-gw/portcullis/internal/lab/browser"
	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
)

// consoleClient talks to the appliance's console inside the gateway
// namespace, verifying its certificate with the appliance CA, as a
// browser would (cookies, Sec-Fetch-Site).
type consoleClient struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

type sameOriginRT struct{ rt http.RoundTripper }

func (s sameOriginRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return s.rt.RoundTrip(r)
}

func newConsoleClient(t *testing.T, l *e2eLab, addr string) *consoleClient {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(l.applianceCA())
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) { return l.GW.Dial(ctx, network, a) }}
	return &consoleClient{t: t, base: "https://" + addr, http: &http.Client{Jar: jar, Transport: sameOriginRT{tr}, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *consoleClient) do(method, path, ctype string, body io.Reader) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *consoleClient) api(method, path string, v any) (int, map[string]any) {
	c.t.Helper()
	var body io.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		body = strings.NewReader(string(b))
	}
	code, s := c.do(method, path, "application/json", body)
	var out map[string]any
	_ = json.Unmarshal([]byte(s), &out)
	return code, out
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// setupAdmin creates the first admin with the one-time setup token the
// appliance left in its state directory.
func (c *consoleClient) setupAdmin(stateDir, user, password string) {
	c.t.Helper()
	var tok string
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if tok, err = console.SetupToken(stateDir); err == nil && tok != "" {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no setup token: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, page := c.do("GET", "/setup", "", nil)
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		c.t.Fatalf("setup page without a form: %s", page)
	}
	form := url.Values{"csrf": {m[1]}, "token": {tok}, "user": {user}, "password": {password}, "password2": {password}}
	if code, body := c.do("POST", "/setup", "application/x-www-form-urlencoded", strings.NewReader(form.Encode())); code != http.StatusSeeOther {
		c.t.Fatalf("setup: %d %s", code, body)
	}
	code, s := c.api("GET", "/api/v1/session", nil)
	if code != 200 {
		c.t.Fatalf("session: %d", code)
	}
	c.csrf, _ = s["csrf_token"].(string)
}

// uploadDevicePKI stages the lab device PKI's CAs and CRLs.
func (c *consoleClient) uploadDevicePKI(devs *labDevices) {
	c.t.Helper()
	for i := range devs.cas {
		b, err := os.ReadFile(devs.cas[i])
		if err != nil {
			c.t.Fatal(err)
		}
		if code, m := c.api("POST", "/api/v1/devices/cas", map[string]any{"pem": string(b)}); code != http.StatusCreated {
			c.t.Fatalf("upload CA %d: %d %v", i, code, m)
		}
	}
	for i := range devs.crls {
		b, err := os.ReadFile(devs.crls[i])
		if err != nil {
			c.t.Fatal(err)
		}
		// The lab writes DER: the API takes it base64-encoded.
		if code, m := c.api("POST", "/api/v1/devices/crls", map[string]any{"der_base64": base64.StdEncoding.EncodeToString(b)}); code != http.StatusCreated {
			c.t.Fatalf("upload CRL %d: %d %v", i, code, m)
		}
	}
}

func (c *consoleClient) apply() {
	c.t.Helper()
	_, tv := c.api("GET", "/api/v1/tray", nil)
	if code, m := c.api("POST", "/api/v1/tray/apply", map[string]any{"version": tv["version"]}); code != http.StatusOK {
		c.t.Fatalf("apply: %d %v", code, m)
	}
}

// TestConsoleDeviceCAUpload runs the appliance binary with one device CA
// (a root that issued none of the lab's device certificates) and an access
// policy that blocks origin.lab without a valid client certificate. curl
// in the client namespace presenting a certificate of another device PKI
// is refused; then a second admin, in headless Chromium in the client
// namespace, uploads the PKI's root and issuing CA and their CRLs (DER) on
// the console's devices page, finds them in the pending-changes tray and
// applies them — no restart, no signal — and the same certificate reaches
// the origin as valid_client_certificate (the access log's device tag,
// /metrics), while the certificate the uploaded CRL revokes stays refused.
func TestConsoleDeviceCAUpload(t *testing.T) {
	devs := newLabDevices(t)
	initial, err := revocationlab.NewRoot(nil, "initial device root")
	if err != nil {
		t.Fatal(err)
	}
	initialPath := devs.write(t, "initial.pem", initial.PEM)
	polDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(polDir, "devices.yaml"), []byte(deviceCertPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	const consoleAddr = "198.18.1.1:9443"
	l := newE2ELab(t, fmt.Sprintf("policy:\n  dir: %s\ndevices:\n  client_cas: [%s]\n  check_crl: true\n  user_from: san_email\nconsole:\n  listen: %s\n",
		polDir, initialPath, consoleAddr))
	l.start()
	l.applianceCA() // writes appliance-ca.pem
	curl := func(name string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := l.Client.Exec(ctx, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", filepath.Join(l.dir, "appliance-ca.pem"),
			"--cert", filepath.Join(devs.dir, name+".pem"), "--key", filepath.Join(devs.dir, name+".key"), "https://origin.lab/?case=console-"+name)
		if err != nil {
			t.Errorf("curl %s: %v: %s", name, err, out)
		}
		return string(out)
	}
	if got := curl("valid"); got != "403" {
		t.Fatalf("before the upload: HTTP %s, want 403 (the CA is not trusted yet)", got)
	}

	c := newConsoleClient(t, l, consoleAddr)
	c.setupAdmin(filepath.Join(l.dir, "state"), "admin", "console-admin-password-1")
	// A second admin uploads the PKI through the devices page, in Chromium
	// in the client namespace, and applies it from the tray.
	const webPW = "console-web-admin-password-1"
	if code, m := c.api("POST", "/api/v1/users", map[string]any{"name": "webadmin", "password": webPW, "role": "admin"}); code != http.StatusCreated {
		t.Fatalf("second admin: %d %v", code, m)
	}
	caPEM, err := os.ReadFile(filepath.Join(l.dir, "appliance-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b := browser.Start(t, browser.Options{NS: l.Client, TrustPEM: [][]byte{caPEM}})
	tab, _ := b.NewTab(t)
	ctx, cancel := context.WithTimeout(tab, 3*time.Minute)
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("%s: %v\n%.3000s", what, err, html)
		}
	}
	base := "https://" + consoleAddr
	run("login", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.CSS("#password")),
		chromedp.SendKeys(chromedp.CSS("#user"), "webadmin"), chromedp.SendKeys(chromedp.CSS("#password"), webPW),
		chromedp.Submit(chromedp.CSS("#password")), waitJS(`location.pathname === "/dashboard" && document.readyState === "complete"`))
	upload := func(form, file string) {
		t.Helper()
		run("upload "+file, chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(chromedp.CSS("#"+form)),
			waitJS(`location.pathname === "/devices" && document.readyState === "complete"`),
			chromedp.SetUploadFiles(chromedp.CSS("#"+form+` input[type="file"]`), []string{file}),
			chromedp.Submit(chromedp.CSS("#"+form+` input[type="file"]`)),
			waitJS(`location.search === "?done=staged" && document.readyState === "complete"`))
	}
	for _, f := range devs.cas {
		upload("upload-ca", f)
	}
	for _, f := range devs.crls {
		upload("upload-crl", f) // DER, as the lab writes them
	}
	shots := screenshotDir(t)
	run("tray", chromedp.Navigate(base+"/changes"), chromedp.WaitVisible(chromedp.CSS("#tray-apply")),
		waitJS(`location.pathname === "/changes" && document.readyState === "complete"`))
	checkConsolePage(t, ctx, shots, "30-changes-device-uploads")
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("article.change").length`)); n != len(devs.cas)+len(devs.crls) {
		t.Fatalf("%d changes pending, want %d uploads", n, len(devs.cas)+len(devs.crls))
	}
	// A device certificate is not a CA: refused with the reason.
	if code, m := c.api("POST", "/api/v1/devices/cas", map[string]any{"pem": string(devs.issued["valid"].CertPEM)}); code != http.StatusBadRequest ||
		!strings.Contains(fmt.Sprint(m["error"]), "is not a CA certificate") {
		t.Errorf("leaf as CA: %d %v", code, m)
	}
	// Staged, not applied: still refused.
	if got := curl("valid"); got != "403" {
		t.Errorf("staged only: HTTP %s, want 403", got)
	}
	run("apply", chromedp.Click(chromedp.CSS("#tray-apply")), chromedp.WaitVisible(chromedp.CSS("p.flash.ok")),
		chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(chromedp.CSS("#upload-ca")),
		waitJS(`location.pathname === "/devices" && document.readyState === "complete"`))
	checkConsolePage(t, ctx, shots, "31-devices-uploaded")
	if got := curl("valid"); got != "200" {
		t.Errorf("after the upload: HTTP %s, want 200\n%s", got, l.log())
	}
	if got := curl("revoked"); got != "403" {
		t.Errorf("revoked by the uploaded CRL: HTTP %s, want 403", got)
	}
	// A device certificate is not a CA: refused with the reason.
	if code, m := c.api("POST", "/api/v1/devices/cas", map[string]any{"pem": string(devs.issued["valid"].CertPEM)}); code != http.StatusBadRequest ||
		!strings.Contains(fmt.Sprint(m["error"]), "is not a CA certificate") {
		t.Errorf("leaf as CA: %d %v", code, m)
	}
	// The activity log, searched through the console: the request carries
	// the device tag and the user the certificate names.
	var events []any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, page := c.api("GET", "/api/v1/events?tag=valid_client_certificate&host=origin.lab", nil)
		if events, _ = page["events"].([]any); len(events) > 0 {
			break
		}
	}
	if len(events) != 1 {
		t.Fatalf("events with the device tag: %v", events)
	}
	if ev := events[0].(map[string]any); ev["user"] != "valid@corp.example" || ev["action"] != "allow" {
		t.Errorf("event of the valid certificate: %v", ev)
	}
	metrics := l.get("http://127.0.0.1:9780/metrics")
	for _, want := range []string{`portcullis_device_certificate_total{outcome="valid"} 1`, `portcullis_device_certificate_total{outcome="revoked"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The console shows what runs.
	_, dv := c.api("GET", "/api/v1/devices", nil)
	if dv["live"] != true || len(dv["cas"].([]any)) != 3 || len(dv["crls"].([]any)) != 2 {
		t.Errorf("devices view: %v", dv)
	}
	// devices.check_crl applies on reload: turned off through the settings
	// page's API, the revoked certificate is no longer checked and passes.
	_, sv := c.api("GET", "/api/v1/settings", nil)
	var checkCRL map[string]any
	for _, g := range sv["groups"].([]any) {
		for _, st := range g.(map[string]any)["settings"].([]any) {
			if st.(map[string]any)["key"] == "devices.check_crl" {
				checkCRL = st.(map[string]any)
			}
		}
	}
	if checkCRL["value"] != "true" || checkCRL["applies"] != "reload" || checkCRL["editable"] != true {
		t.Errorf("devices.check_crl in the settings view: %v", checkCRL)
	}
	if code, m := c.api("POST", "/api/v1/settings", map[string]any{"key": "devices.require_crl", "value": "true"}); code != http.StatusCreated {
		t.Fatalf("stage require_crl: %d %v", code, m)
	}
	// require_crl without check_crl does not load: refused at staging.
	if code, m := c.api("POST", "/api/v1/settings", map[string]any{"key": "devices.check_crl", "value": "false"}); code != http.StatusUnprocessableEntity ||
		!strings.Contains(fmt.Sprint(m["error"]), "devices.require_crl: needs check_crl: true") {
		t.Errorf("check_crl off with require_crl on: %d %v", code, m)
	}
	_, tv := c.api("GET", "/api/v1/tray", nil)
	for _, ch := range tv["changes"].([]any) {
		id := ch.(map[string]any)["id"]
		if code, _ := c.api("DELETE", fmt.Sprintf("/api/v1/tray/changes/%v", id), nil); code != http.StatusOK {
			t.Fatalf("discard %v: %d", id, code)
		}
	}
	if code, m := c.api("POST", "/api/v1/settings", map[string]any{"key": "devices.check_crl", "value": "false"}); code != http.StatusCreated {
		t.Fatalf("stage check_crl off: %d %v", code, m)
	}
	c.apply()
	if b, _ := os.ReadFile(l.cfgPath); !strings.Contains(string(b), "check_crl: false") {
		t.Errorf("configuration after apply:\n%s", b)
	}
	if got := curl("revoked"); got != "200" {
		t.Errorf("revoked with check_crl off: HTTP %s, want 200", got)
	}
	if !strings.Contains(l.log(), "device CAs reloaded") {
		t.Errorf("no reload logged:\n%s", l.log())
	}
}

// TestConsoleFirstDeviceCA runs the appliance binary started without any
// device CA, with the access policy that blocks origin.lab without a valid
// client certificate: its listeners do not ask for certificates, so the
// lab device's is refused. The device PKI's CAs and CRLs uploaded through
// the console and applied — no restart — make the listeners ask and the
// same certificate valid; removing the uploads again stops the asking.
func TestConsoleFirstDeviceCA(t *testing.T) {
	devs := newLabDevices(t)
	polDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(polDir, "devices.yaml"), []byte(deviceCertPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	const consoleAddr = "198.18.1.1:9443"
	l := newE2ELab(t, fmt.Sprintf("policy:\n  dir: %s\ndevices:\n  user_from: san_email\nconsole:\n  listen: %s\n", polDir, consoleAddr))
	l.start()
	l.applianceCA()
	// curl -v says whether the server asked for a certificate. Without a
	// device CA the policy's block is decided before the handshake (a TLS
	// alert: curl exits 35 with code 000).
	curl := func(name string) (code string, asked bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := l.Client.Exec(ctx, "curl", "-sS", "-v", "-o", "/dev/null", "-w", "code=%{http_code}\n", "--cacert", filepath.Join(l.dir, "appliance-ca.pem"),
			"--cert", filepath.Join(devs.dir, name+".pem"), "--key", filepath.Join(devs.dir, name+".key"), "https://origin.lab/?case=first-"+name)
		if err != nil && !strings.Contains(string(out), "code=000") {
			t.Errorf("curl %s: %v: %s", name, err, out)
		}
		s := string(out)
		i := strings.LastIndex(s, "code=")
		if i < 0 {
			t.Fatalf("curl output: %s", s)
		}
		return strings.TrimSpace(s[i+5:]), strings.Contains(s, "Request CERT (13)")
	}
	refused := func(code string) bool { return code == "403" || code == "000" }
	if code, asked := curl("valid"); !refused(code) || asked {
		t.Fatalf("before any CA: HTTP %s, asked for a certificate %v; want refused, not asked", code, asked)
	}

	c := newConsoleClient(t, l, consoleAddr)
	c.setupAdmin(filepath.Join(l.dir, "state"), "admin", "console-admin-password-1")
	if _, dv := c.api("GET", "/api/v1/devices", nil); dv["live"] != true {
		t.Errorf("devices view before the first CA: %v (want live: the set applies without a restart)", dv)
	}
	c.uploadDevicePKI(devs)
	if code, _ := curl("valid"); !refused(code) {
		t.Errorf("staged only: HTTP %s, want refused", code)
	}
	c.apply()
	if code, asked := curl("valid"); code != "200" || !asked {
		t.Errorf("after the first CA: HTTP %s, asked %v; want 200, asked\n%s", code, asked, l.log())
	}
	if code, _ := curl("revoked"); code != "403" {
		t.Errorf("revoked by the uploaded CRL: HTTP %s, want 403", code)
	}
	if !strings.Contains(l.log(), "device certificates on") {
		t.Error("the log does not say device certificates came on")
	}
	// The certificate names its user (devices.user_from, read at start).
	var events []any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(events) == 0; time.Sleep(100 * time.Millisecond) {
		_, page := c.api("GET", "/api/v1/events?tag=valid_client_certificate&host=origin.lab", nil)
		events, _ = page["events"].([]any)
	}
	if len(events) != 1 || events[0].(map[string]any)["user"] != "valid@corp.example" {
		t.Errorf("events with the device tag: %v", events)
	}

	// Every upload removed: the listeners stop asking, the policy blocks.
	_, dv := c.api("GET", "/api/v1/devices", nil)
	for _, kind := range []string{"crls", "cas"} {
		files := dv[kind].([]any)
		for i := range files { // the issuing CA before its root
			file := files[len(files)-1-i].(map[string]any)["file"]
			if code, m := c.api("DELETE", "/api/v1/devices/files?file="+url.QueryEscape(fmt.Sprint(file)), nil); code >= 300 {
				t.Fatalf("remove %v: %d %v", file, code, m)
			}
		}
	}
	c.apply()
	if code, asked := curl("valid"); !refused(code) || asked {
		t.Errorf("after removing every CA: HTTP %s, asked %v; want refused, not asked", code, asked)
	}
}
