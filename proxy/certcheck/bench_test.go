package certcheck_test

import (
	"context"
	"crypto/x509"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

// Budget: a warm revocation check (every answer cached) costs ≤ 5 µs per
// chain. BenchmarkStdVerifyBaseline is the chain verification crypto/tls
// already does per handshake, measured in the same run for the ratio.

func warmChecker(b *testing.B) (*certcheck.Checker, *revocationlab.Issued, []byte) {
	p := newPKI(b)
	c := newChecker(b, certcheck.Config{})
	leaf := p.server(b, revocationlab.CertOptions{})
	st := staple(b, p.inter, leaf.Cert, revocationlab.OCSPNormal)
	for _, s := range [][]byte{nil, st} {
		if out, err := c.VerifyChain(context.Background(), leaf.Chain, s); err != nil || out.Status != certcheck.Good {
			b.Fatalf("warm-up: %+v %v", out, err)
		}
	}
	return c, leaf, st
}

func BenchmarkVerifyChainWarm(b *testing.B) {
	c, leaf, _ := warmChecker(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.VerifyChain(ctx, leaf.Chain, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyChainWarmParallel(b *testing.B) {
	c, leaf, _ := warmChecker(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.VerifyChain(ctx, leaf.Chain, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyChainWarmStaple: the origin staples the same response to
// every handshake; its verdict is cached by the staple's bytes.
func BenchmarkVerifyChainWarmStaple(b *testing.B) {
	c, leaf, st := warmChecker(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.VerifyChain(ctx, leaf.Chain, st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdVerifyBaseline(b *testing.B) {
	p := newPKI(b)
	leaf := p.server(b, revocationlab.CertOptions{})
	inter := x509.NewCertPool()
	inter.AddCert(p.inter.Cert)
	opts := x509.VerifyOptions{Roots: p.root.Pool(), Intermediates: inter, DNSName: "localhost"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := leaf.Cert.Verify(opts); err != nil {
			b.Fatal(err)
		}
	}
}
