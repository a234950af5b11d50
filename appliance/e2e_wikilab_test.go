package appliance

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/internal/lab"
	"github.com/portcullis-gw/portcullis/internal/lab/browser"
	"github.com/portcullis-gw/portcullis/internal/lab/dokuwiki"
)

// wikiLab is the e2e lab with a real DokuWiki (nginx + php-fpm) in a
// namespace of its own behind the gateway, reached either through the
// suffix proxy (wiki.lab.gw.test) or transparently (wiki.lab, steered by
// the datapath), with a policy directory.
type wikiLab struct {
	*e2eLab
	wiki   *dokuwiki.Wiki
	suffix bool
	base   string // the wiki's URL as the browser uses it, with a trailing /
	polDir string
	sso    bool // the lab OIDC provider runs and the wiki requires its login
}

// newWikiLab builds the lab; policies (YAML) go to the policy directory
// when not empty, extra is appended to the appliance configuration. The
// appliance is not started yet.
func newWikiLab(t *testing.T, suffix bool, policies, extra string) *wikiLab {
	t.Helper()
	cfg := extra
	if suffix {
		cfg = suffixLabConfig + extra
	}
	l := newE2ELab(t, cfg)
	w := &wikiLab{e2eLab: l, suffix: suffix}
	// newE2ELab wrote its own hosts section: add the wiki to it.
	b, err := os.ReadFile(l.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "hosts:\n  origin.lab: [198.18.2.2]\n", "hosts:\n  origin.lab: [198.18.2.2]\n  wiki.lab: [198.18.7.2]\n  op.lab: [\""+idpAddr.String()+":9443\"]\n", 1)
	if policies != "" {
		w.polDir = filepath.Join(l.dir, "policies")
		if err := os.MkdirAll(w.polDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(w.polDir, "lab.yaml"), []byte(policies), 0o644); err != nil {
			t.Fatal(err)
		}
		text += "policy:\n  dir: " + w.polDir + "\n"
	}
	if err := os.WriteFile(l.cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	wns := lab.NewNS(t, "w")
	lab.Veth(t, l.GW, "wiki0", wns, "eth0")
	l.GW.IP("addr", "add", "198.18.7.1/24", "dev", "wiki0", "nodad")
	wns.IP("addr", "add", wikiAddr.String()+"/24", "dev", "eth0", "nodad")
	wns.IP("route", "add", "default", "via", "198.18.7.1")
	leaf, err := l.labCA.Leaf(lab.LeafOptions{Names: []string{"wiki.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := lab.EncodeLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	w.wiki = dokuwiki.Start(t, dokuwiki.Config{NS: wns, Addr: wikiAddr, Name: "wiki.lab", Cert: certPEM, Key: keyPEM})
	if suffix {
		w.base = "https://wiki.lab.gw.test/"
	} else {
		w.base = "https://wiki.lab/"
		l.Client.SetHosts(map[string]netip.Addr{"origin.lab": originGood, "wiki.lab": wikiAddr})
	}
	return w
}

// browser starts headless Chromium in the client namespace, trusting only
// the appliance CA (the appliance must be running).
func (w *wikiLab) browser(t *testing.T) *browser.Browser {
	t.Helper()
	w.applianceCA()
	caPEM, err := os.ReadFile(filepath.Join(w.dir, "appliance-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]string{"wiki.lab": wikiAddr.String(), "origin.lab": originGood.String(), "op.lab": idpAddr.String() + ":9443"}
	if w.suffix {
		rules = map[string]string{"wiki.lab.gw.test": suffixListen.Addr().String(), "origin.lab.gw.test": suffixListen.Addr().String(),
			"op.lab.gw.test": suffixListen.Addr().String()}
	}
	// The lab CA: the OIDC provider is reached directly in transparent mode.
	return browser.Start(t, browser.Options{NS: w.Client, TrustPEM: [][]byte{caPEM, w.labCA.PEM}, HostRules: rules})
}

// step runs browser actions with a bound, failing with the page and the
// appliance's log.
func (w *wikiLab) step(t *testing.T, tab context.Context, name string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(tab, chromedp.Location())
		body, _ := chromedp.Run(tab, chromedp.OuterHTML(chromedp.CSS("html")))
		if len(body) > 2000 {
			body = body[:2000]
		}
		t.Fatalf("%s: %v (page %s)\n%s\n%s", name, err, loc, body, w.log())
	}
}

// login signs in to DokuWiki as its admin in tab.
func (w *wikiLab) login(t *testing.T, tab context.Context) {
	t.Helper()
	w.step(t, tab, "log in",
		chromedp.Navigate(w.base+"doku.php?id=start&do=login"),
		chromedp.WaitVisible(chromedp.CSS(`#dw__login input[name="u"]`)),
		chromedp.SendKeys(chromedp.CSS(`#dw__login input[name="u"]`), w.wiki.AdminUser),
		chromedp.SendKeys(chromedp.CSS(`#dw__login input[name="p"]`), w.wiki.AdminPassword),
		chromedp.Click(chromedp.CSS(`#dw__login button[type="submit"]`)),
		chromedp.WaitReady(chromedp.CSS(`a[href*="do=logout"]`)),
	)
}

// putMedia stores a media file in the wiki directly (as if uploaded
// earlier), for download tests.
func (w *wikiLab) putMedia(t *testing.T, ns, name string, data []byte) {
	t.Helper()
	dir := filepath.Join(w.wiki.DataDir, "media", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// php-fpm runs as www-data and must read it.
	_ = os.Chown(dir, 33, 33)
	_ = os.Chown(p, 33, 33)
}

// withLogin makes the wiki require the appliance's OIDC login (the lab
// provider, op.lab), so every event names the user: transparently with
// identity.require_user_for, through the suffix with suffix.oidc.
func (w *wikiLab) withLogin(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secret, []byte("lab-proxy-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	require := "identity:\n  require_user_for: [dokuwiki]\n"
	if w.suffix {
		require = "    require_for: [wiki.lab]\n"
	}
	cfg := fmt.Sprintf("suffix:\n  oidc:\n    issuer: https://op.lab\n    client_id: portcullis\n    client_secret_file: %s\n    scopes: [openid, profile, email, groups]\n%s", secret, require)
	b, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if w.suffix {
		// suffix: is already there (suffixLabConfig): add oidc under it.
		text = strings.Replace(text, "suffix:\n", cfg, 1)
	} else {
		text += cfg
	}
	if err := os.WriteFile(w.cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var extra []string
	if !w.suffix {
		extra = []string{"-proxy-redirect-host", "wiki.lab"}
	}
	startLabIdP(t, w.e2eLab, dir, extra...)
	w.sso = true
}

// signIn opens the wiki and, where the wiki requires the appliance's
// login, signs user in at the lab provider and comes back.
func (w *wikiLab) signIn(t *testing.T, tab context.Context, user, password string) {
	t.Helper()
	if !w.sso {
		return
	}
	w.step(t, tab, "go to the wiki", chromedp.Navigate(w.base+"doku.php?id=start"))
	signInAt(t, w.e2eLab, tab, user, password)
	w.step(t, tab, "back at the wiki", waitText("DokuWiki"))
}
