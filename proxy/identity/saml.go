package identity

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// maxSAMLResponse bounds a decoded SAML response the proxy parses.
const maxSAMLResponse = 1 << 20

// defaultAssertionLife is how long an assertion without NotOnOrAfter is
// remembered for the replay check.
const defaultAssertionLife = 10 * time.Minute

// clockSkew is how much the IdP's and the appliance's clocks may differ.
const clockSkew = 2 * time.Minute

// groupAttributes are the attribute names IdPs use for group membership.
var groupAttributes = []string{"groups", "group", "memberOf",
	"http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "eduPersonAffiliation"}

// SAMLObserver verifies SAML responses posted to an app and extracts who
// the user is. Only signed content is read: the element the signature
// covers is what the identity comes from, so a response with extra
// unsigned assertions wrapped around a signed one cannot inject a user.
//
// Each verified assertion is remembered until it expires and a second
// observation of it fails with ErrReplayed: a captured SAMLResponse
// posted again does not give its holder a proxy session. The memory is
// per observer (per appliance); in a fleet the app's own replay check
// remains the backstop.
type SAMLObserver struct {
	certs []*x509.Certificate
	now   func() time.Time
	// Claims maps attributes to groups and device tags (set before use).
	Claims ClaimMap

	mu   sync.Mutex
	seen map[string]time.Time // issuer + "\x00" + assertion ID -> forget after
}

// maxSeenAssertions bounds the replay memory. Only assertions that passed
// signature verification are remembered, so filling it takes that many
// genuine logins within one assertion lifetime.
const maxSeenAssertions = 1 << 16

// rememberOnce records key until expiry; false if it was already there or
// the memory is full of unexpired assertions.
func (o *SAMLObserver) rememberOnce(key string, now, expiry time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if exp, ok := o.seen[key]; ok && now.Before(exp) {
		return ErrReplayed
	}
	if len(o.seen) >= maxSeenAssertions {
		for k, exp := range o.seen {
			if !now.Before(exp) {
				delete(o.seen, k)
			}
		}
		if len(o.seen) >= maxSeenAssertions {
			return errors.New("SAML replay memory is full; refusing to learn identities until assertions expire")
		}
	}
	o.seen[key] = expiry
	return nil
}

// NewSAMLObserver trusts the given IdP signing certificates.
func NewSAMLObserver(idpCerts []*x509.Certificate, now func() time.Time) *SAMLObserver {
	if now == nil {
		now = time.Now
	}
	return &SAMLObserver{certs: idpCerts, now: now, seen: map[string]time.Time{}}
}

// Observe verifies a base64 SAMLResponse posted to acsURL (the app's
// unsuffixed assertion consumer URL) and returns the identity in it.
func (o *SAMLObserver) Observe(b64, acsURL string) (Identity, error) {
	return o.observe(b64, acsURL, nil)
}

// observe is Observe with more checks of the verified response and
// assertion (the signed elements, never the raw document) by extra, run
// before the assertion is remembered.
func (o *SAMLObserver) observe(b64, acsURL string, extra func(resp, assertion *etree.Element, id *Identity) error) (Identity, error) {
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
	// Remember the assertion at least as long as any window we accept it
	// in, plus the skew we allow.
	forget := now.Add(defaultAssertionLife)
	later := func(e *etree.Element) {
		if t, err := time.Parse(time.RFC3339, e.SelectAttrValue("NotOnOrAfter", "")); err == nil && t.After(forget) {
			forget = t
		}
	}
	if c := assertion.FindElement("./Conditions"); c != nil {
		if err := window(c, now); err != nil {
			return Identity{}, err
		}
		later(c)
	}
	var recipientOK bool
	for _, scd := range assertion.FindElements("./Subject/SubjectConfirmation/SubjectConfirmationData") {
		if err := window(scd, now); err != nil {
			return Identity{}, err
		}
		later(scd)
		if r := scd.SelectAttrValue("Recipient", ""); r == acsURL {
			recipientOK = true
		}
	}
	if !recipientOK {
		return Identity{}, fmt.Errorf("SAML assertion is not addressed to %s", acsURL)
	}
	if assertion.FindElement("./Subject/EncryptedID") != nil {
		return Identity{}, ErrEncryptedAssertion
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
		// Attributes are often named by OID with a readable FriendlyName
		// (urn:oid:0.9.2342.19200300.100.1.3 is "mail"); keep both keys.
		names := []string{a.SelectAttrValue("Name", "")}
		if fn := a.SelectAttrValue("FriendlyName", ""); fn != "" && fn != names[0] {
			names = append(names, fn)
		}
		for _, v := range a.FindElements("./AttributeValue") {
			for _, name := range names {
				id.Attrs[name] = append(id.Attrs[name], strings.TrimSpace(v.Text()))
			}
		}
	}
	for _, g := range groupAttributes {
		for _, v := range id.Attrs[g] {
			if !slices.Contains(id.Groups, v) {
				id.Groups = append(id.Groups, v)
			}
		}
	}
	o.Claims.applyAttrs(&id)
	if s := assertion.FindElement("./AuthnStatement"); s != nil {
		if t, err := time.Parse(time.RFC3339, s.SelectAttrValue("SessionNotOnOrAfter", "")); err == nil {
			id.Expires = t
		}
		if ref := s.FindElement("./AuthnContext/AuthnContextClassRef"); ref != nil {
			id.ACR = strings.TrimSpace(ref.Text())
		}
	}
	aid := assertion.SelectAttrValue("ID", "")
	if aid == "" {
		return Identity{}, errors.New("SAML assertion has no ID")
	}
	if extra != nil {
		if err := extra(resp, assertion, &id); err != nil {
			return Identity{}, err
		}
	}
	if err := o.rememberOnce(id.Issuer+"\x00"+aid, now, forget.Add(clockSkew)); err != nil {
		return Identity{}, err
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
