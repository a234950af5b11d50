package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// devicePKI is the client-certificate lab: a root with two issuing CAs, one
// whose CRL is configured as a file (its leaves carry no CDP, so only the
// file can say they are revoked) and one checked at its CRL distribution
// point on the live responder; plus a stranger CA nobody configured.
type devicePKI struct {
	resp             *revocationlab.Responder
	root             *revocationlab.CA
	fileCA, cdpCA    *revocationlab.CA
	stranger         *revocationlab.CA
	certs            map[string]*tls.Certificate
	revokedAtCDP     *revocationlab.Issued
	caPEMs, crlFiles [][]byte
}

func newDevicePKI(t testing.TB) *devicePKI {
	t.Helper()
	resp, err := revocationlab.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Close() })
	p := &devicePKI{resp: resp, certs: map[string]*tls.Certificate{}}
	must := func(ca *revocationlab.CA, err error) *revocationlab.CA {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return ca
	}
	p.root = must(revocationlab.NewRoot(resp, "device root"))
	p.fileCA = must(p.root.NewIntermediate("device CA (CRL file)"))
	p.cdpCA = must(p.root.NewIntermediate("device CA (CDP)"))
	p.stranger = must(revocationlab.NewRoot(resp, "stranger root"))
	issue := func(name string, ca *revocationlab.CA, o revocationlab.CertOptions) *revocationlab.Issued {
		t.Helper()
		is, err := ca.ClientCert(name+"@corp.example", o)
		if err != nil {
			t.Fatal(err)
		}
		p.certs[name] = &is.TLS
		return is
	}
	issue("valid", p.cdpCA, revocationlab.CertOptions{DNSNames: []string{"laptop-7.corp.example"}})
	issue("valid-file", p.fileCA, revocationlab.CertOptions{NoCRL: true, NoOCSP: true})
	issue("expired", p.cdpCA, revocationlab.CertOptions{NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	issue("wrong-ca", p.stranger, revocationlab.CertOptions{})
	p.fileCA.Revoke(issue("revoked-file", p.fileCA, revocationlab.CertOptions{NoCRL: true, NoOCSP: true}).Cert)
	p.revokedAtCDP = issue("revoked-cdp", p.cdpCA, revocationlab.CertOptions{})
	p.cdpCA.Revoke(p.revokedAtCDP.Cert)
	issue("no-eku", p.cdpCA, revocationlab.CertOptions{NoEKU: true})
	issue("server-eku", p.cdpCA, revocationlab.CertOptions{Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	issue("no-cdp", p.cdpCA, revocationlab.CertOptions{NoCRL: true, NoOCSP: true})
	// Garbage: the valid leaf followed by far more intermediates than a
	// client may present.
	many := *p.certs["valid"]
	for range 12 {
		many.Certificate = append(many.Certificate, p.cdpCA.Cert.Raw)
	}
	p.certs["too-many"] = &many
	crl, err := p.fileCA.CRL()
	if err != nil {
		t.Fatal(err)
	}
	p.caPEMs = [][]byte{p.root.PEM, p.fileCA.PEM, p.cdpCA.PEM}
	p.crlFiles = [][]byte{crl}
	return p
}

func (p *devicePKI) config(t testing.TB, pol certcheck.ClientPolicy) *ClientCertConfig {
	t.Helper()
	cas, err := certcheck.LoadClientCAs(p.caPEMs, p.crlFiles)
	if err != nil {
		t.Fatal(err)
	}
	chk, err := certcheck.New(certcheck.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &ClientCertConfig{Checker: chk, CAs: cas, Policy: pol}
}

const deviceCertPolicy = `access_policies:
  - id: need-device-cert
    filters:
      apps: [origin-lab]
      device_tags: {none_of: [valid_client_certificate]}
    action: block
    message: "device certificate required"
`

// deviceDecider makes the per-request access decision on the connection's
// device tags with a real policy engine, as the appliance does once the
// handshake has revealed the certificate, and keeps what it saw.
type deviceDecider struct {
	e    *policy.Engine
	mu   sync.Mutex
	seen map[string]*DeviceCert
}

func newDeviceDecider(t testing.TB) *deviceDecider {
	t.Helper()
	set, err := policy.Parse("device.yaml", []byte(deviceCertPolicy))
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	return &deviceDecider{e: e, seen: map[string]*DeviceCert{}}
}

func (d *deviceDecider) DecideRequest(ci *ConnInfo, r *http.Request) RequestDecision {
	d.mu.Lock()
	d.seen[r.URL.Query().Get("case")] = ci.Device()
	d.mu.Unlock()
	a := d.e.Access(&policy.AccessRequest{Subject: policy.Subject{SourceIP: ci.Client.Addr(), DeviceTags: ci.DeviceTags()}, Host: "origin.lab"})
	if a.Action == policy.ActionBlock {
		return RequestDecision{Block: true, Reason: "policy need-device-cert", Message: a.Message}
	}
	return RequestDecision{}
}

func (d *deviceDecider) device(name string) *DeviceCert {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[name]
}

// presenting makes a client transport always send cert (nil: none), whether
// or not its issuer is among the CAs the server named — a client that
// filters on them would hide the wrong-CA case.
func presenting(tr http.RoundTripper, cert *tls.Certificate) {
	tc := tr.(*http.Transport).TLSClientConfig
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}
}

type deviceCase struct {
	name    string
	valid   bool
	failure certcheck.ClientFailure
	reason  string // part of the checker's reason
}

var deviceCases = []deviceCase{
	{"valid", true, certcheck.ClientOK, ""},
	{"valid-file", true, certcheck.ClientOK, ""},
	{"expired", false, certcheck.ClientExpired, "expired"},
	{"wrong-ca", false, certcheck.ClientUntrusted, "unknown authority"},
	{"revoked-file", false, certcheck.ClientRevoked, "configured CRL file"},
	{"revoked-cdp", false, certcheck.ClientRevoked, "revoked"},
	{"no-eku", false, certcheck.ClientWrongUsage, "clientAuth"},
	{"server-eku", false, certcheck.ClientWrongUsage, "clientAuth"},
	{"none", false, certcheck.ClientNoCertificate, "no client certificate"},
	{"too-many", false, certcheck.ClientTooManyCerts, "at most 8"},
}

// TestClientCertificatesTransparentAndSuffix presents every kind of client
// certificate to both listeners over real TLS (h1 and h2): the device tag
// and the reason are what the checker says, every verdict is counted, and a
// policy blocking devices without a valid certificate blocks exactly those.
func TestClientCertificatesTransparentAndSuffix(t *testing.T) {
	pki := newDevicePKI(t)
	for _, mode := range []string{"transparent", "suffix"} {
		t.Run(mode, func(t *testing.T) {
			dec := newDeviceDecider(t)
			cc := pki.config(t, certcheck.ClientPolicy{CheckCRL: true})
			var get func(c deviceCase, h2 bool) (*http.Response, error)
			var srv *Server
			if mode == "transparent" {
				h := newHarness(t, func(c *Config) { c.ClientCerts, c.Request = cc, dec })
				dest := h.origin(nil, "origin.lab")
				srv = h.srv
				get = func(c deviceCase, h2 bool) (*http.Response, error) {
					cl := h.client(dest, h2)
					presenting(cl.Transport, pki.certs[c.name])
					return cl.Get("https://origin.lab/?case=" + c.name)
				}
			} else {
				sh := newSuffixHarnessConfig(t, nil, func(c *Config) { c.ClientCerts, c.Request = cc, dec })
				srv = sh.srv
				get = func(c deviceCase, h2 bool) (*http.Response, error) {
					cl := sh.client(h2, false)
					presenting(cl.Transport, pki.certs[c.name])
					return cl.Get("https://app.test.gw.test/echo?case=" + c.name)
				}
			}
			for i, c := range deviceCases {
				h2 := i%2 == 1
				resp, err := get(c, h2)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				d := dec.device(c.name)
				if d == nil {
					t.Fatalf("%s: no verdict on the connection", c.name)
				}
				if d.Valid != c.valid || d.Failure != c.failure || !strings.Contains(d.Reason, c.reason) {
					t.Errorf("%s: verdict %+v, want valid=%v failure %v reason ~%q", c.name, d, c.valid, c.failure, c.reason)
				}
				if got := len(d.Tags()) == 1; got != c.valid {
					t.Errorf("%s: tags %v", c.name, d.Tags())
				}
				blocked := resp.StatusCode == http.StatusForbidden && strings.Contains(string(body), "device certificate required")
				if blocked == c.valid || (c.valid && resp.StatusCode != http.StatusOK) {
					t.Errorf("%s (h2=%v): status %d, body %.200q; want blocked=%v", c.name, h2, resp.StatusCode, body, !c.valid)
				}
				if c.valid && d.Subject == "" || c.valid && d.Emails[0] != c.name+"@corp.example" {
					t.Errorf("%s: valid verdict without the leaf's names: %+v", c.name, d)
				}
			}
			st := srv.DeviceStats()
			f := st.Failures()
			if st.Valid.Load() != 2 || f[certcheck.ClientRevoked] != 2 || f[certcheck.ClientWrongUsage] != 2 || f[certcheck.ClientExpired] != 1 ||
				f[certcheck.ClientUntrusted] != 1 || f[certcheck.ClientNoCertificate] != 1 || f[certcheck.ClientTooManyCerts] != 1 {
				t.Errorf("counters: valid %d, failures %v", st.Valid.Load(), f)
			}
			if pki.cdpCA.CRLRequests() == 0 {
				t.Error("the CDP CA's CRL was never fetched")
			}

			// The same certificate again: the verdict comes from the cache,
			// the checker is not asked again.
			before := cc.Checker.Stats().ClientChecks
			resp, err := get(deviceCase{name: "valid"}, false)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if d := dec.device("valid"); !d.Valid || !d.Cached || cc.Checker.Stats().ClientChecks != before || st.CacheHits.Load() != 1 {
				t.Errorf("second connection with the valid certificate: %+v, checker calls %d → %d, cache hits %d",
					d, before, cc.Checker.Stats().ClientChecks, st.CacheHits.Load())
			}
		})
	}
}

// TestClientCertificateRequireCRL: with require_crl a certificate without a
// CDP, or whose CDP serves a CRL with a bad signature, is not valid; with
// CRL checking alone both are valid but soft-failed (counted).
func TestClientCertificateRequireCRL(t *testing.T) {
	pki := newDevicePKI(t)
	badSig, err := pki.root.NewIntermediate("device CA (bad CRL signature)")
	if err != nil {
		t.Fatal(err)
	}
	is, err := badSig.ClientCert("badsig@corp.example", revocationlab.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	badSig.SetCRLMode(revocationlab.CRLBadSignature)
	pki.certs["bad-crl"] = &is.TLS
	pki.caPEMs = append(pki.caPEMs, badSig.PEM)
	for _, require := range []bool{false, true} {
		dec := newDeviceDecider(t)
		cc := pki.config(t, certcheck.ClientPolicy{CheckCRL: true, RequireCRL: require})
		h := newHarness(t, func(c *Config) { c.ClientCerts, c.Request = cc, dec })
		dest := h.origin(nil, "origin.lab")
		for _, name := range []string{"no-cdp", "bad-crl", "valid"} {
			cl := h.client(dest, false)
			presenting(cl.Transport, pki.certs[name])
			resp, err := cl.Get("https://origin.lab/?case=" + name)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			d := dec.device(name)
			switch {
			case name == "valid":
				if !d.Valid || d.SoftFailed {
					t.Errorf("require=%v valid: %+v", require, d)
				}
			case require:
				if d.Valid || d.Failure != certcheck.ClientNoCRL || resp.StatusCode != http.StatusForbidden {
					t.Errorf("require_crl %s: %+v status %d, want no CRL answer and blocked", name, d, resp.StatusCode)
				}
			default:
				if !d.Valid || !d.SoftFailed || resp.StatusCode != http.StatusOK {
					t.Errorf("check_crl %s: %+v status %d, want valid, soft-failed", name, d, resp.StatusCode)
				}
			}
		}
		if s := cc.Checker.Stats(); s.BadCRLSignatures == 0 || !require && s.ClientSoftFails != 2 {
			t.Errorf("require=%v: checker stats %+v", require, s)
		}
	}
}

// TestClientCertificateGarbageChains: a chain that does not parse and one
// larger than any Certificate message crypto/tls accepts fail their
// handshake (counted) and the listener goes on serving.
func TestClientCertificateGarbageChains(t *testing.T) {
	pki := newDevicePKI(t)
	dec := newDeviceDecider(t)
	h := newHarness(t, func(c *Config) { c.ClientCerts, c.Request = pki.config(t, certcheck.ClientPolicy{CheckCRL: true}), dec })
	dest := h.origin(nil, "origin.lab")
	junk := make([]byte, 2000)
	_, _ = rand.Read(junk)
	garbage := *pki.certs["valid"]
	garbage.Certificate = [][]byte{garbage.Certificate[0], junk}
	huge := *pki.certs["valid"]
	for range 200 { // ~300 KiB of certificates
		big := make([]byte, 1500)
		_, _ = rand.Read(big)
		huge.Certificate = append(huge.Certificate, big)
	}
	for _, cert := range []*tls.Certificate{&garbage, &huge} {
		cl := h.client(dest, false)
		presenting(cl.Transport, cert)
		resp, err := cl.Get("https://origin.lab/?case=garbage")
		t.Logf("%d certificates: %v", len(cert.Certificate), err)
		if err == nil {
			resp.Body.Close()
			t.Errorf("a garbage chain of %d certificates got status %d", len(cert.Certificate), resp.StatusCode)
		}
	}
	// The client sees the alert before the server has counted it.
	for deadline := time.Now().Add(5 * time.Second); h.srv.Stats.HandshakeFailed.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.srv.Stats.HandshakeFailed.Load(); n != 2 {
		t.Errorf("%d failed handshakes counted, want 2", n)
	}
	cl := h.client(dest, true)
	presenting(cl.Transport, pki.certs["valid"])
	resp, err := cl.Get("https://origin.lab/?case=valid")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !dec.device("valid").Valid {
		t.Errorf("after the garbage: status %d, verdict %+v", resp.StatusCode, dec.device("valid"))
	}
}

// TestNoClientCAsNoCertificateRequest: without client CAs the listeners do
// not ask for a certificate at all (no browser prompt) and no connection
// has a verdict.
func TestNoClientCAsNoCertificateRequest(t *testing.T) {
	dec := newDeviceDecider(t)
	h := newHarness(t, func(c *Config) { c.Request = dec })
	dest := h.origin(nil, "origin.lab")
	cl := h.client(dest, false)
	asked := false
	cl.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked = true
		return &tls.Certificate{}, nil
	}
	resp, err := cl.Get("https://origin.lab/?case=none")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if asked || dec.device("none") != nil || h.srv.DeviceStats() != nil {
		t.Errorf("asked for a certificate %v, verdict %+v", asked, dec.device("none"))
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d: the policy still applies (no device tag)", resp.StatusCode)
	}
}

// BenchmarkClientCertHandshake measures one server-side TLS handshake on
// the transparent listener's config plus the connection's device verdict:
// without client CAs (the baseline), with a certificate validated from the
// verdict cache, and with a full validation (chain, EKU, CRLs from the
// checker's CRL cache) every time.
func BenchmarkClientCertHandshake(b *testing.B) {
	pki := newDevicePKI(b)
	for _, bc := range []struct {
		name  string
		cas   bool
		ttl   time.Duration
		cert  string
		valid bool
	}{
		{"no-client-cas", false, 0, "", false},
		{"cert-cached", true, time.Hour, "valid", true},
		{"cert-validated", true, time.Nanosecond, "valid", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var cc *ClientCertConfig
			if bc.cas {
				cc = pki.config(b, certcheck.ClientPolicy{CheckCRL: true})
				cc.CacheTTL = bc.ttl
			}
			h := newHarness(b, func(c *Config) { c.ClientCerts = cc })
			roots := x509.NewCertPool()
			roots.AddCert(h.ca.Certificate())
			clientCfg := &tls.Config{RootCAs: roots, ServerName: "origin.lab", ClientSessionCache: nil}
			if bc.cert != "" {
				clientCfg.Certificates = []tls.Certificate{*pki.certs[bc.cert]}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				cs, ss := net.Pipe()
				ci := &ConnInfo{}
				done := make(chan error, 1)
				go func() {
					tc := tls.Client(cs, clientCfg)
					done <- tc.HandshakeContext(context.Background())
				}()
				tc := tls.Server(ss, h.srv.clientTLS)
				if err := tc.HandshakeContext(context.Background()); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				h.srv.noteClientCert(ci, tc)
				if d := ci.Device(); bc.cas && d.Valid != bc.valid {
					b.Fatalf("verdict %+v", d)
				}
				_ = cs.Close()
				_ = ss.Close()
			}
		})
	}
}
