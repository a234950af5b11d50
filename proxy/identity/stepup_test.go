package identity

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/portcullis-gw/portcullis/internal/lab/idp"
)

// signIn completes an ordinary login of user in the fixture's browser.
func (f *oidcFixture) signIn(t *testing.T, user, password string) {
	t.Helper()
	resp, err := f.browser.Get(f.appURL + "/start?return=%2F")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Request.URL.Path == "/login" {
		submitForm(t, f.browser, resp.Request.URL, string(page), url.Values{"username": {user}, "password": {password}})
	}
}

func (f *oidcFixture) whoami(t *testing.T) string {
	t.Helper()
	resp, err := f.browser.Get(f.appURL + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// TestOIDCDeviceClaims: a claim the configuration maps to a device tag
// becomes one when it is true, and only then.
func TestOIDCDeviceClaims(t *testing.T) {
	f := newOIDCFixture(t)
	f.signIn(t, "carol", "carol-pw")
	if got := f.whoami(t); !strings.HasPrefix(got, "carol tags=compliant ") {
		t.Errorf("carol (device_compliant true): %q", got)
	}
	g := newOIDCFixture(t)
	g.signIn(t, "alice", "alice-pw")
	if got := g.whoami(t); !strings.HasPrefix(got, "alice tags= ") {
		t.Errorf("alice (no claim): %q", got)
	}
}

// TestOIDCStepUp runs a step-up against the lab OP: the browser already
// signed in is asked for its password again and then for the code; only
// then does the ID token carry the stronger acr and the session count as
// stepped up. A step-up abandoned at the code, a wrong code and a provider
// answer without the acr leave the session as it was.
func TestOIDCStepUp(t *testing.T) {
	f := newOIDCFixture(t)
	f.signIn(t, "alice", "alice-pw")
	if got := f.whoami(t); got != "alice tags= acr= stepped=false" {
		t.Fatalf("before step-up: %q", got)
	}
	resp, err := f.browser.Get(f.appURL + "/step-up?return=%2Fdoc%3Fid%3D7")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	auth := resp.Request.URL
	for r := resp.Request; r != nil; r = r.Response.Request {
		if r.URL.Path == "/authorize" {
			auth = r.URL
		}
		if r.Response == nil {
			break
		}
	}
	if q := auth.Query(); q.Get("acr_values") != idp.StepUpACR || q.Get("max_age") != "0" || q.Get("prompt") != "login" {
		t.Errorf("authorize request %s lacks the step-up parameters", auth)
	}
	// A browser session exists at the OP, yet the password is asked again.
	if resp.Request.URL.Path != "/login" || !strings.Contains(string(page), `name="password"`) {
		t.Fatalf("step-up did not ask for the password: %s\n%s", resp.Request.URL, page)
	}
	at, codePage := submitForm(t, f.browser, resp.Request.URL, string(page), url.Values{"username": {"alice"}, "password": {"alice-pw"}})
	if !strings.Contains(codePage, `name="code"`) {
		t.Fatalf("no second step after the password: %s\n%s", at, codePage)
	}
	// Abandoned here: nothing changed.
	if got := f.whoami(t); got != "alice tags= acr= stepped=false" {
		t.Fatalf("after the password only: %q", got)
	}
	at, again := submitForm(t, f.browser, at, codePage, url.Values{"code": {"000000"}})
	if !strings.Contains(again, "Wrong code") {
		t.Fatalf("a wrong code was accepted: %s\n%s", at, again)
	}
	at, done := submitForm(t, f.browser, at, again, url.Values{"code": {idp.StepUpCode}})
	if at.String() != f.appURL+"/doc?id=7" {
		t.Fatalf("not back at the page that asked for step-up: %s\n%s", at, done)
	}
	if got := f.whoami(t); got != "alice tags= acr="+idp.StepUpACR+" stepped=true" {
		t.Fatalf("after step-up: %q", got)
	}
}

// TestOIDCStepUpRefusals: a login without the stronger acr, an older
// authentication and another user do not count as a step-up.
func TestOIDCStepUpRefusals(t *testing.T) {
	f := newOIDCFixture(t)
	f.signIn(t, "alice", "alice-pw")
	started := time.Now().Unix()
	base := pendingLogin{ACR: idp.StepUpACR, Started: started, TTL: 60}
	r, _ := http.NewRequest("GET", f.appURL+"/", nil)
	u, _ := url.Parse(f.appURL)
	for _, c := range f.browser.Jar.Cookies(u) {
		r.AddCookie(c)
	}
	claims := func(acr string, auth time.Time) *claimsFixture { return &claimsFixture{acr: acr, auth: auth} }
	for _, tc := range []struct {
		name string
		c    *claimsFixture
		user string
		want string
	}{
		{"no acr", claims("", time.Now()), "alice", "did not confirm"},
		{"other acr", claims("urn:weak", time.Now()), "alice", "did not confirm"},
		{"old sign-in", claims(idp.StepUpACR, time.Now().Add(-time.Hour)), "alice", "reused an earlier sign-in"},
		{"other user", claims(idp.StepUpACR, time.Now()), "bob", "another user"},
		{"good", claims(idp.StepUpACR, time.Now()), "alice", ""},
	} {
		id := Identity{User: tc.user, Attrs: map[string][]string{"email": {tc.user + "@lab.example"}}}
		p := base
		msg := f.login.stepUpDone(r, hostOf(r), &p, tc.c.idToken(), &id)
		if tc.want == "" && (msg != "" || !id.SteppedUp(time.Now())) || tc.want != "" && (!strings.Contains(msg, tc.want) || id.SteppedUp(time.Now())) {
			t.Errorf("%s: %q, stepped %v", tc.name, msg, id.SteppedUp(time.Now()))
		}
	}
}

type claimsFixture struct {
	acr  string
	auth time.Time
}

func (c *claimsFixture) idToken() *oidc.IDTokenClaims {
	t := &oidc.IDTokenClaims{}
	t.AuthenticationContextClassReference = c.acr
	t.AuthTime = oidc.FromTime(c.auth)
	return t
}
