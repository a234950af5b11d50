package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"html"
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
	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/classify"
	"github.com/portcullis-gw/portcullis/proxy/identity"
)

// userAccessPolicies let only finance into the app; the other host has a
// block that does not look at the user.
const userAccessPolicies = `apps:
  - {id: fin, name: Finance app, domains: [app.gw.test]}
  - {id: shut, name: Closed app, domains: [shut.gw.test]}
access_policies:
  - id: finance-only
    filters: {apps: [fin], groups: {none_of: [finance]}, client_apps: [browser, mobile_desktop]}
    action: block
    message: Only finance may use the finance app.
  - {id: closed, filters: {apps: [shut], client_apps: [browser, mobile_desktop]}, action: block, message: Closed.}
`

// userAccessClients: no fingerprint a Go client has, so the stack is
// "unknown": a ClientHello offering h2 is a browser, one without h2 is
// native, and a native User-Agent makes a request native.
const userAccessClients = `format: 1
families:
  chromium: browser
fingerprints:
  - {ja4: t13d1517h2_8daaf6152771_cb7bf5808d99, family: chromium, source: test}
`

// policyDeciders are the access hooks the appliance wires, on the policy
// engine: the connection decided from what the ClientHello tells, each
// request with the user the proxy learnt.
func policyDeciders(e *policy.Engine) (ConnDecider, RequestDecider) {
	conn := ConnDeciderFunc(func(ci *ConnInfo) ConnDecision {
		subj := policy.Subject{SourceIP: ci.Client.Addr(), ClientApp: ci.ClientKind.Client}
		d := e.Access(&policy.AccessRequest{Subject: subj, Host: ci.ServerName()})
		if d.Action != policy.ActionBlock {
			return ConnDecision{Verdict: VerdictIntercept}
		}
		return ConnDecision{Verdict: VerdictBlock, Reason: "policy " + d.WinningPolicy().ID, Page: subj.ClientApp == policy.ClientBrowser,
			Message: d.Message, UserMayAllow: d.BlockRestsOnIdentity()}
	})
	req := RequestDeciderFunc(func(ci *ConnInfo, r *http.Request) RequestDecision {
		subj := policy.Subject{SourceIP: ci.Client.Addr(), ClientApp: ClientOf(r).Client}
		if id, ok := RequestUser(r.Context()); ok {
			subj.User, subj.Groups = id.User, id.Groups
		}
		d := e.Access(&policy.AccessRequest{Subject: subj, Host: hostOnly(r.Host)})
		if d.Action != policy.ActionBlock {
			return RequestDecision{}
		}
		return RequestDecision{Block: true, Reason: "policy " + d.WinningPolicy().ID + " (user " + subj.User + ")", Message: d.Message,
			UserMayAllow: !ci.TLS && d.BlockRestsOnIdentity()}
	})
	return conn, req
}

// userAccessLab is the transparent pipeline with the appliance's OIDC
// login (the lab OpenID Provider on loopback TLS), app.gw.test requiring
// the user, and TLS and plain-HTTP origins for it.
type userAccessLab struct {
	h                 *harness
	tlsFront, plainFr string
	op                *httptest.Server
}

func newUserAccessLab(t *testing.T) *userAccessLab {
	t.Helper()
	op := httptest.NewUnstartedServer(nil)
	op.StartTLS()
	t.Cleanup(op.Close)
	opHandler, err := idp.NewOP(idp.OPConfig{Issuer: op.URL, Clients: []idp.OPClient{{
		ID: "portcullis", Secret: "s3cret", RedirectURIs: []string{"https://*.gw.test/.portcullis/oidc/callback"}}}})
	if err != nil {
		t.Fatal(err)
	}
	op.Config.Handler = opHandler
	sessions, err := identity.NewSessions([][]byte{bytes.Repeat([]byte{9}, 32)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	login, err := identity.NewOIDCLogin(context.Background(), identity.OIDCConfig{Issuer: op.URL, ClientID: "portcullis", ClientSecret: "s3cret",
		Scopes: []string{"openid", "profile", "email", "groups"}, HTTPClient: op.Client(),
		AllowedReturn: func(u *url.URL) bool { return u.Scheme == "https" && strings.HasSuffix(u.Hostname(), ".gw.test") }}, sessions)
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Parse("useraccess.yaml", []byte(userAccessPolicies))
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	cls, err := classify.Load(strings.NewReader(userAccessClients))
	if err != nil {
		t.Fatal(err)
	}
	conn, req := policyDeciders(e)
	h := newHarness(t, func(c *Config) {
		c.Conn, c.Request = conn, req
		c.Clients = &ClientConfig{Classifier: func() *classify.Classifier { return cls }}
		c.Identity = &IdentityConfig{Sessions: sessions, Login: login,
			RequireUser: func(host string) bool { return host == "app.gw.test" || host == "shut.gw.test" }}
	})
	l := &userAccessLab{h: h, op: op}
	l.tlsFront = h.front(h.origin(nil, "app.gw.test", "shut.gw.test"))
	l.plainFr = h.front(h.plainOrigin())
	return l
}

// browser is a client whose TLS offers h2 (a browser to the classifier)
// with a cookie jar; the app's names reach the pipeline (port 80 as plain
// HTTP), the provider is dialled directly.
func (l *userAccessLab) browser(t *testing.T, h2 bool) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(l.h.ca.Certificate())
	roots.AddCert(l.op.Certificate())
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2", "http/1.1"}
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			if strings.HasSuffix(host, ".gw.test") {
				addr = l.tlsFront
				if port == "80" {
					addr = l.plainFr
				}
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots, NextProtos: protos},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: browserUA{tr}, Jar: jar, Timeout: 20 * time.Second}
}

// browserUA sends a browser's User-Agent unless the request names one (Go's
// own is a native client's).
type browserUA struct{ rt http.RoundTripper }

func (b browserUA) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("User-Agent") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36")
	}
	return b.rt.RoundTrip(r)
}

var (
	loginFormAction = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	loginFormInput  = regexp.MustCompile(`<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"`)
)

// signIn follows GET u through the provider's login form as user and
// returns the last response's status, URL and body.
func signIn(t *testing.T, c *http.Client, u, user string) (int, *url.URL, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("GET %s was not sent to the provider's login: %d at %s\n%s", u, resp.StatusCode, resp.Request.URL, page)
	}
	m := loginFormAction.FindStringSubmatch(string(page))
	if m == nil {
		t.Fatalf("no form in the login page:\n%s", page)
	}
	action, err := resp.Request.URL.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{}
	for _, in := range loginFormInput.FindAllStringSubmatch(string(page), -1) {
		form.Set(in[1], html.UnescapeString(in[2]))
	}
	form.Set("username", user)
	form.Set("password", user+"-pw")
	resp, err = c.PostForm(action.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Request.URL, string(body)
}

func (l *userAccessLab) logLine(t *testing.T, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, m := range l.h.log.lines(t) {
			if match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no such access-log line in:\n%s", l.h.log.b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUserAccessDecidedPerRequest: an access policy that lets only finance
// in does not refuse the browser at the connection; the browser signs in,
// and finance reaches the origin while a user outside finance gets the
// block page with the policy's message.
func TestUserAccessDecidedPerRequest(t *testing.T) {
	l := newUserAccessLab(t)
	alice := l.browser(t, true)
	code, at, body := signIn(t, alice, "https://app.gw.test/books?q=1", "alice")
	if code != 200 || at.String() != "https://app.gw.test/books?q=1" || !strings.Contains(body, "hello from origin") {
		t.Fatalf("alice (finance): %d at %s\n%s", code, at, body)
	}
	line := l.logLine(t, func(m map[string]any) bool { return m["path"] == "/books" && m["user"] == "alice" })
	if line["decision"] != "allow" || line["status"] != float64(200) {
		t.Errorf("alice's request: %v", line)
	}

	bob := l.browser(t, true)
	code, at, body = signIn(t, bob, "https://app.gw.test/books", "bob")
	if code != http.StatusForbidden || at.Host != "app.gw.test" || !strings.Contains(body, "Only finance may use the finance app.") {
		t.Fatalf("bob (staff): %d at %s\n%s", code, at, body)
	}
	line = l.logLine(t, func(m map[string]any) bool { return m["path"] == "/books" && m["user"] == "bob" })
	if line["decision"] != "block" || !strings.Contains(line["reason"].(string), "policy finance-only (user bob)") {
		t.Errorf("bob's request: %v", line)
	}
	// Signed in, bob stays refused on new connections too.
	resp, err := bob.Get("https://app.gw.test/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob again: %d", resp.StatusCode)
	}
}

// TestUserAccessStaysBlocked: what the login cannot lift is decided at the
// connection as before — a block that ignores the user (block page, no
// login), and a native client, anonymous, refused with the TLS alert.
func TestUserAccessStaysBlocked(t *testing.T) {
	l := newUserAccessLab(t)
	t.Run("block without a user filter", func(t *testing.T) {
		c := l.browser(t, true)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Get("https://shut.gw.test/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Closed.") {
			t.Fatalf("shut.gw.test: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("native client", func(t *testing.T) {
		c := l.browser(t, false) // no h2 offered: native
		_, err := c.Get("https://app.gw.test/")
		if err == nil || !strings.Contains(err.Error(), "remote error: tls: access denied") {
			t.Fatalf("native client: want the access_denied alert, got %v", err)
		}
		l.logLine(t, func(m map[string]any) bool {
			return m["decision"] == "block" && m["reason"] == "policy finance-only" && m["sni"] == "app.gw.test"
		})
	})
	t.Run("native user agent on a browser connection", func(t *testing.T) {
		// The connection looked like a browser and was let in for the
		// login; a request whose User-Agent is native is never sent to
		// the login, and without a user the block stands.
		c := l.browser(t, true)
		req, _ := http.NewRequest(http.MethodGet, "https://app.gw.test/", nil)
		req.Header.Set("User-Agent", "curl/8.14.1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Only finance may use the finance app.") {
			t.Fatalf("native request without a user: %d %s", resp.StatusCode, body)
		}
		l.logLine(t, func(m map[string]any) bool {
			r, _ := m["reason"].(string)
			return m["decision"] == "block" && strings.Contains(r, "policy finance-only (user unknown)")
		})
	})
}

// TestUserAccessPlainHTTP: port 80 makes the same decisions — a browser's
// navigation whose block rests on the user goes to HTTPS to sign in, and
// finance arrives there; a native client and a non-navigation stay
// refused on port 80.
func TestUserAccessPlainHTTP(t *testing.T) {
	l := newUserAccessLab(t)
	direct := l.browser(t, true)
	direct.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := direct.Get("http://app.gw.test/books?q=2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://app.gw.test/books?q=2" {
		t.Fatalf("plain HTTP navigation: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	alice := l.browser(t, true)
	code, at, body := signIn(t, alice, "http://app.gw.test/books?q=2", "alice")
	if code != 200 || at.String() != "https://app.gw.test/books?q=2" || !strings.Contains(body, "hello from origin") {
		t.Fatalf("alice from plain HTTP: %d at %s\n%s", code, at, body)
	}

	for _, c := range []struct {
		name string
		req  func() *http.Request
	}{
		{"native client", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "http://app.gw.test/", nil)
			r.Header.Set("User-Agent", "curl/8.14.1")
			return r
		}},
		{"fetch", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "http://app.gw.test/api", nil)
			r.Header.Set("Sec-Fetch-Mode", "cors")
			return r
		}},
		{"form post", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, "http://app.gw.test/books", strings.NewReader("a=1"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}},
		{"block that ignores the user", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "http://shut.gw.test/", nil)
			return r
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := direct.Do(c.req())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%d to %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}
