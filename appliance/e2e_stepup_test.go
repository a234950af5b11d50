package appliance

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/internal/lab"
	"github.com/portcullis-gw/portcullis/internal/lab/browser"
	"github.com/portcullis-gw/portcullis/internal/lab/idp"
)

// formsAddr serves forms.lab, an origin whose expense form is behind a
// step-up; the test counts what reaches it.
var formsAddr = netip.MustParseAddr("198.18.8.2")

// stepUpPolicies: every download from the lab origin and every expense
// submitted on forms.lab need a step-up.
const stepUpPolicies = `apps:
  - id: origin-lab
    name: Lab origin
    domains: [origin.lab]
  - id: forms-lab
    name: Lab forms
    domains: [forms.lab]
    activities:
      - {id: submit_expense, method: POST, path: /submit}
access_policies:
  # Native clients are intercepted only where a policy names them (curl
  # fetches the appliance's SP metadata).
  - id: native-monitored
    filters: {apps: [origin-lab, forms-lab], client_apps: [mobile_desktop]}
    action: monitor
session_policies:
  - id: downloads-step-up
    filters: {apps: [origin-lab]}
    control: download
    action: require_step_up
  - id: expenses-step-up
    filters: {apps: [forms-lab]}
    control: block_activities
    activities: [submit_expense]
    action: require_step_up
`

const stepUpEntityID = "https://portcullis.lab/saml/step-up"

// formsOrigin is forms.lab: GET /form is an expense form, POST /submit
// records what arrives.
type formsOrigin struct {
	mu       sync.Mutex
	received []string
}

func (f *formsOrigin) arrived() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.received...)
}

func startFormsOrigin(t *testing.T, l *e2eLab) *formsOrigin {
	t.Helper()
	f := &formsOrigin{}
	// A host of its own behind the gateway: the lab origin's listeners
	// take :443 on every address of the origin namespace.
	fns := lab.NewNS(t, "f")
	lab.Veth(t, l.GW, "forms0", fns, "eth0")
	l.GW.IP("addr", "add", "198.18.8.1/24", "dev", "forms0", "nodad")
	fns.IP("addr", "add", formsAddr.String()+"/24", "dev", "eth0", "nodad")
	fns.IP("route", "add", "default", "via", "198.18.8.1")
	leaf, err := l.labCA.Leaf(lab.LeafOptions{Names: []string{"forms.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html><body><h1>Expense</h1>
<form method="post" action="/submit"><input id="amount" name="amount"><button id="send" type="submit">Send</button></form></body></html>`)
	})
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		amount := r.PostFormValue("amount")
		f.mu.Lock()
		f.received = append(f.received, amount)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><body><p id=done>expense received: %s</p></body></html>", amount)
	})
	ln, err := fns.Listen("tcp", ":443")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{leaf}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return f
}

// stepUpLab is the lab with the appliance's OIDC login (op.lab) for the
// user and step-ups by stepUp (a YAML step_up section), the lab IdPs
// knowing the appliance's SP metadata from spMetadata once the test wrote
// it there.
type stepUpLab struct {
	*e2eLab
	spMetadata string
	idpCert    string
}

func newStepUpLab(t *testing.T, suffix bool, stepUp func(l *stepUpLab) string) *stepUpLab {
	t.Helper()
	dir := t.TempDir()
	sl := &stepUpLab{spMetadata: filepath.Join(dir, "appliance-sp.xml"), idpCert: filepath.Join(dir, "idp-signing.pem")}
	secret := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secret, []byte("lab-proxy-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	polDir := filepath.Join(dir, "policies")
	if err := os.MkdirAll(polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(polDir, "lab.yaml"), []byte(stepUpPolicies), 0o644); err != nil {
		t.Fatal(err)
	}
	head, require := "", "identity:\n  require_user_for: [origin-lab]\n"
	if suffix {
		head = suffixLabConfig
		require = "identity:\n"
	}
	l := newE2ELab(t, "")
	sl.e2eLab = l
	base, err := os.ReadFile(l.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(base), "hosts:\n  origin.lab: [198.18.2.2]\n", "", 1)
	oidc := fmt.Sprintf("  oidc:\n    issuer: https://op.lab\n    client_id: portcullis\n    client_secret_file: %s\n    scopes: [openid, profile, email, groups]\n", secret)
	if suffix {
		oidc += "    require_for: [origin.lab]\n"
		head = strings.Replace(head, "suffix:\n", "suffix:\n"+oidc, 1)
	} else {
		head = "suffix:\n" + oidc
	}
	cfg := head + require + stepUp(sl) + fmt.Sprintf(`policy:
  dir: %s
hosts:
  origin.lab: [198.18.2.2]
  forms.lab: [%s]
  op.lab: ["%[3]s:9443"]
  idp.lab: ["%[3]s:9443"]
`, polDir, formsAddr, idpAddr)
	if err := os.WriteFile(l.cfgPath, []byte(text+cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := []string{"-sp-metadata-url", "file://" + sl.spMetadata}
	if !suffix {
		extra = append(extra, "-proxy-redirect-host", "origin.lab")
	}
	startLabIdP(t, l, dir, extra...)
	return sl
}

// labSAMLStepUp is identity.step_up for SAML with the lab IdP.
func labSAMLStepUp(byMetadata bool) func(l *stepUpLab) string {
	return func(l *stepUpLab) string {
		idpAt := "      idp_metadata_url: https://idp.lab/metadata\n"
		if !byMetadata {
			idpAt = "      idp_sso_url: https://idp.lab/sso\n      idp_certificate: " + l.idpCert + "\n      idp_entity_id: https://idp.lab/metadata\n"
		}
		return "  step_up:\n    ttl: 10m\n    saml:\n" + idpAt + "      entity_id: " + stepUpEntityID + "\n      authn_context: [" + idp.StepUpSAMLContext + "]\n"
	}
}

// publishSPMetadata fetches the appliance's SP metadata on each host (curl
// in the client namespace, through the appliance; each host is
// "name=address") and gives the IdP one document naming the ACS of every
// one of them, as an admin registers every host's reply URL.
func (l *stepUpLab) publishSPMetadata(t *testing.T, hosts ...string) {
	t.Helper()
	var doc string
	for i, ha := range hosts {
		h, at, _ := strings.Cut(ha, "=")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		url := "https://" + h + "/.portcullis/saml/metadata"
		out, err := l.Client.Exec(ctx, "curl", "-sSf", "--cacert", filepath.Join(l.dir, "appliance-ca.pem"),
			"--resolve", h+":443:"+at, url)
		cancel()
		if err != nil {
			t.Fatalf("SP metadata from %s: %v %s\n%s", url, err, out, l.log())
		}
		md := string(out)
		if !strings.Contains(md, `entityID="`+stepUpEntityID+`"`) || !strings.Contains(md, "/.portcullis/saml/acs") {
			t.Fatalf("SP metadata from %s:\n%s", url, md)
		}
		if i == 0 {
			doc = md
			continue
		}
		acs := acsElement.FindString(md)
		acs = strings.Replace(acs, `index="1"`, fmt.Sprintf(`index="%d"`, i+1), 1)
		doc = strings.Replace(doc, "</SPSSODescriptor>", acs+"</SPSSODescriptor>", 1)
	}
	if err := os.WriteFile(l.spMetadata, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

var acsElement = regexp.MustCompile(`<AssertionConsumerService [^>]*>(</AssertionConsumerService>)?`)

// samlSignIn signs user in at the lab SAML IdP's password form.
func samlSignIn(t *testing.T, l *e2eLab, tab context.Context, user, password string) {
	t.Helper()
	step(t, l, tab, "SAML sign in as "+user,
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), user),
		chromedp.SendKeys(chromedp.CSS(`#password`), password),
		chromedp.Click(chromedp.CSS(`#submit`)))
}

// confirmCode passes the lab IdPs' second step.
func confirmCode(t *testing.T, l *e2eLab, tab context.Context) {
	t.Helper()
	step(t, l, tab, "confirm with the code",
		chromedp.WaitVisible(chromedp.CSS(`#code`)),
		chromedp.SendKeys(chromedp.CSS(`#code`), idp.StepUpCode),
		chromedp.Click(chromedp.CSS(`#confirm`)))
}

func allowDownloads(t *testing.T, tab context.Context) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(tab, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir,
		BrowserContextID: chromedp.FromContext(tab).BrowserContextID}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestE2ESAMLStepUp: transparent mode, the user known from the
// appliance's OIDC login, step-ups by the appliance's SAML service
// provider at the lab SAML IdP. A download sends Chromium to the IdP
// (ForceAuthn, RequestedAuthnContext TimeSyncToken): password, code, back
// through the ACS, and the download starts; a second download within the
// TTL goes straight through; a response with only the password context is
// refused with a page and the download stays blocked; an expense form
// stopped for a step-up is not sent, the step-up ends on a page saying to
// submit it again, and the re-submitted form reaches the origin once.
func TestE2ESAMLStepUp(t *testing.T) {
	l := newStepUpLab(t, false, labSAMLStepUp(true))
	forms := startFormsOrigin(t, l.e2eLab)
	l.start()
	defer l.stop(syscall.SIGTERM)
	l.applianceCA()
	l.publishSPMetadata(t, "origin.lab="+originGood.String(), "forms.lab="+formsAddr.String())
	caPEM, err := os.ReadFile(filepath.Join(l.dir, "appliance-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b := browser.Start(t, browser.Options{NS: l.Client, TrustPEM: [][]byte{caPEM, l.labCA.PEM},
		HostRules: map[string]string{"origin.lab": originGood.String(), "forms.lab": formsAddr.String(),
			"op.lab": idpAddr.String() + ":9443", "idp.lab": idpAddr.String() + ":9443"}})

	tab, netlog := b.NewTab(t)
	dir := allowDownloads(t, tab)
	step(t, l.e2eLab, tab, "open the app", chromedp.Navigate("https://origin.lab/"))
	signInAt(t, l.e2eLab, tab, "alice", "alice-pw")
	step(t, l.e2eLab, tab, "back at the app", waitText("hello from lab origin"))

	t.Run("download after the SAML step-up", func(t *testing.T) {
		before := dirNames(dir)
		step(t, l.e2eLab, tab, "click the download", clickLink("https://origin.lab/bytes/64"))
		samlSignIn(t, l.e2eLab, tab, "alice", "alice-pw")
		step(t, l.e2eLab, tab, "the second step", chromedp.WaitVisible(chromedp.CSS(`#code`)))
		if name, _, ok := downloaded(dir, before, time.Second); ok {
			t.Fatalf("the download arrived before the step-up: %s", name)
		}
		confirmCode(t, l.e2eLab, tab)
		name, got, ok := downloaded(dir, before, 20*time.Second)
		if !ok || len(got) != 64 || !strings.HasPrefix(string(got), "abcdefghij") {
			t.Fatalf("no download after the step-up (%q, %d bytes)\n%s", name, len(got), l.log())
		}
		line := l.waitAccessLog(t, func(m map[string]any) bool {
			return m["path"] == "/bytes/64" && m["status"] == float64(200) && m["decision"] == "allow"
		})
		if line["user"] != "alice" || !strings.Contains(fmt.Sprint(line["reason"]), "step-up done (policy downloads-step-up)") {
			t.Errorf("access log of the download: %v", line)
		}
		l.waitAccessLog(t, func(m map[string]any) bool {
			return m["path"] == "/.portcullis/saml/acs" && m["reason"] == "saml step-up response accepted"
		})
	})

	t.Run("within the lifetime no step-up", func(t *testing.T) {
		step(t, l.e2eLab, tab, "back to the app", chromedp.Navigate("https://origin.lab/"), waitText("hello from lab origin"))
		seen := len(netlog.Entries())
		before := dirNames(dir)
		step(t, l.e2eLab, tab, "click another download", clickLink("https://origin.lab/bytes/32"))
		if _, got, ok := downloaded(dir, before, 20*time.Second); !ok || len(got) != 32 {
			t.Fatalf("second download: %d bytes", len(got))
		}
		for _, e := range netlog.Entries()[seen:] {
			if strings.Contains(e.URL, "idp.lab") {
				t.Errorf("the second download went to the IdP: %s", e.URL)
			}
		}
	})

	t.Run("weaker context refused", func(t *testing.T) {
		bob, _ := b.NewTab(t)
		dir := allowDownloads(t, bob)
		step(t, l.e2eLab, bob, "open the app", chromedp.Navigate("https://origin.lab/"))
		signInAt(t, l.e2eLab, bob, "bob", "bob-pw")
		step(t, l.e2eLab, bob, "back at the app", waitText("hello from lab origin"))
		before := dirNames(dir)
		step(t, l.e2eLab, bob, "click the download", clickLink("https://origin.lab/bytes/48"))
		samlSignIn(t, l.e2eLab, bob, "bob", "bob-pw")
		step(t, l.e2eLab, bob, "continue without the code",
			chromedp.WaitVisible(chromedp.CSS(`#skip`)), chromedp.Click(chromedp.CSS(`#skip`)),
			waitText("Sign-in not confirmed"))
		page, err := chromedp.Run(bob, chromedp.Text(chromedp.CSS(`#step-up-refused`)))
		if err != nil || !strings.Contains(page, idp.PasswordSAMLContext) || !strings.Contains(page, idp.StepUpSAMLContext) {
			t.Errorf("refusal page: %q %v", page, err)
		}
		if loc := location(t, bob); loc != "https://origin.lab/.portcullis/saml/acs" {
			t.Errorf("refused at %s", loc)
		}
		line := l.waitAccessLog(t, func(m map[string]any) bool {
			return m["path"] == "/.portcullis/saml/acs" && strings.Contains(fmt.Sprint(m["reason"]), "saml step-up refused: authentication context")
		})
		if line["decision"] != "block" {
			t.Errorf("access log of the refused response: %v", line)
		}
		if name, _, ok := downloaded(dir, before, time.Second); ok {
			t.Fatalf("the download arrived after a refused step-up: %s", name)
		}
		step(t, l.e2eLab, bob, "back to the app", chromedp.Navigate("https://origin.lab/"), waitText("hello from lab origin"))
		if code, link := pageFetch(t, bob, "/bytes/48", "X-Portcullis-Step-Up"); code != 401 || !strings.HasPrefix(link, "/.portcullis/step-up?return=") {
			t.Fatalf("download after the refused step-up: %d, %q", code, link)
		}
	})

	t.Run("form re-submitted after the step-up", func(t *testing.T) {
		carol, _ := b.NewTab(t)
		step(t, l.e2eLab, carol, "fill the expense form",
			chromedp.Navigate("https://forms.lab/form"),
			chromedp.WaitVisible(chromedp.CSS(`#amount`)),
			chromedp.SendKeys(chromedp.CSS(`#amount`), "42"),
			chromedp.Click(chromedp.CSS(`#send`)),
			waitText("Confirm it is you"))
		if got := forms.arrived(); len(got) != 0 {
			t.Fatalf("the form reached the origin before the step-up: %q", got)
		}
		step(t, l.e2eLab, carol, "confirm the sign-in", chromedp.Click(chromedp.CSS(`#step-up`)))
		samlSignIn(t, l.e2eLab, carol, "carol", "carol-pw")
		confirmCode(t, l.e2eLab, carol)
		step(t, l.e2eLab, carol, "the page saying to submit again", waitText("submit it again"))
		if loc := location(t, carol); !strings.HasPrefix(loc, "https://forms.lab/.portcullis/step-up/resubmit?return=") {
			t.Errorf("after the step-up: %s", loc)
		}
		if got := forms.arrived(); len(got) != 0 {
			t.Fatalf("the step-up replayed the form: %q", got)
		}
		step(t, l.e2eLab, carol, "submit the form again",
			chromedp.Click(chromedp.CSS(`#back`)),
			chromedp.WaitVisible(chromedp.CSS(`#amount`)),
			chromedp.SendKeys(chromedp.CSS(`#amount`), "42"),
			chromedp.Click(chromedp.CSS(`#send`)),
			waitText("expense received: 42"))
		if got := forms.arrived(); len(got) != 1 || got[0] != "42" {
			t.Fatalf("the origin received %q, want the expense once", got)
		}
		line := l.waitAccessLog(t, func(m map[string]any) bool {
			return m["host"] == "forms.lab" && m["path"] == "/submit" && m["decision"] == "allow"
		})
		if !strings.Contains(fmt.Sprint(line["reason"]), "step-up done (policy expenses-step-up)") || line["user"] != "carol@lab.example" {
			t.Errorf("access log of the re-submitted form: %v", line)
		}
	})
}

// TestE2ESuffixStepUp: the same download step-up through the suffix proxy
// (origin.lab.gw.test, the user from the appliance's OIDC login there), by
// the OIDC provider (acr) and by the appliance's SAML service provider at
// the lab SAML IdP, itself served under the suffix.
func TestE2ESuffixStepUp(t *testing.T) {
	for _, method := range []string{"oidc", "saml"} {
		t.Run(method, func(t *testing.T) {
			conf := func(*stepUpLab) string {
				return "  step_up:\n    ttl: 10m\n    acr: " + idp.StepUpACR + "\n"
			}
			if method == "saml" {
				conf = labSAMLStepUp(false)
			}
			l := newStepUpLab(t, true, conf)
			l.start()
			defer l.stop(syscall.SIGTERM)
			l.applianceCA()
			at := suffixListen.Addr().String()
			if method == "saml" {
				l.publishSPMetadata(t, "origin.lab.gw.test="+suffixListen.Addr().String())
			}
			caPEM, err := os.ReadFile(filepath.Join(l.dir, "appliance-ca.pem"))
			if err != nil {
				t.Fatal(err)
			}
			b := browser.Start(t, browser.Options{NS: l.Client, TrustPEM: [][]byte{caPEM},
				HostRules: map[string]string{"origin.lab.gw.test": at, "op.lab.gw.test": at, "idp.lab.gw.test": at}})
			tab, netlog := b.NewTab(t)
			dir := allowDownloads(t, tab)
			step(t, l.e2eLab, tab, "open the app", chromedp.Navigate("https://origin.lab.gw.test/"))
			signInAt(t, l.e2eLab, tab, "alice", "alice-pw")
			step(t, l.e2eLab, tab, "back at the app", waitText("hello from lab origin"))

			before := dirNames(dir)
			step(t, l.e2eLab, tab, "click the download", clickLink("https://origin.lab.gw.test/bytes/64"))
			if method == "saml" {
				samlSignIn(t, l.e2eLab, tab, "alice", "alice-pw")
			} else {
				signInAt(t, l.e2eLab, tab, "alice", "alice-pw")
			}
			step(t, l.e2eLab, tab, "the second step", chromedp.WaitVisible(chromedp.CSS(`#code`)))
			if name, _, ok := downloaded(dir, before, time.Second); ok {
				t.Fatalf("the download arrived before the step-up: %s", name)
			}
			confirmCode(t, l.e2eLab, tab)
			name, got, ok := downloaded(dir, before, 20*time.Second)
			if !ok || len(got) != 64 {
				t.Fatalf("no download after the step-up (%q, %d bytes)\n%s", name, len(got), l.log())
			}
			line := l.waitAccessLog(t, func(m map[string]any) bool {
				return m["mode"] == "suffix" && m["path"] == "/bytes/64" && m["status"] == float64(200) && m["decision"] == "allow"
			})
			if line["user"] != "alice" || !strings.Contains(fmt.Sprint(line["reason"]), "step-up done (policy downloads-step-up)") {
				t.Errorf("access log of the download: %v", line)
			}
			netlog.AssertAllHostsUnder(t, "gw.test")

			seen := len(netlog.Entries())
			before = dirNames(dir)
			step(t, l.e2eLab, tab, "back to the app", chromedp.Navigate("https://origin.lab.gw.test/"), waitText("hello from lab origin"),
				clickLink("https://origin.lab.gw.test/bytes/32"))
			if _, got, ok := downloaded(dir, before, 20*time.Second); !ok || len(got) != 32 {
				t.Fatalf("second download: %d bytes", len(got))
			}
			for _, e := range netlog.Entries()[seen:] {
				if strings.Contains(e.URL, "op.lab") || strings.Contains(e.URL, "idp.lab") {
					t.Errorf("the second download went to the IdP: %s", e.URL)
				}
			}
		})
	}
}
