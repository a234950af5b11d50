package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// csp allows scripts, styles and connections to the console itself only:
// no inline script or style, no eval, no framing, no plugins, forms post
// only here.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

type sessionHandler func(http.ResponseWriter, *http.Request, *session)

// sessionOf is the request's live session, or nil.
func (c *Console) sessionOf(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return c.sessions.get(ck.Value)
}

// sameSite refuses a request another site's page made: Sec-Fetch-Site
// (every current browser sends it) or, without it, Origin.
func sameSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return true
}

func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// checkCSRF: every request that may change something carries the
// session's token (header X-CSRF-Token or form field csrf) and comes from
// the console's own pages.
func (c *Console) checkCSRF(r *http.Request, s *session) bool {
	if safeMethod(r.Method) {
		return true
	}
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = r.PostFormValue("csrf")
	}
	return sameSite(r) && constantEqual(tok, s.CSRF)
}

func (c *Console) authPage(h sessionHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.sessionOf(r)
		if s == nil {
			if r.Header.Get("HX-Request") != "" {
				// htmx follows redirects inside the swap; tell it to leave.
				w.Header().Set("HX-Redirect", "/login")
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if !c.checkCSRF(r, s) {
			c.record(r, s, auditCSRF, r.URL.Path, "")
			http.Error(w, "Forbidden: the form expired or came from another site. Reload the page and try again.", http.StatusForbidden)
			return
		}
		h(w, r, s)
	})
}

func (c *Console) authAPI(h sessionHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.sessionOf(r)
		if s == nil {
			apiError(w, http.StatusUnauthorized, "log in first")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 2<<20)
		if !c.checkCSRF(r, s) {
			c.record(r, s, auditCSRF, r.URL.Path, "")
			apiError(w, http.StatusForbidden, "missing or wrong CSRF token (X-CSRF-Token), or a cross-site request")
			return
		}
		h(w, r, s)
	})
}

// admin lets only admins through; auditors get 403 and an audit entry.
func (c *Console) admin(h sessionHandler) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if s.Role != RoleAdmin {
			c.record(r, s, auditForbidden, r.Method+" "+r.URL.Path, "auditor attempted a change")
			if isAPI(r) {
				apiError(w, http.StatusForbidden, "auditors cannot change anything")
			} else {
				http.Error(w, "Forbidden: auditors cannot change anything.", http.StatusForbidden)
			}
			return
		}
		h(w, r, s)
	}
}

func isAPI(r *http.Request) bool { return len(r.URL.Path) >= 8 && r.URL.Path[:8] == "/api/v1/" }

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (c *Console) setSessionCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.opt.SessionLifetime / time.Second)})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}
