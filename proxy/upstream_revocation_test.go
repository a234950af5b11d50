package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// Origins whose certificates are revoked (by CRL, by OCSP, by a stapled
// response), have weak keys, or whose revocation status cannot be had are
// checked on every upstream handshake: the client gets the gateway's page
// naming why, and never the origin's body. Soft mode lets an unanswerable
// certificate through (counted), hard mode refuses it.
func TestUpstreamRevocationAndKeySizes(t *testing.T) {
	resp, err := revocationlab.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Close() })
	root, err := revocationlab.NewRoot(resp, "upstream root")
	if err != nil {
		t.Fatal(err)
	}
	ica, err := root.NewIntermediate("upstream issuing CA")
	if err != nil {
		t.Fatal(err)
	}
	deadOCSP, _ := revocationlab.UnreachableURL("/ocsp")
	deadCRL, _ := revocationlab.UnreachableURL("/crl.crl")
	issue := func(o revocationlab.CertOptions) *revocationlab.Issued {
		o.DNSNames = []string{"origin.test"}
		c, err := ica.ServerCert(o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := issue(revocationlab.CertOptions{})
	byCRL := issue(revocationlab.CertOptions{NoOCSP: true})
	byOCSP := issue(revocationlab.CertOptions{NoCRL: true})
	stapled := issue(revocationlab.CertOptions{OCSPURLs: []string{deadOCSP}, CRLURLs: []string{deadCRL}})
	unanswerable := issue(revocationlab.CertOptions{OCSPURLs: []string{deadOCSP}, CRLURLs: []string{deadCRL}})
	weak := issue(revocationlab.CertOptions{Key: revocationlab.RSA1024})
	ica.Revoke(byCRL.Cert)
	ica.Revoke(byOCSP.Cert)
	staple, err := ica.Staple(stapled.Cert, revocationlab.OCSPNormal)
	if err != nil {
		t.Fatal(err)
	}
	ica.Revoke(stapled.Cert)
	if staple, err = ica.Staple(stapled.Cert, revocationlab.OCSPNormal); err != nil {
		t.Fatal(err)
	}

	for _, mode := range []certcheck.Mode{certcheck.Soft, certcheck.Hard} {
		t.Run(mode.String(), func(t *testing.T) {
			checker, err := certcheck.New(certcheck.Config{Mode: mode, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, func(c *Config) {
				c.UpstreamRoots = root.Pool()
				c.UpstreamVerify = checker.VerifyConnection(t.Context())
			})
			serve := func(c *revocationlab.Issued, staple []byte) *http.Client {
				cert := c.TLS
				cert.OCSPStaple = staple
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv := &http.Server{Handler: lab.OriginHandler("origin"), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
				go func() { _ = srv.ServeTLS(ln, "", "") }()
				t.Cleanup(func() { _ = srv.Close() })
				return h.client(addrPortOf(ln.Addr()), false)
			}
			cases := []struct {
				name   string
				c      *revocationlab.Issued
				staple []byte
				reason string // "" = served
			}{
				{"good", good, nil, ""},
				{"revoked by CRL", byCRL, nil, "revoked"},
				{"revoked by OCSP", byOCSP, nil, "revoked"},
				{"revoked by staple", stapled, staple, "revoked"},
				{"RSA 1024", weak, nil, "too weak"},
				{"no revocation answer", unanswerable, nil, map[certcheck.Mode]string{certcheck.Hard: "could not be checked"}[mode]},
			}
			for _, tc := range cases {
				r, err := serve(tc.c, tc.staple).Get("https://origin.test/")
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				body, _ := io.ReadAll(r.Body)
				r.Body.Close()
				served := r.StatusCode == 200 && strings.Contains(string(body), "hello from origin")
				switch {
				case tc.reason == "" && !served:
					t.Errorf("%s: status %d %q, want the origin's page", tc.name, r.StatusCode, body)
				case tc.reason != "" && (served || r.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), tc.reason)):
					t.Errorf("%s: status %d %q, want 502 naming %q", tc.name, r.StatusCode, body, tc.reason)
				}
			}
			st := checker.Stats()
			if st.Revoked < 3 || st.KeyRejections < 1 {
				t.Errorf("stats %+v: want 3 revoked chains and a weak key counted", st)
			}
			if mode == certcheck.Soft && st.SoftFails < 1 || mode == certcheck.Hard && st.HardRefusals < 1 {
				t.Errorf("stats %+v: the unanswerable chain was not counted", st)
			}
		})
	}
}
