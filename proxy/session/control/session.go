package control

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
)

// SessionCookieName is the Controller's own session cookie, used when
// Config.SessionID is not set (transparent mode, where the proxy has no
// login session). It holds a random session id signed for the host it was
// issued on; it lives until the browser closes.
const SessionCookieName = "__Host-portcullis-control"

// NoticeCookieName records that the user continued past the monitoring
// notice of the host's app in this session.
const NoticeCookieName = "__Host-portcullis-notice"

// maxCookieToken bounds the cookie and token values this package opens.
const maxCookieToken = 256

// Session returns the session id of r for its host. Without
// Config.SessionID it is the Controller's session cookie; a request without
// a valid one gets a new id, and its Set-Cookie is added to w (so call
// Session before the response's headers are written). With
// Config.SessionID, that function decides and nothing is set: "" means
// the request has no session.
func (c *Controller) Session(w http.ResponseWriter, r *http.Request) string {
	if id := c.sessionOf(r); id != "" || c.sessionID != nil {
		return id
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	http.SetCookie(w, SessionCookie(c.sessionKey.seal([]byte(id), canonicalHost(r.Host))))
	return id
}

// SessionCookie is the cookie carrying a session value: host-only
// (__Host-), Secure, HttpOnly, SameSite=Lax (sent on top-level navigations
// from other sites, never on their subrequests or form posts), and a
// browser-session cookie.
func SessionCookie(value string) *http.Cookie {
	return &http.Cookie{Name: SessionCookieName, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

// sessionOf is r's session id, "" when it has none (or a cookie that was
// tampered with or issued for another host).
func (c *Controller) sessionOf(r *http.Request) string {
	if c.sessionID != nil {
		return c.sessionID(r)
	}
	host := canonicalHost(r.Host)
	for _, ck := range r.CookiesNamed(SessionCookieName) {
		if id, ok := c.sessionKey.open(ck.Value, maxCookieToken, host); ok && len(id) > 0 {
			return string(id)
		}
	}
	return ""
}
