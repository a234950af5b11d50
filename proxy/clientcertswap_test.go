package proxy

import (
	"crypto/tls"
	"net/http"
	"slices"
	"testing"

	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// TestSetClientCAs swaps the client-CA set of a running server: a client
// that picks its certificate by the CA names the server advertises (as
// browsers and Go do) sends the stranger CA's certificate only once that
// CA is in the set, and is then valid; the verdict reached under the old
// set (cached) is not reused; after swapping back, the certificate is
// untrusted again. A server started without client CAs refuses a swap.
func TestSetClientCAs(t *testing.T) {
	pki := newDevicePKI(t)
	dec := newDeviceDecider(t)
	cc := pki.config(t, certcheck.ClientPolicy{})
	h := newHarness(t, func(c *Config) { c.ClientCerts, c.Request = cc, dec })
	dest := h.origin(nil, "origin.lab")
	strangerCert := pki.certs["wrong-ca"]
	get := func(name string, pick bool) (int, [][]byte) {
		t.Helper()
		cl := h.client(dest, false)
		var advertised [][]byte
		tc := cl.Transport.(*http.Transport).TLSClientConfig
		tc.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			advertised = cri.AcceptableCAs
			if !pick || cri.SupportsCertificate(strangerCert) == nil {
				return strangerCert, nil
			}
			return &tls.Certificate{}, nil
		}
		resp, err := cl.Get("https://origin.lab/?case=" + name)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, advertised
	}
	strangerName := pki.stranger.Cert.RawSubject
	if code, adv := get("before", true); code != http.StatusForbidden || slices.ContainsFunc(adv, func(b []byte) bool { return string(b) == string(strangerName) }) {
		t.Fatalf("before the swap: %d, advertised %d names incl. the stranger", code, len(adv))
	}
	if d := dec.device("before"); d.Failure != certcheck.ClientNoCertificate {
		t.Errorf("before: %+v, want no certificate (the client had none for the advertised CAs)", d)
	}
	// Presented anyway: untrusted, and cached under the old set.
	if code, _ := get("forced", false); code != http.StatusForbidden || dec.device("forced").Failure != certcheck.ClientUntrusted {
		t.Fatalf("forced before the swap: %d %+v", code, dec.device("forced"))
	}

	withStranger, err := certcheck.LoadClientCAs(append(slices.Clone(pki.caPEMs), pki.stranger.PEM), pki.crlFiles)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.SetClientCAs(withStranger); err != nil {
		t.Fatal(err)
	}
	code, adv := get("after", true)
	if code != http.StatusOK || !slices.ContainsFunc(adv, func(b []byte) bool { return string(b) == string(strangerName) }) {
		t.Fatalf("after the swap: %d, stranger advertised: %v", code, slices.ContainsFunc(adv, func(b []byte) bool { return string(b) == string(strangerName) }))
	}
	if d := dec.device("after"); !d.Valid || d.Cached {
		t.Errorf("after: %+v, want valid and not the old set's cached verdict", d)
	}

	back, err := certcheck.LoadClientCAs(pki.caPEMs, pki.crlFiles)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.SetClientCAs(back); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("back", false); code != http.StatusForbidden || dec.device("back").Failure != certcheck.ClientUntrusted {
		t.Errorf("after swapping back: %d %+v", code, dec.device("back"))
	}
	if err := h.srv.SetClientCAs(nil); err == nil {
		t.Error("a nil set was taken")
	}

	plain := newHarness(t, nil)
	if err := plain.srv.SetClientCAs(back); err != ErrNoClientCertificates || plain.srv.ClientCertificates() {
		t.Errorf("server without client CAs: %v", err)
	}
}
