package proxy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Errors of the appliance CA and the certificate store that callers match
// with errors.Is.
var (
	// ErrCAKeyPermissions means the CA key file can be read or written by
	// group or others; the appliance refuses to use a key that may have leaked.
	ErrCAKeyPermissions = errors.New("CA key file is accessible to group or others")
	// ErrCAMismatch means ca.crt does not hold the public half of ca.key, or
	// is not a usable CA certificate.
	ErrCAMismatch = errors.New("CA certificate does not match its key")
	// ErrInvalidCertName means a leaf was asked for a name that is neither a
	// host name nor an IP address.
	ErrInvalidCertName = errors.New("invalid certificate name")
)

const (
	caKeyFile  = "ca.key"
	caCertFile = "ca.crt"
	caValidity = 10 // years
)

// CA is the appliance's own certificate authority, unique to each install.
// Its private key never leaves the process: nothing returns it.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	// chain: an imported intermediate CA's issuers, nearest first, as
	// installed (ca.crt holds the CA certificate, then these). Empty for
	// the generated CA and a CA imported alone.
	chain []*x509.Certificate
	// served is what a handshake sends after the leaf: the CA certificate
	// and its chain without a self-signed root, which clients hold
	// themselves.
	served [][]byte
}

func newCA(cert *x509.Certificate, certPEM []byte, key crypto.Signer, chain []*x509.Certificate) *CA {
	ca := &CA{cert: cert, certPEM: certPEM, key: key, chain: chain, served: [][]byte{cert.Raw}}
	for _, c := range chain {
		if !selfSigned(c) {
			ca.served = append(ca.served, c.Raw)
		}
	}
	return ca
}

// CertPEM returns the CA certificate in PEM, to be installed as trusted on
// clients.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// Certificate returns the parsed CA certificate; callers must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Chain returns the CA's issuers above it, nearest first (empty unless an
// intermediate CA was imported with its chain); callers must not modify it.
func (ca *CA) Chain() []*x509.Certificate { return ca.chain }

// filePEM is ca.crt: the CA certificate, then its chain.
func (ca *CA) filePEM() []byte {
	out := bytes.Clone(ca.certPEM)
	for _, c := range ca.chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// Same reports whether other is the same CA: certificate, key and chain.
func (ca *CA) Same(other *CA) bool {
	if other == nil || !ca.cert.Equal(other.cert) || len(ca.chain) != len(other.chain) {
		return false
	}
	for i := range ca.chain {
		if !ca.chain[i].Equal(other.chain[i]) {
			return false
		}
	}
	pub, ok := ca.key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(other.key.Public())
}

// selfSigned: a root, its own issuer.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// LoadCA loads the CA installed in dir (ca.key and ca.crt, as
// LoadOrCreateCA or ImportCA wrote them) and never creates one: what a
// running appliance reloads after `portcullis ca import`.
func LoadCA(dir string) (*CA, error) {
	keyPath, certPath := filepath.Join(dir, caKeyFile), filepath.Join(dir, caCertFile)
	for _, p := range []string{keyPath, certPath} {
		ok, err := exists(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("CA: %s does not exist", p)
		}
	}
	return loadCA(keyPath, certPath)
}

// LoadOrCreateCA loads dir/ca.key and dir/ca.crt, or, when neither exists,
// creates a new CA there. A key readable by group or others, a certificate
// that does not match its key, and one file without the other are errors:
// the appliance never silently replaces a CA that clients already trust.
// It must not run concurrently for the same dir.
func LoadOrCreateCA(dir string) (*CA, error) {
	keyPath, certPath := filepath.Join(dir, caKeyFile), filepath.Join(dir, caCertFile)
	keyExists, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	certExists, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	switch {
	case keyExists && certExists:
		return loadCA(keyPath, certPath)
	case keyExists:
		return nil, fmt.Errorf("CA: %s exists without %s: restore the certificate, or remove the key to create a new CA", keyPath, caCertFile)
	case certExists:
		return nil, fmt.Errorf("CA: %s exists without %s: restore the key, or remove the certificate to create a new CA", certPath, caKeyFile)
	}
	return createCA(dir, keyPath, certPath)
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("CA: %w", err)
	}
	return true, nil
}

func loadCA(keyPath, certPath string) (*CA, error) {
	keyPEM, err := readPrivateFile(keyPath)
	if err != nil {
		return nil, err
	}
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA: %s: %w", keyPath, err)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("CA: %s: no PEM CERTIFICATE block", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA: %s: %w", certPath, err)
	}
	chain, err := installedChain(cert, rest)
	if err != nil {
		return nil, fmt.Errorf("CA: %s: %w", certPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: %s, %s", ErrCAMismatch, certPath, keyPath)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: %s is not a CA certificate allowed to sign certificates", ErrCAMismatch, certPath)
	}
	if time.Now().After(cert.NotAfter) {
		return nil, fmt.Errorf("CA: %s expired on %s: create a new CA and distribute it", certPath, cert.NotAfter.Format(time.DateOnly))
	}
	return newCA(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}), key, chain), nil
}

// installedChain parses the certificates after the CA certificate in
// ca.crt: each must have issued the one before it (ImportCA wrote them so).
func installedChain(cert *x509.Certificate, rest []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	below := cert
	for len(chain) < maxCAChain {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return chain, nil
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("chain: unexpected PEM %q block", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("chain certificate %d: %w", len(chain)+1, err)
		}
		if !bytes.Equal(below.RawIssuer, c.RawSubject) || below.CheckSignatureFrom(c) != nil {
			return nil, fmt.Errorf("chain certificate %d (%q) did not issue %q", len(chain)+1, c.Subject.CommonName, below.Subject.CommonName)
		}
		chain = append(chain, c)
		below = c
	}
	if block, _ := pem.Decode(rest); block != nil {
		return nil, fmt.Errorf("chain: more than %d certificates", maxCAChain)
	}
	return chain, nil
}

// maxCAChain bounds the issuers above an imported CA.
const maxCAChain = 8

// readPrivateFile reads a key file after checking, on the opened file, that
// only its owner can access it.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("CA: %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run chmod 600 on it and check it did not leak", ErrCAKeyPermissions, path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	return b, nil
}

// parsePrivateKeyPEM accepts PKCS#8 (what the appliance writes) and the SEC 1
// and PKCS#1 forms an operator's own CA key may come in.
func parsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return signer, nil
}

func createCA(dir, keyPath, certPath string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA: generate key: %w", err)
	}
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   "Portcullis CA " + hex.EncodeToString(id),
			Organization: []string{"Portcullis"},
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(caValidity, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true, // may sign leaves only, never another CA
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("CA: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key lands first: a crash in between leaves a key without a
	// certificate, which LoadOrCreateCA reports instead of overwriting.
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return newCA(cert, certPEM, key, nil), nil
}

// randomSerial returns a positive 128-bit serial: unique without a counter
// to persist, and unpredictable.
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

// subjectKeyID is RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of
// the subjectPublicKey bits.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return sum[:20], nil
}

// writeFileAtomic writes to a temporary file in the same directory and
// renames it into place, so a reader never sees a partial file. The
// temporary file is created 0600 and only then given its final mode.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("CA: write %s: %w", path, err)
	}
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("CA: sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("CA: close %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	return nil
}

// syncDir makes the renames durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("CA: sync %s: %w", dir, err)
	}
	return nil
}
