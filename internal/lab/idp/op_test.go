package idp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

const (
	testSuffix      = "gw.lab"
	proxyCallback   = "/.portcullis/oidc/callback"
	rpTestRedirect  = "https://rp.lab/callback"
	rpTestClient    = "rp-test"
	rpTestSecret    = "rp-test-secret"
	proxyTestClient = "portcullis"
)

func opLab(t *testing.T) *labNet {
	t.Helper()
	n := newLabNet(t)
	h, err := NewOP(OPConfig{Issuer: "https://op.lab", Clients: []OPClient{
		{ID: rpTestClient, Secret: rpTestSecret, RedirectURIs: []string{rpTestRedirect}, PostLogoutURIs: []string{"https://rp.lab/logged-out"}},
		{ID: proxyTestClient, Secret: "proxy-secret", RedirectURIs: []string{"https://*." + testSuffix + proxyCallback}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	n.serve("op.lab", h)
	return n
}

func TestOPDiscovery(t *testing.T) {
	n := opLab(t)
	resp, err := n.serverClient().Get("https://op.lab/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d oidc.DiscoveryConfiguration
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Issuer != "https://op.lab" || d.AuthorizationEndpoint != "https://op.lab/authorize" ||
		d.TokenEndpoint != "https://op.lab/oauth/token" || d.EndSessionEndpoint != "https://op.lab/end_session" ||
		d.JwksURI != "https://op.lab/keys" {
		t.Errorf("discovery endpoints: %+v", d)
	}
	if !slices.Contains(d.CodeChallengeMethodsSupported, oidc.CodeChallengeMethodS256) {
		t.Errorf("S256 PKCE not advertised: %v", d.CodeChallengeMethodsSupported)
	}
	if !slices.Contains(d.IDTokenSigningAlgValuesSupported, "RS256") {
		t.Errorf("RS256 not advertised: %v", d.IDTokenSigningAlgValuesSupported)
	}
}

// authorize runs the browser part of the code flow and returns where the OP
// sent the browser back to (not followed), or the page it stopped on.
func authorize(t *testing.T, n *labNet, b *browser, q url.Values, user, password string) page {
	t.Helper()
	p := b.get("https://op.lab/authorize?" + q.Encode())
	if strings.Contains(p.body, `name="password"`) {
		p = b.submit(p, map[string]string{"username": user, "password": password})
	}
	return p
}

func stopAtOP(u *url.URL) bool { return u.Host != "op.lab" }

func codeFlowQuery(client, redirect, challenge string) url.Values {
	return url.Values{
		"client_id": {client}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid profile email groups"}, "state": {"st-123"}, "nonce": {"n-456"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
}

func TestOPCodeFlowWithPKCE(t *testing.T) {
	n := opLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	relying, err := rp.NewRelyingPartyOIDC(ctx, "https://op.lab", rpTestClient, rpTestSecret, rpTestRedirect,
		[]string{"openid", "profile", "email", "groups"}, rp.WithHTTPClient(n.serverClient()),
		rp.WithVerifierOpts(rp.WithNonce(func(context.Context) string { return "n-456" })))
	if err != nil {
		t.Fatal(err)
	}
	verifier := "a-verifier-that-is-long-enough-for-pkce-0123456789abcdef"
	b := newBrowser(t, n.transport(), stopAtOP)
	back := authorize(t, n, b, codeFlowQuery(rpTestClient, rpTestRedirect, oidc.NewSHACodeChallenge(verifier)), "alice", "alice-pw")
	loc, _ := url.Parse(back.header.Get("Location"))
	if back.status != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), rpTestRedirect+"?") {
		t.Fatalf("want a redirect to %s, got %d Location %q:\n%s", rpTestRedirect, back.status, back.header.Get("Location"), back.body)
	}
	if loc.Query().Get("state") != "st-123" || loc.Query().Get("code") == "" {
		t.Fatalf("callback query: %v", loc.Query())
	}

	// Without the verifier the code is refused; with it, tokens come back.
	if _, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, loc.Query().Get("code"), relying, rp.WithCodeVerifier("wrong-verifier-wrong-verifier-wrong-verifier-00")); err == nil {
		t.Fatal("code exchange with a wrong PKCE verifier succeeded")
	}
	// The failed attempt did not consume the code in this OP; try it right.
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, loc.Query().Get("code"), relying, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	c := tokens.IDTokenClaims
	if c.Subject != "alice" || c.PreferredUsername != "alice" || c.Email != "alice@lab.example" || c.Nonce != "n-456" {
		t.Errorf("ID token claims: sub=%q preferred_username=%q email=%q nonce=%q", c.Subject, c.PreferredUsername, c.Email, c.Nonce)
	}
	groups, _ := c.Claims["groups"].([]any)
	if len(groups) != 2 || groups[0] != "staff" || groups[1] != "finance" {
		t.Errorf("groups claim: %#v", c.Claims["groups"])
	}
	info, err := rp.Userinfo[*oidc.UserInfo](ctx, tokens.AccessToken, tokens.TokenType, c.Subject, relying)
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if info.PreferredUsername != "alice" || info.Email != "alice@lab.example" {
		t.Errorf("userinfo: %+v", info)
	}

	// The browser session skips the form next time; end_session ends it.
	again := authorize(t, n, b, codeFlowQuery(rpTestClient, rpTestRedirect, oidc.NewSHACodeChallenge(verifier)), "", "")
	if again.status != http.StatusFound || !strings.HasPrefix(again.header.Get("Location"), rpTestRedirect+"?") {
		t.Fatalf("second authorization with a session: %d %q", again.status, again.header.Get("Location"))
	}
	end := b.get("https://op.lab/end_session?" + url.Values{"id_token_hint": {tokens.IDToken},
		"post_logout_redirect_uri": {"https://rp.lab/logged-out"}}.Encode())
	if end.status != http.StatusFound || end.header.Get("Location") != "https://rp.lab/logged-out" {
		t.Fatalf("end_session: %d Location %q: %s", end.status, end.header.Get("Location"), end.body)
	}
	after := b.get("https://op.lab/authorize?" + codeFlowQuery(rpTestClient, rpTestRedirect, oidc.NewSHACodeChallenge(verifier)).Encode())
	if !strings.Contains(after.body, `name="password"`) {
		t.Fatalf("after end_session the OP must ask for the password again, got %d at %s", after.status, after.url)
	}
}

func TestOPWrongPasswordRejected(t *testing.T) {
	n := opLab(t)
	b := newBrowser(t, n.transport(), stopAtOP)
	p := authorize(t, n, b, codeFlowQuery(rpTestClient, rpTestRedirect, oidc.NewSHACodeChallenge("v")), "alice", "bob-pw")
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Invalid username or password") || p.header.Get("Location") != "" {
		t.Fatalf("wrong password: %d Location %q:\n%s", p.status, p.header.Get("Location"), p.body)
	}
	p = authorize(t, n, b, codeFlowQuery(rpTestClient, rpTestRedirect, oidc.NewSHACodeChallenge("v")), "mallory", "x")
	if p.status != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", p.status)
	}
}

func TestOPLoginNeedsFormToken(t *testing.T) {
	n := opLab(t)
	b := newBrowser(t, n.transport(), stopAtOP)
	form := b.get("https://op.lab/authorize?" + codeFlowQuery(rpTestClient, rpTestRedirect, oidc.NewSHACodeChallenge("v")).Encode())
	// A cross-site page posting the credentials has no valid token.
	p := b.submit(form, map[string]string{"username": "alice", "password": "alice-pw", "csrf": "forged"})
	if p.status != http.StatusForbidden {
		t.Fatalf("forged login form token: status %d, want 403", p.status)
	}
}

func TestOPRedirectURIs(t *testing.T) {
	n := opLab(t)
	cases := []struct {
		client, redirect string
		ok               bool
	}{
		{rpTestClient, rpTestRedirect, true},
		{rpTestClient, "https://rp.lab/other", false},
		{rpTestClient, "https://evil.com/callback", false},
		{proxyTestClient, "https://app.example.com." + testSuffix + proxyCallback, true},
		{proxyTestClient, "https://sp.lab." + testSuffix + proxyCallback, true},
		{proxyTestClient, "https://evil.com" + proxyCallback, false},
		{proxyTestClient, "https://x." + testSuffix + ".evil.com" + proxyCallback, false},
		{proxyTestClient, "http://x." + testSuffix + proxyCallback, false},
		{proxyTestClient, "https://evil.com?." + testSuffix + proxyCallback, false},
		{proxyTestClient, "https://" + testSuffix + proxyCallback, false},
	}
	for _, tc := range cases {
		b := newBrowser(t, n.transport(), stopAtOP)
		p := b.get("https://op.lab/authorize?" + codeFlowQuery(tc.client, tc.redirect, oidc.NewSHACodeChallenge("v")).Encode())
		gotForm := strings.Contains(p.body, `name="password"`)
		if gotForm != tc.ok {
			t.Errorf("client %s redirect_uri %s: login form shown=%v, want %v (status %d, Location %q)",
				tc.client, tc.redirect, gotForm, tc.ok, p.status, p.header.Get("Location"))
		}
		if !tc.ok && strings.Contains(p.header.Get("Location"), "evil") {
			t.Errorf("redirect_uri %s: OP redirected to the unregistered URI", tc.redirect)
		}
	}
}

func TestOPConfigErrors(t *testing.T) {
	for _, cfg := range []OPConfig{
		{Issuer: "http://op.lab"},
		{Issuer: "https://op.lab/sub"},
		{Issuer: "https://op.lab", Clients: []OPClient{{ID: "c", RedirectURIs: []string{"https://*.evil*.com/cb"}}}},
		{Issuer: "https://op.lab", Clients: []OPClient{{ID: "c"}}},
		{Issuer: "https://op.lab", Users: []User{{Name: "x"}}},
	} {
		if _, err := NewOP(cfg); err == nil {
			t.Errorf("NewOP(%+v) accepted a bad config", cfg)
		}
	}
}

func TestOIDCAppLogin(t *testing.T) {
	n := opLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	app, err := NewOIDCApp(ctx, OIDCAppConfig{BaseURL: "https://rp.lab", Issuer: "https://op.lab",
		ClientID: rpTestClient, ClientSecret: rpTestSecret, HTTPClient: n.serverClient()})
	if err != nil {
		t.Fatal(err)
	}
	n.serve("rp.lab", app)
	b := newBrowser(t, n.transport(), nil)
	form := b.get("https://rp.lab/page?from=deep")
	if form.url.Host != "op.lab" || !strings.Contains(form.body, `name="password"`) {
		t.Fatalf("want the OP login form, got %d at %s", form.status, form.url)
	}
	deep := b.submit(form, map[string]string{"username": "alice", "password": "alice-pw"})
	if deep.url.String() != "https://rp.lab/page?from=deep" || !strings.Contains(deep.body, "Page for alice") {
		t.Fatalf("after login want the deep link for alice, got %d at %s:\n%s", deep.status, deep.url, deep.body)
	}
	home := b.get("https://rp.lab/")
	if !strings.Contains(home.body, "Hello alice") || !strings.Contains(home.body, `<span id="groups">staff, finance</span>`) {
		t.Fatalf("home: %d\n%s", home.status, home.body)
	}
	out := b.get("https://rp.lab/logout")
	if out.url.String() != "https://rp.lab/logged-out" || !strings.Contains(out.body, "signed out") {
		t.Fatalf("logout ended at %s (%d):\n%s", out.url, out.status, out.body)
	}
	again := b.get("https://rp.lab/")
	if again.url.Host != "op.lab" || !strings.Contains(again.body, `name="password"`) {
		t.Fatalf("after logout the OP must ask for the password again; got %d at %s", again.status, again.url)
	}
}
