package proxy

import (
	"crypto/tls"
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// TestSetClientCAs swaps the client-CA set of a running server: a client
// that picks its certificate by the CA names the server advertises (as
// browsers and Go do) sends the stranger CA's certificate only once that
// CA is in the set, and is then valid; the verdict reached under the old
// set (cached) is not reused; after swapping back, the certificate is
// untrusted again; a nil set stops the listeners asking. A server built
// with device certificates but no CA yet asks for none until its first
// set, then validates against it; one built without refuses a swap.
func TestSetClientCAs(t *testing.T) {
	pki := newDevicePKI(t)
	dec := newDeviceDecider(t)
	cc := pki.config(t, certcheck.ClientPolicy{})
	h := newHarness(t, func(c *Config) { c.ClientCerts, c.Request = cc, dec })
	dest := h.origin(nil, "origin.lab")
	strangerCert := pki.certs["wrong-ca"]
	var asked bool
	getFrom := func(h *harness, dest netip.AddrPort, name string, pick bool) (int, [][]byte) {
		t.Helper()
		cl := h.client(dest, false)
		var advertised [][]byte
		asked = false
		tc := cl.Transport.(*http.Transport).TLSClientConfig
		tc.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked, advertised = true, cri.AcceptableCAs
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
	get := func(name string, pick bool) (int, [][]byte) { t.Helper(); return getFrom(h, dest, name, pick) }
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
	if err := h.srv.SetClientCAs(nil); err != nil || h.srv.ClientCertificates() || !h.srv.ClientCertsSwappable() {
		t.Fatalf("nil set: %v", err)
	}
	if code, _ := get("off", false); code != http.StatusForbidden || asked || dec.device("off") != nil {
		t.Errorf("after a nil set: %d, asked %v, %+v", code, asked, dec.device("off"))
	}

	// Built with device certificates and no CA yet: not asked, then the
	// first set makes the listeners ask and validate.
	none := *cc
	none.CAs = nil
	dec2 := newDeviceDecider(t)
	h2 := newHarness(t, func(c *Config) { c.ClientCerts, c.Request = &none, dec2 })
	dest2 := h2.origin(nil, "origin.lab")
	if h2.srv.ClientCertificates() || !h2.srv.ClientCertsSwappable() {
		t.Fatal("a server with no CA yet says it asks, or cannot take a set")
	}
	if code, _ := getFrom(h2, dest2, "none", false); code != http.StatusForbidden || asked {
		t.Errorf("no CA yet: %d, asked %v", code, asked)
	}
	if err := h2.srv.SetClientCAs(withStranger); err != nil || !h2.srv.ClientCertificates() {
		t.Fatalf("first set: %v", err)
	}
	if code, _ := getFrom(h2, dest2, "first", true); code != http.StatusOK || !asked || !dec2.device("first").Valid {
		t.Errorf("after the first set: %d, asked %v, %+v", code, asked, dec2.device("first"))
	}

	plain := newHarness(t, nil)
	if err := plain.srv.SetClientCAs(back); err != ErrNoClientCertificates || plain.srv.ClientCertificates() {
		t.Errorf("server without client CAs: %v", err)
	}
}
