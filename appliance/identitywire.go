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

// StepUpConfig is identity.step_up: one method, OIDC (acr) or SAML.
type StepUpConfig struct {
	// ACR is the OIDC authentication context asked for with acr_values
	// and required in the ID token.
	ACR string `mapstructure:"acr"`
	// SAML runs step-ups through the appliance's own SAML service
	// provider instead.
	SAML SAMLStepUpConfig `mapstructure:"saml"`
	TTL  time.Duration    `mapstructure:"ttl"`
}

// SAMLStepUpConfig is identity.step_up.saml: the IdP (its metadata URL, or
// its sign-on URL and signing certificate), the appliance's entity ID
// there, and the authentication context a step-up asks for and requires.
type SAMLStepUpConfig struct {
	IdPMetadataURL string   `mapstructure:"idp_metadata_url"`
	IdPSSOURL      string   `mapstructure:"idp_sso_url"`
	IdPCertificate string   `mapstructure:"idp_certificate"`
	IdPEntityID    string   `mapstructure:"idp_entity_id"`
	EntityID       string   `mapstructure:"entity_id"`
	AuthnContext   []string `mapstructure:"authn_context"`
	// Comparison: exact (the IdP returns one of authn_context) or
	// minimum (one of them or a standard SAML class at least as strong).
	Comparison string `mapstructure:"comparison"`
}

// set: the section asks for SAML step-up at all.
func (s *SAMLStepUpConfig) set() bool {
	return s.IdPMetadataURL != "" || s.IdPSSOURL != "" || s.IdPCertificate != "" || s.IdPEntityID != "" ||
		s.EntityID != "" || len(s.AuthnContext) > 0
}

// stepUpAvailable: require_step_up policies can be enforced.
func (c *Config) stepUpAvailable() bool {
	if c.Identity.StepUp.TTL <= 0 {
		return false
	}
	return c.Identity.StepUp.SAML.set() || c.Identity.StepUp.ACR != "" && c.Suffix.OIDC.Issuer != ""
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
	case s.ACR != "" && s.SAML.set():
		bad("step_up", "acr (OIDC) and saml are two ways of running step-ups: set one")
	case s.ACR != "" && !oidc:
		bad("step_up.acr", "needs the OpenID provider of suffix.oidc (issuer, client_id)")
	case (s.ACR != "" || s.SAML.set()) && s.TTL <= 0:
		bad("step_up.ttl", "must be positive")
	}
	if s.SAML.set() {
		s.SAML.validate(bad)
	}
	return errors.Join(errs...)
}

// validate checks identity.step_up.saml; what needs the network (the
// metadata) or the files is checked when the appliance starts.
func (s *SAMLStepUpConfig) validate(bad func(key, format string, a ...any)) {
	const at = "step_up.saml."
	switch {
	case s.IdPMetadataURL != "" && (s.IdPSSOURL != "" || s.IdPCertificate != ""):
		bad(at+"idp_metadata_url", "the metadata names the sign-on URL and certificate: set idp_metadata_url, or idp_sso_url with idp_certificate, not both")
	case s.IdPMetadataURL != "":
		if u, err := url.Parse(s.IdPMetadataURL); err != nil || u.Scheme != "https" || u.Host == "" {
			bad(at+"idp_metadata_url", "%q is not an https URL", s.IdPMetadataURL)
		}
	case s.IdPSSOURL == "" || s.IdPCertificate == "":
		bad(at+"idp_sso_url", "the IdP is named by idp_metadata_url, or by idp_sso_url with idp_certificate (PEM file)")
	default:
		if u, err := url.Parse(s.IdPSSOURL); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			bad(at+"idp_sso_url", "%q is not an https URL", s.IdPSSOURL)
		}
	}
	if u, err := url.Parse(s.EntityID); s.EntityID == "" || err != nil || u.Scheme == "" {
		bad(at+"entity_id", "%q: the appliance's entity ID at the IdP must be an absolute URI", s.EntityID)
	}
	if len(s.AuthnContext) == 0 {
		bad(at+"authn_context", "name the AuthnContextClassRefs a step-up asks for")
	}
	for i, c := range s.AuthnContext {
		if u, err := url.Parse(c); err != nil || u.Scheme == "" || strings.ContainsAny(c, " \t\r\n<>\"") {
			bad(fmt.Sprintf(at+"authn_context[%d]", i), "%q is not a URI", c)
		}
	}
	switch s.Comparison {
	case "", identity.SAMLComparisonExact:
	case identity.SAMLComparisonMinimum:
		if !identity.SAMLClassesRanked(s.AuthnContext) {
			bad(at+"comparison", "minimum needs a standard SAML class in authn_context to rank against (none of %q is one): use exact and list the classes", s.AuthnContext)
		}
	default:
		bad(at+"comparison", "%q is not one of exact, minimum", s.Comparison)
	}
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
	p.sourceUser = out.SourceUser
	if cfg.stepUpAvailable() {
		out.StepUp = identity.StepUp{ACR: ic.StepUp.ACR, TTL: ic.StepUp.TTL}
	}
	o := cfg.Suffix.OIDC
	samlStepUp := ic.StepUp.SAML.set()
	if o.Issuer == "" && !samlStepUp {
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
	if samlStepUp {
		if out.SAMLStepUp, err = samlStepUpConfig(ctx, cfg, roots, out.Sessions); err != nil {
			return nil, err
		}
	}
	if o.Issuer == "" {
		return out, nil
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
	p.loginFor = requireUser
	return out, nil
}

// samlStepUpConfig builds the appliance's SAML service provider for
// step-ups from identity.step_up.saml: the IdP from its metadata (fetched
// now, verified TLS) or from its sign-on URL and certificate file.
func samlStepUpConfig(ctx context.Context, cfg *Config, roots *x509.CertPool, sessions *identity.Sessions) (*identity.SAMLStepUp, error) {
	const at = "identity.step_up.saml."
	s := cfg.Identity.StepUp.SAML
	sc := identity.SAMLStepUpConfig{EntityID: s.EntityID, IdPSSOURL: s.IdPSSOURL, IdPEntityID: s.IdPEntityID,
		AuthnContext: s.AuthnContext, Comparison: s.Comparison, Claims: cfg.Identity.claimMap()}
	if s.IdPMetadataURL != "" {
		md, err := identity.FetchSAMLIdP(ctx, originClient(cfg, roots), s.IdPMetadataURL)
		if err != nil {
			return nil, fmt.Errorf(at+"idp_metadata_url: %w", err)
		}
		if sc.IdPEntityID != "" && sc.IdPEntityID != md.EntityID {
			return nil, fmt.Errorf(at+"idp_entity_id: %q, but the metadata at %s is of %q", sc.IdPEntityID, s.IdPMetadataURL, md.EntityID)
		}
		sc.IdPSSOURL, sc.IdPEntityID, sc.IdPCerts = md.SSOURL, md.EntityID, md.Certs
	} else {
		certs, err := readCertificates(s.IdPCertificate)
		if err != nil {
			return nil, fmt.Errorf(at+"idp_certificate: %w", err)
		}
		sc.IdPCerts = certs
	}
	sp, err := identity.NewSAMLStepUp(sc, sessions)
	if err != nil {
		return nil, fmt.Errorf("identity.step_up.saml: %w", err)
	}
	return sp, nil
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
