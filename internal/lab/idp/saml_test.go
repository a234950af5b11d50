package idp

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// samlLab serves the SAML IdP (fetching the SP's metadata by URL) and the
// SAML app on the lab net.
func samlLab(t *testing.T) *labNet {
	t.Helper()
	n := newLabNet(t)
	idpH, idpMD, err := NewSAMLIdP(SAMLIdPConfig{
		BaseURL:        "https://idp.lab",
		SPMetadataURLs: []string{"https://sp.lab/saml/metadata"},
		HTTPClient:     n.serverClient(),
	})
	if err != nil {
		t.Fatal(err)
	}
	spH, _, err := NewSAMLApp(SAMLAppConfig{BaseURL: "https://sp.lab", IdPMetadata: idpMD})
	if err != nil {
		t.Fatal(err)
	}
	n.serve("idp.lab", idpH)
	n.serve("sp.lab", spH)
	return n
}

// samlLogin walks a browser through SP → IdP login form → POST binding
// back to the ACS and returns the page it lands on.
func samlLogin(t *testing.T, b *browser, start, user, password string) page {
	t.Helper()
	form := b.get(start)
	if strings.Contains(form.body, `name="SAMLRequest"`) && !strings.Contains(form.body, `name="password"`) {
		form = b.submit(form, nil) // the SP's HTTP-POST binding form
	}
	if form.url.Host != "idp.lab" || !strings.Contains(form.body, `name="password"`) {
		t.Fatalf("GET %s: want the IdP login form, got %d at %s:\n%s", start, form.status, form.url, form.body)
	}
	posted := b.submit(form, map[string]string{"user": user, "password": password})
	if !strings.Contains(posted.body, `name="SAMLResponse"`) {
		return posted // login refused; the caller checks
	}
	return b.submit(posted, nil)
}

func TestSAMLLogin(t *testing.T) {
	n := samlLab(t)
	b := newBrowser(t, n.transport(), nil)
	home := samlLogin(t, b, "https://sp.lab/", "alice", "alice-pw")
	if home.status != http.StatusOK || !strings.Contains(home.body, "Hello alice@lab.example") {
		t.Fatalf("after login: want Hello alice@lab.example, got %d at %s:\n%s", home.status, home.url, home.body)
	}
	if !strings.Contains(home.body, `<span id="groups">staff, finance</span>`) {
		t.Errorf("groups attribute missing from the home page:\n%s", home.body)
	}
	if !strings.Contains(home.body, `href="https://sp.lab/page?from=absolute"`) {
		t.Errorf("absolute link does not use the configured base URL:\n%s", home.body)
	}

	// The session now covers the app's other resources.
	api := b.get("https://sp.lab/api/data")
	if api.status != http.StatusOK || !strings.Contains(api.body, `"page":"https://sp.lab/page?from=api"`) || !strings.Contains(api.body, `"user":"alice@lab.example"`) {
		t.Errorf("GET /api/data: %d %s", api.status, api.body)
	}
	dl := b.get("https://sp.lab/files/report.csv")
	if dl.body != reportCSV || !strings.Contains(dl.header.Get("Content-Disposition"), `filename="report.csv"`) {
		t.Errorf("download: %q, Content-Disposition %q", dl.body, dl.header.Get("Content-Disposition"))
	}

	// Form POST, the app's cookie, and the WebSocket echo with the session.
	sent := b.submit(home, map[string]string{"note": "hi there"})
	if !strings.Contains(sent.body, "Received: hi there") || !strings.Contains(sent.body, `<p id="pref">blue</p>`) {
		t.Errorf("form POST: %d\n%s", sent.status, sent.body)
	}
	dialer := websocket.Dialer{NetDialContext: n.transport().DialContext, TLSClientConfig: n.transport().TLSClientConfig,
		Jar: b.client.Jar, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := dialer.Dial("wss://sp.lab/ws", http.Header{"Origin": {"https://sp.lab"}})
	if err != nil {
		t.Fatalf("WebSocket: %v (response %v)", err, resp)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "ping" {
		t.Errorf("WebSocket echo: %q, %v", msg, err)
	}
	if _, resp, err := dialer.Dial("wss://sp.lab/ws", http.Header{"Origin": {"https://evil.example"}}); err == nil {
		t.Error("WebSocket from a foreign origin accepted")
	} else if resp != nil {
		resp.Body.Close()
	}

	// A second app visit in a new browser with the wrong password fails.
	b2 := newBrowser(t, n.transport(), nil)
	refused := samlLogin(t, b2, "https://sp.lab/", "alice", "wrong")
	if strings.Contains(refused.body, "Hello") || !strings.Contains(refused.body, "Invalid username or password") {
		t.Fatalf("wrong password: want the form again with an error, got %d at %s:\n%s", refused.status, refused.url, refused.body)
	}
}

// TestSAMLIdPWithMetadataBytes registers the SP from its metadata document
// instead of a URL: the IdP's metadata depends only on its URL and key, so a
// second IdP with the same ones can be built knowing the SP.
func TestSAMLIdPWithMetadataBytes(t *testing.T) {
	n := newLabNet(t)
	cert, key, err := selfSignedSigner("idp.lab")
	if err != nil {
		t.Fatal(err)
	}
	_, idpMD, err := NewSAMLIdP(SAMLIdPConfig{BaseURL: "https://idp.lab", Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	spH, spMD, err := NewSAMLApp(SAMLAppConfig{BaseURL: "https://sp.lab", IdPMetadata: idpMD})
	if err != nil {
		t.Fatal(err)
	}
	idpH, _, err := NewSAMLIdP(SAMLIdPConfig{BaseURL: "https://idp.lab", Cert: cert, Key: key, SPMetadata: [][]byte{spMD}})
	if err != nil {
		t.Fatal(err)
	}
	n.serve("idp.lab", idpH)
	n.serve("sp.lab", spH)
	home := samlLogin(t, newBrowser(t, n.transport(), nil), "https://sp.lab/page?from=deep", "bob", "bob-pw")
	if !strings.Contains(home.body, "Page for bob@lab.example") || !strings.Contains(home.body, `<p id="from">deep</p>`) {
		t.Fatalf("want the deep link page for bob, got %d at %s:\n%s", home.status, home.url, home.body)
	}
}

func TestSAMLIdPRejectsUnknownSP(t *testing.T) {
	n := newLabNet(t)
	_, idpMD, err := NewSAMLIdP(SAMLIdPConfig{BaseURL: "https://idp.lab"})
	if err != nil {
		t.Fatal(err)
	}
	idpH, _, err := NewSAMLIdP(SAMLIdPConfig{BaseURL: "https://idp.lab"}) // knows no SP
	if err != nil {
		t.Fatal(err)
	}
	spH, _, err := NewSAMLApp(SAMLAppConfig{BaseURL: "https://sp.lab", IdPMetadata: idpMD})
	if err != nil {
		t.Fatal(err)
	}
	n.serve("idp.lab", idpH)
	n.serve("sp.lab", spH)
	b := newBrowser(t, n.transport(), nil)
	p := b.submit(b.get("https://sp.lab/"), nil) // the SP's HTTP-POST binding form
	if p.status == http.StatusOK || strings.Contains(p.body, `name="password"`) {
		t.Fatalf("an IdP that does not know the SP must refuse its AuthnRequest; got 200 at %s", p.url)
	}
}

func TestSAMLIdPAdminEndpointsClosed(t *testing.T) {
	h, _, err := NewSAMLIdP(SAMLIdPConfig{BaseURL: "https://idp.lab"})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/users/", "/users/alice", "/services/", "/sessions/"} {
		rec := &bufferedResponse{header: http.Header{}}
		req, _ := http.NewRequest(http.MethodGet, path, nil)
		h.ServeHTTP(rec, req)
		if rec.status != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404 (admin API must be closed)", path, rec.status)
		}
	}
}

func TestSAMLConfigErrors(t *testing.T) {
	if _, _, err := NewSAMLIdP(SAMLIdPConfig{BaseURL: "http://idp.lab"}); err == nil {
		t.Error("http base URL accepted")
	}
	if _, _, err := NewSAMLIdP(SAMLIdPConfig{BaseURL: "https://idp.lab", SPMetadata: [][]byte{[]byte("<nope/>")}}); err == nil {
		t.Error("garbage SP metadata accepted")
	}
	if _, _, err := NewSAMLApp(SAMLAppConfig{BaseURL: "https://sp.lab", IdPMetadata: []byte("x")}); err == nil {
		t.Error("garbage IdP metadata accepted")
	}
}

func TestSAMLLogout(t *testing.T) {
	n := samlLab(t)
	b := newBrowser(t, n.transport(), nil)
	if home := samlLogin(t, b, "https://sp.lab/", "alice", "alice-pw"); !strings.Contains(home.body, "Hello alice") {
		t.Fatalf("login failed: %s", home.body)
	}
	// Single logout hops through HTTP-POST binding forms, then the SP sends
	// the browser home, which needs a new login: the IdP session is gone, so
	// the chain must end at the password form, not at the app.
	p := b.get("https://sp.lab/logout")
	for i := 0; i < 6 && strings.Contains(p.body, "<form") && !strings.Contains(p.body, `name="password"`); i++ {
		p = b.submit(p, nil)
	}
	if !strings.Contains(p.body, `name="password"`) || strings.Contains(p.body, "Hello") {
		t.Fatalf("after logout the IdP must ask for the password again; got %d at %s:\n%s", p.status, p.url, p.body)
	}
}
