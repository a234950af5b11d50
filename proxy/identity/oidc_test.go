package identity

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
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
		Claims:        ClaimMap{DeviceClaims: map[string]string{"device_compliant": "compliant"}},
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
		case r.URL.Path == "/step-up":
			login.StartStepUp(w, r, r.URL.Query().Get("return"), StepUp{ACR: idp.StepUpACR, TTL: time.Minute})
		case r.URL.Path == "/whoami":
			id, _ := sessions.Get(r, hostOf(r))
			fmt.Fprintf(w, "%s tags=%s acr=%s stepped=%v", id.User, strings.Join(id.DeviceTags, ","), id.ACR, id.SteppedUp(time.Now()))
		default:
			id, ok := sessions.Get(r, hostOf(r))
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
			if host, _, _ := net.SplitHostPort(addr); strings.HasSuffix(host, ".gw.test") {
				addr = appAddr
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	return &oidcFixture{login: login, browser: browser, appURL: "https://app.gw.test"}
}

// toCallback starts a login for returnPath in the fixture's browser, signs
// alice in at the OP and stops before the browser reaches the proxy's
// callback, returning the callback URL (code and state) the OP sent.
func (f *oidcFixture) toCallback(t *testing.T, returnPath string) *url.URL {
	t.Helper()
	var callback *url.URL
	c := *f.browser
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if f.login.IsCallback(req) {
			callback = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c.Get(f.appURL + "/start?return=" + url.QueryEscape(f.appURL+returnPath))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if callback == nil && resp.Request.URL.Path == "/login" { // not yet signed in at the OP: its login form
		submitForm(t, &c, resp.Request.URL, string(page), url.Values{"username": {"alice"}, "password": {"alice-pw"}})
	}
	if callback == nil || callback.Query().Get("code") == "" {
		t.Fatalf("the OP did not send the browser back with a code (last page %s %d):\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	return callback
}

// visit GETs u with client c without following redirects.
func visit(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := nc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestOIDCLogin(t *testing.T) {
	f := newOIDCFixture(t)
	callback := f.toCallback(t, "/deep?x=1")
	if callback.Host != "app.gw.test" || callback.Path != "/.portcullis/oidc/callback" {
		t.Fatalf("redirect_uri: %s", callback)
	}
	u, _ := url.Parse(f.appURL)
	var seen string
	for _, c := range f.browser.Jar.Cookies(u) {
		if c.Name == loginCookie {
			seen = c.Value
		}
	}
	done := visit(t, f.browser, callback.String())
	if done.StatusCode != http.StatusFound || done.Header.Get("Location") != f.appURL+"/deep?x=1" {
		t.Fatalf("callback: %d to %q", done.StatusCode, done.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, line := range done.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name == CookieName {
			session = c
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly || session.Path != "/" || session.Domain != "" ||
		session.SameSite != http.SameSiteLaxMode || strings.Contains(session.Value, "alice") {
		t.Fatalf("session cookie %+v", session)
	}
	// The proxy's handler sees the user on the next request.
	resp, err := f.browser.Get(f.appURL + "/deep?x=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello alice staff,finance" {
		t.Fatalf("after login: %d %q", resp.StatusCode, body)
	}
	// The same code a second time (an attacker who saw the URL and the
	// login cookie) is refused by the OP.
	replay := *f.browser
	replay.Jar, _ = cookiejar.New(nil)
	replay.Jar.SetCookies(u, []*http.Cookie{{Name: loginCookie, Value: seen}})
	if r := visit(t, &replay, callback.String()); r.StatusCode != http.StatusForbidden {
		t.Errorf("replayed code: %d", r.StatusCode)
	}
}

func TestOIDCLoginRefusals(t *testing.T) {
	f := newOIDCFixture(t)
	if r := visit(t, f.browser, f.appURL+"/start?return="+url.QueryEscape("https://evil.example/")); r.StatusCode != http.StatusBadRequest {
		t.Errorf("return to a foreign host: %d", r.StatusCode)
	}
	if r := visit(t, f.browser, f.appURL+"/start?return="+url.QueryEscape("https://other.gw.test/")); r.StatusCode != http.StatusBadRequest {
		t.Errorf("return to another onboarded host: %d", r.StatusCode)
	}
	if r := visit(t, f.browser, f.appURL+"/start?return="+url.QueryEscape("//evil.example/")); r.StatusCode != http.StatusBadRequest {
		t.Errorf("protocol-relative return to a foreign host: %d", r.StatusCode)
	}
	if r := visit(t, f.browser, f.appURL+"/start?return="+url.QueryEscape("http://app.gw.test/")); r.StatusCode != http.StatusBadRequest {
		t.Errorf("return over plain http: %d", r.StatusCode)
	}
	// A path of this host is a valid return address.
	fresh := *f.browser
	fresh.Jar, _ = cookiejar.New(nil)
	if r := visit(t, &fresh, f.appURL+"/start?return=%2Fdocs"); r.StatusCode != http.StatusFound || !strings.Contains(r.Header.Get("Location"), "/authorize?") {
		t.Errorf("return to a path: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := visit(t, f.browser, f.appURL+"/.portcullis/oidc/callback?code=x&state=y"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("callback without a login in progress: %d", r.StatusCode)
	}
	callback := f.toCallback(t, "/")
	// Another browser (no login cookie) brought to a genuine callback URL:
	// login CSRF.
	other := *f.browser
	other.Jar, _ = cookiejar.New(nil)
	if r := visit(t, &other, callback.String()); r.StatusCode != http.StatusBadRequest {
		t.Errorf("callback in a browser without the login cookie: %d", r.StatusCode)
	}
	forged := *callback
	q := forged.Query()
	q.Set("state", "forged")
	forged.RawQuery = q.Encode()
	if r := visit(t, f.browser, forged.String()); r.StatusCode != http.StatusForbidden {
		t.Errorf("callback with a forged state: %d", r.StatusCode)
	}
	// The refusal cleared the login; the genuine URL no longer works either.
	if r := visit(t, f.browser, callback.String()); r.StatusCode != http.StatusBadRequest {
		t.Errorf("callback after a refused attempt: %d", r.StatusCode)
	}
	// A login cookie of another host does not open here.
	callback2 := f.toCallback(t, "/")
	u, _ := url.Parse(f.appURL)
	var lc string
	for _, c := range f.browser.Jar.Cookies(u) {
		if c.Name == loginCookie {
			lc = c.Value
		}
	}
	moved := *f.browser
	moved.Jar, _ = cookiejar.New(nil)
	moved.Jar.SetCookies(&url.URL{Scheme: "https", Host: "other.gw.test"}, []*http.Cookie{{Name: loginCookie, Value: lc}})
	cb2 := *callback2
	cb2.Host = "other.gw.test"
	if r := visit(t, &moved, cb2.String()); r.StatusCode != http.StatusBadRequest {
		t.Errorf("login cookie moved to another host: %d", r.StatusCode)
	}
}

// The proxy hands Start the suffixed Host header as the browser sent it,
// perhaps with a port and in any case: the redirect_uri names the bare,
// lower-case host, the form the OP's registered patterns use.
func TestOIDCRedirectURIHost(t *testing.T) {
	f := newOIDCFixture(t)
	rec := httptest.NewRecorder()
	f.login.Start(rec, httptest.NewRequest("GET", "https://App.Example.com.GW.test:8443/x", nil), "/x")
	loc, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusFound || err != nil {
		t.Fatalf("start: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	q := loc.Query()
	if got := q.Get("redirect_uri"); got != "https://app.example.com.gw.test/.portcullis/oidc/callback" {
		t.Errorf("redirect_uri %q", got)
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" {
		t.Errorf("authorize request lacks PKCE, nonce or state: %s", loc.RawQuery)
	}
	var login *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == loginCookie {
			login = c
		}
	}
	if login == nil || !login.Secure || !login.HttpOnly || login.Path != "/" || login.Domain != "" || strings.Contains(login.Value, q.Get("state")) {
		t.Errorf("login cookie %+v", login)
	}
}
