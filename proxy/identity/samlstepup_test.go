package identity

import (
	"crypto/x509"
	"io"
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

// samlStepUpLab is the lab's SAML IdP (with its second step) and a small
// app serving the SAML step-up endpoints, both on loopback TLS.
type samlStepUpLab struct {
	idp, app *httptest.Server
	su       *SAMLStepUp
	sessions *Sessions
	refused  []string // what ServeACS/ServeDone said
}

func newSAMLStepUpLab(t *testing.T, comparison string, classes ...string) *samlStepUpLab {
	t.Helper()
	l := &samlStepUpLab{}
	l.idp = httptest.NewUnstartedServer(nil)
	l.idp.StartTLS()
	t.Cleanup(l.idp.Close)
	l.app = httptest.NewUnstartedServer(nil)
	l.app.StartTLS()
	t.Cleanup(l.app.Close)
	pair, err := idp.NewSigningPair("idp.lab")
	if err != nil {
		t.Fatal(err)
	}
	idpH, idpMD, err := idp.NewSAMLIdP(idp.SAMLIdPConfig{BaseURL: l.idp.URL, Cert: pair.Cert, Key: pair.Key,
		SPMetadataURLs: []string{l.app.URL + SAMLMetadataPath}, HTTPClient: l.app.Client()})
	if err != nil {
		t.Fatal(err)
	}
	l.idp.Config.Handler = idpH
	md, err := ParseSAMLIdP(idpMD)
	if err != nil {
		t.Fatal(err)
	}
	if l.sessions, err = NewSessions([][]byte{[]byte("0123456789abcdef0123456789abcdef")}, time.Hour); err != nil {
		t.Fatal(err)
	}
	l.su, err = NewSAMLStepUp(SAMLStepUpConfig{EntityID: "https://gateway.test/saml", IdPSSOURL: md.SSOURL,
		IdPEntityID: md.EntityID, IdPCerts: md.Certs, AuthnContext: classes, Comparison: comparison}, l.sessions)
	if err != nil {
		t.Fatal(err)
	}
	acs := l.app.URL + SAMLACSPath
	mux := http.NewServeMux()
	mux.HandleFunc("/.portcullis/step-up", func(w http.ResponseWriter, r *http.Request) {
		l.su.Start(w, r, r.URL.Query().Get("return"), acs, 10*time.Minute)
	})
	mux.HandleFunc(SAMLMetadataPath, func(w http.ResponseWriter, r *http.Request) { l.su.ServeMetadata(w, r, acs) })
	mux.HandleFunc(SAMLACSPath, func(w http.ResponseWriter, r *http.Request) {
		if why := l.su.ServeACS(w, r); why != "" {
			l.refused = append(l.refused, why)
		}
	})
	mux.HandleFunc(SAMLDonePath, func(w http.ResponseWriter, r *http.Request) {
		if why := l.su.ServeDone(w, r); why != "" {
			l.refused = append(l.refused, why)
		}
	})
	mux.HandleFunc("/sign-in-as", func(w http.ResponseWriter, r *http.Request) {
		u := r.URL.Query().Get("user")
		_ = l.sessions.Set(w, hostOf(r), Identity{User: u, Source: "oidc", Attrs: map[string][]string{"email": {u + "@lab.example"}}})
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		id, ok := l.sessions.Get(r, hostOf(r))
		if !ok {
			io.WriteString(w, "no session")
			return
		}
		io.WriteString(w, id.User+" acr="+id.ACR)
		if id.SteppedUp(time.Now()) {
			io.WriteString(w, " stepped-up")
		}
	})
	l.app.Config.Handler = mux
	return l
}

func (l *samlStepUpLab) browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := l.idp.Client() // trusts httptest's certificate, which both servers use
	c.Jar, c.Timeout = jar, 10*time.Second
	return c
}

func getPage(t *testing.T, c *http.Client, u string) (*url.URL, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Request.URL, string(b)
}

var samlResponseField = regexp.MustCompile(`name="SAMLResponse" value="([^"]*)"`)

// stepUp runs a step-up as user until the IdP's post to the ACS; second
// is what the second step sends (the code, or skip). It returns the page
// the ACS post leads to and the form the IdP posted.
func (l *samlStepUpLab) stepUp(t *testing.T, c *http.Client, user string, second url.Values) (*url.URL, string, url.Values) {
	t.Helper()
	at, body := getPage(t, c, l.app.URL+"/.portcullis/step-up?return=/file")
	if !strings.Contains(body, `name="password"`) {
		t.Fatalf("no password form at %s:\n%s", at, body)
	}
	at, body = submitForm(t, c, at, body, url.Values{"user": {user}, "password": {user + "-pw"}})
	if !strings.Contains(body, `id="code"`) {
		t.Fatalf("no second step at %s:\n%s", at, body)
	}
	at, body = submitForm(t, c, at, body, second)
	if !samlResponseField.MatchString(body) {
		t.Fatalf("the IdP posted no SAMLResponse (at %s):\n%s", at, body)
	}
	posted := url.Values{}
	for _, in := range formInput.FindAllStringSubmatch(body, -1) {
		posted.Set(in[1], strings.ReplaceAll(in[2], "&#43;", "+"))
	}
	at, body = submitForm(t, c, at, body, nil)
	return at, body, posted
}

func TestSAMLStepUpLabIdP(t *testing.T) {
	l := newSAMLStepUpLab(t, SAMLComparisonExact, idp.StepUpSAMLContext)
	c := l.browser(t)
	getPage(t, c, l.app.URL+"/sign-in-as?user=alice")
	at, body, posted := l.stepUp(t, c, "alice", url.Values{"code": {idp.StepUpCode}})
	if at.Path != "/file" || body != "alice acr="+idp.StepUpSAMLContext+" stepped-up" {
		t.Fatalf("after the step-up: %s %q (%v)", at, body, l.refused)
	}

	t.Run("posted again", func(t *testing.T) {
		resp, err := c.PostForm(l.app.URL+SAMLACSPath, posted)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// The pending step-up was used up by the first post.
		if resp.StatusCode != http.StatusBadRequest || resp.Request.URL.Path != SAMLACSPath {
			t.Fatalf("the same response posted again: %d at %s", resp.StatusCode, resp.Request.URL)
		}
	})
	t.Run("another browser's response", func(t *testing.T) {
		other := l.browser(t)
		_, _, posted := l.stepUp(t, other, "alice", url.Values{"code": {idp.StepUpCode}})
		l.refused = nil
		// A third browser never asked: its post has no pending step-up.
		third := l.browser(t)
		at, body := postPage(t, third, l.app.URL+SAMLACSPath, posted)
		if at.Path != SAMLACSPath || !strings.Contains(body, "No confirmation of your sign-in is in progress") || len(l.refused) != 1 {
			t.Fatalf("a response posted by a browser that did not ask: %s %q %v", at, body, l.refused)
		}
	})
	t.Run("weaker context refused", func(t *testing.T) {
		c := l.browser(t)
		getPage(t, c, l.app.URL+"/sign-in-as?user=bob")
		l.refused = nil
		at, body, _ := l.stepUp(t, c, "bob", url.Values{"skip": {"1"}})
		if at.Path != SAMLACSPath || !strings.Contains(body, `id="step-up-refused"`) || !strings.Contains(body, idp.PasswordSAMLContext) {
			t.Fatalf("a password-only response: %s\n%s", at, body)
		}
		if len(l.refused) != 1 || !strings.Contains(l.refused[0], "does not satisfy exact "+idp.StepUpSAMLContext) {
			t.Errorf("refusal: %v", l.refused)
		}
		if _, body := getPage(t, c, l.app.URL+"/file"); body != "bob acr=" {
			t.Errorf("the session after a refused step-up: %q", body)
		}
	})
	t.Run("another user than the session's", func(t *testing.T) {
		c := l.browser(t)
		getPage(t, c, l.app.URL+"/sign-in-as?user=bob")
		l.refused = nil
		at, body, _ := l.stepUp(t, c, "alice", url.Values{"code": {idp.StepUpCode}})
		if at.Path != SAMLDonePath || !strings.Contains(body, "not as bob") || len(l.refused) != 1 {
			t.Fatalf("a step-up as alice in bob's session: %s %q %v", at, body, l.refused)
		}
		if _, body := getPage(t, c, l.app.URL+"/file"); body != "bob acr=" {
			t.Errorf("bob's session after alice's step-up: %q", body)
		}
	})
}

// TestSAMLStepUpMinimum: comparison minimum accepts the classes named and
// the standard classes ranked at least as strong, and refuses weaker ones.
func TestSAMLStepUpMinimum(t *testing.T) {
	l := newSAMLStepUpLab(t, SAMLComparisonMinimum, idp.StepUpSAMLContext)
	if at, body, _ := l.stepUp(t, l.browser(t), "carol", url.Values{"code": {idp.StepUpCode}}); at.Path != "/file" || !strings.HasSuffix(body, "stepped-up") {
		t.Fatalf("minimum TimeSyncToken, confirmed with the code: %s %q %v", at, body, l.refused)
	}
	if _, body, _ := l.stepUp(t, l.browser(t), "carol", url.Values{"skip": {"1"}}); !strings.Contains(body, "needs a stronger sign-in") {
		t.Fatalf("minimum TimeSyncToken, password only: %q %v", body, l.refused)
	}
	const ac = "urn:oasis:names:tc:SAML:2.0:ac:classes:"
	ok, err := acceptedClasses([]string{ac + "PasswordProtectedTransport", "urn:example:mfa"}, SAMLComparisonMinimum)
	if err != nil {
		t.Fatal(err)
	}
	for class, want := range map[string]bool{ac + "PasswordProtectedTransport": true, ac + "X509": true, ac + "TimeSyncToken": true,
		"urn:example:mfa": true, ac + "Password": false, ac + "InternetProtocol": false, "urn:example:other": false, "": false} {
		if ok(class) != want {
			t.Errorf("minimum PasswordProtectedTransport: %q accepted %v", class, !want)
		}
	}
}

func postPage(t *testing.T, c *http.Client, u string, form url.Values) (*url.URL, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Request.URL, string(b)
}

func TestSAMLStepUpConfig(t *testing.T) {
	s, _ := NewSessions([][]byte{[]byte("0123456789abcdef0123456789abcdef")}, time.Hour)
	cert := &x509.Certificate{}
	good := SAMLStepUpConfig{EntityID: "https://gw/saml", IdPSSOURL: "https://idp/sso", IdPCerts: []*x509.Certificate{cert},
		AuthnContext: []string{idp.StepUpSAMLContext}}
	if _, err := NewSAMLStepUp(good, s); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*SAMLStepUpConfig){
		"relative entity ID":  func(c *SAMLStepUpConfig) { c.EntityID = "gateway" },
		"http sign-on URL":    func(c *SAMLStepUpConfig) { c.IdPSSOURL = "http://idp/sso" },
		"no certificate":      func(c *SAMLStepUpConfig) { c.IdPCerts = nil },
		"no context":          func(c *SAMLStepUpConfig) { c.AuthnContext = nil },
		"context not a URI":   func(c *SAMLStepUpConfig) { c.AuthnContext = []string{"mfa"} },
		"unknown comparison":  func(c *SAMLStepUpConfig) { c.Comparison = "better" },
		"minimum of unranked": func(c *SAMLStepUpConfig) { c.Comparison, c.AuthnContext = "minimum", []string{"urn:example:mfa"} },
	} {
		c := good
		mutate(&c)
		if _, err := NewSAMLStepUp(c, s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
