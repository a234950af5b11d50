package certcheck

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ClientPolicy says how strictly ValidClient checks revocation.
type ClientPolicy struct {
	// CheckCRL checks every certificate of the client's chain but the root
	// against the configured CRL file of its issuer or, when there is none
	// (or it is stale and does not list the certificate), the certificate's
	// own CRL distribution points. Without an answer the certificate is
	// still valid, with SoftFailed set and counted.
	CheckCRL bool
	// RequireCRL makes "no answer" invalid: a certificate without a CDP
	// that no configured CRL covers fails, and so does one whose CDP is
	// unreachable or serves an unusable CRL. It implies CheckCRL.
	RequireCRL bool
}

// ClientFailure says why a client certificate is not valid. The zero value
// is ClientOK.
type ClientFailure uint8

const (
	ClientOK ClientFailure = iota
	ClientNoCAs
	ClientNoCertificate
	ClientTooManyCerts
	ClientMalformed
	ClientWeakKey
	ClientUntrusted
	ClientExpired
	ClientWrongUsage
	ClientRevoked
	ClientNoCRL
)

var clientFailureNames = [...]string{
	ClientOK:            "ok",
	ClientNoCAs:         "no client CAs configured",
	ClientNoCertificate: "no certificate",
	ClientTooManyCerts:  "too many certificates",
	ClientMalformed:     "malformed certificate",
	ClientWeakKey:       "weak key",
	ClientUntrusted:     "untrusted issuer",
	ClientExpired:       "expired or not yet valid",
	ClientWrongUsage:    "not for client authentication",
	ClientRevoked:       "revoked",
	ClientNoCRL:         "no CRL answer",
}

func (f ClientFailure) String() string {
	if int(f) < len(clientFailureNames) {
		return clientFailureNames[f]
	}
	return fmt.Sprintf("ClientFailure(%d)", uint8(f))
}

// ClientResult is ValidClient's verdict. Subject and SANs identify the
// leaf and are set only when Valid.
type ClientResult struct {
	Valid   bool
	Failure ClientFailure
	Subject string
	// SANs are the leaf's DNS names, e-mail addresses, IP addresses and
	// URIs, in that order.
	SANs []string
	// SoftFailed means valid although some certificate got no CRL answer
	// (CheckCRL without RequireCRL); Stats.ClientSoftFails counts these.
	SoftFailed bool
	Reason     string // why not valid (or why soft-failed)
}

// ValidClient reports whether the certificates a client presented
// (tls.ConnectionState.PeerCertificates, leaf first, as with
// tls.RequestClientCert) count as a valid client certificate: at most
// MaxClientCerts of them, all parsed, the leaf explicitly for clientAuth (or
// any usage: a leaf without EKU is refused, stricter than crypto/x509), keys
// meeting the size rules, chaining to a root of cas through intermediates
// from cas or the presented chain, every certificate within its validity,
// and with p.CheckCRL not revoked. Garbage never panics: it is invalid with
// a reason, and counted.
func (c *Checker) ValidClient(ctx context.Context, cas *ClientCAs, peer []*x509.Certificate, p ClientPolicy) ClientResult {
	c.n.clientChecks.Add(1)
	r := c.validClient(ctx, cas, peer, p)
	if !r.Valid {
		c.n.clientRejected.Add(1)
		switch r.Failure {
		case ClientNoCertificate, ClientTooManyCerts, ClientMalformed:
			c.n.clientChainsRejected.Add(1)
		case ClientWeakKey:
			c.n.keyRejections.Add(1)
		}
	} else if r.SoftFailed {
		c.n.clientSoft.Add(1)
	}
	return r
}

func invalid(f ClientFailure, format string, args ...any) ClientResult {
	return ClientResult{Failure: f, Reason: fmt.Sprintf(format, args...)}
}

func (c *Checker) validClient(ctx context.Context, cas *ClientCAs, peer []*x509.Certificate, p ClientPolicy) ClientResult {
	switch {
	case cas == nil || cas.roots == nil: // a nil pool would mean the system roots
		return invalid(ClientNoCAs, "no client CAs configured")
	case len(peer) == 0:
		return invalid(ClientNoCertificate, "no client certificate presented")
	case len(peer) > MaxClientCerts:
		return invalid(ClientTooManyCerts, "%d certificates presented, at most %d accepted", len(peer), MaxClientCerts)
	}
	for i, cert := range peer {
		if cert == nil || len(cert.Raw) == 0 || cert.PublicKey == nil || cert.SerialNumber == nil {
			return invalid(ClientMalformed, "presented certificate %d is not a parsed certificate", i)
		}
		if err := c.checkKey(cert); err != nil {
			return invalid(ClientWeakKey, "%s: %v", describe(i, cert), err)
		}
	}
	leaf := peer[0]
	if !slices.ContainsFunc(leaf.ExtKeyUsage, func(u x509.ExtKeyUsage) bool {
		return u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny
	}) {
		return invalid(ClientWrongUsage, "%s has no clientAuth extended key usage", describe(0, leaf))
	}
	intermediates := cas.intermediates
	if len(peer) > 1 {
		intermediates = cas.intermediates.Clone()
		for _, cert := range peer[1:] {
			intermediates.AddCert(cert)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         cas.roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return invalid(verifyFailure(err), "%v", err)
	}
	var first ClientResult
	for i, chain := range chains[:min(len(chains), maxClientChains)] {
		r := c.checkClientChain(ctx, cas, chain, p)
		if r.Valid {
			r.Subject, r.SANs = leaf.Subject.String(), sans(leaf)
			return r
		}
		if i == 0 {
			first = r
		}
	}
	return first
}

func verifyFailure(err error) ClientFailure {
	var invalidErr x509.CertificateInvalidError
	if errors.As(err, &invalidErr) {
		switch invalidErr.Reason {
		case x509.Expired:
			return ClientExpired
		case x509.IncompatibleUsage:
			return ClientWrongUsage
		}
	}
	return ClientUntrusted
}

// checkClientChain applies the key and revocation rules to one verified
// chain (leaf first, root last).
func (c *Checker) checkClientChain(ctx context.Context, cas *ClientCAs, chain []*x509.Certificate, p ClientPolicy) ClientResult {
	if len(chain) > MaxChainLen {
		return invalid(ClientTooManyCerts, "verified chain of %d certificates, at most %d", len(chain), MaxChainLen)
	}
	for i, cert := range chain {
		if err := c.checkKey(cert); err != nil {
			return invalid(ClientWeakKey, "%s: %v", describe(i, cert), err)
		}
	}
	if !p.CheckCRL && !p.RequireCRL {
		return ClientResult{Valid: true}
	}
	r := ClientResult{Valid: true}
	for i := 0; i < len(chain)-1; i++ {
		status, why := c.clientRevocation(ctx, cas, chain[i], chain[i+1])
		switch status {
		case Revoked:
			return invalid(ClientRevoked, "%s: %s", describe(i, chain[i]), why)
		case Unknown:
			if p.RequireCRL {
				return invalid(ClientNoCRL, "%s: %s", describe(i, chain[i]), why)
			}
			if !r.SoftFailed {
				r.SoftFailed, r.Reason = true, describe(i, chain[i])+": "+why
			}
		}
	}
	return r
}

// clientRevocation checks one certificate against its issuer's configured
// CRL file, then its own CDPs (cached with the upstream CRLs).
func (c *Checker) clientRevocation(ctx context.Context, cas *ClientCAs, cert, issuer *x509.Certificate) (Status, string) {
	if f := cas.crlFile(issuer); f != nil && f.covers(cert) {
		if f.lists(cert.SerialNumber) {
			return Revoked, "listed in the configured CRL file"
		}
		if !f.partial && f.fresh(time.Now()) == nil {
			return Good, ""
		}
	}
	a, _, ok, why := c.lookupCRL(ctx, cert, issuer)
	if ok {
		return a.status, a.reason
	}
	if why == "" {
		why = "no configured CRL and no CRL distribution point"
	}
	return Unknown, why
}

func sans(cert *x509.Certificate) []string {
	out := make([]string, 0, len(cert.DNSNames)+len(cert.EmailAddresses)+len(cert.IPAddresses)+len(cert.URIs))
	out = append(out, cert.DNSNames...)
	out = append(out, cert.EmailAddresses...)
	for _, ip := range cert.IPAddresses {
		out = append(out, ip.String())
	}
	for _, u := range cert.URIs {
		out = append(out, u.String())
	}
	return out
}
