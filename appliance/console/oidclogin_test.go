package console

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/lab/idp"
)

var (
	opFormAction = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	opFormInput  = regexp.MustCompile(`<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"`)
)

// oidcConsole is a console whose single sign-on goes to the lab OpenID
// provider (zitadel's op) on loopback TLS.
func oidcConsole(t *testing.T) (*testConsole, *httptest.Server) {
	t.Helper()
	opSrv := httptest.NewUnstartedServer(nil)
	opSrv.StartTLS()
	t.Cleanup(opSrv.Close)
	tc := newTestConsole(t, func(o *Options) {
		o.OIDC = &OIDCOptions{Issuer: opSrv.URL, ClientID: "console", ClientSecret: "console-secret",
			AdminGroups: []string{"finance"}, AuditorGroups: []string{"contractors"}, HTTPClient: opSrv.Client()}
	})
	h, err := idp.NewOP(idp.OPConfig{Issuer: opSrv.URL, Clients: []idp.OPClient{{
		ID: "console", Secret: "console-secret", RedirectURIs: []string{tc.srv.URL + oidcCallbackPath}}}})
	if err != nil {
		t.Fatal(err)
	}
	opSrv.Config.Handler = h
	return tc, opSrv
}

// ssoToCallback starts single sign-on in browser c, signs user in at the
// OP and returns the callback URL the OP sent the browser to (not yet
// visited).
func ssoToCallback(t *testing.T, c *client, user, password string) *url.URL {
	t.Helper()
	_, page := c.get("/login")
	resp, body := c.post("/login/oidc", url.Values{"csrf": {formToken(t, page)}})
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	var callback *url.URL
	follow := *c.http
	follow.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == oidcCallbackPath {
			callback = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}
	r, err := follow.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if callback == nil { // the OP's login form
		m := opFormAction.FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("no login form at the OP:\n%s", b)
		}
		action, _ := r.Request.URL.Parse(html.UnescapeString(m[1]))
		form := url.Values{}
		for _, in := range opFormInput.FindAllStringSubmatch(string(b), -1) {
			form.Set(in[1], html.UnescapeString(in[2]))
		}
		form.Set("username", user)
		form.Set("password", password)
		r, err = follow.PostForm(action.String(), form)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	if callback == nil || callback.Query().Get("code") == "" {
		t.Fatalf("the OP did not send the browser back with a code (%s):\n%s", r.Request.URL, b)
	}
	return callback
}

// Single sign-on: the provider's groups decide the role (finance → admin,
// contractors → auditor, neither → refused and audited); the state is bound to
// the browser that started and used once; the user is "oidc:<name>".
func TestConsoleOIDCLogin(t *testing.T) {
	tc, _ := oidcConsole(t)
	admin := tc.setup("admin", adminPW)
	_, page := tc.client().get("/login")
	if !strings.Contains(page, `action="/login/oidc"`) {
		t.Fatal("the login page offers no single sign-on")
	}

	alice := tc.client()
	cb := ssoToCallback(t, alice, "alice", "alice-pw")
	resp, _ := alice.get(cb.RequestURI())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard" {
		t.Fatalf("callback: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	alice.refreshCSRF()
	_, m := alice.api("GET", "/api/v1/session", nil)
	if m["user"] != "oidc:alice" || m["role"] != "admin" {
		t.Errorf("alice (finance): %v", m)
	}
	// Used once: the same callback again is refused.
	if resp, _ := alice.get(cb.RequestURI()); resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed callback: %d", resp.StatusCode)
	}

	bob := tc.client()
	cb = ssoToCallback(t, bob, "carol", "carol-pw")
	// Another browser cannot finish carol's sign-in.
	if resp, _ := tc.client().get(cb.RequestURI()); resp.StatusCode == http.StatusSeeOther {
		t.Fatal("a browser that did not start the sign-in finished it")
	}
	thief := tc.client()
	thief.http.Jar.SetCookies(mustURL(tc.srv.URL), []*http.Cookie{{Name: oidcCookie, Value: strings.Repeat("a", 48), Path: "/"}})
	if resp, _ := thief.get(cb.RequestURI()); resp.StatusCode == http.StatusSeeOther {
		t.Fatal("a browser with another sign-in cookie finished carol's")
	}
	if resp, _ := bob.get(cb.RequestURI()); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("carol's callback: %d", resp.StatusCode)
	}
	bob.refreshCSRF()
	_, m = bob.api("GET", "/api/v1/session", nil)
	if m["user"] != "oidc:carol" || m["role"] != "auditor" {
		t.Errorf("carol (contractors): %v", m)
	}
	if resp, _ := bob.api("PUT", "/api/v1/policies/files/base.yaml", map[string]string{"content": basePolicy}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor from the provider changed a policy: %d", resp.StatusCode)
	}

	outsider := tc.client()
	cb = ssoToCallback(t, outsider, "bob", "bob-pw")
	resp, body := outsider.get(cb.RequestURI())
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "none of the console") {
		t.Errorf("bob (staff only, no console group): %d", resp.StatusCode)
	}
	_, m = admin.api("GET", "/api/v1/audit", nil)
	var logins, refused int
	for _, e := range m["entries"].([]any) {
		e := e.(map[string]any)
		switch {
		case e["action"] == auditLogin && strings.HasPrefix(e["actor"].(string), "oidc:"):
			logins++
		case e["action"] == auditLoginFailed && e["actor"] == "oidc:bob":
			refused++
		}
	}
	if logins != 2 || refused != 1 {
		t.Errorf("audit log: %d single sign-on logins (want 2), %d refusals of bob (want 1)", logins, refused)
	}
}

// A provider that cannot be reached makes single sign-on say so; local
// accounts keep working, and the console starts regardless.
func TestConsoleOIDCProviderDown(t *testing.T) {
	tc := newTestConsole(t, func(o *Options) {
		o.OIDC = &OIDCOptions{Issuer: "https://127.0.0.1:1", ClientID: "console", AdminGroups: []string{"finance"}}
	})
	tc.setup("admin", adminPW)
	c := tc.client()
	_, page := c.get("/login")
	resp, body := c.post("/login/oidc", url.Values{"csrf": {formToken(t, page)}})
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "Local accounts still work") {
		t.Errorf("provider down: %d", resp.StatusCode)
	}
	if _, resp, _ := tc.login("admin", adminPW, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("local login with the provider down: %d", resp.StatusCode)
	}
	for _, bad := range []*OIDCOptions{{ClientID: "x", AdminGroups: []string{"a"}}, {Issuer: "https://op", ClientID: "x"},
		{Issuer: "https://op", ClientID: "x", AdminGroups: []string{"a"}, RedirectURL: "http://console/login/oidc/callback"}} {
		if _, err := newOIDCLogin(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
