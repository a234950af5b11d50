package idp

import (
	"context"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// OPClient is a relying party registered with the OP. RedirectURIs and
// PostLogoutURIs are exact, except entries of the form
// "https://*.<suffix>/<path>", which match any host below <suffix> (see
// redirectPattern). A client without a Secret is public and must use PKCE.
type OPClient struct {
	ID             string
	Secret         string
	RedirectURIs   []string
	PostLogoutURIs []string
}

// registeredClient is an OPClient with its wildcard entries parsed.
type registeredClient struct {
	id, secret                     string
	redirectURIs, postLogoutURIs   []string
	redirectPatterns, postPatterns []redirectPattern
}

func newRegisteredClient(c OPClient) (*registeredClient, error) {
	if c.ID == "" {
		return nil, errorf("OP client: empty ID")
	}
	rc := &registeredClient{id: c.ID, secret: c.Secret}
	split := func(list []string, exact *[]string, patterns *[]redirectPattern) error {
		for _, s := range list {
			if !isRedirectPattern(s) {
				*exact = append(*exact, s)
				continue
			}
			p, err := parseRedirectPattern(s)
			if err != nil {
				return errorf("OP client %q: %v", c.ID, err)
			}
			*patterns = append(*patterns, p)
		}
		return nil
	}
	if err := split(c.RedirectURIs, &rc.redirectURIs, &rc.redirectPatterns); err != nil {
		return nil, err
	}
	if err := split(c.PostLogoutURIs, &rc.postLogoutURIs, &rc.postPatterns); err != nil {
		return nil, err
	}
	if len(rc.redirectURIs)+len(rc.redirectPatterns) == 0 {
		return nil, errorf("OP client %q: no redirect URIs", c.ID)
	}
	return rc, nil
}

// requestedURIsKey carries the redirect_uri and post_logout_redirect_uri of
// the current request, so that a client can admit one that matches its
// wildcard patterns: op.Client lists URIs but has no hook for matching.
type requestedURIsKey struct{}

type requestedURIs struct{ redirect, postLogout string }

// forRequest returns the op.Client view of rc for one request: its exact
// URIs plus the requested ones that one of its patterns matches.
func (rc *registeredClient) forRequest(ctx context.Context) *opClient {
	c := &opClient{reg: rc, redirectURIs: slices.Clone(rc.redirectURIs), postLogoutURIs: slices.Clone(rc.postLogoutURIs)}
	req, _ := ctx.Value(requestedURIsKey{}).(requestedURIs)
	if req.redirect != "" && slices.ContainsFunc(rc.redirectPatterns, func(p redirectPattern) bool { return p.matches(req.redirect) }) {
		c.redirectURIs = append(c.redirectURIs, req.redirect)
	}
	if req.postLogout != "" && slices.ContainsFunc(rc.postPatterns, func(p redirectPattern) bool { return p.matches(req.postLogout) }) {
		c.postLogoutURIs = append(c.postLogoutURIs, req.postLogout)
	}
	return c
}

// opClient implements op.Client for one request.
type opClient struct {
	reg                          *registeredClient
	redirectURIs, postLogoutURIs []string
}

var _ op.Client = (*opClient)(nil)

func (c *opClient) GetID() string                       { return c.reg.id }
func (c *opClient) RedirectURIs() []string              { return c.redirectURIs }
func (c *opClient) PostLogoutRedirectURIs() []string    { return c.postLogoutURIs }
func (c *opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *opClient) AuthMethod() oidc.AuthMethod {
	if c.reg.secret == "" {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}
func (c *opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (c *opClient) LoginURL(authRequestID string) string {
	return loginPath + "?" + authRequestParam + "=" + authRequestID
}
func (c *opClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *opClient) IDTokenLifetime() time.Duration      { return time.Hour }
func (c *opClient) DevMode() bool                       { return false }
func (c *opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *opClient) IsScopeAllowed(scope string) bool     { return scope == scopeGroups }
func (c *opClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *opClient) ClockSkew() time.Duration             { return 0 }
