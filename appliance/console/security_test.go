package console

import (
	"encoding/csv"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

const adminPW = "correct horse battery staple"

// The first admin needs the one-time token; it is gone afterwards, the
// files are 0600, TOTP enrolment and login with a code and a recovery code
// work, a recovery code works once.
func TestSetupTOTPAndLogin(t *testing.T) {
	tc := newTestConsole(t, nil)
	c := tc.client()
	resp, _ := c.get("/")
	if loc := resp.Header.Get("Location"); loc != "/setup" {
		t.Fatalf("fresh console redirects to %q, want /setup", loc)
	}
	_, page := c.get("/setup")
	resp, body := c.post("/setup", url.Values{"csrf": {formToken(t, page)}, "token": {"wrong"}, "user": {"admin"},
		"password": {adminPW}, "password2": {adminPW}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "setup token is wrong") {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	admin := tc.setup("admin", adminPW)
	if _, err := SetupToken(tc.state); err != ErrSetupDone {
		t.Fatalf("setup token after setup: %v, want ErrSetupDone", err)
	}
	for _, f := range []string{"accounts.json", "audit.jsonl"} {
		fi, err := os.Stat(filepath.Join(Dir(tc.state), f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", f, err, fi.Mode())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(Dir(tc.state), "accounts.json")); strings.Contains(string(b), adminPW) || !strings.Contains(string(b), "$argon2id$v=19$") {
		t.Fatal("accounts.json holds no argon2id hash, or the password")
	}
	// Setup cannot run again.
	if resp, _ := tc.client().get("/setup"); resp.Header.Get("Location") != "/login" {
		t.Fatal("setup page still offered")
	}

	// TOTP enrolment.
	resp, _ = admin.post("/account/totp", url.Values{"csrf": {admin.csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("begin totp: %d", resp.StatusCode)
	}
	_, page = admin.get("/account")
	secret := regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`).FindStringSubmatch(page)[1]
	resp, page = admin.post("/account/totp/confirm", url.Values{"csrf": {admin.csrf}, "code": {totpNow(t, secret)}})
	if resp.StatusCode != 200 || !strings.Contains(page, "Two-factor login is on.") {
		t.Fatalf("confirm totp: %d", resp.StatusCode)
	}
	codes := regexp.MustCompile(`<li><code>([a-z2-7]{5}-[a-z2-7]{5})</code></li>`).FindAllStringSubmatch(page, -1)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10", len(codes))
	}

	// Password alone is not enough any more; a wrong code is refused.
	_, resp, body = tc.login("admin", adminPW, func() string { return "000000" })
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", resp.StatusCode)
	}
	// A code is valid once per time step (admin just used the current one
	// to confirm), so the recovery code goes first.
	_, resp, _ = tc.login("admin", adminPW, func() string { return codes[0][1] })
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("recovery code: %d", resp.StatusCode)
	}
	_, resp, _ = tc.login("admin", adminPW, func() string { return codes[0][1] })
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("recovery code reused: %d, want 401", resp.StatusCode)
	}
	// Logout ends the session.
	resp, _ = admin.post("/logout", url.Values{"csrf": {admin.csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := admin.api("GET", "/api/v1/session", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}
	es, _ := tc.audit.search(AuditQuery{})
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Action] = true
	}
	for _, a := range []string{auditSetup, auditLogin, auditLoginFailed, auditTOTPEnrolled, auditLogout} {
		if !seen[a] {
			t.Errorf("audit log lacks %s: %+v", a, es)
		}
	}
}

// Every API endpoint answers 401 without a session (the OpenAPI document
// aside), and pages redirect to the login.
func TestAPIWithoutSession(t *testing.T) {
	tc := newTestConsole(t, nil)
	tc.setup("admin", adminPW)
	c := tc.client()
	for _, ep := range []struct{ method, path string }{
		{"GET", "/api/v1/session"}, {"GET", "/api/v1/dashboard"}, {"GET", "/api/v1/events"},
		{"GET", "/api/v1/events/export?format=csv"}, {"GET", "/api/v1/policies"}, {"GET", "/api/v1/policies/files/base.yaml"},
		{"PUT", "/api/v1/policies/files/base.yaml"}, {"POST", "/api/v1/policies/validate"}, {"POST", "/api/v1/policies/dry-run"},
		{"GET", "/api/v1/policies/revisions"}, {"GET", "/api/v1/audit"}, {"GET", "/api/v1/users"}, {"POST", "/api/v1/users"},
		{"POST", "/api/v1/logout"}, {"GET", "/api/v1/nonexistent"},
	} {
		resp, _ := c.api(ep.method, ep.path, map[string]string{})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without a session: %d, want 401", ep.method, ep.path, resp.StatusCode)
		}
	}
	for _, p := range []string{"/dashboard", "/activity", "/policies", "/audit", "/users", "/account", "/activity/export?format=csv"} {
		if resp, _ := c.get(p); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
			t.Errorf("GET %s without a session: %d %q", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp, body := c.get("/api/v1/openapi.yaml"); resp.StatusCode != 200 || !strings.HasPrefix(body, "openapi: 3.") {
		t.Errorf("openapi.yaml: %d", resp.StatusCode)
	}
	// A forged cookie is no session either.
	u, _ := url.Parse(tc.srv.URL)
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: strings.Repeat("a", 64)}})
	if resp, _ := c.api("GET", "/api/v1/session", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged cookie: %d", resp.StatusCode)
	}
}

// Changes without the session's CSRF token, with a wrong one, or from
// another site are refused, in forms and in the API; the login form has its
// own token.
func TestCSRFRefused(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	form := url.Values{"user": {"mallory"}, "role": {"admin"}, "password": {"mallory-password-1"}}
	if resp, _ := admin.post("/users", form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("form without token: %d", resp.StatusCode)
	}
	form.Set("csrf", strings.Repeat("0", 64))
	if resp, _ := admin.post("/users", form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("form with a wrong token: %d", resp.StatusCode)
	}
	form.Set("csrf", admin.csrf)
	resp, _ := admin.do("POST", "/users", strings.NewReader(form.Encode()), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site form with the right token: %d", resp.StatusCode)
	}
	tok := admin.csrf
	admin.csrf = ""
	if resp, _ := admin.api("PUT", "/api/v1/policies/files/x.yaml", map[string]string{"content": basePolicy}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("API change without X-CSRF-Token: %d", resp.StatusCode)
	}
	admin.csrf = tok
	if _, ok := tc.accounts.get("mallory"); ok {
		t.Fatal("an account was created by a forged request")
	}
	// The login form refuses a post without its token.
	c := tc.client()
	if resp, _ := c.post("/login", url.Values{"user": {"admin"}, "password": {adminPW}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without form token: %d", resp.StatusCode)
	}
	if es, _ := tc.audit.search(AuditQuery{Action: auditCSRF}); len(es) < 3 {
		t.Errorf("%d csrf refusals audited, want 3", len(es))
	}
}

// A session cookie planted before login is never promoted: the login sets
// a new token, the planted one stays unknown, and logging in again ends the
// browser's previous session.
func TestSessionFixation(t *testing.T) {
	tc := newTestConsole(t, nil)
	tc.setup("admin", adminPW)
	c := tc.client()
	u, _ := url.Parse(tc.srv.URL)
	planted := strings.Repeat("ab", 32)
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: planted}})
	_, page := c.get("/login")
	resp, _ := c.post("/login", url.Values{"csrf": {formToken(t, page)}, "user": {"admin"}, "password": {adminPW}})
	var got string
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			got = ck.Value
			if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" {
				t.Errorf("session cookie attributes: %+v", ck)
			}
		}
	}
	if got == "" || got == planted {
		t.Fatalf("login kept the planted token (%q)", got)
	}
	if tc.sessions.get(planted) != nil {
		t.Fatal("planted token is a session")
	}
	first := got
	c2, resp, _ := tc.login("admin", adminPW, nil)
	_ = c2
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatal("second login failed")
	}
	if tc.sessions.get(first) == nil {
		t.Fatal("another browser's login ended this session")
	}
	// Idle timeout.
	tc2 := newTestConsole(t, func(o *Options) { o.IdleTimeout = 50 * time.Millisecond })
	a := tc2.setup("admin", adminPW)
	time.Sleep(120 * time.Millisecond)
	if resp, _ := a.api("GET", "/api/v1/session", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("idle session: %d, want 401", resp.StatusCode)
	}
}

// Five wrong passwords lock the account, the right one is then refused
// too, and the account's open sessions end. Attempts per source are rate
// limited independently of accounts.
func TestBruteForceLockout(t *testing.T) {
	tc := newTestConsole(t, func(o *Options) { o.LoginsPerMinute = 100 })
	admin := tc.setup("admin", adminPW)
	for i := 0; i < 4; i++ {
		if _, resp, _ := tc.login("admin", "wrong password "+strings.Repeat("x", i), nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, resp.StatusCode)
		}
	}
	if resp, _ := admin.api("GET", "/api/v1/session", nil); resp.StatusCode != 200 {
		t.Fatal("session ended before the lockout")
	}
	if _, resp, body := tc.login("admin", "wrong again", nil); resp.StatusCode != http.StatusLocked || !strings.Contains(body, "locked") {
		t.Fatalf("fifth failure: %d", resp.StatusCode)
	}
	if _, resp, _ := tc.login("admin", adminPW, nil); resp.StatusCode != http.StatusLocked {
		t.Fatalf("right password while locked: %d, want 423", resp.StatusCode)
	}
	if resp, _ := admin.api("GET", "/api/v1/session", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("open session after lockout: %d, want 401", resp.StatusCode)
	}
	// The counter is data: a new console on the same files still refuses.
	acc, err := openAccounts(Dir(tc.state), 5, time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acc.checkPassword("admin", adminPW); err != ErrLocked {
		t.Fatalf("reopened store: %v, want ErrLocked", err)
	}
	if es, _ := tc.audit.search(AuditQuery{Action: auditLockout}); len(es) != 1 {
		t.Errorf("lockouts audited: %d", len(es))
	}

	rl := newTestConsole(t, func(o *Options) { o.LoginsPerMinute = 3 })
	rl.setup("admin", adminPW) // one attempt
	codes := []int{}
	for i := 0; i < 4; i++ {
		_, resp, _ := rl.login("nobody", "whatever-password", nil)
		codes = append(codes, resp.StatusCode)
	}
	if codes[0] != http.StatusUnauthorized || codes[2] != http.StatusTooManyRequests || codes[3] != http.StatusTooManyRequests {
		t.Fatalf("rate limit: %v, want 401 401 429 429", codes)
	}
}

// Auditors read everything and change nothing, in the API and the pages.
func TestAuditorReadOnly(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	if resp, _ := admin.api("POST", "/api/v1/users", map[string]string{"name": "audrey", "password": "auditor-password-1", "role": "auditor"}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create auditor: %d", resp.StatusCode)
	}
	aud, resp, _ := tc.login("audrey", "auditor-password-1", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("auditor login: %d", resp.StatusCode)
	}
	for _, p := range []string{"/dashboard", "/activity", "/policies", "/policies/edit?file=base.yaml", "/audit", "/users"} {
		resp, body := aud.get(p)
		if resp.StatusCode != 200 {
			t.Errorf("auditor GET %s: %d", p, resp.StatusCode)
		}
		if strings.Contains(body, `id="ed-save"`) || strings.Contains(body, `action="/users"`) {
			t.Errorf("auditor page %s offers a change", p)
		}
	}
	if resp, _ := aud.api("GET", "/api/v1/events", nil); resp.StatusCode != 200 {
		t.Errorf("auditor events: %d", resp.StatusCode)
	}
	sha := digest([]byte(basePolicy))
	if resp, _ := aud.api("PUT", "/api/v1/policies/files/base.yaml", map[string]string{"content": basePolicy + "\n", "base_sha256": sha}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor save: %d, want 403", resp.StatusCode)
	}
	if resp, _ := aud.api("POST", "/api/v1/users", map[string]string{"name": "x", "password": "xxxxxxxxxxxxxx", "role": "admin"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor create account: %d, want 403", resp.StatusCode)
	}
	if resp, _ := aud.post("/users/remove", url.Values{"csrf": {aud.csrf}, "user": {"admin"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor remove account: %d, want 403", resp.StatusCode)
	}
	if b, _ := os.ReadFile(filepath.Join(tc.polDir, "base.yaml")); string(b) != basePolicy {
		t.Fatal("auditor changed a policy file")
	}
	if es, _ := tc.audit.search(AuditQuery{Action: auditForbidden}); len(es) != 3 {
		t.Errorf("forbidden attempts audited: %d, want 3", len(es))
	}
}

// hostileEvent carries every kind of value a client can put into traffic
// that must not become markup, script, a formula or a fake line.
func hostileEvent(now time.Time) activity.Event {
	long := strings.Repeat("a", 240) + ".example.com"
	return activity.Event{Time: now, Mode: activity.ModeTransparent, User: `"><script>alert('u')</script>`,
		SourceIP: netip.MustParseAddr("198.18.1.66"), ClientApp: "browser", App: "origin-lab",
		Host: long + `"><img src=x onerror=alert(1)>`, Method: "GET", Path: "/x<script>alert(\"p\")</script>\r\n\x00\x1b[31m\u202e",
		Activity: "download_file", FileName: `=HYPERLINK("http://evil.example","x").pdf`, Policies: []string{"<b>p</b>"},
		Action: "block", Reason: "@SUM(1+1)", SessionID: "+cmd|' /C calc'!A0", DeviceTags: []string{"-2+3"}}
}

// Hostile strings in events render inert on every page, in the drawer and
// in both exports.
func TestHostileEventsInert(t *testing.T) {
	tc := newTestConsole(t, nil)
	admin := tc.setup("admin", adminPW)
	now := time.Now()
	tc.emit(hostileEvent(now))
	p, _ := tc.store.Search(activity.Query{})
	ev := p.Events[0]
	pages := []string{"/dashboard", "/dashboard/live", "/activity", "/activity?q=script", "/policies", "/audit",
		"/activity/event?ts=" + itoa64(ev.Time.UnixNano()) + "&seq=" + itoa64(ev.Seq)}
	for _, path := range pages {
		resp, body := admin.get(path)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", path, resp.StatusCode)
			continue
		}
		for _, bad := range []string{"<script>alert", "<img src=x", "<b>p</b>", "\x00", "\x1b", "\u202e", "onerror=alert(1)>", "alert('u')</script>"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s renders %q raw", path, bad)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	_, body := admin.get(pages[len(pages)-1])
	if !strings.Contains(body, "␀") || !strings.Contains(body, "␛") || !strings.Contains(body, `\u202e`) || !strings.Contains(body, "&lt;script&gt;") {
		t.Error("drawer does not show the control characters and markup as text")
	}
	// CSV: formula cells neutralised, one row, fields intact otherwise.
	resp, body := admin.get("/activity/export?format=csv&since=1h")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv export: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("csv: %v, %d rows", err, len(rows))
	}
	for i, cell := range rows[1] {
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			t.Errorf("csv column %s starts with %q: %q", csvHeader[i], cell[0], cell)
		}
	}
	col := func(name string) string {
		for i, h := range csvHeader {
			if h == name {
				return rows[1][i]
			}
		}
		return ""
	}
	if col("file_name") != `'=HYPERLINK("http://evil.example","x").pdf` || col("reason") != "'@SUM(1+1)" || col("device_tags") != "'-2+3" {
		t.Errorf("csv cells: file %q reason %q tags %q", col("file_name"), col("reason"), col("device_tags"))
	}
	resp, body = admin.get("/api/v1/events/export?format=jsonl&since=1h")
	if resp.StatusCode != 200 || strings.Contains(body, "<script>") || strings.Count(body, "\n") != 1 || !strings.Contains(body, `\u003cscript\u003e`) {
		t.Fatalf("jsonl export: %d %q", resp.StatusCode, body)
	}
	if es, _ := tc.audit.search(AuditQuery{Action: auditExport}); len(es) != 2 || !strings.Contains(es[0].Detail, "1 events") {
		t.Errorf("exports audited: %+v", es)
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
