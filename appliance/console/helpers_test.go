package console

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/policy"
)

const basePolicy = `session_policies:
  - id: no-lab-downloads
    filters:
      apps: [origin-lab]
    control: block_activities
    activities: [download_file]
    action: block
    message: Downloads are blocked.
`

type testConsole struct {
	*Console
	t       *testing.T
	srv     *httptest.Server
	store   *activity.Store
	polDir  string
	state   string
	reloads atomic.Int32
}

func newTestConsole(t *testing.T, mod func(*Options)) *testConsole {
	t.Helper()
	state := t.TempDir()
	polDir := filepath.Join(state, "policies")
	if err := os.MkdirAll(polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(polDir, "base.yaml"), []byte(basePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(state, "activity.db")
	st, err := activity.Open(dbPath, activity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tc := &testConsole{t: t, store: st, polDir: polDir, state: state}
	o := Options{StateDir: state, Activity: st, ActivityPath: dbPath, PolicyDir: polDir,
		Capabilities: func() policy.Capabilities { return policy.Capabilities{ControlScript: true} },
		Reload: func() error {
			tc.reloads.Add(1)
			return nil
		}}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	tc.Console = c
	tc.srv = httptest.NewTLSServer(c.Handler())
	t.Cleanup(func() {
		tc.srv.Close()
		_ = c.Close()
		_ = st.Close()
	})
	return tc
}

// client is a browser-like client: a cookie jar, no redirects followed
// unless asked, Sec-Fetch-Site: same-origin on every request.
type client struct {
	t    *testing.T
	tc   *testConsole
	http *http.Client
	csrf string
}

type sameOrigin struct{ rt http.RoundTripper }

func (s sameOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Sec-Fetch-Site") == "" {
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	return s.rt.RoundTrip(r)
}

func (tc *testConsole) client() *client {
	jar, _ := cookiejar.New(nil)
	tr := tc.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: tc.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	return &client{t: tc.t, tc: tc, http: &http.Client{Jar: jar, Transport: sameOrigin{tr}, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, path string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.tc.srv.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *client) get(path string) (*http.Response, string) { return c.do("GET", path, nil, nil) }

func (c *client) post(path string, form url.Values) (*http.Response, string) {
	return c.do("POST", path, strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

func (c *client) api(method, path string, v any) (*http.Response, map[string]any) {
	c.t.Helper()
	var body io.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		body = strings.NewReader(string(b))
	}
	hdr := map[string]string{"Content-Type": "application/json"}
	if c.csrf != "" {
		hdr["X-CSRF-Token"] = c.csrf
	}
	resp, s := c.do(method, path, body, hdr)
	var out map[string]any
	_ = json.Unmarshal([]byte(s), &out)
	return resp, out
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func formToken(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%s", page)
	}
	return m[1]
}

// setup creates the first admin through the setup page and returns its
// logged-in client.
func (tc *testConsole) setup(user, password string) *client {
	tc.t.Helper()
	c := tc.client()
	_, page := c.get("/setup")
	tok, err := SetupToken(tc.state)
	if err != nil {
		tc.t.Fatal(err)
	}
	resp, body := c.post("/setup", url.Values{"csrf": {formToken(tc.t, page)}, "token": {tok}, "user": {user},
		"password": {password}, "password2": {password}})
	if resp.StatusCode != http.StatusSeeOther {
		tc.t.Fatalf("setup: %d %s", resp.StatusCode, body)
	}
	c.refreshCSRF()
	return c
}

func (c *client) refreshCSRF() {
	c.t.Helper()
	resp, m := c.api("GET", "/api/v1/session", nil)
	if resp.StatusCode != 200 {
		c.t.Fatalf("session: %d", resp.StatusCode)
	}
	c.csrf, _ = m["csrf_token"].(string)
}

// login logs in through the form (with code when the account has TOTP).
func (tc *testConsole) login(user, password string, code func() string) (*client, *http.Response, string) {
	c := tc.client()
	_, page := c.get("/login")
	resp, body := c.post("/login", url.Values{"csrf": {formToken(tc.t, page)}, "user": {user}, "password": {password}})
	if resp.StatusCode == http.StatusOK && strings.Contains(body, `name="pending"`) && code != nil {
		pending := regexp.MustCompile(`name="pending" value="([^"]+)"`).FindStringSubmatch(body)[1]
		resp, body = c.post("/login/code", url.Values{"csrf": {formToken(tc.t, body)}, "pending": {pending}, "code": {code()}})
	}
	if resp.StatusCode == http.StatusSeeOther {
		c.refreshCSRF()
	}
	return c, resp, body
}

func totpNow(t *testing.T, secret string) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func (tc *testConsole) emit(evs ...activity.Event) {
	tc.t.Helper()
	before := tc.store.Stats().Written
	for _, e := range evs {
		if err := tc.store.Emit(e); err != nil {
			tc.t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for tc.store.Stats().Written < before+uint64(len(evs)) {
		if time.Now().After(deadline) {
			tc.t.Fatal("events not written")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
