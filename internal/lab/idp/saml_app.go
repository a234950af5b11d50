package idp

import (
	"crypto"
	"crypto/x509"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
)

// SAMLAppConfig configures the lab's SAML service provider app.
type SAMLAppConfig struct {
	// BaseURL is the app's configured address, e.g. "https://sp.lab"; the
	// SAML endpoints are below BaseURL+"/saml/" and the entity ID is
	// BaseURL+"/saml/metadata".
	BaseURL string
	// IdPMetadata is the identity provider's metadata document.
	IdPMetadata []byte
	// Cert and Key (RSA) sign AuthnRequests. Both nil: a self-signed pair
	// is generated.
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewSAMLApp returns the handler and SP metadata of a small web app behind
// crewjam/saml's samlsp middleware: every page requires a SAML login, then
// "/" shows "Hello <NameID>" and the groups attribute (see appPages for the
// rest). /logout starts a SAML single logout at the IdP. The IdP's response
// and assertion signatures are verified by samlsp; AuthnRequests are signed.
func NewSAMLApp(cfg SAMLAppConfig) (http.Handler, []byte, error) {
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || base.Scheme != "https" || base.Host == "" || base.Path != "" {
		return nil, nil, errorf("SAML app base URL %q: must be an https URL without path", cfg.BaseURL)
	}
	if (cfg.Cert == nil) != (cfg.Key == nil) {
		return nil, nil, errorf("SAML app %s: set both Cert and Key, or neither", cfg.BaseURL)
	}
	if cfg.Cert == nil {
		if cfg.Cert, cfg.Key, err = selfSignedSigner(base.Hostname()); err != nil {
			return nil, nil, errorf("SAML app %s: %v", cfg.BaseURL, err)
		}
	}
	idpMD, err := samlsp.ParseMetadata(cfg.IdPMetadata)
	if err != nil {
		return nil, nil, errorf("SAML app %s: IdP metadata: %v", cfg.BaseURL, err)
	}
	mw, err := samlsp.New(samlsp.Options{
		URL:         *base,
		Key:         cfg.Key,
		Certificate: cfg.Cert,
		IDPMetadata: idpMD,
		SignRequest: true,
		// HTTP-POST keeps the signature inside the AuthnRequest, so it
		// survives samlidp re-posting the request with the login form (the
		// redirect binding's query-string signature would be lost).
		Binding:                          saml.HTTPPostBinding,
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
	})
	if err != nil {
		return nil, nil, errorf("SAML app %s: %v", cfg.BaseURL, err)
	}
	pages := newAppPages(base.String(), "Lab SAML app", "/logout", samlIdentity)
	mux := http.NewServeMux()
	mux.Handle("/saml/", mw)
	mux.HandleFunc("/logout", mw.HandleStartLogout)
	pages.register(mux, mw.RequireAccount)

	// The metadata offers no encryption key: the IdP then signs without
	// encrypting, as apps behind a suffix proxy must be set up so that the
	// proxy can read (and verify) who signed in.
	md := mw.ServiceProvider.Metadata()
	for i := range md.SPSSODescriptors {
		kds := md.SPSSODescriptors[i].KeyDescriptors[:0]
		for _, kd := range md.SPSSODescriptors[i].KeyDescriptors {
			if kd.Use != "encryption" {
				kds = append(kds, kd)
			}
		}
		md.SPSSODescriptors[i].KeyDescriptors = kds
	}
	out, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, nil, errorf("SAML app %s: metadata: %v", cfg.BaseURL, err)
	}
	return mux, out, nil
}

// samlIdentity reads the NameID and the groups attribute of the session.
func samlIdentity(r *http.Request) appIdentity {
	var id appIdentity
	s := samlsp.SessionFromContext(r.Context())
	if n, ok := s.(samlsp.SessionWithNameID); ok {
		id.Name = n.GetNameID()
	}
	if a, ok := s.(samlsp.SessionWithAttributes); ok {
		id.Groups = a.GetAttributes()["groups"]
	}
	return id
}
