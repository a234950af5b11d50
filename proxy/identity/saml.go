package identity

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// maxSAMLResponse bounds a decoded SAML response the proxy parses.
const maxSAMLResponse = 1 << 20

// clockSkew is how much the IdP's and the appliance's clocks may differ.
const clockSkew = 2 * time.Minute

// groupAttributes are the attribute names IdPs use for group membership.
var groupAttributes = []string{"groups", "group", "memberOf",
	"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "eduPersonAffiliation"}

// SAMLObserver verifies SAML responses posted to an app and extracts who
// the user is. Only signed content is read: the element the signature
// covers is what the identity comes from, so a response with extra
// unsigned assertions wrapped around a signed one cannot inject a user.
type SAMLObserver struct {
	certs []*x509.Certificate
	now   func() time.Time
}

// NewSAMLObserver trusts the given IdP signing certificates.
func NewSAMLObserver(idpCerts []*x509.Certificate, now func() time.Time) *SAMLObserver {
	if now == nil {
		now = time.Now
	}
	return &SAMLObserver{certs: idpCerts, now: now}
}

// Observe verifies a base64 SAMLResponse posted to acsURL (the app's
// unsuffixed assertion consumer URL) and returns the identity in it.
func (o *SAMLObserver) Observe(b64, acsURL string) (Identity, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return Identity{}, fmt.Errorf("SAMLResponse is not base64: %w", err)
	}
	if len(raw) > maxSAMLResponse {
		return Identity{}, fmt.Errorf("SAMLResponse of %d bytes is over the %d limit", len(raw), maxSAMLResponse)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return Identity{}, fmt.Errorf("SAMLResponse is not XML: %w", err)
	}
	resp := doc.Root()
	if resp == nil || resp.Tag != "Response" {
		return Identity{}, errors.New("SAMLResponse: the root element is not a Response")
	}
	if len(resp.FindElements("./EncryptedAssertion")) > 0 {
		return Identity{}, ErrEncryptedAssertion
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: o.certs})
	vc.Clock = dsig.NewFakeClockAt(o.now())

	var assertion *etree.Element
	if resp.FindElement("./Signature") != nil {
		signed, err := vc.Validate(resp)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %v", ErrUnsigned, err)
		}
		resp = signed
		as := resp.FindElements("./Assertion")
		if len(as) != 1 {
			return Identity{}, fmt.Errorf("signed SAML response holds %d assertions, want 1", len(as))
		}
		assertion = as[0]
	} else {
		as := resp.FindElements("./Assertion")
		if len(as) != 1 {
			return Identity{}, fmt.Errorf("SAML response holds %d assertions, want 1", len(as))
		}
		if as[0].FindElement("./Signature") == nil {
			return Identity{}, ErrUnsigned
		}
		signed, err := vc.Validate(as[0])
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %v", ErrUnsigned, err)
		}
		assertion = signed
	}
	if st := resp.FindElement("./Status/StatusCode"); st == nil || !strings.HasSuffix(st.SelectAttrValue("Value", ""), ":Success") {
		return Identity{}, errors.New("SAML response status is not Success")
	}
	if d := resp.SelectAttrValue("Destination", ""); d != "" && d != acsURL {
		return Identity{}, fmt.Errorf("SAML response is for %s, not %s", d, acsURL)
	}
	now := o.now()
	if c := assertion.FindElement("./Conditions"); c != nil {
		if err := window(c, now); err != nil {
			return Identity{}, err
		}
	}
	var recipientOK bool
	for _, scd := range assertion.FindElements("./Subject/SubjectConfirmation/SubjectConfirmationData") {
		if err := window(scd, now); err != nil {
			return Identity{}, err
		}
		if r := scd.SelectAttrValue("Recipient", ""); r == acsURL {
			recipientOK = true
		}
	}
	if !recipientOK {
		return Identity{}, fmt.Errorf("SAML assertion is not addressed to %s", acsURL)
	}
	nameID := assertion.FindElement("./Subject/NameID")
	if nameID == nil || strings.TrimSpace(nameID.Text()) == "" {
		return Identity{}, errors.New("SAML assertion names no subject")
	}
	id := Identity{User: strings.TrimSpace(nameID.Text()), Source: "saml", Attrs: map[string][]string{}}
	if iss := assertion.FindElement("./Issuer"); iss != nil {
		id.Issuer = strings.TrimSpace(iss.Text())
	}
	for _, a := range assertion.FindElements("./AttributeStatement/Attribute") {
		name := a.SelectAttrValue("Name", "")
		for _, v := range a.FindElements("./AttributeValue") {
			id.Attrs[name] = append(id.Attrs[name], strings.TrimSpace(v.Text()))
		}
	}
	for _, g := range groupAttributes {
		for _, v := range id.Attrs[g] {
			if !slices.Contains(id.Groups, v) {
				id.Groups = append(id.Groups, v)
			}
		}
	}
	if s := assertion.FindElement("./AuthnStatement"); s != nil {
		if t, err := time.Parse(time.RFC3339, s.SelectAttrValue("SessionNotOnOrAfter", "")); err == nil {
			id.Expires = t
		}
	}
	return id, nil
}

// window checks NotBefore / NotOnOrAfter attributes of e against now.
func window(e *etree.Element, now time.Time) error {
	if v := e.SelectAttrValue("NotBefore", ""); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil || now.Add(clockSkew).Before(t) {
			return fmt.Errorf("SAML %s is not valid before %s", e.Tag, v)
		}
	}
	if v := e.SelectAttrValue("NotOnOrAfter", ""); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil || !now.Add(-clockSkew).Before(t) {
			return fmt.Errorf("SAML %s expired at %s", e.Tag, v)
		}
	}
	return nil
}
