package identity

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/portcullis-gw/portcullis/internal/lab/idp"
)

var (
	formAction = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	formInput  = regexp.MustCompile(`<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"`)
)

// submitForm posts the first form of page (its hidden inputs plus set) and
// returns the answer's body.
func submitForm(t *testing.T, c *http.Client, base *url.URL, page string, set url.Values) (*url.URL, string) {
	t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form in page:\n%s", page)
	}
	action, err := base.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{}
	for _, in := range formInput.FindAllStringSubmatch(page, -1) {
		form.Set(in[1], html.UnescapeString(in[2]))
	}
	for k, v := range set {
		form[k] = v
	}
	resp, err := c.PostForm(action.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Request.URL, string(b)
}

// labSAMLResponse signs alice in at the lab's crewjam/saml IdP (samlidp)
// through the lab's samlsp app, both on loopback TLS, and returns the
// SAMLResponse the IdP posts to the app's ACS, the ACS URL and the IdP's
// signing certificate. With encrypt, the IdP learns the app from the
// samlsp metadata endpoint, which offers an encryption key, so the IdP
// encrypts the assertion; otherwise it gets the lab's signing-only
// metadata.
func labSAMLResponse(t *testing.T, encrypt bool) (string, string, *x509.Certificate) {
	t.Helper()
	idpSrv := httptest.NewUnstartedServer(nil)
	idpSrv.StartTLS()
	t.Cleanup(idpSrv.Close)
	spSrv := httptest.NewUnstartedServer(nil)
	spSrv.StartTLS()
	t.Cleanup(spSrv.Close)
	pair, err := idp.NewSigningPair("idp.lab")
	if err != nil {
		t.Fatal(err)
	}
	idpCfg := idp.SAMLIdPConfig{BaseURL: idpSrv.URL, Cert: pair.Cert, Key: pair.Key}
	if encrypt {
		idpCfg.SPMetadataURLs, idpCfg.HTTPClient = []string{spSrv.URL + "/saml/metadata"}, spSrv.Client()
	}
	idpH, idpMD, err := idp.NewSAMLIdP(idpCfg)
	if err != nil {
		t.Fatal(err)
	}
	spH, spMD, err := idp.NewSAMLApp(idp.SAMLAppConfig{BaseURL: spSrv.URL, IdPMetadata: idpMD})
	if err != nil {
		t.Fatal(err)
	}
	spSrv.Config.Handler = spH
	if !encrypt { // the same IdP again, now knowing the app
		idpCfg.SPMetadata = [][]byte{spMD}
		if idpH, _, err = idp.NewSAMLIdP(idpCfg); err != nil {
			t.Fatal(err)
		}
	}
	idpSrv.Config.Handler = idpH

	jar, _ := cookiejar.New(nil)
	browser := idpSrv.Client() // trusts httptest's certificate, which both servers use
	browser.Jar = jar
	browser.Timeout = 10 * time.Second
	resp, err := browser.Get(spSrv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	at, body := resp.Request.URL, string(page)
	for range 3 { // SP's POST-binding form, then the IdP's login form
		if strings.Contains(body, `name="SAMLResponse"`) {
			break
		}
		var set url.Values
		if strings.Contains(body, `name="password"`) {
			set = url.Values{"user": {"alice"}, "password": {"alice-pw"}}
		}
		at, body = submitForm(t, browser, at, body, set)
	}
	m := regexp.MustCompile(`name="SAMLResponse" value="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the IdP posted no SAMLResponse (at %s):\n%s", at, body)
	}
	return html.UnescapeString(m[1]), spSrv.URL + "/saml/acs", pair.Cert
}

func TestSAMLObserveLabIdP(t *testing.T) {
	samlResp, acsURL, cert := labSAMLResponse(t, false)
	obs := NewSAMLObserver([]*x509.Certificate{cert}, nil)
	id, err := obs.Observe(samlResp, acsURL)
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "alice@lab.example" || strings.Join(id.Groups, ",") != "staff,finance" || id.Source != "saml" ||
		!strings.HasSuffix(id.Issuer, "/metadata") || len(id.Attrs["mail"]) != 1 || id.Attrs["mail"][0] != "alice@lab.example" {
		t.Fatalf("identity %+v", id)
	}

	if _, err := obs.Observe(samlResp, acsURL); !errors.Is(err, ErrReplayed) {
		t.Errorf("the same response a second time: want ErrReplayed, got %v", err)
	}
	if _, err := obs.Observe(samlResp, "https://other.lab/saml/acs"); err == nil {
		t.Error("a response for another ACS was accepted")
	}
	stranger, err := idp.NewSigningPair("other.lab")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSAMLObserver([]*x509.Certificate{stranger.Cert}, nil).Observe(samlResp, acsURL); !errors.Is(err, ErrUnsigned) {
		t.Errorf("a response signed by an untrusted IdP: %v", err)
	}
	late := NewSAMLObserver([]*x509.Certificate{cert}, func() time.Time { return time.Now().Add(time.Hour) })
	if _, err := late.Observe(samlResp, acsURL); err == nil {
		t.Error("an expired response was accepted")
	}

	raw, err := base64.StdEncoding.DecodeString(samlResp)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	doc.FindElement("//Assertion/Subject/NameID").SetText("mallory@lab.example")
	tampered, _ := doc.WriteToBytes()
	if id, err := obs.Observe(base64.StdEncoding.EncodeToString(tampered), acsURL); !errors.Is(err, ErrUnsigned) {
		t.Errorf("a response with a changed NameID: %q, %v", id.User, err)
	}
}

func TestSAMLObserveLabIdPEncrypted(t *testing.T) {
	samlResp, acsURL, cert := labSAMLResponse(t, true)
	if _, err := NewSAMLObserver([]*x509.Certificate{cert}, nil).Observe(samlResp, acsURL); !errors.Is(err, ErrEncryptedAssertion) {
		t.Fatalf("an encrypted assertion: want ErrEncryptedAssertion, got %v", err)
	}
}
