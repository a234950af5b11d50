package rewrite

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
)

const authnRequest = `<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="id-1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" Destination="https://login.example.com.gw.test/saml/sso" AssertionConsumerServiceURL="https://app.example.com.gw.test/saml/acs" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>https://app.example.com.gw.test/saml/metadata</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified" AllowCreate="true"/></samlp:AuthnRequest>`

const signedAuthnRequest = `<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="id-2" AssertionConsumerServiceURL="https://app.example.com.gw.test/saml/acs"><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature></samlp:AuthnRequest>`

func deflateB64(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.DefaultCompression)
	_, _ = io.WriteString(w, s)
	_ = w.Close()
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func inflateB64(t *testing.T, s string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	x, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return string(x)
}

func wantOriginRequest(t *testing.T, x string) {
	t.Helper()
	for _, s := range []string{
		`AssertionConsumerServiceURL="https://app.example.com/saml/acs"`,
		`Destination="https://login.example.com/saml/sso"`,
		`<saml:Issuer>https://app.example.com/saml/metadata</saml:Issuer>`,
	} {
		if !strings.Contains(x, s) {
			t.Errorf("mapped request lacks %s:\n%s", s, x)
		}
	}
	if strings.Contains(x, testSuffix) {
		t.Errorf("suffix left in request: %s", x)
	}
}

func TestSAMLRedirectBinding(t *testing.T) {
	m := newTestMapper()
	q := "SAMLRequest=" + url.QueryEscape(deflateB64(t, authnRequest)) + "&RelayState=abc"
	got := SAMLQueryToOrigin(q, m)
	v, err := url.ParseQuery(got)
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("RelayState") != "abc" || !strings.HasSuffix(got, "&RelayState=abc") {
		t.Errorf("other parameters changed: %s", got)
	}
	wantOriginRequest(t, inflateB64(t, v.Get("SAMLRequest")))

	signedQuery := q + "&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature=AAAA"
	if got := SAMLQueryToOrigin(signedQuery, m); got != signedQuery {
		t.Error("signed redirect query was changed")
	}
	embedded := "SAMLRequest=" + url.QueryEscape(deflateB64(t, signedAuthnRequest))
	if got := SAMLQueryToOrigin(embedded, m); got != embedded {
		t.Error("request with <ds:Signature> was changed")
	}
	for _, bad := range []string{"SAMLRequest=%%%", "SAMLRequest=bm90IGRlZmxhdGU=", "x=1"} {
		if got := SAMLQueryToOrigin(bad, m); got != bad {
			t.Errorf("undecodable %q changed to %q", bad, got)
		}
	}
}

func TestSAMLPostBinding(t *testing.T) {
	m := newTestMapper()
	val := base64.StdEncoding.EncodeToString([]byte(authnRequest))
	got := SAMLFormValueToOrigin(val, m)
	x, err := base64.StdEncoding.DecodeString(got)
	if err != nil {
		t.Fatal(err)
	}
	wantOriginRequest(t, string(x))

	signed := base64.StdEncoding.EncodeToString([]byte(signedAuthnRequest))
	if SAMLFormValueToOrigin(signed, m) != signed {
		t.Error("signed POST request was changed")
	}
	noPrefix := strings.ReplaceAll(signedAuthnRequest, "ds:", "")
	enc := base64.StdEncoding.EncodeToString([]byte(noPrefix))
	if SAMLFormValueToOrigin(enc, m) != enc {
		t.Error("signed POST request (default namespace) was changed")
	}

	// through FormBody, as the proxy sees it
	body := "SAMLRequest=" + url.QueryEscape(val) + "&RelayState=r"
	var out bytes.Buffer
	if err := FormBody(&out, strings.NewReader(body), m); err != nil {
		t.Fatal(err)
	}
	fv, err := url.ParseQuery(out.String())
	if err != nil {
		t.Fatal(err)
	}
	x, _ = base64.StdEncoding.DecodeString(fv.Get("SAMLRequest"))
	wantOriginRequest(t, string(x))
}
