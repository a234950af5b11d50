package proxy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// enterpriseCA is a CA an admin might bring: its certificate and key as PEM.
type enterpriseCA struct {
	cert            *x509.Certificate
	key             crypto.Signer
	certPEM, keyPEM []byte
}

// testKeys are generated once: RSA 3072 takes a while.
var testKeys = sync.OnceValues(func() (map[string]crypto.Signer, error) {
	keys := map[string]crypto.Signer{}
	var err error
	if keys["rsa3072"], err = rsa.GenerateKey(rand.Reader, 3072); err != nil {
		return nil, err
	}
	if keys["rsa1024"], err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		return nil, err
	}
	for name, curve := range map[string]elliptic.Curve{"p256": elliptic.P256(), "p256b": elliptic.P256(), "p224": elliptic.P224(), "p384": elliptic.P384()} {
		if keys[name], err = ecdsa.GenerateKey(curve, rand.Reader); err != nil {
			return nil, err
		}
	}
	_, keys["ed25519"], err = ed25519.GenerateKey(rand.Reader)
	return keys, err
})

func testKey(t *testing.T, name string) crypto.Signer {
	t.Helper()
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	return keys[name]
}

// newEnterpriseCA issues a CA certificate for key, self-signed or by parent,
// after edit has shaped the template.
func newEnterpriseCA(t *testing.T, key crypto.Signer, parent *enterpriseCA, edit func(*x509.Certificate)) *enterpriseCA {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "Example Corp Inspection CA", Organization: []string{"Example Corp"}},
		NotBefore:             time.Now().Add(-24 * time.Hour),
		NotAfter:              time.Now().AddDate(3, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	if edit != nil {
		edit(tmpl)
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &enterpriseCA{cert: cert, key: key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})}
}

// TestImportCAMintsChainedLeaves imports an RSA-3072 root, a P-256 root and
// a P-256 CA subordinate to an enterprise root; each is installed with the
// generated CA's permissions, LoadOrCreateCA then loads it (an existing
// install), and leaves the certificate store mints chain to it in a real
// TLS handshake by a client trusting only the enterprise's root.
func TestImportCAMintsChainedLeaves(t *testing.T) {
	offlineRoot := newEnterpriseCA(t, testKey(t, "p384"), nil, func(c *x509.Certificate) { c.Subject.CommonName = "Example Corp Root" })
	for _, tc := range []struct {
		name string
		ca   *enterpriseCA
		root *x509.Certificate
	}{
		{"RSA-3072 root", newEnterpriseCA(t, testKey(t, "rsa3072"), nil, nil), nil},
		{"P-256 root", newEnterpriseCA(t, testKey(t, "p256"), nil, nil), nil},
		{"P-256 subordinate", newEnterpriseCA(t, testKey(t, "p256b"), offlineRoot, func(c *x509.Certificate) {
			c.MaxPathLenZero = true
		}), offlineRoot.cert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state", "ca")
			res, err := ImportCA(dir, tc.ca.certPEM, tc.ca.keyPEM, CAImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Warnings) != 0 || res.Replaced != "" {
				t.Errorf("warnings %q, replaced %q: want none", res.Warnings, res.Replaced)
			}
			checkCAFiles(t, dir)
			ca, err := LoadOrCreateCA(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !ca.Certificate().Equal(tc.ca.cert) {
				t.Fatal("LoadOrCreateCA did not load the imported CA")
			}
			trusted := tc.root
			if trusted == nil {
				trusted = tc.ca.cert
			}
			handshakeWithMintedLeaf(t, ca, trusted, "app.example.com")
		})
	}
}

func checkCAFiles(t *testing.T, dir string) {
	t.Helper()
	for path, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, filepath.Join(dir, caKeyFile): 0o600, filepath.Join(dir, caCertFile): 0o644} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, st.Mode(), want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".ca-import-*")); len(left) > 0 {
		t.Errorf("staging directories left behind: %v", left)
	}
}

// handshakeWithMintedLeaf serves a leaf from a CertStore on ca over an
// in-memory connection to a client trusting only trusted.
func handshakeWithMintedLeaf(t *testing.T, ca *CA, trusted *x509.Certificate, name string) {
	t.Helper()
	store := NewCertStore(ca, CertStoreOptions{KeyPoolSize: 2})
	defer store.Close()
	roots := x509.NewCertPool()
	roots.AddCert(trusted)
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
	chain := cli.ConnectionState().VerifiedChains[0]
	if got := chain[len(chain)-1]; !got.Equal(trusted) || !chain[1].Equal(ca.Certificate()) {
		t.Errorf("verified chain ends %q via %q, want %q via the imported CA", got.Subject.CommonName, chain[1].Subject.CommonName, trusted.Subject.CommonName)
	}
}

// TestImportCARefuses: every CA the appliance could not use, or should not,
// is refused with a message naming why, and nothing is written.
func TestImportCARefuses(t *testing.T) {
	good := newEnterpriseCA(t, testKey(t, "p256"), nil, nil)
	other := newEnterpriseCA(t, testKey(t, "p256b"), nil, nil)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}})
	for _, tc := range []struct {
		name            string
		certPEM, keyPEM []byte
		want            string
	}{
		{"not a CA", newEnterpriseCA(t, testKey(t, "p256"), nil, func(c *x509.Certificate) { c.IsCA = false }).certPEM, good.keyPEM,
			"is not a CA certificate (basicConstraints CA:TRUE is missing)"},
		{"key mismatch", good.certPEM, other.keyPEM, "the key does not match the certificate"},
		{"RSA 1024", newEnterpriseCA(t, testKey(t, "rsa1024"), nil, nil).certPEM, newEnterpriseCA(t, testKey(t, "rsa1024"), nil, nil).keyPEM,
			"RSA key of 1024 bits is too weak (minimum 2048)"},
		{"P-224", newEnterpriseCA(t, testKey(t, "p224"), nil, nil).certPEM, newEnterpriseCA(t, testKey(t, "p224"), nil, nil).keyPEM,
			"ECDSA key on P-224 is too weak (minimum 256 bits)"},
		{"Ed25519", newEnterpriseCA(t, testKey(t, "ed25519"), nil, nil).certPEM, newEnterpriseCA(t, testKey(t, "ed25519"), nil, nil).keyPEM,
			"Ed25519 CA keys are not accepted by browsers"},
		{"expired", newEnterpriseCA(t, testKey(t, "p256"), nil, func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().AddDate(-2, 0, 0), time.Now().AddDate(0, 0, -1)
		}).certPEM, good.keyPEM, "expired on"},
		{"not yet valid", newEnterpriseCA(t, testKey(t, "p256"), nil, func(c *x509.Certificate) {
			c.NotBefore = time.Now().Add(48 * time.Hour)
		}).certPEM, good.keyPEM, "is not valid before"},
		{"no keyCertSign", newEnterpriseCA(t, testKey(t, "p256"), nil, func(c *x509.Certificate) {
			c.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign
		}).certPEM, good.keyPEM, "lacks the keyCertSign key usage"},
		{"EKU without serverAuth", newEnterpriseCA(t, testKey(t, "p256"), nil, func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}).certPEM, good.keyPEM, "restricted by extended key usage"},
		{"another CA in the file", append(append([]byte{}, good.certPEM...), other.certPEM...), good.keyPEM, "is not in the chain of"},
		{"key in the certificate file", append(append([]byte{}, good.certPEM...), good.keyPEM...), good.keyPEM, `holds a PEM "PRIVATE KEY" block`},
		{"key file is a certificate", good.certPEM, good.certPEM, `unsupported PEM block "CERTIFICATE"`},
		{"encrypted key", good.certPEM, encrypted, "the key is encrypted"},
		{"garbage", []byte("not pem"), good.keyPEM, "no PEM CERTIFICATE block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			_, err := ImportCA(dir, tc.certPEM, tc.keyPEM, CAImportOptions{})
			if !errors.Is(err, ErrCANotImportable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrCANotImportable saying %q", err, tc.want)
			}
			if bytes.Contains([]byte(err.Error()), []byte("PRIVATE KEY-----")) {
				t.Fatal("the error quotes the key")
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists after a refused import: %v", dir, err)
			}
		})
	}
}

// TestImportCAReplace: an installed CA (generated or imported) is kept
// unless Replace is asked for; replacing swaps both files at once and the
// old key is gone.
func TestImportCAReplace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	generated, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	ent := newEnterpriseCA(t, testKey(t, "p256"), nil, nil)
	_, err = ImportCA(dir, ent.certPEM, ent.keyPEM, CAImportOptions{})
	if !errors.Is(err, ErrCAExists) || !strings.Contains(err.Error(), generated.Certificate().Subject.CommonName) || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("got %v, want ErrCAExists naming the installed CA and --replace", err)
	}
	if again, err := LoadOrCreateCA(dir); err != nil || !again.Certificate().Equal(generated.Certificate()) {
		t.Fatalf("the installed CA changed after a refused import: %v", err)
	}
	res, err := ImportCA(dir, ent.certPEM, ent.keyPEM, CAImportOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Replaced, generated.Certificate().Subject.CommonName) {
		t.Errorf("replaced %q, want the generated CA named", res.Replaced)
	}
	checkCAFiles(t, dir)
	now, err := LoadOrCreateCA(dir)
	if err != nil || !now.Certificate().Equal(ent.cert) {
		t.Fatalf("after replace: %v, want the enterprise CA", err)
	}
	handshakeWithMintedLeaf(t, now, ent.cert, "app.example.com")
}

// TestImportCAWarnings: a CA expiring within the notice period and a key
// file others can read are imported, each with a warning.
func TestImportCAWarnings(t *testing.T) {
	ent := newEnterpriseCA(t, testKey(t, "p256"), nil, func(c *x509.Certificate) { c.NotAfter = time.Now().Add(10 * 24 * time.Hour) })
	src := t.TempDir()
	certPath, keyPath := filepath.Join(src, "ca.pem"), filepath.Join(src, "ca-key.pem")
	if err := os.WriteFile(certPath, ent.certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, ent.keyPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ca")
	res, err := ImportCAFiles(dir, certPath, keyPath, CAImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"has mode 0644: group or others can read the CA key", "expires on", "(in 9 days)"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings %q lack %q", res.Warnings, want)
		}
	}
	checkCAFiles(t, dir)
}
