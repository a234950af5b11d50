package revocationlab

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPMode is how a CA's OCSP responder answers. The zero value answers
// truthfully, signed by the CA itself.
type OCSPMode uint8

const (
	OCSPNormal OCSPMode = iota
	// OCSPForged signs with a stranger's key under the CA's name.
	OCSPForged
	// OCSPDelegated signs with a delegated responder certificate that the
	// CA issued with the OCSPSigning EKU (valid per RFC 6960).
	OCSPDelegated
	// OCSPDelegatedNoEKU is OCSPDelegated without the EKU (must be refused).
	OCSPDelegatedNoEKU
	// OCSPEmbedIssuer signs with the CA key and embeds the CA certificate,
	// as some public responders do.
	OCSPEmbedIssuer
	// OCSPUnknown answers "unknown" for every certificate.
	OCSPUnknown
	// OCSPStale answers truthfully with a NextUpdate in the past.
	OCSPStale
	// OCSPTryLater answers with the tryLater response status.
	OCSPTryLater
	// OCSPGarbage, OCSPHuge, OCSPDown and OCSPHang answer with random bytes,
	// an oversized body, HTTP 503, or not at all.
	OCSPGarbage
	OCSPHuge
	OCSPDown
	OCSPHang
)

// CRLMode is how a CA's CRL is served. The zero value serves a correct,
// fresh DER CRL.
type CRLMode uint8

const (
	CRLNormal CRLMode = iota
	// CRLBadSignature serves the CRL with one signature byte changed.
	CRLBadSignature
	// CRLStale serves a correctly signed CRL whose NextUpdate has passed.
	CRLStale
	// CRLPEM serves the CRL PEM-armoured instead of DER.
	CRLPEM
	// CRLOnlyCACerts marks the CRL (critical IssuingDistributionPoint) as
	// covering CA certificates only, so it says nothing about leaves.
	CRLOnlyCACerts
	// CRLDelta serves a delta CRL, which alone is not a complete answer.
	CRLDelta
	// CRLHuge serves a correctly signed CRL padded with revoked serials to
	// the responder's huge size.
	CRLHuge
	// CRLGarbage, CRLDown and CRLHang serve random bytes, HTTP 503, or
	// nothing.
	CRLGarbage
	CRLDown
	CRLHang
)

// SetOCSPMode switches how ca's OCSP responder answers from now on.
func (ca *CA) SetOCSPMode(m OCSPMode) {
	ca.mu.Lock()
	ca.ocspMode = m
	ca.mu.Unlock()
}

// SetCRLMode switches how ca's CRL is served from now on.
func (ca *CA) SetCRLMode(m CRLMode) {
	ca.mu.Lock()
	ca.crlMode = m
	ca.mu.Unlock()
}

func (ca *CA) currentOCSPMode() OCSPMode {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.ocspMode
}

func (ca *CA) currentCRLMode() CRLMode {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.crlMode
}

// Staple returns an OCSP response for cert (issued by ca) in the given
// mode, to serve as tls.Certificate.OCSPStaple. Modes that describe a
// transport failure have no staple form and give a normal answer.
func (ca *CA) Staple(cert *x509.Certificate, mode OCSPMode) ([]byte, error) {
	return ca.ocspAnswer(cert.SerialNumber, mode)
}

// CRL returns ca's current CRL as DER, as an admin would export it.
func (ca *CA) CRL() ([]byte, error) { return ca.crlWith(CRLNormal, 0) }

// CRLWith returns ca's current CRL in the given mode.
func (ca *CA) CRLWith(mode CRLMode) ([]byte, error) { return ca.crlWith(mode, 1<<20) }

func (ca *CA) ocspAnswer(serial *big.Int, mode OCSPMode) ([]byte, error) {
	now := time.Now()
	tmpl := ocsp.Response{
		Status:       ocsp.Good,
		SerialNumber: serial,
		ThisUpdate:   now.Add(-time.Minute),
		NextUpdate:   now.Add(time.Hour),
	}
	ca.mu.Lock()
	rev, revoked := ca.revoked[serial.Text(16)]
	ca.mu.Unlock()
	if revoked {
		tmpl.Status = ocsp.Revoked
		tmpl.RevokedAt = rev.at
		tmpl.RevocationReason = rev.reason
	}
	signerCert, signerKey := ca.Cert, ca.Key
	switch mode {
	case OCSPTryLater:
		return ocsp.TryLaterErrorResponse, nil
	case OCSPUnknown:
		tmpl.Status = ocsp.Unknown
	case OCSPStale:
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(-3*time.Hour), now.Add(-2*time.Hour)
	case OCSPEmbedIssuer:
		tmpl.Certificate = ca.Cert
	case OCSPForged:
		stranger, err := newStranger(ca.Cert.Subject)
		if err != nil {
			return nil, err
		}
		signerCert, signerKey = stranger.cert, stranger.key
	case OCSPDelegated, OCSPDelegatedNoEKU:
		d, err := ca.delegateFor(mode == OCSPDelegated)
		if err != nil {
			return nil, err
		}
		signerCert, signerKey = d.cert, d.key
		tmpl.Certificate = d.cert
	}
	return ocsp.CreateResponse(ca.Cert, signerCert, tmpl, signerKey)
}

type delegateSigner struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// delegateFor returns ca's delegated OCSP responder, with or without the
// OCSPSigning EKU.
func (ca *CA) delegateFor(withEKU bool) (*delegateSigner, error) {
	key, err := NewKey(ECDSAP256)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: ca.Cert.Subject.CommonName + " OCSP responder"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if withEKU {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &delegateSigner{cert: cert, key: key}, nil
}

// newStranger makes a self-signed CA that claims subject but holds a key no
// one trusts: what a forger has.
func newStranger(subject pkix.Name) (*delegateSigner, error) {
	key, err := NewKey(ECDSAP256)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               subject,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &delegateSigner{cert: cert, key: key}, nil
}

var (
	oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidDeltaCRLIndicator        = asn1.ObjectIdentifier{2, 5, 29, 27}
)

// issuingDistributionPoint is RFC 5280's IDP extension (implicit tags).
type issuingDistributionPoint struct {
	DistributionPoint     asn1.RawValue `asn1:"optional,tag:0"`
	OnlyContainsUserCerts bool          `asn1:"optional,tag:1"`
	OnlyContainsCACerts   bool          `asn1:"optional,tag:2"`
}

func (ca *CA) crlWith(mode CRLMode, huge int) ([]byte, error) {
	now := time.Now()
	ca.mu.Lock()
	ca.crlNumber++
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(ca.crlNumber),
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(time.Hour),
	}
	for _, r := range ca.revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: r.serial, RevocationTime: r.at, ReasonCode: r.reason})
	}
	ca.mu.Unlock()
	switch mode {
	case CRLStale:
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(-3*time.Hour), now.Add(-2*time.Hour)
	case CRLOnlyCACerts:
		v, err := asn1.Marshal(issuingDistributionPoint{OnlyContainsCACerts: true})
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidIssuingDistributionPoint, Critical: true, Value: v})
	case CRLDelta:
		v, _ := asn1.Marshal(1)
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidDeltaCRLIndicator, Critical: true, Value: v})
	case CRLHuge:
		// A revoked entry is about 40 bytes of DER.
		for n := huge/40 + 1; n > 0; n-- {
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
				x509.RevocationListEntry{SerialNumber: randSerial(), RevocationTime: now.Add(-time.Hour)})
		}
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, err
	}
	switch mode {
	case CRLBadSignature:
		der[len(der)-1] ^= 0x5a // inside the signature's last INTEGER: still parses
	case CRLPEM:
		der = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	return der, nil
}
