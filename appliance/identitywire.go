package appliance

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/proxy/identity"
)

// IdentityConfig is the `identity:` section: who the user is in
// transparent mode, what the IdP's claims say about groups and devices (in
// both modes), and step-up authentication.
//
// The OpenID provider is the one of suffix.oidc (issuer, client, secret,
// scopes): one client of the appliance at the IdP serves both modes. Its
// redirect URIs are https://<host>/.portcullis/oidc/callback for every
// intercepted host in require_user_for (and every app a step-up policy
// covers), beside the suffix's https://*.<suffix>/... pattern.
type IdentityConfig struct {
	// RequireUserFor lists the apps (catalog ids) or hosts (domain patterns)
	// whose browsers must sign in in transparent mode. Empty: none.
	RequireUserFor []string `mapstructure:"require_user_for"`
	// SourceUsers name the users of native clients by address.
	SourceUsers []SourceUserConfig `mapstructure:"source_users"`
	// GroupsClaim is the claim (OIDC) or attribute (SAML) with the groups.
	GroupsClaim string `mapstructure:"groups_claim"`
	// DeviceClaims maps a claim or attribute to the device tag it gives
	// when true.
	DeviceClaims map[string]string `mapstructure:"device_claims"`
	StepUp       StepUpConfig      `mapstructure:"step_up"`
}

// SourceUserConfig is one entry of identity.source_users.
type SourceUserConfig struct {
	Ranges []string `mapstructure:"ranges"`
	User   string   `mapstructure:"user"`
	Groups []string `mapstructure:"groups"`
}

// StepUpConfig is identity.step_up.
type StepUpConfig struct {
	// ACR is the OIDC authentication context asked for with acr_values
	// and required in the ID token.
	ACR string `mapstructure:"acr"`
	// SAMLContext would be the SAML RequestedAuthnContext; the appliance
	// has no SAML service provider of its own yet, so it is refused.
	SAMLContext string        `mapstructure:"saml_context"`
	TTL         time.Duration `mapstructure:"ttl"`
}

// stepUpAvailable: require_step_up policies can be enforced.
func (c *Config) stepUpAvailable() bool {
	return c.Identity.StepUp.ACR != "" && c.Suffix.OIDC.Issuer != ""
}

func (c *IdentityConfig) validate(cfg *Config) error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("identity."+key+": "+format, a...))
	}
	oidc := cfg.Suffix.OIDC.Issuer != ""
	if len(c.RequireUserFor) > 0 && !oidc {
		bad("require_user_for", "needs the OpenID provider of suffix.oidc (issuer, client_id)")
	}
	for i, e := range c.RequireUserFor {
		if strings.TrimSpace(e) == "" {
			bad(fmt.Sprintf("require_user_for[%d]", i), "empty entry")
		}
	}
	for i, su := range c.SourceUsers {
		if su.User == "" || len(su.Ranges) == 0 {
			bad(fmt.Sprintf("source_users[%d]", i), "needs ranges and a user")
		}
		for j, r := range su.Ranges {
			if _, err := parseRange(r); err != nil {
				bad(fmt.Sprintf("source_users[%d].ranges[%d]", i, j), "%v", err)
			}
		}
	}
	for claim, tag := range c.DeviceClaims {
		if claim == "" || strings.TrimSpace(tag) == "" {
			bad("device_claims", "%q: claim and device tag must both be named", claim)
		}
	}
	s := c.StepUp
	switch {
	case s.SAMLContext != "":
		bad("step_up.saml_context", "SAML step-up needs a SAML service provider of the appliance, which it does not have yet: use step_up.acr with the OpenID provider of suffix.oidc")
	case s.ACR != "" && !oidc:
		bad("step_up.acr", "needs the OpenID provider of suffix.oidc (issuer, client_id)")
	case s.ACR != "" && s.TTL <= 0:
		bad("step_up.ttl", "must be positive")
	}
	return errors.Join(errs...)
}

func parseRange(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a prefix", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// claimMap is how the IdP's claims become groups and device tags.
func (c *IdentityConfig) claimMap() identity.ClaimMap {
	return identity.ClaimMap{GroupsClaim: c.GroupsClaim, DeviceClaims: c.DeviceClaims}
}

// sourceUsers looks a native client's address up in identity.source_users
// (first match wins).
func (c *IdentityConfig) sourceUsers() func(netip.Addr) (identity.Identity, bool) {
	if len(c.SourceUsers) == 0 {
		return nil
	}
	type entry struct {
		prefixes []netip.Prefix
		id       identity.Identity
	}
	var entries []entry
	for _, su := range c.SourceUsers {
		e := entry{id: identity.Identity{User: su.User, Groups: slices.Clone(su.Groups), Source: "source_ip"}}
		for _, r := range su.Ranges {
			p, _ := parseRange(r) // checked by validate
			e.prefixes = append(e.prefixes, p)
		}
		entries = append(entries, e)
	}
	return func(a netip.Addr) (identity.Identity, bool) {
		a = a.Unmap()
		for _, e := range entries {
			for _, p := range e.prefixes {
				if p.Contains(a) {
					return e.id, true
				}
			}
		}
		return identity.Identity{}, false
	}
}

// requireUser reports whether the app at host needs the user: its catalog
// id or one of its hosts is in identity.require_user_for.
func (p *policyEnforcer) requireUser(list []string) (func(string) bool, error) {
	var ids, hosts []string
	for _, e := range list {
		if strings.ContainsAny(e, ".*") {
			hosts = append(hosts, e)
		} else {
			ids = append(ids, e)
		}
	}
	set, err := policy.NewDomainSet(hosts)
	if err != nil {
		return nil, fmt.Errorf("identity.require_user_for: %w", err)
	}
	return func(host string) bool {
		if set.Match(host) {
			return true
		}
		if len(ids) == 0 {
			return false
		}
		e := p.engine.Load()
		if e == nil {
			if e, err = catalogOnly(); err != nil {
				return false
			}
		}
		app := e.App(host)
		return app != nil && slices.Contains(ids, app.ID)
	}, nil
}

// identityConfig builds the proxy's transparent identity and step-up; nil
// when the section asks for nothing.
func identityConfig(ctx context.Context, cfg *Config, p *policyEnforcer, roots *x509.CertPool) (*proxy.IdentityConfig, error) {
	ic := &cfg.Identity
	if len(ic.RequireUserFor) == 0 && len(ic.SourceUsers) == 0 && !cfg.stepUpAvailable() {
		return nil, nil
	}
	out := &proxy.IdentityConfig{SourceUser: ic.sourceUsers()}
	if cfg.stepUpAvailable() {
		out.StepUp = identity.StepUp{ACR: ic.StepUp.ACR, TTL: ic.StepUp.TTL}
	}
	o := cfg.Suffix.OIDC
	if o.Issuer == "" {
		return out, nil
	}
	secrets, err := sessionSecrets(cfg)
	if err != nil {
		return nil, err
	}
	if out.Sessions, err = identity.NewSessions(secrets, cfg.Suffix.SessionTTL); err != nil {
		return nil, fmt.Errorf("identity sessions: %w", err)
	}
	if out.RequireUser, err = p.requireUser(ic.RequireUserFor); err != nil {
		return nil, err
	}
	secret := ""
	if o.ClientSecretFile != "" {
		b, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("suffix.oidc.client_secret_file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	requireUser := out.RequireUser
	out.Login, err = identity.NewOIDCLogin(ctx, identity.OIDCConfig{
		Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: secret, Scopes: o.Scopes,
		HTTPClient: originClient(cfg, roots), Claims: ic.claimMap(),
		// Back only to an intercepted app of this gateway.
		AllowedReturn: func(u *url.URL) bool {
			return u.Scheme == "https" && u.User == nil && (requireUser(u.Hostname()) || p.onboarded(u.Hostname()))
		},
	}, out.Sessions)
	if err != nil {
		return nil, fmt.Errorf("identity (suffix.oidc provider): %w", err)
	}
	return out, nil
}

// userRecheck is the access decision of a request on an intercepted TLS
// connection once the user is known (the connection-level decision saw an
// anonymous client): a policy for the user's groups or device tags from
// the IdP's claims decides here.
func (p *policyEnforcer) userRecheck(e *policy.Engine, ci *proxy.ConnInfo, r *http.Request) proxy.RequestDecision {
	subj := requestSubject(ci, r)
	a := e.Access(&policy.AccessRequest{Subject: subj, Host: ci.ServerName()})
	if a.Action != policy.ActionBlock {
		return proxy.RequestDecision{}
	}
	if a.Alert {
		p.alerts.alertsOf(a.Matches, a.App, subj, ci.ServerName(), "access")
	}
	msg := a.Message
	if msg == "" {
		msg = "Access to this app is not allowed by your organisation's policy."
	}
	return proxy.RequestDecision{Block: true, Reason: "policy " + winnerID(a.Matches, a.Winner) + " (user " + subj.User + ")", Message: msg}
}
