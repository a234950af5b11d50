package identity

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

const acs = "https://sp.lab/saml/acs"

var samlNow = time.Now().Add(time.Minute).Truncate(time.Second)

// buildResponse makes a SAML response for alice to acs, valid at samlNow.
func buildResponse(t testing.TB, mutate func(resp, assertion *etree.Element)) (*etree.Document, *etree.Element, *etree.Element) {
	t.Helper()
	ts := func(d time.Duration) string { return samlNow.Add(d).Format(time.RFC3339) }
	doc := etree.NewDocument()
	resp := doc.CreateElement("samlp:Response")
	resp.CreateAttr("xmlns:samlp", "urn:oasis:names:tc:SAML:2.0:protocol")
	resp.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	resp.CreateAttr("ID", "_r1")
	resp.CreateAttr("Version", "2.0")
	resp.CreateAttr("Destination", acs)
	resp.CreateElement("samlp:Status").CreateElement("samlp:StatusCode").CreateAttr("Value", "urn:oasis:names:tc:SAML:2.0:status:Success")
	a := resp.CreateElement("saml:Assertion")
	a.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	a.CreateAttr("ID", "_a1")
	a.CreateAttr("Version", "2.0")
	a.CreateElement("saml:Issuer").SetText("https://idp.lab/metadata")
	subj := a.CreateElement("saml:Subject")
	subj.CreateElement("saml:NameID").SetText("alice@lab.example")
	scd := subj.CreateElement("saml:SubjectConfirmation").CreateElement("saml:SubjectConfirmationData")
	scd.CreateAttr("Recipient", acs)
	scd.CreateAttr("NotOnOrAfter", ts(5*time.Minute))
	c := a.CreateElement("saml:Conditions")
	c.CreateAttr("NotBefore", ts(-time.Minute))
	c.CreateAttr("NotOnOrAfter", ts(5*time.Minute))
	attrs := a.CreateElement("saml:AttributeStatement")
	g := attrs.CreateElement("saml:Attribute")
	g.CreateAttr("Name", "groups")
	g.CreateElement("saml:AttributeValue").SetText("staff")
	g.CreateElement("saml:AttributeValue").SetText("finance")
	if mutate != nil {
		mutate(resp, a)
	}
	return doc, resp, a
}

func signAssertion(t testing.TB, ks dsig.X509KeyStore, doc *etree.Document, resp, a *etree.Element) {
	t.Helper()
	ctx := dsig.NewDefaultSigningContext(ks)
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	signed, err := ctx.SignEnveloped(a)
	if err != nil {
		t.Fatal(err)
	}
	resp.RemoveChild(a)
	resp.AddChild(signed)
}

func encode(t testing.TB, doc *etree.Document) string {
	t.Helper()
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func certOf(t testing.TB, ks dsig.X509KeyStore) *x509.Certificate {
	_, der, err := ks.GetKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSAMLObserve(t *testing.T) {
	ks := dsig.RandomKeyStoreForTest()
	obs := NewSAMLObserver([]*x509.Certificate{certOf(t, ks)}, func() time.Time { return samlNow })

	doc, resp, a := buildResponse(t, nil)
	signAssertion(t, ks, doc, resp, a)
	id, err := obs.Observe(encode(t, doc), acs)
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "alice@lab.example" || strings.Join(id.Groups, ",") != "staff,finance" || id.Source != "saml" || id.Issuer != "https://idp.lab/metadata" {
		t.Fatalf("identity %+v", id)
	}

	other := NewSAMLObserver([]*x509.Certificate{certOf(t, dsig.RandomKeyStoreForTest())}, func() time.Time { return samlNow })
	if _, err := other.Observe(encode(t, doc), acs); !errors.Is(err, ErrUnsigned) {
		t.Errorf("an untrusted signer was accepted: %v", err)
	}
	if _, err := obs.Observe(encode(t, doc), "https://other.lab/saml/acs"); err == nil {
		t.Error("a response for another ACS was accepted")
	}
	late := NewSAMLObserver([]*x509.Certificate{certOf(t, ks)}, func() time.Time { return samlNow.Add(time.Hour) })
	if _, err := late.Observe(encode(t, doc), acs); err == nil {
		t.Error("an expired assertion was accepted")
	}

	// Tampering with the signed assertion breaks the signature.
	tampered := doc.Copy()
	tampered.FindElement("//NameID").SetText("mallory@lab.example")
	if _, err := obs.Observe(encode(t, tampered), acs); !errors.Is(err, ErrUnsigned) {
		t.Errorf("a tampered assertion was accepted: %v", err)
	}

	// Signature wrapping: an unsigned assertion beside the signed one.
	wrapped := doc.Copy()
	extra := wrapped.FindElement("//Assertion").Copy()
	extra.RemoveChild(extra.FindElement("./Signature"))
	extra.FindElement("./Subject/NameID").SetText("mallory@lab.example")
	wrapped.Root().InsertChildAt(0, extra)
	if id, err := obs.Observe(encode(t, wrapped), acs); err == nil {
		t.Errorf("a wrapped response was accepted as %q", id.User)
	}

	unsigned, _, _ := buildResponse(t, nil)
	if _, err := obs.Observe(encode(t, unsigned), acs); !errors.Is(err, ErrUnsigned) {
		t.Errorf("an unsigned response was accepted: %v", err)
	}
	enc, _, _ := buildResponse(t, func(resp, a *etree.Element) {
		resp.RemoveChild(a)
		resp.CreateElement("saml:EncryptedAssertion")
	})
	if _, err := obs.Observe(encode(t, enc), acs); !errors.Is(err, ErrEncryptedAssertion) {
		t.Errorf("encrypted assertion: %v", err)
	}
	for _, junk := range []string{"", "%%%", base64.StdEncoding.EncodeToString([]byte("<notxml")), base64.StdEncoding.EncodeToString([]byte("<Other/>"))} {
		if _, err := obs.Observe(junk, acs); err == nil {
			t.Errorf("junk %q accepted", junk)
		}
	}
}

// FuzzSAMLObserve starts from a validly signed response: whatever the
// fuzzer makes of it, Observe must not panic, and anything it accepts
// must still be alice's signed assertion.
func FuzzSAMLObserve(f *testing.F) {
	ks := dsig.RandomKeyStoreForTest()
	obs := NewSAMLObserver([]*x509.Certificate{certOf(f, ks)}, func() time.Time { return samlNow })
	doc, resp, a := buildResponse(f, nil)
	signAssertion(f, ks, doc, resp, a)
	signed, _ := doc.WriteToBytes()
	unsigned, _, _ := buildResponse(f, nil)
	plain, _ := unsigned.WriteToBytes()
	f.Add(signed)
	f.Add(plain)
	f.Add([]byte("<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"))
	f.Add([]byte("<Response><Assertion><Signature/></Assertion></Response>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := obs.Observe(base64.StdEncoding.EncodeToString(b), acs)
		if err == nil && (id.User != "alice@lab.example" || strings.Join(id.Groups, ",") != "staff,finance") {
			t.Fatalf("accepted a forged identity %+v from %q", id, b)
		}
	})
}
