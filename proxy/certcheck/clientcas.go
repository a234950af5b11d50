package certcheck

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
)

// ClientCAs is the admin's set of client-certificate authorities: roots
// (self-signed) and intermediates from PEM bundles, plus optional CRL files
// each verified against the CA that issued it. It is immutable once loaded;
// a reload builds a new one.
type ClientCAs struct {
	roots         *x509.CertPool
	intermediates *x509.CertPool
	all           *x509.CertPool
	certs         []*x509.Certificate
	// crls holds each configured CRL by its issuer (statusKey with no
	// serial); the newest (thisUpdate) per issuer wins.
	crls map[cacheKey]*crlInfo
}

// LoadClientCAs parses the admin's PEM bundles (each one or more
// CERTIFICATE blocks of CA certificates) and CRL files (DER or PEM "X509
// CRL"). Every problem is an error wrapping ErrClientCAs that names the
// bundle or file, the PEM block and its line: a non-certificate block, a
// certificate that is not a CA, text that is not PEM, a CRL no configured CA
// issued, a CRL whose signature does not verify, an unsupported CRL kind.
// A CRL past its nextUpdate is accepted: it still proves revocations, but
// "not listed" is then looked up at the certificate's own CDP.
func LoadClientCAs(pemBundles [][]byte, crlFiles [][]byte) (*ClientCAs, error) {
	cas := &ClientCAs{
		roots:         x509.NewCertPool(),
		intermediates: x509.NewCertPool(),
		all:           x509.NewCertPool(),
		crls:          map[cacheKey]*crlInfo{},
	}
	for i, bundle := range pemBundles {
		if err := cas.addBundle(i+1, bundle); err != nil {
			return nil, err
		}
	}
	if len(cas.certs) == 0 {
		return nil, fmt.Errorf("%w: no CA certificates", ErrClientCAs)
	}
	if err := cas.checkAnchored(); err != nil {
		return nil, err
	}
	for i, file := range crlFiles {
		if err := cas.addCRL(i+1, file); err != nil {
			return nil, err
		}
	}
	return cas, nil
}

func (cas *ClientCAs) addBundle(n int, data []byte) error {
	rest, blocks := data, 0
	for {
		start := bytes.Index(rest, []byte("-----BEGIN"))
		if start < 0 {
			if len(bytes.TrimSpace(rest)) != 0 {
				return fmt.Errorf("%w: bundle %d, line %d: text that is not PEM", ErrClientCAs, n, lineOf(data, rest))
			}
			break
		}
		if len(bytes.TrimSpace(rest[:start])) != 0 {
			return fmt.Errorf("%w: bundle %d, line %d: text that is not PEM", ErrClientCAs, n, lineOf(data, rest))
		}
		line := lineOf(data, rest[start:])
		block, after := pem.Decode(rest[start:])
		blocks++
		if block == nil {
			return fmt.Errorf("%w: bundle %d, PEM block %d (line %d): malformed PEM", ErrClientCAs, n, blocks, line)
		}
		rest = after
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("%w: bundle %d, PEM block %d (line %d): type %q, want CERTIFICATE", ErrClientCAs, n, blocks, line, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%w: bundle %d, PEM block %d (line %d): %v", ErrClientCAs, n, blocks, line, err)
		}
		if !cert.BasicConstraintsValid || !cert.IsCA {
			return fmt.Errorf("%w: bundle %d, PEM block %d (line %d): %q is not a CA certificate", ErrClientCAs, n, blocks, line, cert.Subject.CommonName)
		}
		if bytes.Equal(cert.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(cert) == nil {
			cas.roots.AddCert(cert)
		} else {
			cas.intermediates.AddCert(cert)
		}
		cas.all.AddCert(cert)
		cas.certs = append(cas.certs, cert)
	}
	if blocks == 0 {
		return fmt.Errorf("%w: bundle %d: no PEM blocks", ErrClientCAs, n)
	}
	return nil
}

// checkAnchored requires a root and an issuer in the bundles for every
// intermediate: a configuration where nothing can verify is an error at
// load, not a silent "every client invalid" at run time.
func (cas *ClientCAs) checkAnchored() error {
	roots := 0
	for _, cert := range cas.certs {
		if bytes.Equal(cert.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(cert) == nil {
			roots++
			continue
		}
		if !slices.ContainsFunc(cas.certs, func(issuer *x509.Certificate) bool {
			return issuer != cert && bytes.Equal(cert.RawIssuer, issuer.RawSubject) && cert.CheckSignatureFrom(issuer) == nil
		}) {
			return fmt.Errorf("%w: intermediate %q: its issuer %q is not in the bundles", ErrClientCAs, cert.Subject.CommonName, cert.Issuer.CommonName)
		}
	}
	if roots == 0 {
		return fmt.Errorf("%w: no root (self-signed) CA in the bundles", ErrClientCAs)
	}
	return nil
}

// lineOf is the 1-based line of data where rest (a suffix of data) starts.
func lineOf(data, rest []byte) int {
	return bytes.Count(data[:len(data)-len(rest)], []byte("\n")) + 1
}

func (cas *ClientCAs) addCRL(n int, file []byte) error {
	rl, err := decodeCRL(file)
	if err != nil {
		return fmt.Errorf("%w: CRL file %d: %v", ErrClientCAs, n, err)
	}
	var named *x509.Certificate
	var lastErr error
	for _, ca := range cas.certs {
		if !bytes.Equal(rl.RawIssuer, ca.RawSubject) {
			continue
		}
		named = ca
		info, err := verifyCRL(rl, ca)
		if err != nil {
			lastErr = err
			continue // another CA of the same name may have signed it
		}
		key := statusKey(ca, nil)
		if old := cas.crls[key]; old == nil || info.thisUpdate.After(old.thisUpdate) {
			cas.crls[key] = info
		}
		return nil
	}
	if named == nil {
		return fmt.Errorf("%w: CRL file %d: issued by none of the configured CAs", ErrClientCAs, n)
	}
	return fmt.Errorf("%w: CRL file %d (issuer %q): %v", ErrClientCAs, n, named.Subject.CommonName, lastErr)
}

// crlFile is the configured CRL of issuer, or nil.
func (cas *ClientCAs) crlFile(issuer *x509.Certificate) *crlInfo {
	return cas.crls[statusKey(issuer, nil)]
}

// Certificates are the loaded CA certificates, in bundle order.
func (cas *ClientCAs) Certificates() []*x509.Certificate { return cas.certs }

// AdvertisePool holds every loaded CA, for tls.Config.ClientCAs so that the
// CertificateRequest names acceptable issuers and browsers offer the right
// certificate. Use it only with tls.RequestClientCert: with a verifying
// ClientAuth, crypto/tls would treat the intermediates in it as roots.
// ValidClient is what decides.
func (cas *ClientCAs) AdvertisePool() *x509.CertPool { return cas.all }
