package appliance

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/net/html"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// idpAddr is where lab-idp serves idp.lab, sp.lab, op.lab and rp.lab.
var idpAddr = netip.MustParseAddr("198.18.2.5")

var (
	idpBuildOnce sync.Once
	idpBin       string
	idpBuildErr  error
)

func labIdPBinary(t testing.TB) string {
	t.Helper()
	idpBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lab-idp-bin")
		if err != nil {
			idpBuildErr = err
			return
		}
		idpBin = filepath.Join(dir, "lab-idp")
		if out, err := exec.Command("go", "build", "-o", idpBin, "../internal/lab/cmd/lab-idp").CombinedOutput(); err != nil {
			idpBuildErr = fmt.Errorf("go build lab-idp: %v: %s", err, out)
		}
	})
	if idpBuildErr != nil {
		t.Fatal(idpBuildErr)
	}
	return idpBin
}

// ssoLab is the e2e lab with the identity apps in the origin namespace and
// the appliance's suffix proxy trusting them.
type ssoLab struct {
	*e2eLab
	idpCert string
}

func newSSOLab(t *testing.T, extra string) *ssoLab {
	t.Helper()
	dir := t.TempDir()
	idpCert := filepath.Join(dir, "idp-signing.pem")
	secret := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secret, []byte("lab-proxy-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`transparent:
  enabled: false
suffix:
  domain: gw.test
  listen: 198.18.1.1:443
  saml:
    - apps: [sp.lab]
      idp_certificate: %s
  oidc:
    issuer: https://op.lab
    client_id: portcullis
    client_secret_file: %s
    scopes: [openid, profile, email, groups]
    require_for: [origin.lab]
hosts:
  origin.lab: [198.18.2.2]
  idp.lab: ["%[3]s:9443"]
  sp.lab: ["%[3]s:9443"]
  op.lab: ["%[3]s:9443"]
  rp.lab: ["%[3]s:9443"]
%[4]s`, idpCert, secret, idpAddr, extra)
	l := newE2ELab(t, "")
	// The e2e lab wrote its own hosts section; this test's config replaces
	// the file with one that has every section once.
	base, err := os.ReadFile(l.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(base), "hosts:\n  origin.lab: [198.18.2.2]\n", "", 1)
	if err := os.WriteFile(l.cfgPath, []byte(text+cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The identity apps on :9443 of the origin namespace (:443 is the e2e
	// lab's origin); lab-idp writes its signing certificate to idpCert.
	startLabIdP(t, l, dir)
	return &ssoLab{e2eLab: l, idpCert: idpCert}
}

// browserlessClient follows redirects and keeps cookies like a browser
// would, in the client namespace, reaching every name at the appliance.
func (l *ssoLab) browserlessClient(t *testing.T) *http.Client {
	c := l.suffixClient(t, false)
	jar, _ := cookiejar.New(nil)
	c.Jar = jar
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !strings.HasSuffix(req.URL.Hostname(), ".gw.test") {
			return fmt.Errorf("redirected out of the suffix domain to %s", req.URL)
		}
		if len(via) > 15 {
			return fmt.Errorf("too many redirects")
		}
		return nil
	}
	return c
}

// form is the first HTML form of a page: its action (absolute) and fields.
type form struct {
	action string
	method string
	fields url.Values
}

func firstForm(t *testing.T, page *url.URL, body []byte) form {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var f *form
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attr := func(k string) string {
				for _, a := range n.Attr {
					if a.Key == k {
						return a.Val
					}
				}
				return ""
			}
			switch {
			case n.Data == "form" && f == nil:
				act, err := page.Parse(attr("action"))
				if err != nil {
					t.Fatal(err)
				}
				f = &form{action: act.String(), method: strings.ToUpper(attr("method")), fields: url.Values{}}
			case n.Data == "input" && f != nil && attr("name") != "":
				f.fields.Set(attr("name"), attr("value"))
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if f == nil {
		t.Fatalf("no form on %s:\n%s", page, body)
	}
	return *f
}

func (f form) submit(t *testing.T, c *http.Client, set map[string]string) (*http.Response, []byte) {
	t.Helper()
	for k, v := range set {
		f.fields.Set(k, v)
	}
	if !strings.HasPrefix(f.action, "https://") || !strings.Contains(f.action, ".gw.test/") {
		t.Fatalf("form posts outside the suffix domain: %s", f.action)
	}
	resp, err := c.PostForm(f.action, f.fields)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// TestE2ESSOThroughSuffix does a full SAML login, a full OIDC login and the
// proxy's own OIDC login through the suffix domain with a browser-like
// client, and checks the proxy learnt the user: the access log names
// alice on the requests after each login.
func TestE2ESSOThroughSuffix(t *testing.T) {
	l := newSSOLab(t, "")
	l.start()
	defer l.stop(syscall.SIGTERM)

	t.Run("saml", func(t *testing.T) {
		c := l.browserlessClient(t)
		samlLogin(t, c, "alice", "alice-pw")
		_, _ = get(t, c, "https://sp.lab.gw.test/files/report.csv")
		line := l.waitAccessLog(t, func(m map[string]any) bool { return m["host"] == "sp.lab" && m["path"] == "/files/report.csv" })
		if line["user"] != "alice@lab.example" {
			t.Errorf("the proxy did not learn the SAML user: %v", line)
		}
	})

	t.Run("oidc-app", func(t *testing.T) {
		c := l.browserlessClient(t)
		resp, body := get(t, c, "https://rp.lab.gw.test/")
		if resp.Request.URL.Host != "op.lab.gw.test" {
			t.Fatalf("not sent to the provider under the suffix: %s (%d)\n%s", resp.Request.URL, resp.StatusCode, body)
		}
		f := firstForm(t, resp.Request.URL, body)
		resp, body = f.submit(t, c, map[string]string{"username": "alice", "password": "alice-pw"})
		if !bytes.Contains(body, []byte("Hello alice")) || resp.Request.URL.Host != "rp.lab.gw.test" {
			t.Fatalf("OIDC login did not complete: %s %d\n%s", resp.Request.URL, resp.StatusCode, body)
		}
	})

	t.Run("proxy-login", func(t *testing.T) {
		c := l.browserlessClient(t)
		resp, body := get(t, c, "https://origin.lab.gw.test/echo")
		if resp.Request.URL.Host != "op.lab.gw.test" {
			t.Fatalf("the proxy did not start its login: %s (%d)\n%s", resp.Request.URL, resp.StatusCode, body)
		}
		f := firstForm(t, resp.Request.URL, body)
		resp, body = f.submit(t, c, map[string]string{"username": "alice", "password": "alice-pw"})
		if resp.StatusCode != 200 || resp.Request.URL.String() != "https://origin.lab.gw.test/echo" {
			t.Fatalf("not back at the app: %s %d\n%s\n%s", resp.Request.URL, resp.StatusCode, body, l.log())
		}
		var session *http.Cookie
		for _, ck := range c.Jar.Cookies(resp.Request.URL) {
			if strings.HasPrefix(ck.Name, "__Host-portcullis") {
				session = ck
			}
		}
		if session == nil || strings.Contains(session.Value, "alice") {
			t.Fatalf("no encrypted __Host- session cookie: %+v", session)
		}
		line := l.waitAccessLog(t, func(m map[string]any) bool {
			return m["host"] == "origin.lab" && m["path"] == "/echo" && m["user"] != ""
		})
		if line["user"] != "alice" && line["user"] != "alice@lab.example" {
			t.Errorf("access log user %v", line["user"])
		}
	})
}

func writeLeaf(t *testing.T, c tls.Certificate, certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := lab.EncodeLeaf(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// samlLogin signs user in at sp.lab through the suffix proxy: the SP sends
// the AuthnRequest with an auto-submitted form, the IdP shows its login
// form, then posts the assertion back to the ACS.
func samlLogin(t *testing.T, c *http.Client, user, password string) {
	t.Helper()
	resp, body := get(t, c, "https://sp.lab.gw.test/")
	for i := 0; i < 3 && !bytes.Contains(body, []byte("Hello ")); i++ {
		f := firstForm(t, resp.Request.URL, body)
		set := map[string]string{}
		if _, ok := f.fields["password"]; ok {
			set = map[string]string{"user": user, "password": password}
		}
		resp, body = f.submit(t, c, set)
	}
	if !bytes.Contains(body, []byte("Hello "+user)) {
		t.Fatalf("SAML login of %s did not complete: %s %d\n%s", user, resp.Request.URL, resp.StatusCode, body)
	}
}

// TestE2ESuffixPolicyByGroup: the identity learnt from the SAML assertion
// reaches the session policies: a download blocked for the finance group is
// blocked for alice (finance) and allowed for bob (staff only).
func TestE2ESuffixPolicyByGroup(t *testing.T) {
	dir := t.TempDir()
	pol := `session_policies:
  - id: finance-no-reports
    filters:
      apps: [saml-lab]
      groups: [finance]
      # The test drives native clients (Go, curl): a policy without
      # client_apps would apply to browsers only.
      client_apps: [browser, mobile_desktop]
    control: block_activities
    activities: [download_file]
    action: block
    message: Finance may not download reports from this app.
`
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newSSOLab(t, "policy:\n  dir: "+dir+"\n")
	l.start()
	defer l.stop(syscall.SIGTERM)

	alice := l.browserlessClient(t)
	samlLogin(t, alice, "alice", "alice-pw")
	resp, body := get(t, alice, "https://sp.lab.gw.test/files/report.csv")
	if resp.StatusCode != http.StatusForbidden || !bytes.Contains(body, []byte("Finance may not download reports")) {
		t.Fatalf("alice (finance): %d %s", resp.StatusCode, body)
	}
	bob := l.browserlessClient(t)
	samlLogin(t, bob, "bob", "bob-pw")
	resp, body = get(t, bob, "https://sp.lab.gw.test/files/report.csv")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("bob (staff): %d %s", resp.StatusCode, body)
	}
	line := l.waitAccessLog(t, func(m map[string]any) bool { return m["path"] == "/files/report.csv" && m["decision"] == "block" })
	if line["user"] != "alice@lab.example" || !strings.Contains(fmt.Sprint(line["reason"]), "finance-no-reports") {
		t.Errorf("access log: %v", line)
	}
}
