package idp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	scopeGroups       = "groups"
	authRequestTTL    = 10 * time.Minute
	accessTokenTTL    = time.Hour
	refreshTokenTTL   = 24 * time.Hour
	browserSessionTTL = 8 * time.Hour
)

var errNotFound = errors.New("not found")

// authRequest is one authorization request, from /authorize to the code
// exchange.
type authRequest struct {
	id        string
	created   time.Time
	req       oidc.AuthRequest
	userID    string
	authTime  time.Time
	done      bool
	code      string
	sessionID string // browser session that completed the login
	// Step-up: the password was checked for pwUser (the second step is
	// next), and the context the completed login reached.
	pwUser string
	acr    string
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string  { return a.id }
func (a *authRequest) GetACR() string { return a.acr }
func (a *authRequest) GetAMR() []string {
	if a.acr == StepUpACR {
		return []string{"pwd", "otp"}
	}
	return []string{"pwd"}
}
func (a *authRequest) GetAudience() []string  { return []string{a.req.ClientID} }
func (a *authRequest) GetAuthTime() time.Time { return a.authTime }
func (a *authRequest) GetClientID() string    { return a.req.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	method := a.req.CodeChallengeMethod
	if method == "" {
		method = oidc.CodeChallengeMethodPlain
	}
	return &oidc.CodeChallenge{Challenge: a.req.CodeChallenge, Method: method}
}
func (a *authRequest) GetNonce() string                   { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.req.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.req.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.req.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.req.Scopes }
func (a *authRequest) GetState() string                   { return a.req.State }
func (a *authRequest) GetSubject() string                 { return a.userID }
func (a *authRequest) Done() bool                         { return a.done }

type accessToken struct {
	subject, clientID string
	scopes            []string
	expires           time.Time
}

// refreshGrant is what a refresh token stands for; it is also the
// op.RefreshTokenRequest handed back to the library.
type refreshGrant struct {
	token, subject, clientID string
	scopes, audience, amr    []string
	authTime, expires        time.Time
}

var _ op.RefreshTokenRequest = (*refreshGrant)(nil)

func (g *refreshGrant) GetAMR() []string                 { return g.amr }
func (g *refreshGrant) GetAudience() []string            { return g.audience }
func (g *refreshGrant) GetAuthTime() time.Time           { return g.authTime }
func (g *refreshGrant) GetClientID() string              { return g.clientID }
func (g *refreshGrant) GetScopes() []string              { return g.scopes }
func (g *refreshGrant) GetSubject() string               { return g.subject }
func (g *refreshGrant) SetCurrentScopes(scopes []string) { g.scopes = scopes }

type browserSession struct {
	userID  string
	expires time.Time
}

// rsaKey is the OP's RS256 signing key, generated at start.
type rsaKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k rsaKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k rsaKey) Key() any                                    { return k.key }
func (k rsaKey) ID() string                                  { return k.id }

type rsaPublicKey struct{ rsaKey }

func (k rsaPublicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k rsaPublicKey) Use() string                        { return "sig" }
func (k rsaPublicKey) Key() any                           { return &k.key.PublicKey }

// opStorage is the OP's in-memory op.Storage. One mutex guards it all: the
// lab's load is a handful of logins.
type opStorage struct {
	users   userDirectory
	clients map[string]*registeredClient
	key     rsaKey
	now     func() time.Time

	mu             sync.Mutex
	authRequests   map[string]*authRequest
	codes          map[string]string // code → auth request ID
	accessTokens   map[string]*accessToken
	refreshGrants  map[string]*refreshGrant
	browserSession map[string]*browserSession
}

var _ op.Storage = (*opStorage)(nil)
var _ op.CanSetUserinfoFromRequest = (*opStorage)(nil)

func newOPStorage(users userDirectory, clients []OPClient) (*opStorage, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, errorf("generate OP signing key: %v", err)
	}
	s := &opStorage{
		users:          users,
		clients:        map[string]*registeredClient{},
		key:            rsaKey{id: randomID(8), key: key},
		now:            time.Now,
		authRequests:   map[string]*authRequest{},
		codes:          map[string]string{},
		accessTokens:   map[string]*accessToken{},
		refreshGrants:  map[string]*refreshGrant{},
		browserSession: map[string]*browserSession{},
	}
	for _, c := range clients {
		rc, err := newRegisteredClient(c)
		if err != nil {
			return nil, err
		}
		if _, dup := s.clients[rc.id]; dup {
			return nil, errorf("OP client %q is registered twice", rc.id)
		}
		s.clients[rc.id] = rc
	}
	return s, nil
}

// randomID returns n random bytes, hex encoded.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// sweepLocked drops what has expired, so a long-running lab stays small.
func (s *opStorage) sweepLocked() {
	now := s.now()
	for id, a := range s.authRequests {
		if now.Sub(a.created) > authRequestTTL {
			delete(s.authRequests, id)
			delete(s.codes, a.code)
		}
	}
	for id, t := range s.accessTokens {
		if now.After(t.expires) {
			delete(s.accessTokens, id)
		}
	}
	for id, g := range s.refreshGrants {
		if now.After(g.expires) {
			delete(s.refreshGrants, id)
		}
	}
	for id, b := range s.browserSession {
		if now.After(b.expires) {
			delete(s.browserSession, id)
		}
	}
}

func (s *opStorage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
	a := &authRequest{id: randomID(16), created: s.now(), req: *req, userID: userID}
	a.req.Scopes = slices.Clone(req.Scopes)
	s.authRequests[a.id] = a
	return a, nil
}

func (s *opStorage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[id]
	if !ok {
		return nil, errorf("auth request %q: %w", id, errNotFound)
	}
	return a, nil
}

func (s *opStorage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[s.codes[code]]
	if !ok {
		return nil, errorf("auth code: %w", errNotFound)
	}
	return a, nil
}

func (s *opStorage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[id]
	if !ok {
		return errorf("save code for auth request %q: %w", id, errNotFound)
	}
	a.code = code
	s.codes[code] = id
	return nil
}

func (s *opStorage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.authRequests[id]; ok {
		delete(s.codes, a.code)
		delete(s.authRequests, id)
	}
	return nil
}

// completeLogin marks an auth request as authenticated by userID.
func (s *opStorage) completeLogin(id, userID, sessionID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[id]
	if !ok {
		return errorf("auth request %q: %w", id, errNotFound)
	}
	a.userID, a.authTime, a.done, a.sessionID = userID, s.now(), true, sessionID
	return nil
}

func (s *opStorage) newBrowserSession(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := randomID(24)
	s.browserSession[id] = &browserSession{userID: userID, expires: s.now().Add(browserSessionTTL)}
	return id
}

func (s *opStorage) browserSessionUser(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.browserSession[id]
	if !ok || s.now().After(b.expires) {
		return "", false
	}
	return b.userID, true
}

func clientOf(req op.TokenRequest) string {
	switch r := req.(type) {
	case op.AuthRequest:
		return r.GetClientID()
	case op.RefreshTokenRequest:
		return r.GetClientID()
	}
	return ""
}

func (s *opStorage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createAccessTokenLocked(req)
}

func (s *opStorage) createAccessTokenLocked(req op.TokenRequest) (string, time.Time, error) {
	id := randomID(16)
	exp := s.now().Add(accessTokenTTL)
	s.accessTokens[id] = &accessToken{subject: req.GetSubject(), clientID: clientOf(req), scopes: slices.Clone(req.GetScopes()), expires: exp}
	return id, exp, nil
}

func (s *opStorage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if current != "" {
		if _, ok := s.refreshGrants[current]; !ok {
			return "", "", time.Time{}, errorf("refresh token: %w", errNotFound)
		}
		delete(s.refreshGrants, current) // rotate
	}
	id, exp, err := s.createAccessTokenLocked(req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	g := &refreshGrant{token: randomID(32), subject: req.GetSubject(), clientID: clientOf(req),
		scopes: slices.Clone(req.GetScopes()), audience: req.GetAudience(), expires: s.now().Add(refreshTokenTTL)}
	if idr, ok := req.(op.IDTokenRequest); ok {
		g.amr, g.authTime = idr.GetAMR(), idr.GetAuthTime()
	}
	s.refreshGrants[g.token] = g
	return id, g.token, exp, nil
}

func (s *opStorage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.refreshGrants[token]
	if !ok || s.now().After(g.expires) {
		return nil, op.ErrInvalidRefreshToken
	}
	c := *g
	c.scopes = slices.Clone(g.scopes)
	return &c, nil
}

// TerminateSession ends every browser session of the user, so the next
// authorization asks for the password again.
func (s *opStorage) TerminateSession(_ context.Context, userID, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, b := range s.browserSession {
		if b.userID == userID {
			delete(s.browserSession, id)
		}
	}
	return nil
}

func (s *opStorage) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.accessTokens[tokenOrID]; ok {
		if t.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.accessTokens, tokenOrID)
		return nil
	}
	if g, ok := s.refreshGrants[tokenOrID]; ok {
		if g.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.refreshGrants, tokenOrID)
	}
	return nil // RFC 7009: unknown tokens are not an error
}

func (s *opStorage) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.refreshGrants[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return g.subject, token, nil
}

func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *opStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{rsaPublicKey{s.key}}, nil
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	rc, ok := s.clients[id]
	if !ok {
		return nil, errorf("client %q: %w", id, errNotFound)
	}
	return rc.forRequest(ctx), nil
}

func (s *opStorage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	rc, ok := s.clients[id]
	if !ok {
		return errorf("client %q: %w", id, errNotFound)
	}
	if rc.secret == "" || !constantTimeEqual(rc.secret, secret) {
		return errorf("client %q: wrong secret", id)
	}
	return nil
}

// fillUserinfo sets the claims the lab's apps rely on: preferred_username,
// email and groups (for the "groups" scope or any profile/email request).
func (s *opStorage) fillUserinfo(ui *oidc.UserInfo, userID string, scopes []string) error {
	u, ok := s.users[userID]
	if !ok {
		return errorf("user %q: %w", userID, errNotFound)
	}
	ui.Subject = u.Name
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			ui.PreferredUsername = u.Name
			ui.Name = u.Name
			for k, v := range u.Claims {
				ui.AppendClaims(k, v)
			}
		case oidc.ScopeEmail:
			ui.Email, ui.EmailVerified = u.Email, true
		case scopeGroups:
			ui.AppendClaims("groups", slices.Clone(u.Groups))
		}
	}
	return nil
}

func (s *opStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil // deprecated by the library; SetUserinfoFromRequest does the work
}

func (s *opStorage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.fillUserinfo(ui, req.GetSubject(), scopes)
}

func (s *opStorage) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	t, ok := s.accessTokens[tokenID]
	s.mu.Unlock()
	if !ok || s.now().After(t.expires) || t.subject != subject {
		return errorf("access token: %w", errNotFound)
	}
	return s.fillUserinfo(ui, subject, t.scopes)
}

func (s *opStorage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	s.mu.Lock()
	t, ok := s.accessTokens[tokenID]
	s.mu.Unlock()
	if !ok || s.now().After(t.expires) || t.subject != subject {
		return errorf("access token: %w", errNotFound)
	}
	ui := new(oidc.UserInfo)
	if err := s.fillUserinfo(ui, subject, t.scopes); err != nil {
		return err
	}
	resp.SetUserInfo(ui)
	resp.Active, resp.ClientID, resp.Scope = true, t.clientID, t.scopes
	resp.Expiration = oidc.FromTime(t.expires)
	return nil
}

func (s *opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *opStorage) GetKeyByIDAndClientID(_ context.Context, _, clientID string) (*jose.JSONWebKey, error) {
	return nil, errorf("client %q: JWT profile keys are not supported", clientID)
}

func (s *opStorage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return scopes, nil
}

func (s *opStorage) Health(context.Context) error { return nil }
