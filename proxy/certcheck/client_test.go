package certcheck_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// clientServer is a real TLS server that asks for a client certificate
// (tls.RequestClientCert, as the proxy will) and answers with ValidClient's
// verdict as JSON. calls counts requests that reached the handler.
type clientServer struct {
	url   string
	roots *x509.CertPool
	calls atomic.Int64
}

func newClientServer(t testing.TB, p *pki, c *certcheck.Checker, cas *certcheck.ClientCAs, pol certcheck.ClientPolicy) *clientServer {
	t.Helper()
	cs := &clientServer{roots: p.root.Pool()}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.calls.Add(1)
		res := c.ValidClient(r.Context(), cas, r.TLS.PeerCertificates, pol)
		json.NewEncoder(w).Encode(res)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{p.server(t, revocationlab.CertOptions{}).TLS},
		ClientAuth:   tls.RequestClientCert,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected here
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cs.url = srv.URL
	return cs
}

// present connects with cert as the client certificate (none when
// cert.Certificate is empty) and returns the server's verdict.
func (cs *clientServer) present(t testing.TB, cert tls.Certificate) (certcheck.ClientResult, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: cs.roots,
		// Sent whatever it is: the server must cope with any chain.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(cs.url)
	if err != nil {
		return certcheck.ClientResult{}, err
	}
	defer resp.Body.Close()
	var res certcheck.ClientResult
	err = json.NewDecoder(resp.Body).Decode(&res)
	return res, err
}

func loadCAs(t testing.TB, bundles [][]byte, crls ...[]byte) *certcheck.ClientCAs {
	t.Helper()
	cas, err := certcheck.LoadClientCAs(bundles, crls)
	if err != nil {
		t.Fatal(err)
	}
	return cas
}

func clientCert(t testing.TB, ca *revocationlab.CA, o revocationlab.CertOptions) *revocationlab.Issued {
	t.Helper()
	is, err := ca.ClientCert("alice@example.test", o)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func wantClient(t *testing.T, res certcheck.ClientResult, err error, f certcheck.ClientFailure) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != (f == certcheck.ClientOK) || res.Failure != f {
		t.Fatalf("result %+v, want failure %q", res, f)
	}
	if !res.Valid && (res.Reason == "" || res.Subject != "" || res.SANs != nil) {
		t.Errorf("invalid result %+v: want a reason and no identity", res)
	}
}

func TestValidClient(t *testing.T) {
	p := newPKI(t)
	both := [][]byte{p.root.PEM, p.inter.PEM}
	checker := newChecker(t, certcheck.Config{})
	srv := newClientServer(t, p, checker, loadCAs(t, both), certcheck.ClientPolicy{CheckCRL: true})

	t.Run("valid", func(t *testing.T) {
		res, err := srv.present(t, clientCert(t, p.inter, revocationlab.CertOptions{}).TLS)
		wantClient(t, res, err, certcheck.ClientOK)
		if !strings.Contains(res.Subject, "CN=alice@example.test") || len(res.SANs) != 1 || res.SANs[0] != "alice@example.test" || res.SoftFailed {
			t.Errorf("result %+v", res)
		}
	})
	t.Run("intermediate from the bundle, leaf alone presented", func(t *testing.T) {
		is := clientCert(t, p.inter, revocationlab.CertOptions{})
		res, err := srv.present(t, tls.Certificate{Certificate: [][]byte{is.Cert.Raw}, PrivateKey: is.Key})
		wantClient(t, res, err, certcheck.ClientOK)
	})
	t.Run("intermediate from the presented chain, root-only bundle", func(t *testing.T) {
		srv := newClientServer(t, p, checker, loadCAs(t, [][]byte{p.root.PEM}), certcheck.ClientPolicy{})
		res, err := srv.present(t, clientCert(t, p.inter, revocationlab.CertOptions{}).TLS)
		wantClient(t, res, err, certcheck.ClientOK)
	})
	t.Run("any EKU", func(t *testing.T) {
		res, err := srv.present(t, clientCert(t, p.inter, revocationlab.CertOptions{Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}).TLS)
		wantClient(t, res, err, certcheck.ClientOK)
	})
	t.Run("expired", func(t *testing.T) {
		is := clientCert(t, p.inter, revocationlab.CertOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
		res, err := srv.present(t, is.TLS)
		wantClient(t, res, err, certcheck.ClientExpired)
	})
	t.Run("not yet valid", func(t *testing.T) {
		is := clientCert(t, p.inter, revocationlab.CertOptions{NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(2 * time.Hour)})
		res, err := srv.present(t, is.TLS)
		wantClient(t, res, err, certcheck.ClientExpired)
	})
	t.Run("wrong CA", func(t *testing.T) {
		other, err := revocationlab.NewRoot(p.r, "Other Root")
		if err != nil {
			t.Fatal(err)
		}
		res, err := srv.present(t, clientCert(t, other, revocationlab.CertOptions{}).TLS)
		wantClient(t, res, err, certcheck.ClientUntrusted)
	})
	t.Run("serverAuth only", func(t *testing.T) {
		res, err := srv.present(t, clientCert(t, p.inter, revocationlab.CertOptions{Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}).TLS)
		wantClient(t, res, err, certcheck.ClientWrongUsage)
	})
	t.Run("no EKU at all", func(t *testing.T) {
		res, err := srv.present(t, clientCert(t, p.inter, revocationlab.CertOptions{NoEKU: true}).TLS)
		wantClient(t, res, err, certcheck.ClientWrongUsage)
	})
	t.Run("RSA 1024", func(t *testing.T) {
		res, err := srv.present(t, clientCert(t, p.inter, revocationlab.CertOptions{Key: revocationlab.RSA1024}).TLS)
		wantClient(t, res, err, certcheck.ClientWeakKey)
	})
	t.Run("revoked per CDP", func(t *testing.T) {
		// A checker of its own: the shared one cached the CRL before this
		// revocation, correctly, until the CRL's nextUpdate.
		srv := newClientServer(t, p, newChecker(t, certcheck.Config{}), loadCAs(t, both), certcheck.ClientPolicy{CheckCRL: true})
		is := clientCert(t, p.inter, revocationlab.CertOptions{})
		p.inter.Revoke(is.Cert)
		before := p.inter.CRLRequests()
		for range 2 {
			res, err := srv.present(t, is.TLS)
			wantClient(t, res, err, certcheck.ClientRevoked)
		}
		if n := p.inter.CRLRequests() - before; n > 1 {
			t.Errorf("CRL downloaded %d times for two checks, want at most 1 (cached)", n)
		}
	})
	t.Run("no certificate", func(t *testing.T) {
		res, err := srv.present(t, tls.Certificate{})
		wantClient(t, res, err, certcheck.ClientNoCertificate)
	})
	t.Run("50 certificates", func(t *testing.T) {
		is := clientCert(t, p.inter, revocationlab.CertOptions{})
		chain := tls.Certificate{Certificate: [][]byte{is.Cert.Raw}, PrivateKey: is.Key}
		for range 49 {
			chain.Certificate = append(chain.Certificate, p.inter.Cert.Raw)
		}
		before := checker.Stats().ClientChainsRejected
		res, err := srv.present(t, chain)
		wantClient(t, res, err, certcheck.ClientTooManyCerts)
		if checker.Stats().ClientChainsRejected != before+1 {
			t.Errorf("oversized chain not counted: %+v", checker.Stats())
		}
	})
	t.Run("random bytes as certificate", func(t *testing.T) {
		key, err := revocationlab.NewKey(revocationlab.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 600)
		rand.Read(junk)
		before := srv.calls.Load()
		// crypto/tls refuses what it cannot parse before any handler runs.
		if _, err := srv.present(t, tls.Certificate{Certificate: [][]byte{junk}, PrivateKey: key}); err == nil {
			t.Fatal("handshake with an unparsable certificate succeeded")
		}
		if srv.calls.Load() != before {
			t.Error("handler ran for an unparsable certificate")
		}
	})
}

func TestValidClientGarbageDirect(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	cas := loadCAs(t, [][]byte{p.root.PEM, p.inter.PEM})
	good := clientCert(t, p.inter, revocationlab.CertOptions{})
	fifty := make([]*x509.Certificate, 50)
	for i := range fifty {
		fifty[i] = good.Cert
	}
	cases := []struct {
		name string
		cas  *certcheck.ClientCAs
		peer []*x509.Certificate
		want certcheck.ClientFailure
	}{
		{"nil chain", cas, nil, certcheck.ClientNoCertificate},
		{"empty chain", cas, []*x509.Certificate{}, certcheck.ClientNoCertificate},
		{"nil certificate", cas, []*x509.Certificate{nil}, certcheck.ClientMalformed},
		{"zero certificate", cas, []*x509.Certificate{{}}, certcheck.ClientMalformed},
		{"zero intermediate", cas, []*x509.Certificate{good.Cert, {}}, certcheck.ClientMalformed},
		{"50 certificates", cas, fifty, certcheck.ClientTooManyCerts},
		{"nil CAs", nil, []*x509.Certificate{good.Cert}, certcheck.ClientNoCAs},
		{"zero CAs (must not mean system roots)", &certcheck.ClientCAs{}, []*x509.Certificate{good.Cert}, certcheck.ClientNoCAs},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := c.ValidClient(context.Background(), tc.cas, tc.peer, certcheck.ClientPolicy{CheckCRL: true})
			wantClient(t, res, nil, tc.want)
		})
	}
	if s := c.Stats(); s.ClientChecks != uint64(len(cases)) || s.ClientRejected != uint64(len(cases)) || s.ClientChainsRejected != 6 {
		t.Errorf("stats %+v", s)
	}
}

func TestClientCRL(t *testing.T) {
	t.Run("revoked per configured CRL file", func(t *testing.T) {
		p := newPKI(t)
		// The CDP is unreachable: only the file can tell.
		is := clientCert(t, p.inter, revocationlab.CertOptions{CRLURLs: []string{unreachable(t, "/x.crl")}})
		p.inter.Revoke(is.Cert)
		crl, err := p.inter.CRL()
		if err != nil {
			t.Fatal(err)
		}
		c := newChecker(t, certcheck.Config{})
		srv := newClientServer(t, p, c, loadCAs(t, [][]byte{p.root.PEM, p.inter.PEM}, crl), certcheck.ClientPolicy{CheckCRL: true})
		res, err := srv.present(t, is.TLS)
		wantClient(t, res, err, certcheck.ClientRevoked)
		if !strings.Contains(res.Reason, "configured CRL file") {
			t.Errorf("reason %q", res.Reason)
		}
	})
	t.Run("RequireCRL", func(t *testing.T) {
		p := newPKI(t)
		noCDP := clientCert(t, p.inter, revocationlab.CertOptions{NoCRL: true})
		bundle := [][]byte{p.root.PEM, p.inter.PEM}
		c := newChecker(t, certcheck.Config{})

		strict := newClientServer(t, p, c, loadCAs(t, bundle), certcheck.ClientPolicy{RequireCRL: true})
		res, err := strict.present(t, noCDP.TLS)
		wantClient(t, res, err, certcheck.ClientNoCRL)

		lenient := newClientServer(t, p, c, loadCAs(t, bundle), certcheck.ClientPolicy{CheckCRL: true})
		res, err = lenient.present(t, noCDP.TLS)
		wantClient(t, res, err, certcheck.ClientOK)
		if !res.SoftFailed || c.Stats().ClientSoftFails != 1 {
			t.Errorf("result %+v, stats %+v: want a counted soft-fail", res, c.Stats())
		}

		// A configured CRL file covering the issuer is an answer.
		crl, err := p.inter.CRL()
		if err != nil {
			t.Fatal(err)
		}
		covered := newClientServer(t, p, c, loadCAs(t, bundle, crl), certcheck.ClientPolicy{RequireCRL: true})
		res, err = covered.present(t, noCDP.TLS)
		wantClient(t, res, err, certcheck.ClientOK)
	})
	t.Run("CDP with a bad signature is not trusted", func(t *testing.T) {
		p := newPKI(t)
		is := clientCert(t, p.inter, revocationlab.CertOptions{})
		p.inter.Revoke(is.Cert)
		p.inter.SetCRLMode(revocationlab.CRLBadSignature)
		c := newChecker(t, certcheck.Config{})
		srv := newClientServer(t, p, c, loadCAs(t, [][]byte{p.root.PEM, p.inter.PEM}), certcheck.ClientPolicy{RequireCRL: true})
		res, err := srv.present(t, is.TLS)
		wantClient(t, res, err, certcheck.ClientNoCRL)
		if c.Stats().BadCRLSignatures != 1 {
			t.Errorf("stats %+v", c.Stats())
		}
	})
	t.Run("stale CRL file", func(t *testing.T) {
		p := newPKI(t)
		revoked := clientCert(t, p.inter, revocationlab.CertOptions{NoCRL: true})
		p.inter.Revoke(revoked.Cert)
		stale, err := p.inter.CRLWith(revocationlab.CRLStale)
		if err != nil {
			t.Fatal(err)
		}
		c := newChecker(t, certcheck.Config{})
		srv := newClientServer(t, p, c, loadCAs(t, [][]byte{p.root.PEM, p.inter.PEM}, stale), certcheck.ClientPolicy{RequireCRL: true})
		res, err := srv.present(t, revoked.TLS)
		wantClient(t, res, err, certcheck.ClientRevoked) // still proves revocation
		res, err = srv.present(t, clientCert(t, p.inter, revocationlab.CertOptions{NoCRL: true}).TLS)
		wantClient(t, res, err, certcheck.ClientNoCRL) // but not "good"
	})
}

func TestLoadClientCAs(t *testing.T) {
	p := newPKI(t)
	leaf := clientCert(t, p.inter, revocationlab.CertOptions{})
	other, err := revocationlab.NewRoot(nil, "Other Root")
	if err != nil {
		t.Fatal(err)
	}
	otherCRL, err := other.CRL()
	if err != nil {
		t.Fatal(err)
	}
	badCRL, err := p.inter.CRLWith(revocationlab.CRLBadSignature)
	if err != nil {
		t.Fatal(err)
	}
	pemCRL, err := p.inter.CRLWith(revocationlab.CRLPEM)
	if err != nil {
		t.Fatal(err)
	}
	both := [][]byte{p.root.PEM, p.inter.PEM}
	afterRoot := bytes.Count(p.root.PEM, []byte("\n")) + 1 // first line after the root's PEM
	cases := []struct {
		name    string
		bundles [][]byte
		crls    [][]byte
		want    string // substring of the error; "" for success
	}{
		{"ok", both, nil, ""},
		{"ok in one bundle", [][]byte{append(append([]byte{}, p.root.PEM...), p.inter.PEM...)}, nil, ""},
		{"ok with PEM CRL", both, [][]byte{pemCRL}, ""},
		{"key block", [][]byte{append(append([]byte{}, p.root.PEM...), leaf.KeyPEM...)}, nil, fmt.Sprintf(`bundle 1, PEM block 2 (line %d): type "PRIVATE KEY", want CERTIFICATE`, afterRoot)},
		{"leaf as CA", [][]byte{p.root.PEM, leaf.CertPEM}, nil, `bundle 2, PEM block 1 (line 1): "alice@example.test" is not a CA certificate`},
		{"text", [][]byte{p.root.PEM, []byte("hello\n")}, nil, "bundle 2, line 1: text that is not PEM"},
		{"text after", [][]byte{append(append([]byte{}, p.root.PEM...), "trailing words"...)}, nil, fmt.Sprintf("bundle 1, line %d: text that is not PEM", afterRoot)},
		{"bad base64", [][]byte{[]byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")}, nil, "PEM block 1 (line 1): malformed PEM"},
		{"bad DER", [][]byte{[]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}, nil, "PEM block 1 (line 1): x509:"},
		{"empty bundle", [][]byte{{}}, nil, "bundle 1: no PEM blocks"},
		{"nothing", nil, nil, "no CA certificates"},
		{"intermediate alone", [][]byte{p.inter.PEM}, nil, `intermediate "Lab Intermediate": its issuer "Lab Root" is not in the bundles`},
		{"CRL of a stranger", both, [][]byte{otherCRL}, "CRL file 1: issued by none of the configured CAs"},
		{"CRL bad signature", both, [][]byte{badCRL}, `CRL file 1 (issuer "Lab Intermediate"): CRL signature does not verify`},
		{"CRL garbage", both, [][]byte{[]byte("garbage")}, "CRL file 1: CRL malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cas, err := certcheck.LoadClientCAs(tc.bundles, tc.crls)
			if tc.want == "" {
				if err != nil || len(cas.Certificates()) != 2 || cas.AdvertisePool() == nil {
					t.Fatalf("LoadClientCAs: %v", err)
				}
				return
			}
			if !errors.Is(err, certcheck.ErrClientCAs) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
