package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
)

// loginCookie holds one login in progress on one host.
const loginCookie = "__Host-portcullis-login"

// loginTTL bounds how long a user may take at the provider.
const loginTTL = 10 * time.Minute

// OIDCConfig is the proxy's own OpenID Connect client.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// HTTPClient talks to the provider; the proxy passes one that verifies
	// the provider's certificate.
	HTTPClient *http.Client
	// CallbackPath is served on every suffixed host. Default
	// "/.portcullis/oidc/callback".
	CallbackPath string
	// AllowedReturn accepts only return URLs on onboarded suffixed hosts.
	AllowedReturn func(u *url.URL) bool
	// Claims maps the ID token's claims to groups and device tags.
	Claims ClaimMap
}

// OIDCLogin runs the authorization code flow (PKCE, state bound to a
// host-only cookie, nonce) and keeps the result in Sessions.
type OIDCLogin struct {
	cfg      OIDCConfig
	sessions *Sessions
	oauth    oauth2.Config
	verifier *rp.IDTokenVerifier
}

// NewOIDCLogin discovers the provider.
func NewOIDCLogin(ctx context.Context, cfg OIDCConfig, sessions *Sessions) (*OIDCLogin, error) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.CallbackPath == "" {
		cfg.CallbackPath = "/.portcullis/oidc/callback"
	}
	if cfg.AllowedReturn == nil {
		return nil, errors.New("oidc login: AllowedReturn is required")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail}
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	disc, err := client.Discover(dctx, cfg.Issuer, cfg.HTTPClient)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery at %s: %w", cfg.Issuer, err)
	}
	l := &OIDCLogin{cfg: cfg, sessions: sessions}
	l.oauth = oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Scopes: cfg.Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: disc.AuthorizationEndpoint, TokenURL: disc.TokenEndpoint,
			AuthStyle: authStyle(disc.TokenEndpointAuthMethodsSupported)}}
	l.verifier = rp.NewIDTokenVerifier(disc.Issuer, cfg.ClientID, rp.NewRemoteKeySet(cfg.HTTPClient, disc.JwksURI))
	return l, nil
}

// authStyle picks how the client secret is sent from what the provider
// announces. An explicit choice also keeps oauth2 from retrying a refused
// code exchange with the other style.
func authStyle(methods []oidc.AuthMethod) oauth2.AuthStyle {
	if len(methods) == 0 || slices.Contains(methods, oidc.AuthMethodBasic) {
		return oauth2.AuthStyleInHeader
	}
	return oauth2.AuthStyleInParams
}

type pendingLogin struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Return   string `json:"r"`
	Exp      int64  `json:"x"`
	// Step-up: the acr the ID token must carry, when the login started
	// (the authentication must be newer) and how long the step-up counts.
	ACR     string `json:"c,omitempty"`
	Started int64  `json:"t,omitempty"`
	TTL     int64  `json:"l,omitempty"`
}

func hostOf(r *http.Request) string { return canonicalHost(r.Host) }

func (l *OIDCLogin) redirectURI(r *http.Request) string {
	return "https://" + hostOf(r) + l.cfg.CallbackPath
}

// IsCallback reports a request to the callback path.
func (l *OIDCLogin) IsCallback(r *http.Request) bool { return r.URL.Path == l.cfg.CallbackPath }

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Start sends the browser to the provider; after the login it comes back to
// returnURL, an https URL of this host (r.Host, the suffixed host) or a
// path on it.
func (l *OIDCLogin) Start(w http.ResponseWriter, r *http.Request, returnURL string) {
	l.start(w, r, returnURL, nil)
}

func (l *OIDCLogin) start(w http.ResponseWriter, r *http.Request, returnURL string, up *StepUp) {
	u, err := (&url.URL{Scheme: "https", Host: r.Host, Path: "/"}).Parse(returnURL)
	if err == nil {
		u.Host = strings.ToLower(u.Host)
	}
	if err != nil || !l.cfg.AllowedReturn(u) {
		http.Error(w, "sign-in: the return address is not an app served by this gateway", http.StatusBadRequest)
		return
	}
	// The session will be bound to this host, so only a page of this host
	// can use it; anything else would send the browser round in circles.
	if u.Scheme != "https" || canonicalHost(u.Host) != hostOf(r) {
		http.Error(w, "sign-in: the return address must be an https page of "+hostOf(r), http.StatusBadRequest)
		return
	}
	p := pendingLogin{State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier(), Return: u.String(),
		Exp: time.Now().Add(loginTTL).Unix()}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(p.Verifier), oauth2.SetAuthURLParam("nonce", p.Nonce)}
	if up != nil {
		p.ACR, p.Started, p.TTL = up.ACR, time.Now().Unix(), int64(up.TTL/time.Second)
		opts = append(opts, up.authParams()...)
	}
	v, err := seal(l.sessions.aeads[0], hostOf(r), "login", p)
	if err != nil {
		http.Error(w, "sign-in could not start", http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: v, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(loginTTL.Seconds())})
	conf := l.oauth
	conf.RedirectURL = l.redirectURI(r)
	http.Redirect(w, r, conf.AuthCodeURL(p.State, opts...), http.StatusFound)
}

// Callback completes the login: the state must match this browser's login
// cookie, the code is exchanged with the PKCE verifier, and the ID token is
// verified (issuer, audience, signature, expiry, nonce).
func (l *OIDCLogin) Callback(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string) {
		http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, MaxAge: -1})
		http.Error(w, "sign-in failed: "+msg, code)
	}
	host := hostOf(r)
	c, err := r.Cookie(loginCookie)
	if err != nil {
		fail(http.StatusBadRequest, "no sign-in in progress in this browser (cookies blocked or expired)")
		return
	}
	var p pendingLogin
	if !open(l.sessions.aeads, host, "login", c.Value, &p) || time.Now().Unix() >= p.Exp {
		fail(http.StatusBadRequest, "the sign-in expired; start again")
		return
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		fail(http.StatusForbidden, "the identity provider refused: "+e)
		return
	}
	if st := q.Get("state"); st == "" || st != p.State {
		fail(http.StatusForbidden, "the sign-in state does not match (possible cross-site request)")
		return
	}
	ret, err := url.Parse(p.Return)
	if err != nil || !l.cfg.AllowedReturn(ret) {
		fail(http.StatusBadRequest, "the return address is not an app served by this gateway")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), oauth2.HTTPClient, l.cfg.HTTPClient), 15*time.Second)
	defer cancel()
	conf := l.oauth
	conf.RedirectURL = l.redirectURI(r)
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.Verifier))
	if err != nil {
		fail(http.StatusForbidden, "the code was refused by the identity provider")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		fail(http.StatusForbidden, "the identity provider returned no ID token")
		return
	}
	v := *l.verifier
	v.Nonce = func(context.Context) string { return p.Nonce }
	claims, err := rp.VerifyIDToken[*oidc.IDTokenClaims](ctx, raw, &v)
	if err != nil {
		fail(http.StatusForbidden, "the ID token did not verify")
		return
	}
	id := Identity{User: claims.PreferredUsername, Source: "oidc", Issuer: claims.Issuer, Attrs: map[string][]string{"sub": {claims.Subject}}}
	if claims.Email != "" {
		id.Attrs["email"] = []string{claims.Email}
	}
	if claims.Name != "" {
		id.Attrs["name"] = []string{claims.Name}
	}
	if id.User == "" {
		id.User = claims.Email
	}
	if id.User == "" {
		id.User = claims.Subject
	}
	l.cfg.Claims.applyClaims(&id, claims.Claims)
	id.ACR = claims.AuthenticationContextClassReference
	if p.ACR != "" {
		if msg := l.stepUpDone(r, host, &p, claims, &id); msg != "" {
			fail(http.StatusForbidden, msg)
			return
		}
	}
	// The ID token's expiry is short and says nothing about how long the
	// user may stay: the session lives the proxy's own lifetime.
	if err := l.sessions.Set(w, host, id); err != nil {
		fail(http.StatusInternalServerError, err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, MaxAge: -1})
	http.Redirect(w, r, ret.String(), http.StatusFound)
}
