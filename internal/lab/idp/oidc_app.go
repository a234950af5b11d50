package idp

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// OIDCAppConfig configures the lab's OIDC relying-party app.
type OIDCAppConfig struct {
	// BaseURL is the app's configured address, e.g. "https://rp.lab"; its
	// redirect URI is BaseURL+"/callback" and its post-logout URI
	// BaseURL+"/logged-out".
	BaseURL string
	// Issuer is the OP, e.g. "https://op.lab".
	Issuer       string
	ClientID     string
	ClientSecret string
	// HTTPClient makes the discovery, token and key calls; it must trust
	// the lab CA. Nil means http.DefaultClient.
	HTTPClient *http.Client
}

const rpSessionCookie = "lab_rp_session"

// rpSession is one signed-in browser of the OIDC app.
type rpSession struct {
	id      appIdentity
	idToken string
	expires time.Time
}

type oidcApp struct {
	base     string
	relying  rp.RelyingParty
	mu       sync.Mutex
	sessions map[string]*rpSession
	pending  map[string]pendingLogin // by state
}

type pendingLogin struct {
	returnTo string
	expires  time.Time
}

// NewOIDCApp returns a small web app that signs users in at the OP with the
// authorization code flow and PKCE (zitadel/oidc's rp), asking for the
// scopes openid, profile, email and groups, then shows "Hello
// <preferred_username>" and the groups claim (see appPages for the rest).
// Discovery runs now, with ctx; /logout ends the local session and sends
// the browser to the OP's end_session endpoint.
func NewOIDCApp(ctx context.Context, cfg OIDCAppConfig) (http.Handler, error) {
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || base.Scheme != "https" || base.Host == "" || base.Path != "" {
		return nil, errorf("OIDC app base URL %q: must be an https URL without path", cfg.BaseURL)
	}
	if cfg.ClientID == "" {
		return nil, errorf("OIDC app %s: no client ID", cfg.BaseURL)
	}
	hashKey, encKey := make([]byte, 32), make([]byte, 32)
	if _, err := rand.Read(hashKey); err != nil {
		return nil, errorf("OIDC app cookie key: %v", err)
	}
	if _, err := rand.Read(encKey); err != nil {
		return nil, errorf("OIDC app cookie key: %v", err)
	}
	cookies := httphelper.NewCookieHandler(hashKey, encKey)
	client := cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	relying, err := rp.NewRelyingPartyOIDC(ctx, cfg.Issuer, cfg.ClientID, cfg.ClientSecret, base.String()+"/callback",
		[]string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, scopeGroups},
		rp.WithPKCE(cookies), rp.WithHTTPClient(client))
	if err != nil {
		return nil, errorf("OIDC app %s: relying party for %s: %v", cfg.BaseURL, cfg.Issuer, err)
	}
	a := &oidcApp{base: base.String(), relying: relying, sessions: map[string]*rpSession{}, pending: map[string]pendingLogin{}}
	pages := newAppPages(a.base, "Lab OIDC app", "/logout", a.identity)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.login)
	mux.Handle("GET /callback", rp.CodeExchangeHandler(a.signedIn, relying))
	mux.HandleFunc("/logout", a.logout)
	pages.register(mux, a.requireLogin)
	return mux, nil
}

func (a *oidcApp) session(r *http.Request) (*rpSession, string) {
	c, err := r.Cookie(rpSessionCookie)
	if err != nil {
		return nil, ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[c.Value]
	if !ok || time.Now().After(s.expires) {
		return nil, ""
	}
	return s, c.Value
}

type rpSessionKey struct{}

func (a *oidcApp) requireLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := a.session(r)
		if s == nil {
			http.Redirect(w, r, "/login?return="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), rpSessionKey{}, s.id)))
	})
}

func (a *oidcApp) identity(r *http.Request) appIdentity {
	id, _ := r.Context().Value(rpSessionKey{}).(appIdentity)
	return id
}

// login starts the code flow; the state remembers where to return.
func (a *oidcApp) login(w http.ResponseWriter, r *http.Request) {
	returnTo := r.URL.Query().Get("return")
	if !strings.HasPrefix(returnTo, "/") || strings.HasPrefix(returnTo, "//") {
		returnTo = "/" // local paths only: no open redirect
	}
	state := randomID(16)
	a.mu.Lock()
	now := time.Now()
	for k, p := range a.pending {
		if now.After(p.expires) {
			delete(a.pending, k)
		}
	}
	a.pending[state] = pendingLogin{returnTo: returnTo, expires: now.Add(authRequestTTL)}
	a.mu.Unlock()
	rp.AuthURLHandler(func() string { return state }, a.relying)(w, r)
}

func (a *oidcApp) signedIn(w http.ResponseWriter, r *http.Request, tokens *oidc.Tokens[*oidc.IDTokenClaims], state string, _ rp.RelyingParty) {
	c := tokens.IDTokenClaims
	id := appIdentity{Name: c.PreferredUsername}
	if groups, ok := c.Claims["groups"].([]any); ok {
		for _, g := range groups {
			if s, ok := g.(string); ok {
				id.Groups = append(id.Groups, s)
			}
		}
	}
	sid := randomID(24)
	a.mu.Lock()
	returnTo := "/"
	if p, ok := a.pending[state]; ok {
		returnTo = p.returnTo
		delete(a.pending, state)
	}
	a.sessions[sid] = &rpSession{id: id, idToken: tokens.IDToken, expires: time.Now().Add(browserSessionTTL)}
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: rpSessionCookie, Value: sid, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(browserSessionTTL / time.Second)})
	http.Redirect(w, r, returnTo, http.StatusFound)
}

func (a *oidcApp) logout(w http.ResponseWriter, r *http.Request) {
	s, sid := a.session(r)
	http.SetCookie(w, &http.Cookie{Name: rpSessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true})
	if s == nil {
		http.Redirect(w, r, "/logged-out", http.StatusFound)
		return
	}
	a.mu.Lock()
	delete(a.sessions, sid)
	a.mu.Unlock()
	// The browser itself must visit end_session, so the OP can drop its
	// own session cookie; rp.EndSession would call it server to server.
	endpoint := a.relying.GetEndSessionEndpoint()
	if endpoint == "" {
		http.Redirect(w, r, "/logged-out", http.StatusFound)
		return
	}
	q := url.Values{"id_token_hint": {s.idToken}, "client_id": {a.relying.OAuthConfig().ClientID},
		"post_logout_redirect_uri": {a.base + "/logged-out"}}
	end := endpoint + "?" + q.Encode()
	http.Redirect(w, r, end, http.StatusFound)
}
