package revocationlab

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"sync"
	"time"
)

// CA is a lab certificate authority. Certificates it issues name its OCSP
// responder and CRL on the Responder it was created with (none when that is
// nil). It revokes, answers OCSP and publishes CRLs through that Responder,
// in the modes its Set methods choose.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte
	// Chain is this CA's certificate followed by its issuers up to the root.
	Chain []*x509.Certificate

	// OCSPURL and CRLURL are what certificates issued by this CA carry in
	// AIA and CRL distribution points ("" without a Responder).
	OCSPURL, CRLURL string

	id        string
	responder *Responder

	mu        sync.Mutex
	revoked   map[string]revocation // by serial (hex)
	ocspMode  OCSPMode
	crlMode   CRLMode
	crlNumber int64
	delegate  *delegateSigner // lazily made for the delegated OCSP modes
}

type revocation struct {
	serial *big.Int
	at     time.Time
	reason int
}

// CertOptions shape an issued certificate, broken ones included.
type CertOptions struct {
	CommonName  string
	DNSNames    []string
	IPAddresses []net.IP
	Emails      []string
	Key         KeyKind
	// Usage is the extended key usage; nil means ServerAuth. NoEKU leaves
	// the extension out altogether.
	Usage []x509.ExtKeyUsage
	NoEKU bool
	// Zero times mean an hour ago and a day from now.
	NotBefore, NotAfter time.Time
	// OCSPURLs and CRLURLs replace the issuing CA's URLs when non-nil.
	// NoOCSP and NoCRL leave the respective extension out.
	OCSPURLs, CRLURLs []string
	NoOCSP, NoCRL     bool
}

// Issued is a certificate with its key, in the forms tests and tools need.
type Issued struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain is the certificate followed by its issuers up to the root, the
	// shape of tls.ConnectionState.VerifiedChains[0].
	Chain []*x509.Certificate
	// TLS is the certificate and its intermediates (not the root) with the
	// key, for tls.Config.Certificates on either side.
	TLS tls.Certificate
	// CertPEM holds the certificate then its intermediates; KeyPEM the key
	// as PKCS #8. Both are what curl's --cert and --key read.
	CertPEM, KeyPEM []byte
}

var errNoKey = errors.New("revocationlab: no key")

// NewRoot creates a self-signed root CA. r may be nil for a CA without
// revocation services.
func NewRoot(r *Responder, name string) (*CA, error) {
	return newCA(r, name, nil)
}

// NewIntermediate creates a CA issued by ca. Its own certificate names ca's
// OCSP responder and CRL, so checking it exercises ca's services.
func (ca *CA) NewIntermediate(name string) (*CA, error) {
	return newCA(ca.responder, name, ca)
}

func newCA(r *Responder, name string, parent *CA) (*CA, error) {
	key, err := NewKey(ECDSAP256)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Portcullis revocation lab"}},
		NotBefore:             time.Now().Add(-2 * time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	ca := &CA{Key: key, responder: r, revoked: map[string]revocation{}}
	if r != nil {
		ca.id = r.register(ca)
		ca.OCSPURL = r.URL() + "/ocsp/" + ca.id
		ca.CRLURL = r.URL() + "/crl/" + ca.id + ".crl"
	}
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.Key, parent.Cert
		tmpl.OCSPServer = nonEmpty(parent.OCSPURL)
		tmpl.CRLDistributionPoints = nonEmpty(parent.CRLURL)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	ca.Cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca.PEM = pemCert(der)
	ca.Chain = []*x509.Certificate{ca.Cert}
	if parent != nil {
		ca.Chain = append(ca.Chain, parent.Chain...)
	}
	return ca, nil
}

// Issue issues an end-entity certificate.
func (ca *CA) Issue(o CertOptions) (*Issued, error) {
	key, err := NewKey(o.Key)
	if err != nil {
		return nil, err
	}
	return ca.IssueFor(key, o)
}

// IssueFor issues an end-entity certificate for an existing key.
func (ca *CA) IssueFor(key crypto.Signer, o CertOptions) (*Issued, error) {
	if key == nil {
		return nil, errNoKey
	}
	tmpl := &x509.Certificate{
		SerialNumber:   randSerial(),
		Subject:        pkix.Name{CommonName: o.CommonName, Organization: []string{"Portcullis revocation lab"}},
		DNSNames:       o.DNSNames,
		IPAddresses:    o.IPAddresses,
		EmailAddresses: o.Emails,
		NotBefore:      o.NotBefore,
		NotAfter:       o.NotAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    o.Usage,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if o.Usage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if o.NoEKU {
		tmpl.ExtKeyUsage = nil
	}
	if _, isRSA := key.Public().(*rsa.PublicKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // TLS 1.2 RSA key exchange
	}
	tmpl.OCSPServer = o.OCSPURLs
	if o.OCSPURLs == nil {
		tmpl.OCSPServer = nonEmpty(ca.OCSPURL)
	}
	tmpl.CRLDistributionPoints = o.CRLURLs
	if o.CRLURLs == nil {
		tmpl.CRLDistributionPoints = nonEmpty(ca.CRLURL)
	}
	if o.NoOCSP {
		tmpl.OCSPServer = nil
	}
	if o.NoCRL {
		tmpl.CRLDistributionPoints = nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	is := &Issued{
		Cert:   cert,
		Key:    key,
		Chain:  append([]*x509.Certificate{cert}, ca.Chain...),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		TLS:    tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
	}
	is.CertPEM = pemCert(der)
	for _, c := range ca.Chain[:len(ca.Chain)-1] { // intermediates, not the root
		is.TLS.Certificate = append(is.TLS.Certificate, c.Raw)
		is.CertPEM = append(is.CertPEM, pemCert(c.Raw)...)
	}
	return is, nil
}

// ServerCert issues a TLS server certificate for 127.0.0.1 and localhost.
func (ca *CA) ServerCert(o CertOptions) (*Issued, error) {
	if o.DNSNames == nil && o.IPAddresses == nil {
		o.DNSNames = []string{"localhost"}
		o.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	if o.CommonName == "" {
		o.CommonName = "lab origin"
	}
	return ca.Issue(o)
}

// ClientCert issues a TLS client certificate for a user (clientAuth EKU,
// the user as common name and e-mail SAN) unless o says otherwise.
func (ca *CA) ClientCert(user string, o CertOptions) (*Issued, error) {
	if o.CommonName == "" {
		o.CommonName = user
	}
	if o.Emails == nil {
		o.Emails = []string{user}
	}
	if o.Usage == nil {
		o.Usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return ca.Issue(o)
}

// Revoke marks a certificate issued by ca as revoked (keyCompromise) from
// now on, in both its OCSP answers and its CRL.
func (ca *CA) Revoke(cert *x509.Certificate) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.revoked[cert.SerialNumber.Text(16)] = revocation{serial: cert.SerialNumber, at: time.Now().Add(-time.Minute), reason: 1}
}

// Pool returns a pool holding only this CA's root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Chain[len(ca.Chain)-1])
	return p
}

// Root is the self-signed certificate at the top of this CA's chain.
func (ca *CA) Root() *x509.Certificate { return ca.Chain[len(ca.Chain)-1] }

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func randSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n.Add(n, big.NewInt(1))
}

// UnreachableURL returns an http URL on a loopback port nothing listens on
// (it was bound and released), for "responder down" cases that fail at
// connect rather than with an HTTP error.
func UnreachableURL(path string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", err
	}
	u := url.URL{Scheme: "http", Host: addr, Path: path}
	return u.String(), nil
}

func (ca *CA) String() string { return fmt.Sprintf("lab CA %q", ca.Cert.Subject.CommonName) }
