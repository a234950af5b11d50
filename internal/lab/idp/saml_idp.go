package idp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"html/template"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
	"github.com/crewjam/saml/samlsp"
	"golang.org/x/crypto/bcrypt"
)

// SAMLIdPConfig configures the lab's SAML identity provider.
type SAMLIdPConfig struct {
	// BaseURL is where the IdP is served, e.g. "https://idp.lab"; its
	// metadata is at BaseURL+"/metadata" and is also its entity ID.
	BaseURL string
	// Cert and Key sign assertions. Both nil: a self-signed RSA pair is
	// generated.
	Cert *x509.Certificate
	Key  crypto.Signer
	// Users default to DefaultUsers.
	Users []User
	// SPMetadata are service providers' metadata documents.
	SPMetadata [][]byte
	// SPMetadataURLs are fetched, with HTTPClient, when an AuthnRequest
	// names a service provider not yet known (at most once every few
	// seconds per URL), so they may point at apps that start later. A
	// file:// URL is read from the local file system.
	SPMetadataURLs []string
	HTTPClient     *http.Client
}

// spRefetchInterval bounds how often an unknown entity ID triggers fetching
// the metadata URLs again.
const spRefetchInterval = 3 * time.Second

var samlLoginTemplate = template.Must(template.New("saml-login").Parse(`<!doctype html>
<html><head><title>Lab SAML IdP sign-in</title></head><body>
<h1>Sign in to the lab SAML IdP</h1>
{{if .Toast}}<p id="error" style="color:red">{{.Toast}}</p>{{end}}
<form method="post" action="{{.URL}}">
<label>Username <input id="username" name="user" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<input type="hidden" name="SAMLRequest" value="{{.SAMLRequest}}">
<input type="hidden" name="RelayState" value="{{.RelayState}}">
<button id="submit" type="submit">Sign in</button>
</form></body></html>`))

// NewSAMLIdP returns the handler and metadata of a SAML IdP (crewjam/saml's
// samlidp.Server): /metadata, /sso (HTTP-Redirect and HTTP-POST bindings),
// /slo, /logout and a login form whose fields are "user" and "password"
// (element ids "username", "password", "submit"). Assertions are signed,
// the NameID is the user's email, and the attributes are uid, mail and
// groups (multi-valued; eduPersonAffiliation carries the same values).
// samlidp's administrative REST endpoints are disabled. A request for the
// stronger context StepUpSAMLContext takes a second step (saml_stepup.go).
func NewSAMLIdP(cfg SAMLIdPConfig) (http.Handler, []byte, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, nil, errorf("SAML IdP base URL %q: must be an absolute https URL", cfg.BaseURL)
	}
	if (cfg.Cert == nil) != (cfg.Key == nil) {
		return nil, nil, errorf("SAML IdP %s: set both Cert and Key, or neither", cfg.BaseURL)
	}
	if cfg.Cert == nil {
		if cfg.Cert, cfg.Key, err = selfSignedSigner(base.Hostname()); err != nil {
			return nil, nil, errorf("SAML IdP %s: %v", cfg.BaseURL, err)
		}
	}
	users, err := newUserDirectory(cfg.Users)
	if err != nil {
		return nil, nil, err
	}
	store := newMemoryStore()
	for _, u := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.MinCost)
		if err != nil {
			return nil, nil, errorf("SAML IdP user %q: %v", u.Name, err)
		}
		su := samlidp.User{Name: u.Name, HashedPassword: hash, Groups: slices.Clone(u.Groups), Email: u.Email, CommonName: u.Name}
		if err := store.Put("/users/"+u.Name, su); err != nil {
			return nil, nil, err
		}
	}
	for i, md := range cfg.SPMetadata {
		ed, err := samlsp.ParseMetadata(md)
		if err != nil {
			return nil, nil, errorf("SAML IdP: service provider metadata #%d: %v", i, err)
		}
		svc := samlidp.Service{Name: ed.EntityID, RawMetadata: md}
		if err := store.Put("/services/sp"+strconv.Itoa(i), svc); err != nil {
			return nil, nil, err
		}
	}
	server, err := samlidp.New(samlidp.Options{
		URL:               *base,
		Key:               cfg.Key,
		Signer:            cfg.Key,
		Certificate:       cfg.Cert,
		Store:             store,
		LoginFormTemplate: samlLoginTemplate,
		AdminMiddleware: func(http.Handler) http.Handler {
			return http.NotFoundHandler() // the lab configures the IdP from code only
		},
	})
	if err != nil {
		return nil, nil, errorf("SAML IdP %s: %v", cfg.BaseURL, err)
	}
	server.IDP.AssertionMaker = groupsAssertionMaker{}
	server.IDP.SessionProvider = newStepUpSessions(server)
	if len(cfg.SPMetadataURLs) > 0 {
		client := cfg.HTTPClient
		if client == nil {
			client = http.DefaultClient
		}
		server.IDP.ServiceProviderProvider = &fetchingSPProvider{
			known: server, urls: cfg.SPMetadataURLs, client: client,
			fetched: map[string]*saml.EntityDescriptor{}, lastTry: map[string]time.Time{},
		}
	}
	md, err := metadataOf(server)
	if err != nil {
		return nil, nil, errorf("SAML IdP %s: metadata: %v", cfg.BaseURL, err)
	}
	return server, md, nil
}

// metadataOf renders the IdP's metadata the way GET /metadata serves it.
func metadataOf(h http.Handler) ([]byte, error) {
	rec := &bufferedResponse{header: http.Header{}}
	req, err := http.NewRequest(http.MethodGet, "/metadata", nil)
	if err != nil {
		return nil, err
	}
	h.ServeHTTP(rec, req)
	if rec.status != 0 && rec.status != http.StatusOK {
		return nil, errorf("GET /metadata answered %d: %s", rec.status, rec.body.String())
	}
	return rec.body.Bytes(), nil
}

type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }

// groupsAssertionMaker adds a multi-valued "groups" attribute to the
// assertion samlidp's default maker builds (uid, mail, eduPersonAffiliation…).
type groupsAssertionMaker struct{}

func (groupsAssertionMaker) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		return err
	}
	if len(session.Groups) == 0 || req.Assertion == nil {
		return nil
	}
	attr := saml.Attribute{FriendlyName: "groups", Name: "groups", NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}
	for _, g := range session.Groups {
		attr.Values = append(attr.Values, saml.AttributeValue{Type: "xs:string", Value: g})
	}
	if len(req.Assertion.AttributeStatements) == 0 {
		req.Assertion.AttributeStatements = []saml.AttributeStatement{{}}
	}
	st := &req.Assertion.AttributeStatements[0]
	st.Attributes = append(st.Attributes, attr)
	return nil
}

// fetchingSPProvider answers from the IdP's registered service providers
// and, for an unknown entity ID, fetches the configured metadata URLs.
type fetchingSPProvider struct {
	known  saml.ServiceProviderProvider
	urls   []string
	client *http.Client

	mu      sync.Mutex
	fetched map[string]*saml.EntityDescriptor // by entity ID
	lastTry map[string]time.Time              // by URL
}

func (p *fetchingSPProvider) GetServiceProvider(r *http.Request, id string) (*saml.EntityDescriptor, error) {
	if ed, err := p.known.GetServiceProvider(r, id); err == nil {
		return ed, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ed, ok := p.fetched[id]; ok {
		return ed, nil
	}
	for _, u := range p.urls {
		if time.Since(p.lastTry[u]) < spRefetchInterval {
			continue
		}
		p.lastTry[u] = time.Now()
		ed, err := p.fetch(r.Context(), u)
		if err != nil {
			continue // the app may not be up yet; the next unknown request retries
		}
		p.fetched[ed.EntityID] = ed
	}
	if ed, ok := p.fetched[id]; ok {
		return ed, nil
	}
	return nil, os.ErrNotExist
}

func (p *fetchingSPProvider) fetch(ctx context.Context, u string) (*saml.EntityDescriptor, error) {
	if path, ok := strings.CutPrefix(u, "file://"); ok {
		// A test that writes an SP's metadata once the SP serves it.
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return samlsp.ParseMetadata(data)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	return samlsp.ParseMetadata(data)
}

// selfSignedSigner makes an RSA-2048 key and a self-signed certificate for
// signing SAML messages (SAML trusts the certificate in metadata, not a CA).
func selfSignedSigner(cn string) (*x509.Certificate, crypto.Signer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Portcullis lab"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// SigningPair is a SAML signing certificate and its key.
type SigningPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewSigningPair makes a self-signed RSA-2048 signing pair named cn, for
// building an IdP twice with the same identity (see SAMLIdPConfig).
func NewSigningPair(cn string) (SigningPair, error) {
	cert, key, err := selfSignedSigner(cn)
	if err != nil {
		return SigningPair{}, errorf("signing pair for %s: %v", cn, err)
	}
	return SigningPair{Cert: cert, Key: key}, nil
}
