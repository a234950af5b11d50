package control

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
)

// session issues a control session for host and returns its cookie.
func session(t *testing.T, c *Controller, host string) (*http.Cookie, string) {
	t.Helper()
	w := httptest.NewRecorder()
	id := c.Session(w, httptest.NewRequest("GET", "https://"+host+"/", nil))
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != SessionCookieName || !cookies[0].Secure || !cookies[0].HttpOnly ||
		cookies[0].SameSite != http.SameSiteLaxMode || cookies[0].Path != "/" || cookies[0].Domain != "" {
		t.Fatalf("session cookie %+v", cookies)
	}
	return cookies[0], id
}

func TestSession(t *testing.T) {
	c, _ := newTestController(t)
	ck, id := session(t, c, "app.test")
	r := httptest.NewRequest("GET", "https://app.test/x", nil)
	r.AddCookie(ck)
	w := httptest.NewRecorder()
	if got := c.Session(w, r); got != id || len(w.Result().Cookies()) != 0 {
		t.Errorf("known session: %q (want %q), new cookies %v", got, id, w.Result().Cookies())
	}
	other := httptest.NewRequest("GET", "https://other.test/x", nil)
	other.AddCookie(ck)
	if c.sessionOf(other) != "" {
		t.Error("a session cookie opened on another host")
	}
	tampered := httptest.NewRequest("GET", "https://app.test/x", nil)
	tampered.AddCookie(&http.Cookie{Name: SessionCookieName, Value: "A" + ck.Value[1:]})
	if c.sessionOf(tampered) != "" {
		t.Error("a tampered session cookie opened")
	}
}

type reportCase struct {
	name    string
	token   string
	origin  string
	site    string
	cookie  bool
	kind    string
	blocked bool
	url     string
	advance time.Duration
	want    int
}

func TestReportEndpoint(t *testing.T) {
	c, clock := newTestController(t)
	ck, id := session(t, c, "app.test")
	rules := Rules{Print: Monitor, CutCopy: Block}
	token := c.reportToken("app.test", id, rules)
	otherSession := c.reportToken("app.test", "someone else", rules)
	otherHost := c.reportToken("other.test", id, rules)
	ok := reportCase{token: token, origin: "https://app.test", site: "same-origin", cookie: true, kind: "cut_copy", blocked: true, url: "https://app.test/doc", want: 204}
	with := func(name string, f func(*reportCase)) reportCase {
		rc := ok
		rc.name = name
		f(&rc)
		return rc
	}
	cases := []reportCase{
		with("valid", func(*reportCase) {}),
		with("valid monitor", func(r *reportCase) { r.kind, r.blocked = "print", false }),
		with("only Sec-Fetch-Site", func(r *reportCase) { r.origin = "" }),
		with("only Origin", func(r *reportCase) { r.site = "" }),
		with("missing token", func(r *reportCase) { r.token = ""; r.want = 403 }),
		with("forged token", func(r *reportCase) { r.token = token[:len(token)-2] + "AA"; r.want = 403 }),
		with("another session's token", func(r *reportCase) { r.token = otherSession; r.want = 403 }),
		with("another host's token", func(r *reportCase) { r.token = otherHost; r.want = 403 }),
		with("no session cookie", func(r *reportCase) { r.cookie = false; r.want = 403 }),
		with("cross-origin", func(r *reportCase) { r.origin, r.site = "https://evil.test", "cross-site"; r.want = 403 }),
		with("cross-origin Origin only", func(r *reportCase) { r.origin, r.site = "https://evil.test", ""; r.want = 403 }),
		with("same-site but not same-origin", func(r *reportCase) { r.site = "same-site"; r.want = 403 }),
		with("http origin", func(r *reportCase) { r.origin = "http://app.test"; r.want = 403 }),
		with("null origin", func(r *reportCase) { r.origin, r.site = "null", ""; r.want = 403 }),
		with("no origin at all", func(r *reportCase) { r.origin, r.site = "", ""; r.want = 403 }),
		with("replay after expiry", func(r *reportCase) { r.advance = 12*time.Hour + time.Second; r.want = 403 }),
		with("claims monitor for a blocked kind", func(r *reportCase) { r.blocked = false; r.want = 400 }),
		with("kind the page does not control", func(r *reportCase) { r.kind = "paste"; r.want = 400 }),
		with("unknown kind", func(r *reportCase) { r.kind = "download"; r.want = 400 }),
		with("url of another host", func(r *reportCase) { r.url = "https://evil.test/"; r.want = 400 }),
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := clock.t
			clock.t = clock.t.Add(tc.advance)
			defer func() { clock.t = start }()
			body, _ := json.Marshal(map[string]any{"token": tc.token, "kind": tc.kind, "blocked": tc.blocked, "url": tc.url})
			r := httptest.NewRequest("POST", "https://app.test/.portcullis/report", strings.NewReader(string(body)))
			r.Header.Set("Content-Type", "application/json")
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.site != "" {
				r.Header.Set("Sec-Fetch-Site", tc.site)
			}
			if tc.cookie {
				r.AddCookie(ck)
			}
			var got []Report
			w := httptest.NewRecorder()
			if !c.ServeEndpoint(w, r, func(rep Report) { got = append(got, rep) }) {
				t.Fatal("ServeEndpoint did not take the report path")
			}
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.want, w.Body)
			}
			if tc.want != 204 {
				if len(got) != 0 {
					t.Errorf("refused report reached the callback: %+v", got)
				}
				return
			}
			want := Report{Kind: policy.KindCutCopy, Blocked: true, Host: "app.test", URL: tc.url, SessionID: id}
			if tc.kind == "print" {
				want.Kind, want.Blocked = policy.KindPrint, false
			}
			if len(got) != 1 || got[0] != want {
				t.Errorf("reports %+v, want %+v", got, want)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		w := httptest.NewRecorder()
		c.ServeEndpoint(w, httptest.NewRequest("GET", "https://app.test/.portcullis/report", nil), nil)
		if w.Code != 405 {
			t.Errorf("status %d", w.Code)
		}
	})
	t.Run("form content type", func(t *testing.T) {
		r := httptest.NewRequest("POST", "https://app.test/.portcullis/report", strings.NewReader("token="+token))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.AddCookie(ck)
		w := httptest.NewRecorder()
		c.ServeEndpoint(w, r, nil)
		if w.Code != 415 {
			t.Errorf("status %d", w.Code)
		}
	})
	t.Run("other paths", func(t *testing.T) {
		w := httptest.NewRecorder()
		if !c.ServeEndpoint(w, httptest.NewRequest("GET", "https://app.test/.portcullis/other", nil), nil) || w.Code != 404 {
			t.Errorf("unknown endpoint path: %d", w.Code)
		}
		if c.ServeEndpoint(httptest.NewRecorder(), httptest.NewRequest("GET", "https://app.test/app/.portcullis/report", nil), nil) {
			t.Error("took a path outside the prefix")
		}
	})
}

// notice walks the notice flow with httptest: the redirect, the page, and
// the parts of its form.
type noticeFlow struct {
	t       *testing.T
	c       *Controller
	host    string
	cookies []*http.Cookie
}

func (f *noticeFlow) do(r *http.Request) *httptest.ResponseRecorder {
	for _, ck := range f.cookies {
		r.AddCookie(ck)
	}
	w := httptest.NewRecorder()
	f.c.ServeEndpoint(w, r, nil)
	for _, ck := range w.Result().Cookies() {
		f.cookies = append(f.cookies, ck)
	}
	return w
}

func (f *noticeFlow) navigate(path string) *http.Request {
	r := httptest.NewRequest("GET", "https://"+f.host+path, nil)
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Dest", "document")
	for _, ck := range f.cookies {
		r.AddCookie(ck)
	}
	return r
}

// start navigates to path, expects the redirect to the notice, and returns
// the notice page's body and form fields.
func (f *noticeFlow) start(path, app, message string) (page string, form url.Values) {
	f.t.Helper()
	r := f.navigate(path)
	if !f.c.NeedsNotice(r, app) {
		f.t.Fatalf("first navigation to %s does not need the notice", path)
	}
	w := httptest.NewRecorder()
	f.c.RedirectToNotice(w, r, app, message)
	f.cookies = append(f.cookies, w.Result().Cookies()...)
	loc := w.Header().Get("Location")
	if w.Code != 303 || !strings.HasPrefix(loc, "/.portcullis/notice?s=") {
		f.t.Fatalf("redirect %d %q", w.Code, loc)
	}
	pw := f.do(httptest.NewRequest("GET", "https://"+f.host+loc, nil))
	if pw.Code != 200 {
		f.t.Fatalf("notice page: %d %s", pw.Code, pw.Body)
	}
	page = pw.Body.String()
	form = url.Values{}
	for _, m := range regexp.MustCompile(`name="(s|csrf)" value="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		form.Set(m[1], m[2])
	}
	if form.Get("s") == "" || form.Get("csrf") == "" {
		f.t.Fatalf("notice form fields missing:\n%s", page)
	}
	return page, form
}

func (f *noticeFlow) post(form url.Values, origin string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "https://"+f.host+"/.portcullis/notice", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", origin)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return f.do(r)
}

func TestNotice(t *testing.T) {
	c, clock := newTestController(t)
	const hostile = `</p><script>alert(1)</script><img src=x onerror=alert(2)> "quoted" 'single' &amp;`
	f := &noticeFlow{t: t, c: c, host: "app.test"}
	page, form := f.start("/inbox?folder=1", "mail", hostile)
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img") || !strings.Contains(page, "&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("hostile message not escaped:\n%s", page)
	}

	bad := func(name string, form url.Values, origin string, want int) {
		t.Helper()
		if w := f.post(form, origin); w.Code != want {
			t.Errorf("%s: status %d, want %d", name, w.Code, want)
		}
	}
	noCSRF := url.Values{"s": {form.Get("s")}}
	bad("without CSRF token", noCSRF, "https://app.test", 403)
	forged := url.Values{"s": {form.Get("s")}, "csrf": {form.Get("csrf")[:20] + "AAAA" + form.Get("csrf")[24:]}}
	bad("forged CSRF token", forged, "https://app.test", 403)
	bad("cross-origin", form, "https://evil.test", 403)

	// Another link's token does not fit this form.
	_, form2 := (&noticeFlow{t: t, c: c, host: "app.test", cookies: f.cookies}).start("/other", "mail", "m")
	bad("CSRF token of another link", url.Values{"s": {form.Get("s")}, "csrf": {form2.Get("csrf")}}, "https://app.test", 403)

	w := f.post(form, "https://app.test")
	if w.Code != 303 || w.Header().Get("Location") != "/inbox?folder=1" {
		t.Fatalf("continue: %d %q", w.Code, w.Header().Get("Location"))
	}
	if f.c.NeedsNotice(f.navigate("/inbox"), "mail") {
		t.Error("the notice is asked for again after Continue")
	}
	if !f.c.NeedsNotice(f.navigate("/inbox"), "calendar") {
		t.Error("another app's notice was taken as seen")
	}
	for _, r := range []*http.Request{
		httptest.NewRequest("POST", "https://app.test/x", nil),
		httptest.NewRequest("GET", "https://app.test/.portcullis/notice", nil),
	} {
		r.Header.Set("Sec-Fetch-Mode", "navigate")
		if c.NeedsNotice(r, "mail2") {
			t.Errorf("%s %s needs the notice", r.Method, r.URL.Path)
		}
	}
	sub := httptest.NewRequest("GET", "https://app.test/api", nil)
	sub.Header.Set("Sec-Fetch-Mode", "cors")
	if c.NeedsNotice(sub, "mail2") {
		t.Error("a fetch() needs the notice")
	}
	frame := f.navigate("/")
	frame.Header.Set("Sec-Fetch-Dest", "iframe")
	if c.NeedsNotice(frame, "mail2") {
		t.Error("an iframe navigation needs the notice")
	}
	old := httptest.NewRequest("GET", "https://app.test/", nil)
	old.Header.Set("Accept", "text/html,application/xhtml+xml")
	if !c.NeedsNotice(old, "mail") {
		t.Error("a navigation without Fetch Metadata (Accept: text/html) and no cookies skips the notice")
	}

	// The acknowledgement is per host and per session.
	other := &noticeFlow{t: t, c: c, host: "other.test"}
	for _, ck := range f.cookies {
		if ck.Name == NoticeCookieName {
			other.cookies = append(other.cookies, ck)
		}
	}
	other.start("/", "mail", "other host")
	clock.t = clock.t.Add(12*time.Hour + time.Second)
	if !f.c.NeedsNotice(f.navigate("/inbox"), "mail") {
		t.Error("an expired acknowledgement still counts")
	}
}

func TestNoticeRedirects(t *testing.T) {
	c, _ := newTestController(t)
	f := &noticeFlow{t: t, c: c, host: "app.test"}
	_, form := f.start("/", "mail", "m")
	sess := c.sessionOf(f.navigate("/"))

	// A link signed for another host does not open here.
	other := &noticeFlow{t: t, c: c, host: "other.test"}
	_, otherForm := other.start("/", "mail", "m")
	if w := f.post(url.Values{"s": {otherForm.Get("s")}, "csrf": {form.Get("csrf")}}, "https://app.test"); w.Code != 403 {
		t.Errorf("another host's link: %d", w.Code)
	}

	// Even a correctly signed link never sends the browser elsewhere.
	for _, ret := range []string{"https://evil.test/", "//evil.test/x", "/\\evil.test", "/\tx", "javascript:alert(1)"} {
		st, _ := json.Marshal(noticeState{App: "mail", Return: ret})
		s := c.stateKey.sealUntil(c.now().Add(time.Minute), st, "app.test")
		csrf := c.csrfKey.sealUntil(c.now().Add(time.Minute), nil, "app.test", sess, s)
		w := f.post(url.Values{"s": {s}, "csrf": {csrf}}, "https://app.test")
		if w.Code == 303 {
			t.Errorf("continue to %q redirected to %q", ret, w.Header().Get("Location"))
		}
	}
	// RedirectToNotice itself only records a path.
	r := httptest.NewRequest("GET", "https://app.test//evil.test/x", nil)
	w := httptest.NewRecorder()
	c.RedirectToNotice(w, r, "mail", "m")
	s, _ := url.QueryUnescape(strings.TrimPrefix(w.Header().Get("Location"), "/.portcullis/notice?s="))
	if st, ok := c.openState(s, "app.test"); !ok || st.Return != "/" {
		t.Errorf("return of //evil.test/x recorded as %+v", st)
	}
}
