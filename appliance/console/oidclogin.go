package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	oidcclient "github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
)

// OIDCOptions let admins log in to the console through the OpenID provider
// the appliance already speaks. The provider authenticates (its MFA
// included); the console authorises by group: a member of AdminGroups is
// an admin, of AuditorGroups an auditor, anyone else is refused. Console
// users from the provider are named "oidc:<name>", so they never share an
// account, a lockout or a session with a local account of the same name.
type OIDCOptions struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is the console's callback as registered at the provider
	// (https://<console>/login/oidc/callback); empty: built from the
	// request's host.
	RedirectURL string
	// GroupsClaim names the ID token claim with the user's groups
	// (default "groups").
	GroupsClaim   string
	AdminGroups   []string
	AuditorGroups []string
	// HTTPClient reaches the provider (its roots); nil: the default.
	HTTPClient *http.Client
}

const (
	oidcCookie       = "__Host-portcullis-oidc"
	oidcCallbackPath = "/login/oidc/callback"
	oidcLoginTTL     = 10 * time.Minute
	maxPendingOIDC   = 1000
	oidcUserPrefix   = "oidc:"
)

// oidcLogin runs the authorization code flow with PKCE, a nonce and a
// state bound to this browser by a cookie whose value only the server's
// table maps to the state. Discovery happens at first use and is retried
// after a failure, so a provider that is down at start-up never keeps the
// console (and its local accounts) from starting.
type oidcLogin struct {
	opt OIDCOptions

	mu       sync.Mutex
	oauth    *oauth2.Config
	verifier *rp.IDTokenVerifier
	pending  map[string]oidcPending // by state
}

type oidcPending struct {
	browser  string // the cookie's value
	nonce    string
	verifier string
	redirect string
	exp      time.Time
}

func newOIDCLogin(o *OIDCOptions) (*oidcLogin, error) {
	if o == nil {
		return nil, nil
	}
	if o.Issuer == "" || o.ClientID == "" {
		return nil, errors.New("console oidc: issuer and client_id are required")
	}
	if len(o.AdminGroups) == 0 && len(o.AuditorGroups) == 0 {
		return nil, errors.New("console oidc: name admin_groups or auditor_groups: without them nobody could log in")
	}
	if o.GroupsClaim == "" {
		o.GroupsClaim = "groups"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if o.RedirectURL != "" {
		u, err := url.Parse(o.RedirectURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != oidcCallbackPath {
			return nil, fmt.Errorf("console oidc: redirect_url %q: must be https://<console host>%s", o.RedirectURL, oidcCallbackPath)
		}
	}
	return &oidcLogin{opt: *o, pending: map[string]oidcPending{}}, nil
}

func (l *oidcLogin) discover(ctx context.Context) (*oauth2.Config, *rp.IDTokenVerifier, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.oauth != nil {
		return l.oauth, l.verifier, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	disc, err := oidcclient.Discover(dctx, l.opt.Issuer, l.opt.HTTPClient)
	if err != nil {
		return nil, nil, fmt.Errorf("the identity provider %s cannot be reached: %w", l.opt.Issuer, err)
	}
	style := oauth2.AuthStyleInParams
	if len(disc.TokenEndpointAuthMethodsSupported) == 0 || slices.Contains(disc.TokenEndpointAuthMethodsSupported, oidc.AuthMethodBasic) {
		style = oauth2.AuthStyleInHeader
	}
	l.oauth = &oauth2.Config{ClientID: l.opt.ClientID, ClientSecret: l.opt.ClientSecret,
		Scopes:   []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, "groups"},
		Endpoint: oauth2.Endpoint{AuthURL: disc.AuthorizationEndpoint, TokenURL: disc.TokenEndpoint, AuthStyle: style}}
	l.verifier = rp.NewIDTokenVerifier(disc.Issuer, l.opt.ClientID, rp.NewRemoteKeySet(l.opt.HTTPClient, disc.JwksURI))
	return l.oauth, l.verifier, nil
}

func (l *oidcLogin) redirectURL(r *http.Request) string {
	if l.opt.RedirectURL != "" {
		return l.opt.RedirectURL
	}
	return "https://" + r.Host + oidcCallbackPath
}

func (l *oidcLogin) remember(p oidcPending) (state string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for k, v := range l.pending {
		if now.After(v.exp) {
			delete(l.pending, k)
		}
	}
	if len(l.pending) >= maxPendingOIDC {
		return "", errors.New("too many sign-ins in progress; try again in a few minutes")
	}
	state = randomToken(24)
	l.pending[state] = p
	return state, nil
}

// take removes and returns the sign-in of state if this browser started it.
func (l *oidcLogin) take(state, browser string) (oidcPending, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pending[state]
	if !ok || !constantEqual(p.browser, browser) {
		return oidcPending{}, false
	}
	delete(l.pending, state)
	return p, time.Now().Before(p.exp)
}

// role maps the provider's groups to a console role; false: none.
func (l *oidcLogin) role(groups []string) (Role, bool) {
	for _, g := range groups {
		if slices.Contains(l.opt.AdminGroups, g) {
			return RoleAdmin, true
		}
	}
	for _, g := range groups {
		if slices.Contains(l.opt.AuditorGroups, g) {
			return RoleAuditor, true
		}
	}
	return "", false
}

// oidcStart is POST /login/oidc (the login form's button, CSRF-checked
// like the password form): off to the provider.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if c.oidc == nil {
		http.NotFound(w, r)
		return
	}
	if !checkLoginForm(r) {
		c.loginError(w, r, http.StatusForbidden, "The form expired. Try again.", loginView{})
		return
	}
	if !c.attempt(w, r, "") {
		c.loginError(w, r, http.StatusTooManyRequests, "Too many login attempts from your address. Wait a minute.", loginView{})
		return
	}
	conf, _, err := c.oidc.discover(r.Context())
	if err != nil {
		c.opt.Log.Warn("console oidc", "err", err)
		c.loginError(w, r, http.StatusBadGateway, "Single sign-on is unavailable: "+err.Error()+". Local accounts still work.", loginView{})
		return
	}
	p := oidcPending{browser: randomToken(24), nonce: randomToken(16), verifier: oauth2.GenerateVerifier(),
		redirect: c.oidc.redirectURL(r), exp: time.Now().Add(oidcLoginTTL)}
	state, err := c.oidc.remember(p)
	if err != nil {
		c.loginError(w, r, http.StatusServiceUnavailable, err.Error(), loginView{})
		return
	}
	// Lax: the provider brings the browser back with a top-level GET from
	// its own site, which a Strict cookie would not accompany.
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: p.browser, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(oidcLoginTTL / time.Second)})
	cf := *conf
	cf.RedirectURL = p.redirect
	http.Redirect(w, r, cf.AuthCodeURL(state, oauth2.S256ChallengeOption(p.verifier), oauth2.SetAuthURLParam("nonce", p.nonce)), http.StatusFound)
}

// oidcCallback completes the sign-in: the state must be one this browser
// started, the code is exchanged with the PKCE verifier, the ID token is
// verified (issuer, audience, signature, expiry, nonce), and the groups
// decide the role. Every refusal is in the admin audit log.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		http.NotFound(w, r)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, MaxAge: -1})
	fail := func(status int, who, msg string) {
		c.record(r, &session{User: who}, auditLoginFailed, who, "oidc: "+msg)
		c.loginError(w, r, status, "Single sign-on failed: "+msg+".", loginView{})
	}
	if !c.attempt(w, r, "") {
		c.loginError(w, r, http.StatusTooManyRequests, "Too many login attempts from your address. Wait a minute.", loginView{})
		return
	}
	q := r.URL.Query()
	ck, err := r.Cookie(oidcCookie)
	if err != nil {
		fail(http.StatusBadRequest, "", "no sign-in in progress in this browser (cookies blocked or expired)")
		return
	}
	p, ok := c.oidc.take(q.Get("state"), ck.Value)
	if !ok {
		fail(http.StatusForbidden, "", "the sign-in expired or was not started in this browser")
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusForbidden, "", "the identity provider refused ("+visible(clipRunes(e, 80))+")")
		return
	}
	conf, verifier, err := c.oidc.discover(r.Context())
	if err != nil {
		fail(http.StatusBadGateway, "", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), oauth2.HTTPClient, c.oidc.opt.HTTPClient), 15*time.Second)
	defer cancel()
	cf := *conf
	cf.RedirectURL = p.redirect
	tok, err := cf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		fail(http.StatusForbidden, "", "the identity provider refused the code")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		fail(http.StatusForbidden, "", "the identity provider returned no ID token")
		return
	}
	v := *verifier
	v.Nonce = func(context.Context) string { return p.nonce }
	claims, err := rp.VerifyIDToken[*oidc.IDTokenClaims](ctx, raw, &v)
	if err != nil {
		fail(http.StatusForbidden, "", "the ID token did not verify")
		return
	}
	name := claims.PreferredUsername
	if name == "" {
		name = claims.Email
	}
	if name == "" {
		name = claims.Subject
	}
	user := oidcUserPrefix + visible(clipRunes(name, 120))
	role, ok := c.oidc.role(claimStrings(claims.Claims[c.oidc.opt.GroupsClaim]))
	if !ok {
		fail(http.StatusForbidden, user, "your account is in none of the console's groups")
		return
	}
	c.startSession(w, r, user, role)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// claimStrings reads a claim that is a string or a list of strings.
func claimStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
