package control

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultNotice is the notice text when the policy gives no message.
const DefaultNotice = "Your activity in this app is monitored under your organization's security policy."

// noticeFormTTL is how long a notice link and its Continue form stay
// valid.
const noticeFormTTL = time.Hour

// Bounds of what a notice link carries.
const (
	maxReturn     = 2048
	maxStateToken = 8 << 10
	maxNoticeForm = 16 << 10
)

// noticeState is what a notice link carries, signed for its host: the app,
// the message and where to go back to (a path on the same host).
type noticeState struct {
	App     string `json:"a"`
	Message string `json:"m"`
	Return  string `json:"r"`
}

// NeedsNotice reports whether r should see app's monitoring notice first:
// a GET top-level navigation (Sec-Fetch-Mode navigate to a document, or
// without Fetch Metadata an Accept of text/html) whose session has not
// continued past app's notice on this host. Requests to the control
// endpoints never need it.
func (c *Controller) NeedsNotice(r *http.Request, app string) bool {
	if r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, c.endpoint) || !topLevelNavigation(r) {
		return false
	}
	session := c.sessionOf(r)
	if session == "" {
		return true
	}
	host := canonicalHost(r.Host)
	for _, ck := range r.CookiesNamed(NoticeCookieName) {
		if _, ok := c.noticeKey.openUntil(ck.Value, maxCookieToken, c.now(), host, app, session); ok {
			return false
		}
	}
	return true
}

func topLevelNavigation(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		dest := r.Header.Get("Sec-Fetch-Dest")
		return mode == "navigate" && (dest == "" || dest == "document")
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// RedirectToNotice answers r with a redirect (303) to app's notice page on
// the same host, carrying message and r's own address to come back to, in
// a link signed for the host. It issues the session cookie if r had none.
func (c *Controller) RedirectToNotice(w http.ResponseWriter, r *http.Request, app, message string) {
	c.Session(w, r)
	ret := r.URL.RequestURI()
	if len(ret) > maxReturn || !safeReturn(ret) {
		ret = "/"
	}
	st, _ := json.Marshal(noticeState{App: app, Message: truncate(message, maxMessage), Return: ret})
	token := c.stateKey.sealUntil(c.now().Add(noticeFormTTL), st, canonicalHost(r.Host))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", c.endpoint+"notice?s="+token)
	w.WriteHeader(http.StatusSeeOther)
}

// safeReturn accepts only a path (with query) on the same host: it must
// start with a single '/', and nothing in it may make a browser read it as
// another authority (backslashes, control characters).
func safeReturn(p string) bool {
	if len(p) == 0 || p[0] != '/' || strings.HasPrefix(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' || p[i] < 0x20 || p[i] == 0x7f {
			return false
		}
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil
}

func (c *Controller) openState(token, host string) (noticeState, bool) {
	var st noticeState
	raw, ok := c.stateKey.openUntil(token, maxStateToken, c.now(), host)
	if !ok || json.Unmarshal(raw, &st) != nil {
		return noticeState{}, false
	}
	return st, true
}

//go:embed notice.html
var noticeHTML string

var noticePage = template.Must(template.New("notice").Parse(noticeHTML))

type noticeView struct {
	Nonce, Message, Host, Action, State, CSRF string
}

// serveNotice shows the notice (GET) and takes its Continue (POST).
func (c *Controller) serveNotice(w http.ResponseWriter, r *http.Request) {
	host := canonicalHost(r.Host)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		token := r.URL.Query().Get("s")
		st, ok := c.openState(token, host)
		if !ok {
			httpError(w, http.StatusForbidden)
			return
		}
		session := c.Session(w, r)
		if session == "" {
			httpError(w, http.StatusForbidden)
			return
		}
		msg := st.Message
		if msg == "" {
			msg = DefaultNotice
		}
		nonce := newNonce()
		var b bytes.Buffer
		if err := noticePage.Execute(&b, noticeView{
			Nonce: nonce, Message: msg, Host: host, Action: c.endpoint + "notice", State: token,
			CSRF: c.csrfKey.sealUntil(c.now().Add(noticeFormTTL), nil, host, session, token),
		}); err != nil {
			httpError(w, http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(b.Bytes())
		}
	case http.MethodPost:
		c.continueNotice(w, r, host)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		httpError(w, http.StatusMethodNotAllowed)
	}
}

// continueNotice takes the Continue form: same origin, the session's CSRF
// token for this very link, and a return path on this host; then the
// acknowledgement cookie and a 303 back.
func (c *Controller) continueNotice(w http.ResponseWriter, r *http.Request, host string) {
	if !sameOrigin(r) {
		httpError(w, http.StatusForbidden)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		httpError(w, http.StatusUnsupportedMediaType)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxNoticeForm)
	if err := r.ParseForm(); err != nil {
		httpError(w, http.StatusBadRequest)
		return
	}
	token := r.PostForm.Get("s")
	st, ok := c.openState(token, host)
	session := c.sessionOf(r)
	if !ok || session == "" {
		httpError(w, http.StatusForbidden)
		return
	}
	if _, ok := c.csrfKey.openUntil(r.PostForm.Get("csrf"), maxCookieToken, c.now(), host, session, token); !ok {
		httpError(w, http.StatusForbidden)
		return
	}
	if !safeReturn(st.Return) {
		httpError(w, http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: NoticeCookieName, Value: c.noticeKey.sealUntil(c.now().Add(c.ttl), nil, host, st.App, session),
		Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", st.Return)
	w.WriteHeader(http.StatusSeeOther)
}
