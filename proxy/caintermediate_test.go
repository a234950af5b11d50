package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// enterpriseHierarchy is root → policy CA → issuing CA, the shape of an
// enterprise PKI whose offline root signs nothing directly.
type enterpriseHierarchy struct {
	root, policy, issuing *enterpriseCA
}

func newEnterpriseHierarchy(t *testing.T) enterpriseHierarchy {
	t.Helper()
	root := newEnterpriseCA(t, testKey(t, "p384"), nil, func(c *x509.Certificate) { c.Subject.CommonName = "Example Corp Root" })
	policyCA := newEnterpriseCA(t, testKey(t, "rsa3072"), root, func(c *x509.Certificate) {
		c.Subject.CommonName = "Example Corp Policy CA"
		c.MaxPathLen = 1
	})
	issuing := newEnterpriseCA(t, testKey(t, "p256"), policyCA, func(c *x509.Certificate) {
		c.Subject.CommonName = "Example Corp Inspection CA"
		c.MaxPathLenZero = true
	})
	return enterpriseHierarchy{root, policyCA, issuing}
}

func pemCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestImportIntermediateCA: an issuing CA two levels under the enterprise
// root is imported with its chain (in any order, the root optional); the
// installed ca.crt holds CA then issuers, LoadCA reads them back, and a
// handshake serves leaf + issuing CA + policy CA, which a client trusting
// only the root verifies.
func TestImportIntermediateCA(t *testing.T) {
	h := newEnterpriseHierarchy(t)
	for _, tc := range []struct {
		name      string
		file      []byte
		wantChain int
	}{
		{"CA, policy CA, root", pemCat(h.issuing.certPEM, h.policy.certPEM, h.root.certPEM), 2},
		{"root first, out of order", pemCat(h.root.certPEM, h.issuing.certPEM, h.policy.certPEM), 2},
		{"without the root", pemCat(h.issuing.certPEM, h.policy.certPEM), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state", "ca")
			res, err := ImportCA(dir, tc.file, h.issuing.keyPEM, CAImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Warnings) != 0 {
				t.Errorf("warnings %q", res.Warnings)
			}
			checkCAFiles(t, dir)
			ca, err := LoadCA(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !ca.Certificate().Equal(h.issuing.cert) || len(ca.Chain()) != tc.wantChain || !ca.Chain()[0].Equal(h.policy.cert) {
				t.Fatalf("loaded CA %q with %d issuers, want the issuing CA with %d", ca.Certificate().Subject.CommonName, len(ca.Chain()), tc.wantChain)
			}
			if !bytes.Equal(ca.CertPEM(), h.issuing.certPEM) {
				t.Error("CertPEM is not the issuing CA's certificate alone")
			}
			store := NewCertStore(ca, CertStoreOptions{KeyPoolSize: 2})
			defer store.Close()
			c, err := store.Certificate("app.example.com")
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Certificate) != 3 || !bytes.Equal(c.Certificate[1], h.issuing.cert.Raw) || !bytes.Equal(c.Certificate[2], h.policy.cert.Raw) {
				t.Fatalf("served %d certificates, want leaf, issuing CA, policy CA (never the root)", len(c.Certificate))
			}
			chain := handshakeTrustingOnly(t, store, h.root.cert, "app.example.com")
			if len(chain) != 4 || !chain[3].Equal(h.root.cert) || !chain[1].Equal(h.issuing.cert) {
				t.Errorf("verified chain of %d certificates", len(chain))
			}
		})
	}
}

// handshakeTrustingOnly runs a real TLS handshake against store's leaf for
// name, by a client whose only root is root, and returns the verified
// chain.
func handshakeTrustingOnly(t *testing.T, store *CertStore, root *x509.Certificate, name string) []*x509.Certificate {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(root)
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	srv := tls.Server(sc, &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return store.Certificate(h.ServerName)
	}})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cli := tls.Client(cc, &tls.Config{ServerName: name, RootCAs: roots})
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return cli.ConnectionState().VerifiedChains[0]
}

// TestImportIntermediateCARefuses: a chain that is not one, or that holds
// a certificate the appliance may not stand on, is refused naming it, and
// nothing is written.
func TestImportIntermediateCARefuses(t *testing.T) {
	h := newEnterpriseHierarchy(t)
	weakPolicy := newEnterpriseCA(t, testKey(t, "rsa1024"), h.root, func(c *x509.Certificate) { c.Subject.CommonName = "Weak Policy CA" })
	underWeak := newEnterpriseCA(t, testKey(t, "p256"), weakPolicy, nil)
	expiredPolicy := newEnterpriseCA(t, testKey(t, "rsa3072"), h.root, func(c *x509.Certificate) {
		c.Subject.CommonName = "Expired Policy CA"
		c.NotBefore, c.NotAfter = time.Now().AddDate(-3, 0, 0), time.Now().AddDate(0, 0, -1)
	})
	underExpired := newEnterpriseCA(t, testKey(t, "p256"), expiredPolicy, nil)
	leafOnlyRoot := newEnterpriseCA(t, testKey(t, "p384"), nil, func(c *x509.Certificate) {
		c.Subject.CommonName = "Leaves-only Root"
		c.MaxPathLenZero = true
	})
	tooDeepPolicy := newEnterpriseCA(t, testKey(t, "rsa3072"), leafOnlyRoot, func(c *x509.Certificate) { c.Subject.CommonName = "Too Deep Policy CA" })
	tooDeep := newEnterpriseCA(t, testKey(t, "p256"), tooDeepPolicy, nil)
	ekuPolicy := newEnterpriseCA(t, testKey(t, "rsa3072"), h.root, func(c *x509.Certificate) {
		c.Subject.CommonName = "Mail Policy CA"
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	})
	underEKU := newEnterpriseCA(t, testKey(t, "p256"), ekuPolicy, nil)
	stranger := newEnterpriseCA(t, testKey(t, "p256b"), nil, func(c *x509.Certificate) { c.Subject.CommonName = "Stranger CA" })
	forged := newEnterpriseCA(t, testKey(t, "p256b"), stranger, func(c *x509.Certificate) {
		c.Subject = h.policy.cert.Subject // claims the policy CA's name
	})
	for _, tc := range []struct {
		name      string
		file, key []byte
		want      string
	}{
		{"a gap in the chain", pemCat(h.issuing.certPEM, h.root.certPEM), h.issuing.keyPEM, `"Example Corp Root" is not in the chain of "Example Corp Inspection CA"`},
		{"another CA beside the chain", pemCat(h.issuing.certPEM, h.policy.certPEM, stranger.certPEM), h.issuing.keyPEM, `"Stranger CA" is not in the chain`},
		{"issuer by name only", pemCat(h.issuing.certPEM, forged.certPEM), h.issuing.keyPEM, "its signature does not verify with that certificate"},
		{"weak issuer key", pemCat(underWeak.certPEM, weakPolicy.certPEM, h.root.certPEM), underWeak.keyPEM, `chain certificate "Weak Policy CA"`},
		{"expired issuer", pemCat(underExpired.certPEM, expiredPolicy.certPEM), underExpired.keyPEM, `chain certificate "Expired Policy CA" (issuer of "Example Corp Inspection CA") expired on`},
		{"path length of the root", pemCat(tooDeep.certPEM, tooDeepPolicy.certPEM, leafOnlyRoot.certPEM), tooDeep.keyPEM, "does not verify through the chain"},
		{"issuer restricted to e-mail", pemCat(underEKU.certPEM, ekuPolicy.certPEM), underEKU.keyPEM, `chain certificate "Mail Policy CA" (issuer of "Example Corp Inspection CA") is restricted by extended key usage`},
		{"the key of the policy CA", pemCat(h.issuing.certPEM, h.policy.certPEM), stranger.keyPEM, `the key does not match any certificate of the file ("Example Corp Inspection CA", "Example Corp Policy CA")`},
		{"a key in the chain file", pemCat(h.issuing.certPEM, h.issuing.keyPEM), h.issuing.keyPEM, `holds a PEM "PRIVATE KEY" block`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			_, err := ImportCA(dir, tc.file, tc.key, CAImportOptions{})
			if !errors.Is(err, ErrCANotImportable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant ErrCANotImportable saying %q", err, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists after a refused import: %v", dir, err)
			}
		})
	}
}

// TestLoadCARefusesBrokenInstall: LoadCA (what a reload reads) creates
// nothing, and refuses a ca.crt whose chain was tampered with.
func TestLoadCARefusesBrokenInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("LoadCA of nothing: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadCA created %s", dir)
	}
	h := newEnterpriseHierarchy(t)
	if _, err := ImportCA(dir, pemCat(h.issuing.certPEM, h.policy.certPEM), h.issuing.keyPEM, CAImportOptions{}); err != nil {
		t.Fatal(err)
	}
	stranger := newEnterpriseCA(t, testKey(t, "p256b"), nil, func(c *x509.Certificate) { c.Subject.CommonName = "Stranger CA" })
	if err := os.WriteFile(filepath.Join(dir, caCertFile), pemCat(h.issuing.certPEM, stranger.certPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), `chain certificate 1 ("Stranger CA") did not issue "Example Corp Inspection CA"`) {
		t.Fatalf("LoadCA of a tampered chain: %v", err)
	}
}

// TestCertStoreSetCA: after SetCA every leaf chains to the new CA — the
// cache is emptied and a mint under the old CA is never served — while
// handshakes run concurrently.
func TestCertStoreSetCA(t *testing.T) {
	oldCA, err := LoadOrCreateCA(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	h := newEnterpriseHierarchy(t)
	newCA, _, err := CheckImportCA(pemCat(h.issuing.certPEM, h.policy.certPEM), h.issuing.keyPEM, CAImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := NewCertStore(oldCA, CertStoreOptions{KeyPoolSize: 4})
	defer store.Close()
	names := []string{"a.example.com", "b.example.com", "c.example.com", "d.example.com"}
	for _, n := range names {
		c, err := store.Certificate(n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.Certificate[1], oldCA.Certificate().Raw) {
			t.Fatal("leaf before SetCA does not chain to the first CA")
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := store.Certificate(names[(i+j)%len(names)]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	store.SetCA(newCA)
	if store.CA() != newCA {
		t.Fatal("CA() is not the new CA")
	}
	for _, n := range names {
		c, err := store.Certificate(n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.Certificate[1], h.issuing.cert.Raw) {
			t.Fatalf("%s after SetCA chains to %x, not the imported CA", n, c.Certificate[1][:8])
		}
	}
	close(stop)
	wg.Wait()
	handshakeTrustingOnly(t, store, h.root.cert, "a.example.com")
	store.SetCA(nil) // ignored
	if store.CA() != newCA {
		t.Fatal("SetCA(nil) changed the CA")
	}
}
