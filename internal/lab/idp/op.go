package idp

import (
	"context"
	"crypto/rand"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// OPConfig configures the lab's OpenID Provider.
type OPConfig struct {
	// Issuer is the OP's https URL without a path, e.g. "https://op.lab".
	Issuer string
	// Users default to DefaultUsers.
	Users   []User
	Clients []OPClient
}

const (
	loginPath         = "/login"
	loggedOutPath     = "/logged-out"
	authRequestParam  = "authRequestID"
	opSessionCookie   = "lab_op_session"
	opCSRFCookie      = "lab_op_csrf"
	authorizeCallback = "/authorize/callback"
)

// NewOP returns the handler of an OpenID Provider at cfg.Issuer: discovery
// (/.well-known/openid-configuration), /authorize, /oauth/token, /userinfo,
// /keys, /end_session, /oauth/introspect, /revoke, plus a password login form
// at /login (fields "username" and "password") and a /logged-out page.
//
// It issues authorization codes (PKCE S256 and plain; required for clients
// without a secret), RS256 ID tokens with preferred_username (scope
// "profile"), email (scope "email") and groups (scope "groups") claims, and
// opaque access and refresh tokens. A successful login leaves a session
// cookie, so later authorizations of the same browser skip the form until
// /end_session is visited.
func NewOP(cfg OPConfig) (http.Handler, error) {
	iss, err := url.Parse(cfg.Issuer)
	if err != nil || iss.Scheme != "https" || iss.Host == "" || (iss.Path != "" && iss.Path != "/") || iss.RawQuery != "" {
		return nil, errorf("OP issuer %q: must be an https URL without path or query", cfg.Issuer)
	}
	issuer := "https://" + iss.Host
	users, err := newUserDirectory(cfg.Users)
	if err != nil {
		return nil, err
	}
	storage, err := newOPStorage(users, cfg.Clients)
	if err != nil {
		return nil, err
	}
	opCfg := &op.Config{
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		DefaultLogoutRedirectURI: loggedOutPath,
		SupportedUILocales:       []language.Tag{language.English},
		SupportedScopes:          []string{"openid", "profile", "email", "offline_access", scopeGroups},
		SupportedClaims: []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "azp",
			"preferred_username", "name", "email", "email_verified", "groups", "acr", "amr"},
	}
	if _, err := rand.Read(opCfg.CryptoKey[:]); err != nil {
		return nil, errorf("OP crypto key: %v", err)
	}
	provider, err := op.NewOpenIDProvider(issuer, opCfg, storage)
	if err != nil {
		return nil, errorf("OP at %s: %v", issuer, err)
	}
	l := &opLogin{storage: storage, users: users}
	mux := http.NewServeMux()
	mux.Handle(loginPath, l)
	mux.HandleFunc(loggedOutPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><title>Signed out</title><p id=signed-out>You are signed out of the lab OP.</p>"))
	})
	mux.Handle("/", withRequestedURIs(clearSessionOnEndSession(provider)))
	return mux, nil
}

// withRequestedURIs records the redirect URIs the request asks for, for the
// wildcard check in registeredClient.forRequest.
func withRequestedURIs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "lab OP: malformed form: "+err.Error(), http.StatusBadRequest)
			return
		}
		req := requestedURIs{redirect: r.Form.Get("redirect_uri"), postLogout: r.Form.Get("post_logout_redirect_uri")}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestedURIsKey{}, req)))
	})
}

// clearSessionOnEndSession drops the browser's session cookie when it visits
// /end_session; the storage forgets the session itself in TerminateSession.
func clearSessionOnEndSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/end_session" {
			http.SetCookie(w, &http.Cookie{Name: opSessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		next.ServeHTTP(w, r)
	})
}

// opLogin is the OP's username/password form. Login CSRF is prevented with a
// double-submit token: GET sets a random cookie and embeds the same value in
// the form; POST must bring both, equal.
type opLogin struct {
	storage *opStorage
	users   userDirectory
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><title>Lab OP sign-in</title></head><body>
<h1>Sign in to the lab OP</h1>
{{if .Error}}<p id="error" style="color:red">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label>Username <input id="username" name="username" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="submit" type="submit">Sign in</button>
</form></body></html>`))

func (l *opLogin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get(authRequestParam)
		ar, err := l.storage.AuthRequestByID(r.Context(), id)
		if err != nil {
			http.Error(w, "lab OP: unknown or expired authorization request", http.StatusBadRequest)
			return
		}
		if c, err := r.Cookie(opSessionCookie); err == nil && !freshLoginAsked(ar) {
			if user, ok := l.storage.browserSessionUser(c.Value); ok {
				l.finish(w, r, id, user, c.Value)
				return
			}
		}
		l.form(w, id, "", http.StatusOK)
	case http.MethodPost:
		l.post(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "lab OP: method not allowed", http.StatusMethodNotAllowed)
	}
}

func (l *opLogin) form(w http.ResponseWriter, id, msg string, status int) {
	csrf := randomID(16)
	http.SetCookie(w, &http.Cookie{Name: opCSRFCookie, Value: csrf, Path: loginPath, Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(authRequestTTL / time.Second)})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = loginTemplate.Execute(w, struct{ ID, CSRF, Error string }{id, csrf, msg})
}

func (l *opLogin) post(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "lab OP: malformed login form", http.StatusBadRequest)
		return
	}
	id := r.PostForm.Get(authRequestParam)
	ar, err := l.storage.AuthRequestByID(r.Context(), id)
	if err != nil {
		http.Error(w, "lab OP: unknown or expired authorization request", http.StatusBadRequest)
		return
	}
	c, err := r.Cookie(opCSRFCookie)
	if err != nil || c.Value == "" || !constantTimeEqual(c.Value, r.PostForm.Get("csrf")) {
		http.Error(w, "lab OP: login form token missing or wrong (cross-site post?)", http.StatusForbidden)
		return
	}
	if r.PostForm.Has("code") {
		l.postCode(w, r, id)
		return
	}
	user, ok := l.users.authenticate(r.PostForm.Get("username"), r.PostForm.Get("password"))
	if !ok {
		l.form(w, id, "Invalid username or password", http.StatusUnauthorized)
		return
	}
	if stepUpAsked(ar) {
		// The stronger context takes a second step: the code form.
		l.storage.passwordChecked(id, user.Name)
		l.codeForm(w, id, "", http.StatusOK)
		return
	}
	sid := l.storage.newBrowserSession(user.Name)
	http.SetCookie(w, &http.Cookie{Name: opSessionCookie, Value: sid, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(browserSessionTTL / time.Second)})
	l.finish(w, r, id, user.Name, sid)
}

// finish marks the request authenticated and sends the browser back to the
// library's callback, which issues the code. The redirect is relative so it
// stays on whatever host name the browser used (the proxy's suffix host).
func (l *opLogin) finish(w http.ResponseWriter, r *http.Request, id, user, sid string) {
	if err := l.storage.completeLogin(id, user, sid); err != nil {
		http.Error(w, "lab OP: authorization request expired", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, authorizeCallback+"?id="+url.QueryEscape(id), http.StatusFound)
}
