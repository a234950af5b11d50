package identity

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/idp"
)

// oidcFixture runs the lab OpenID Provider and an "app host" serving the
// proxy's login endpoints, both on loopback TLS; the browser reaches
// app.gw.test at the latter.
type oidcFixture struct {
	login   *OIDCLogin
	browser *http.Client
	appURL  string
}

func newOIDCFixture(t *testing.T) *oidcFixture {
	t.Helper()
	opSrv := httptest.NewUnstartedServer(nil)
	opSrv.StartTLS()
	t.Cleanup(opSrv.Close)
	h, err := idp.NewOP(idp.OPConfig{Issuer: opSrv.URL, Clients: []idp.OPClient{{
		ID: "portcullis", Secret: "s3cret", RedirectURIs: []string{"https://*.gw.test/.portcullis/oidc/callback"}}}})
	if err != nil {
		t.Fatal(err)
	}
	opSrv.Config.Handler = h
	sessions, _ := NewSessions([][]byte{secret(7)}, time.Hour)
	login, err := NewOIDCLogin(context.Background(), OIDCConfig{Issuer: opSrv.URL, ClientID: "portcullis", ClientSecret: "s3cret",
		Scopes: []string{"openid", "profile", "email", "groups"}, HTTPClient: opSrv.Client(),
		AllowedReturn: func(u *url.URL) bool { return u.Scheme == "https" && strings.HasSuffix(u.Hostname(), ".gw.test") }}, sessions)
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case login.IsCallback(r):
			login.Callback(w, r)
		case r.URL.Path == "/start":
			login.Start(w, r, r.URL.Query().Get("return"))
		default:
			id, ok := sessions.Get(r, "app.gw.test")
			if !ok {
				http.Error(w, "no session", http.StatusUnauthorized)
				return
			}
			io.WriteString(w, "hello "+id.User+" "+strings.Join(id.Groups, ","))
		}
	}))
	app.StartTLS()
	t.Cleanup(app.Close)
	appAddr := app.Listener.Addr().String()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{
		// Test-only: the browser is shown httptest's certificate for the
		// app name; the provider link verifies for real.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if strings.HasPrefix(addr, "app.gw.test:") {
				addr = appAddr
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	return &oidcFixture{login: login, browser: browser, appURL: "https://app.gw.test"}
}

var hiddenInput = regexp.MustCompile(`<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"`)

func TestOIDCLogin(t *testing.T) {
	f := newOIDCFixture(t)
	resp, err := f.browser.Get(f.appURL + "/start?return=" + url.QueryEscape(f.appURL+"/deep?x=1"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"username": {"alice"}, "password": {"alice-pw"}}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], m[2])
	}
	action := resp.Request.URL.ResolveReference(&url.URL{Path: "/login"})
	resp, err = f.browser.PostForm(action.String()+"?"+resp.Request.URL.RawQuery, form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello alice") || resp.Request.URL.Path != "/deep" {
		t.Fatalf("login did not complete: %s %d %s", resp.Request.URL, resp.StatusCode, body)
	}
	u, _ := url.Parse(f.appURL)
	for _, c := range f.browser.Jar.Cookies(u) {
		if c.Name == CookieName && strings.Contains(c.Value, "alice") {
			t.Error("session cookie is readable")
		}
	}
}

func TestOIDCLoginRefusals(t *testing.T) {
	f := newOIDCFixture(t)
	get := func(c *http.Client, path string) int {
		resp, err := c.Get(f.appURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	noRedirect := *f.browser
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if code := get(&noRedirect, "/start?return="+url.QueryEscape("https://evil.example/")); code != http.StatusBadRequest {
		t.Errorf("return to a foreign host: %d", code)
	}
	if code := get(&noRedirect, "/.portcullis/oidc/callback?code=x&state=y"); code != http.StatusBadRequest {
		t.Errorf("callback without a login in progress: %d", code)
	}
	if code := get(&noRedirect, "/start?return="+url.QueryEscape(f.appURL+"/")); code != http.StatusFound {
		t.Fatalf("start: %d", code)
	}
	if code := get(&noRedirect, "/.portcullis/oidc/callback?code=x&state=forged"); code != http.StatusForbidden {
		t.Errorf("callback with a forged state: %d", code)
	}
}
