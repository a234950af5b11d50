package identity

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
)

// SAML step-up: the appliance is a SAML service provider of its own, used
// only to ask the IdP for a fresh, stronger sign-in. Start sends the browser
// to the IdP with an AuthnRequest carrying ForceAuthn="true" and the
// RequestedAuthnContext; the IdP posts its response to the ACS of the same
// host (SAMLACSPath), where it is verified (signature, Destination,
// Recipient, time window and replay by the SAMLObserver; InResponseTo bound
// to this browser's pending step-up, audience, issuer, an AuthnInstant after
// the request) and the returned AuthnContextClassRef must satisfy the
// requirement. The IdP's post is cross-site, so the browser's Lax session
// cookie is not sent with it: the ACS keeps the verified result in a short
// cookie and sends the browser to SAMLDonePath (a top-level GET, which does
// carry the session), where the user must be the session's user and the
// session is marked stepped up.

// The endpoints of the SAML step-up, on every host where step-up runs.
const (
	SAMLACSPath      = "/.portcullis/saml/acs"
	SAMLDonePath     = "/.portcullis/saml/done"
	SAMLMetadataPath = "/.portcullis/saml/metadata"
)

const (
	samlPendingCookie = "__Host-portcullis-saml"
	samlResultCookie  = "__Host-portcullis-saml-done"
	// samlResultTTL bounds the hop from the ACS to the done endpoint.
	samlResultTTL = 2 * time.Minute
	// maxSAMLForm bounds the ACS's form body (the response is base64).
	maxSAMLForm = 2*maxSAMLResponse + 4096
)

// The Comparison values a SAML step-up may ask with.
const (
	SAMLComparisonExact   = "exact"
	SAMLComparisonMinimum = "minimum"
)

// SAMLStepUpConfig is the appliance's SAML service provider for step-up.
type SAMLStepUpConfig struct {
	// EntityID is the service provider's entity ID (registered at the IdP).
	EntityID string
	// IdPSSOURL is the IdP's single sign-on endpoint (HTTP-Redirect).
	IdPSSOURL string
	// IdPEntityID, when set, must be the assertion's Issuer.
	IdPEntityID string
	// IdPCerts sign the IdP's responses or assertions.
	IdPCerts []*x509.Certificate
	// AuthnContext are the AuthnContextClassRefs asked for.
	AuthnContext []string
	// Comparison is SAMLComparisonExact (the returned class is one of
	// AuthnContext) or SAMLComparisonMinimum (it is one of them or a
	// standard class ranked at least as strong as the weakest of them).
	Comparison string
	// Claims maps attributes to groups and device tags.
	Claims ClaimMap
}

// SAMLStepUp runs SAML step-ups.
type SAMLStepUp struct {
	cfg      SAMLStepUpConfig
	sessions *Sessions
	observer *SAMLObserver
	idpHost  string
	accepted func(class string) bool
}

// NewSAMLStepUp checks cfg; sessions keep the step-up.
func NewSAMLStepUp(cfg SAMLStepUpConfig, sessions *Sessions) (*SAMLStepUp, error) {
	if sessions == nil {
		return nil, errors.New("saml step-up: no sessions")
	}
	if u, err := url.Parse(cfg.EntityID); err != nil || u.Scheme == "" || strings.TrimSpace(cfg.EntityID) != cfg.EntityID {
		return nil, fmt.Errorf("saml step-up: entity ID %q is not an absolute URI", cfg.EntityID)
	}
	sso, err := url.Parse(cfg.IdPSSOURL)
	if err != nil || sso.Scheme != "https" || sso.Host == "" || sso.User != nil {
		return nil, fmt.Errorf("saml step-up: the IdP's sign-on URL %q is not an https URL", cfg.IdPSSOURL)
	}
	if len(cfg.IdPCerts) == 0 {
		return nil, errors.New("saml step-up: no IdP signing certificate")
	}
	if len(cfg.AuthnContext) == 0 {
		return nil, errors.New("saml step-up: no authentication context to ask for")
	}
	for _, c := range cfg.AuthnContext {
		if u, err := url.Parse(c); err != nil || u.Scheme == "" || strings.ContainsAny(c, " \t\r\n<>\"") {
			return nil, fmt.Errorf("saml step-up: authentication context %q is not a URI", c)
		}
	}
	if cfg.Comparison == "" {
		cfg.Comparison = SAMLComparisonExact
	}
	accepted, err := acceptedClasses(cfg.AuthnContext, cfg.Comparison)
	if err != nil {
		return nil, fmt.Errorf("saml step-up: %w", err)
	}
	o := NewSAMLObserver(cfg.IdPCerts, time.Now)
	o.Claims = cfg.Claims
	return &SAMLStepUp{cfg: cfg, sessions: sessions, observer: o, idpHost: canonicalHost(sso.Host), accepted: accepted}, nil
}

// acceptedClasses is what satisfies a request for classes with comparison.
// "minimum" needs a ranking, which only the standard classes of
// saml-authn-context-2.0 have: a class outside it satisfies only itself,
// and a minimum of unranked classes is refused rather than read as exact.
func acceptedClasses(classes []string, comparison string) (func(string) bool, error) {
	listed := slices.Clone(classes)
	switch comparison {
	case SAMLComparisonExact:
		return func(c string) bool { return slices.Contains(listed, c) }, nil
	case SAMLComparisonMinimum:
		rank := saml.DefaultAuthnContextClassStrengths()
		least := 0
		for _, c := range listed {
			if r, ok := rank[c]; ok && (least == 0 || r < least) {
				least = r
			}
		}
		if least == 0 {
			return nil, fmt.Errorf("comparison minimum needs a standard SAML class to rank against, and none of %q is one: use comparison exact", listed)
		}
		return func(c string) bool {
			r, ok := rank[c]
			return slices.Contains(listed, c) || ok && r >= least
		}, nil
	}
	return nil, fmt.Errorf("comparison %q is not one of exact, minimum", comparison)
}

// IdPHost is the host of the IdP's sign-on URL.
func (s *SAMLStepUp) IdPHost() string { return s.idpHost }

// IsEndpoint reports a request to one of the SAML step-up endpoints.
func (s *SAMLStepUp) IsEndpoint(r *http.Request) bool {
	switch r.URL.Path {
	case SAMLACSPath, SAMLDonePath, SAMLMetadataPath:
		return true
	}
	return false
}

// serviceProvider is the SP as the IdP sees it on one host: its ACS is
// acsURL.
func (s *SAMLStepUp) serviceProvider(acsURL string) (*saml.ServiceProvider, error) {
	acs, err := url.Parse(acsURL)
	if err != nil {
		return nil, err
	}
	force := true
	return &saml.ServiceProvider{
		EntityID:                         s.cfg.EntityID,
		AcsURL:                           *acs,
		ForceAuthn:                       &force,
		RequestedAuthnContext:            &saml.RequestedAuthnContext{Comparison: s.cfg.Comparison, AuthnContextClassRefs: slices.Clone(s.cfg.AuthnContext)},
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
	}, nil
}

// pendingSAML is one step-up in progress in one browser on one host.
type pendingSAML struct {
	ID      string `json:"i"` // the AuthnRequest's ID
	Relay   string `json:"s"`
	ACS     string `json:"a"`
	Return  string `json:"r"`
	Started int64  `json:"t"`
	TTL     int64  `json:"l"`
	Exp     int64  `json:"x"`
}

// samlResult is a verified step-up on its way to the done endpoint.
type samlResult struct {
	Identity
	Until  int64  `json:"until"`
	Return string `json:"ret"`
	Exp    int64  `json:"exp"`
}

// Start sends the browser to the IdP for a step-up that lasts ttl; after
// it the browser comes back to returnURL (a path or https URL of r.Host).
// acsURL is this host's ACS as the IdP addresses it.
func (s *SAMLStepUp) Start(w http.ResponseWriter, r *http.Request, returnURL, acsURL string, ttl time.Duration) {
	host := hostOf(r)
	u, err := (&url.URL{Scheme: "https", Host: r.Host, Path: "/"}).Parse(returnURL)
	if err != nil || u.Scheme != "https" || u.User != nil || canonicalHost(u.Host) != host {
		http.Error(w, "step-up: the return address must be an https page of "+host, http.StatusBadRequest)
		return
	}
	if ttl <= 0 {
		http.Error(w, "step-up is not configured", http.StatusInternalServerError)
		return
	}
	sp, err := s.serviceProvider(acsURL)
	if err != nil {
		http.Error(w, "step-up could not start", http.StatusInternalServerError)
		return
	}
	req, err := sp.MakeAuthenticationRequest(s.cfg.IdPSSOURL, saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		http.Error(w, "step-up could not start", http.StatusInternalServerError)
		return
	}
	now := time.Now()
	p := pendingSAML{ID: req.ID, Relay: random(), ACS: acsURL, Return: u.String(), Started: now.Unix(),
		TTL: int64(ttl / time.Second), Exp: now.Add(loginTTL).Unix()}
	to, err := req.Redirect(p.Relay, sp)
	if err != nil {
		http.Error(w, "step-up could not start", http.StatusInternalServerError)
		return
	}
	v, err := seal(s.sessions.aeads[0], host, "saml step-up", p)
	if err != nil {
		http.Error(w, "step-up could not start", http.StatusInternalServerError)
		return
	}
	// The IdP posts back cross-site: only a SameSite=None cookie comes
	// with that post. It is sealed, bound to this host and to the one
	// request, and says nothing a third party could use.
	http.SetCookie(w, &http.Cookie{Name: samlPendingCookie, Value: v, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteNoneMode, MaxAge: int(loginTTL.Seconds())})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to.String(), http.StatusFound)
}

// ServeACS verifies the IdP's response. It reports, besides answering the
// browser, what the access log should say: "" when the step-up was
// accepted (the browser goes on to the done endpoint), else why not.
func (s *SAMLStepUp) ServeACS(w http.ResponseWriter, r *http.Request) string {
	host := hostOf(r)
	clearCookie(w, samlPendingCookie)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, http.StatusMethodNotAllowed, "The sign-in response must be posted by the identity provider.", "")
		return "saml step-up: ACS without a POST"
	}
	c, err := r.Cookie(samlPendingCookie)
	var p pendingSAML
	if err != nil || !open(s.sessions.aeads, host, "saml step-up", c.Value, &p) || time.Now().Unix() >= p.Exp {
		refuse(w, http.StatusBadRequest, "No confirmation of your sign-in is in progress in this browser, or it expired. Go back to the app and repeat the action.", "")
		return "saml step-up: no step-up in progress"
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSAMLForm)
	if err := r.ParseForm(); err != nil {
		refuse(w, http.StatusBadRequest, "The sign-in response could not be read.", p.Return)
		return "saml step-up: form: " + err.Error()
	}
	if r.PostForm.Get("RelayState") != p.Relay {
		refuse(w, http.StatusForbidden, "The sign-in response is not the one this browser asked for.", p.Return)
		return "saml step-up: RelayState does not match"
	}
	id, err := s.observer.observe(r.PostForm.Get("SAMLResponse"), p.ACS, func(resp, assertion *etree.Element, id *Identity) error {
		return s.checkStepUp(&p, resp, assertion)
	})
	if err != nil {
		refuse(w, http.StatusForbidden, "The gateway could not verify the identity provider's response, so the action stays blocked.", p.Return)
		return "saml step-up refused: " + err.Error()
	}
	if !s.accepted(id.ACR) {
		refuse(w, http.StatusForbidden, "The identity provider confirmed your sign-in with "+quoteOrNone(id.ACR)+
			", but this action needs a stronger sign-in ("+strings.Join(s.cfg.AuthnContext, " or ")+", comparison "+s.cfg.Comparison+
			"). The action stays blocked: go back and confirm your sign-in with the stronger method.", p.Return)
		return "saml step-up refused: authentication context " + quoteOrNone(id.ACR) + " does not satisfy " + s.cfg.Comparison + " " + strings.Join(s.cfg.AuthnContext, ",")
	}
	res := samlResult{Identity: id, Until: time.Now().Add(time.Duration(p.TTL) * time.Second).Unix(), Return: p.Return,
		Exp: time.Now().Add(samlResultTTL).Unix()}
	res.Identity.Expires = time.Time{}
	v, err := seal(s.sessions.aeads[0], host, "saml step-up result", res)
	if err != nil || len(v) > maxCookie {
		refuse(w, http.StatusInternalServerError, "The confirmation could not be kept (the identity is too large for a cookie).", p.Return)
		return "saml step-up: result too large"
	}
	http.SetCookie(w, &http.Cookie{Name: samlResultCookie, Value: v, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteNoneMode, MaxAge: int(samlResultTTL.Seconds())})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, SAMLDonePath, http.StatusSeeOther)
	return ""
}

// checkStepUp checks what binds a verified response to this step-up.
func (s *SAMLStepUp) checkStepUp(p *pendingSAML, resp, assertion *etree.Element) error {
	if irt := resp.SelectAttrValue("InResponseTo", ""); irt != "" && irt != p.ID {
		return errors.New("the response answers another request")
	}
	var bound bool
	for _, scd := range assertion.FindElements("./Subject/SubjectConfirmation/SubjectConfirmationData") {
		if scd.SelectAttrValue("Recipient", "") == p.ACS && scd.SelectAttrValue("InResponseTo", "") == p.ID {
			bound = true
		}
	}
	if !bound {
		return errors.New("the assertion is not confirmed for this request (InResponseTo)")
	}
	var audience bool
	for _, a := range assertion.FindElements("./Conditions/AudienceRestriction/Audience") {
		if strings.TrimSpace(a.Text()) == s.cfg.EntityID {
			audience = true
		}
	}
	if !audience {
		return fmt.Errorf("the assertion is not for the audience %s", s.cfg.EntityID)
	}
	if want := s.cfg.IdPEntityID; want != "" {
		if iss := assertion.FindElement("./Issuer"); iss == nil || strings.TrimSpace(iss.Text()) != want {
			return fmt.Errorf("the assertion is not issued by %s", want)
		}
	}
	st := assertion.FindElement("./AuthnStatement")
	if st == nil {
		return errors.New("the assertion has no AuthnStatement")
	}
	at, err := time.Parse(time.RFC3339, st.SelectAttrValue("AuthnInstant", ""))
	if err != nil {
		return errors.New("the AuthnStatement has no AuthnInstant")
	}
	if at.Add(authTimeSkew).Unix() < p.Started {
		return errors.New("the identity provider reused an earlier sign-in instead of asking again (ForceAuthn)")
	}
	return nil
}

// ServeDone marks the session stepped up: the verified result must be for
// the session's user (when there is one).
func (s *SAMLStepUp) ServeDone(w http.ResponseWriter, r *http.Request) string {
	host := hostOf(r)
	clearCookie(w, samlResultCookie)
	c, err := r.Cookie(samlResultCookie)
	var res samlResult
	if err != nil || !open(s.sessions.aeads, host, "saml step-up result", c.Value, &res) || time.Now().Unix() >= res.Exp {
		refuse(w, http.StatusBadRequest, "No confirmed sign-in is waiting in this browser. Go back to the app and repeat the action.", "")
		return "saml step-up: no result to apply"
	}
	id := res.Identity
	if prev, ok := s.sessions.Get(r, host); ok {
		if !sameUser(prev, id) {
			refuse(w, http.StatusForbidden, "The sign-in was confirmed as "+id.User+", not as "+prev.User+" who is signed in here. The action stays blocked.", res.Return)
			return "saml step-up refused: confirmed as " + id.User + ", the session is " + prev.User
		}
		// The session keeps who it was; the step-up is added to it.
		prev.ACR, prev.StepUpUntil = id.ACR, res.Until
		id = prev
	} else {
		id.StepUpUntil = res.Until
	}
	if err := s.sessions.Set(w, host, id); err != nil {
		refuse(w, http.StatusInternalServerError, "The confirmation could not be kept: "+err.Error(), res.Return)
		return "saml step-up: " + err.Error()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, res.Return, http.StatusFound)
	return ""
}

// ServeMetadata serves the service provider's metadata for this host, whose
// ACS the IdP addresses as acsURL, for the admin to register at the IdP.
func (s *SAMLStepUp) ServeMetadata(w http.ResponseWriter, r *http.Request, acsURL string) {
	sp, err := s.serviceProvider(acsURL)
	if err != nil {
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	md, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
	if err != nil {
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append([]byte(xml.Header), md...))
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteNoneMode, MaxAge: -1})
}

type refusalPage struct{ Reason, Return string }

var refusalTemplate = template.Must(template.New("step-up refused").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign-in not confirmed</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}</style></head>
<body><h1>Sign-in not confirmed</h1>
<p id="step-up-refused">{{.Reason}}</p>
{{if .Return}}<p><a id="back" href="{{.Return}}">Back to the app</a></p>{{end}}
<p>Portcullis gateway</p></body></html>
`))

// refuse answers with the refusal page.
func refuse(w http.ResponseWriter, code int, reason, ret string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(code)
	_ = refusalTemplate.Execute(w, refusalPage{Reason: reason, Return: ret})
}

// SAMLIdP is what the appliance learns about an IdP from its metadata.
type SAMLIdP struct {
	EntityID string
	SSOURL   string // HTTP-Redirect binding
	Certs    []*x509.Certificate
}

// maxIdPMetadata bounds a fetched IdP metadata document.
const maxIdPMetadata = 4 << 20

// FetchSAMLIdP reads an IdP's metadata from metadataURL: its entity ID, its
// HTTP-Redirect sign-on URL and its signing certificates.
func FetchSAMLIdP(ctx context.Context, client *http.Client, metadataURL string) (SAMLIdP, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metadataURL, nil)
	if err != nil {
		return SAMLIdP{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return SAMLIdP{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return SAMLIdP{}, fmt.Errorf("GET %s: %s", metadataURL, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxIdPMetadata+1))
	if err != nil {
		return SAMLIdP{}, err
	}
	if len(data) > maxIdPMetadata {
		return SAMLIdP{}, fmt.Errorf("metadata over %d bytes", maxIdPMetadata)
	}
	return ParseSAMLIdP(data)
}

// ParseSAMLIdP reads an IdP's metadata document.
func ParseSAMLIdP(data []byte) (SAMLIdP, error) {
	ed, err := samlsp.ParseMetadata(data)
	if err != nil {
		return SAMLIdP{}, fmt.Errorf("metadata: %w", err)
	}
	out := SAMLIdP{EntityID: ed.EntityID}
	for _, d := range ed.IDPSSODescriptors {
		for _, sso := range d.SingleSignOnServices {
			if sso.Binding == saml.HTTPRedirectBinding && out.SSOURL == "" {
				out.SSOURL = sso.Location
			}
		}
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Data), ""))
				if err != nil {
					return SAMLIdP{}, fmt.Errorf("metadata: signing certificate: %w", err)
				}
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return SAMLIdP{}, fmt.Errorf("metadata: signing certificate: %w", err)
				}
				out.Certs = append(out.Certs, c)
			}
		}
	}
	if out.SSOURL == "" {
		return SAMLIdP{}, errors.New("metadata: the IdP has no HTTP-Redirect single sign-on service")
	}
	if len(out.Certs) == 0 {
		return SAMLIdP{}, errors.New("metadata: the IdP has no signing certificate")
	}
	return out, nil
}

// SAMLClassesRanked reports whether one of classes is a standard class
// that comparison minimum can rank others against.
func SAMLClassesRanked(classes []string) bool {
	_, err := acceptedClasses(classes, SAMLComparisonMinimum)
	return err == nil
}
