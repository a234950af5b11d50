package certcheck

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
)

// fuzzPKI is one offline hierarchy (no responder, so nothing is fetched)
// shared by every fuzz iteration.
var fuzzPKI = sync.OnceValues(func() (*fuzzFixture, error) {
	root, err := revocationlab.NewRoot(nil, "Fuzz Root")
	if err != nil {
		return nil, err
	}
	inter, err := root.NewIntermediate("Fuzz Intermediate")
	if err != nil {
		return nil, err
	}
	leaf, err := inter.ServerCert(revocationlab.CertOptions{NotAfter: time.Now().Add(90 * 24 * time.Hour)})
	if err != nil {
		return nil, err
	}
	c, err := New(Config{CacheEntries: 256})
	if err != nil {
		return nil, err
	}
	return &fuzzFixture{root: root, inter: inter, leaf: leaf, c: c}, nil
})

type fuzzFixture struct {
	root, inter *revocationlab.CA
	leaf        *revocationlab.Issued
	c           *Checker
}

func fixture(f *testing.F) *fuzzFixture {
	fx, err := fuzzPKI()
	if err != nil {
		f.Fatal(err)
	}
	return fx
}

// FuzzOCSPResponse feeds arbitrary bytes to every path an OCSP answer
// takes: verification, the staple cache, and VerifyChain with it stapled.
func FuzzOCSPResponse(f *testing.F) {
	fx := fixture(f)
	for _, mode := range []revocationlab.OCSPMode{revocationlab.OCSPNormal, revocationlab.OCSPForged,
		revocationlab.OCSPDelegated, revocationlab.OCSPDelegatedNoEKU, revocationlab.OCSPEmbedIssuer,
		revocationlab.OCSPUnknown, revocationlab.OCSPStale, revocationlab.OCSPTryLater} {
		b, err := fx.inter.Staple(fx.leaf.Cert, mode)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		now := time.Now()
		leaf, issuer := fx.leaf.Cert, fx.inter.Cert
		resp, verr := verifyOCSP(data, leaf, issuer, now)
		if verr == nil && resp == nil {
			t.Fatal("nil response without error")
		}
		if _, ok := fx.c.checkStaple(leaf, issuer, data, now); ok && verr != nil {
			t.Fatalf("staple accepted although verification failed: %v", verr)
		}
		out, err := fx.c.VerifyChain(context.Background(), fx.leaf.Chain, data)
		if out.Status == Good && out.Source == SourceStaple && verr != nil {
			t.Fatalf("chain good per a staple that did not verify: %v", verr)
		}
		if out.Status == Revoked && err == nil {
			t.Fatal("revoked without an error")
		}
	})
}

// FuzzCRL feeds arbitrary bytes to CRL parsing and verification and to the
// admin's loading paths (CRL files and PEM bundles).
func FuzzCRL(f *testing.F) {
	fx := fixture(f)
	fx.inter.Revoke(fx.leaf.Cert)
	for _, mode := range []revocationlab.CRLMode{revocationlab.CRLNormal, revocationlab.CRLBadSignature,
		revocationlab.CRLStale, revocationlab.CRLPEM, revocationlab.CRLOnlyCACerts, revocationlab.CRLDelta} {
		b, err := fx.inter.CRLWith(mode)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(fx.root.PEM)
	f.Add(append(append([]byte{}, fx.root.PEM...), fx.inter.PEM...))
	f.Add([]byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))
	bundle := [][]byte{fx.root.PEM, fx.inter.PEM}
	f.Fuzz(func(t *testing.T, data []byte) {
		now := time.Now()
		info, err := parseCRL(data, fx.inter.Cert)
		if err == nil {
			_ = info.fresh(now)
			_ = info.covers(fx.leaf.Cert)
			_ = info.lists(fx.leaf.Cert.SerialNumber)
			_ = info.cost()
		}
		if cas, err := LoadClientCAs(bundle, [][]byte{data}); err == nil {
			res := fx.c.ValidClient(context.Background(), cas, []*x509.Certificate{fx.leaf.Cert}, ClientPolicy{RequireCRL: true})
			if res.Valid {
				t.Fatal("a server certificate passed as a client certificate")
			}
		}
		if cas, err := LoadClientCAs([][]byte{data}, nil); err == nil && len(cas.Certificates()) == 0 {
			t.Fatal("loaded a CA set without certificates")
		}
	})
}

// FuzzIssuingDistributionPoint reaches the IDP decoder directly: through
// FuzzCRL it would sit behind a signature random bytes never pass.
func FuzzIssuingDistributionPoint(f *testing.F) {
	for _, idp := range []issuingDistributionPoint{{OnlyContainsCACerts: true}, {OnlyContainsUserCerts: true},
		{IndirectCRL: true}, {OnlySomeReasons: asn1.BitString{Bytes: []byte{0x80}, BitLength: 1}}} {
		b, err := asn1.Marshal(idp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var info crlInfo
		if info.readIDP(data) == nil && info.onlyCA && info.onlyUser && info.covers(&x509.Certificate{}) {
			t.Fatal("a CRL for users only and CAs only covers a certificate")
		}
	})
}
