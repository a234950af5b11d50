package certcheck_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/revocationlab"
	"github.com/portcullis-gw/portcullis/proxy/certcheck"
)

func TestGoodViaOCSP(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	leaf := p.server(t, revocationlab.CertOptions{})
	out, err := handshake(t, p, c, leaf, nil)
	wantGood(t, out, err, certcheck.SourceOCSP)
	if n := p.inter.OCSPRequests(); n != 1 {
		t.Errorf("intermediate's responder asked %d times, want 1", n)
	}
	if n := p.root.OCSPRequests(); n != 1 {
		t.Errorf("root's responder asked %d times about the intermediate, want 1", n)
	}
	if n := p.inter.CRLRequests(); n != 0 {
		t.Errorf("CRL fetched %d times after a good OCSP answer", n)
	}
}

func TestGoodViaCRL(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{Mode: certcheck.Hard})
	leaf := p.server(t, revocationlab.CertOptions{NoOCSP: true})
	out, err := handshake(t, p, c, leaf, nil)
	wantGood(t, out, err, certcheck.SourceCRL)
	if n := p.inter.CRLRequests(); n != 1 {
		t.Errorf("CRL fetched %d times, want 1", n)
	}
}

func TestRevokedByCRL(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	leaf := p.server(t, revocationlab.CertOptions{NoOCSP: true})
	p.inter.Revoke(leaf.Cert)
	out, err := handshake(t, p, c, leaf, nil)
	wantRefused(t, out, err, certcheck.ErrRevoked)
	if out.Status != certcheck.Revoked || out.Source != certcheck.SourceCRL {
		t.Errorf("outcome %+v", out)
	}
	if s := c.Stats(); s.Revoked != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestRevokedByOCSP(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	leaf := p.server(t, revocationlab.CertOptions{})
	p.inter.Revoke(leaf.Cert)
	out, err := handshake(t, p, c, leaf, nil)
	wantRefused(t, out, err, certcheck.ErrRevoked)
	if out.Source != certcheck.SourceOCSP || !strings.Contains(out.Reason, "revoked at") {
		t.Errorf("outcome %+v", out)
	}
	if n := p.inter.CRLRequests(); n != 0 {
		t.Errorf("CRL fetched %d times after a revoked OCSP answer", n)
	}
}

func TestRevokedIntermediate(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	leaf := p.server(t, revocationlab.CertOptions{})
	p.root.Revoke(p.inter.Cert)
	out, err := handshake(t, p, c, leaf, nil)
	wantRefused(t, out, err, certcheck.ErrRevoked)
	if !strings.Contains(out.Reason, "certificate 1") {
		t.Errorf("reason %q does not name the intermediate", out.Reason)
	}
}

func TestStaple(t *testing.T) {
	t.Run("revoked", func(t *testing.T) {
		p := newPKI(t)
		c := newChecker(t, certcheck.Config{})
		leaf := p.server(t, revocationlab.CertOptions{})
		p.inter.Revoke(leaf.Cert)
		// Through the real VerifyConnection, as the lead wires it.
		cert := leaf.TLS
		cert.OCSPStaple = staple(t, p.inter, leaf.Cert, revocationlab.OCSPNormal)
		addr := serveTLS(t, cert)
		err := dialTLS(addr, &tls.Config{RootCAs: p.root.Pool(), ServerName: "localhost",
			VerifyConnection: c.VerifyConnection(context.Background())})
		wantRefused(t, certcheck.Outcome{}, err, certcheck.ErrRevoked)
		if n := p.inter.OCSPRequests(); n != 0 {
			t.Errorf("responder asked %d times despite the staple", n)
		}
	})
	t.Run("good", func(t *testing.T) {
		p := newPKI(t)
		c := newChecker(t, certcheck.Config{})
		leaf := p.server(t, revocationlab.CertOptions{})
		out, err := handshake(t, p, c, leaf, staple(t, p.inter, leaf.Cert, revocationlab.OCSPNormal))
		wantGood(t, out, err, certcheck.SourceStaple)
		if n := p.inter.OCSPRequests() + p.inter.CRLRequests(); n != 0 {
			t.Errorf("leaf looked up %d times despite the staple", n)
		}
	})
	for _, mode := range []revocationlab.OCSPMode{revocationlab.OCSPDelegated, revocationlab.OCSPEmbedIssuer} {
		t.Run("accepted/"+modeName(mode), func(t *testing.T) {
			p := newPKI(t)
			c := newChecker(t, certcheck.Config{})
			leaf := p.server(t, revocationlab.CertOptions{})
			out, err := handshake(t, p, c, leaf, staple(t, p.inter, leaf.Cert, mode))
			wantGood(t, out, err, certcheck.SourceStaple)
		})
	}
	// A staple that does not verify is ignored, counted, and the leaf is
	// looked up; the responder's truthful "revoked" then refuses.
	for _, mode := range []revocationlab.OCSPMode{revocationlab.OCSPForged, revocationlab.OCSPDelegatedNoEKU, revocationlab.OCSPStale} {
		t.Run("ignored/"+modeName(mode), func(t *testing.T) {
			p := newPKI(t)
			c := newChecker(t, certcheck.Config{})
			leaf := p.server(t, revocationlab.CertOptions{})
			goodStaple := staple(t, p.inter, leaf.Cert, mode) // made before the revocation: says good
			p.inter.Revoke(leaf.Cert)
			out, err := handshake(t, p, c, leaf, goodStaple)
			wantRefused(t, out, err, certcheck.ErrRevoked)
			if out.Source != certcheck.SourceOCSP {
				t.Errorf("outcome %+v, want revoked per the fetched OCSP answer", out)
			}
			if s := c.Stats(); s.StaplesRejected != 1 {
				t.Errorf("StaplesRejected %d, want 1", s.StaplesRejected)
			}
		})
	}
	t.Run("ignored/other certificate", func(t *testing.T) {
		p := newPKI(t)
		c := newChecker(t, certcheck.Config{})
		leaf := p.server(t, revocationlab.CertOptions{})
		other := p.server(t, revocationlab.CertOptions{})
		out, err := handshake(t, p, c, leaf, staple(t, p.inter, other.Cert, revocationlab.OCSPNormal))
		wantGood(t, out, err, certcheck.SourceOCSP)
		if s := c.Stats(); s.StaplesRejected != 1 {
			t.Errorf("StaplesRejected %d, want 1", s.StaplesRejected)
		}
	})
	t.Run("ignored/garbage", func(t *testing.T) {
		p := newPKI(t)
		c := newChecker(t, certcheck.Config{})
		leaf := p.server(t, revocationlab.CertOptions{})
		out, err := c.VerifyChain(context.Background(), leaf.Chain, []byte("\x30\x03\x0a\x01\x00 not an OCSP response"))
		wantGood(t, out, err, certcheck.SourceOCSP)
		if s := c.Stats(); s.StaplesRejected != 1 {
			t.Errorf("StaplesRejected %d, want 1", s.StaplesRejected)
		}
	})
}

// A good staple made before the revocation, still within its validity,
// does not undo a revocation the checker has already seen.
func TestStapleCannotUndoRevocation(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	leaf := p.server(t, revocationlab.CertOptions{})
	oldGood := staple(t, p.inter, leaf.Cert, revocationlab.OCSPNormal)
	p.inter.Revoke(leaf.Cert)
	out, err := c.VerifyChain(context.Background(), leaf.Chain, nil)
	wantRefused(t, out, err, certcheck.ErrRevoked)
	out, err = handshake(t, p, c, leaf, oldGood)
	wantRefused(t, out, err, certcheck.ErrRevoked)
}

func modeName(m revocationlab.OCSPMode) string {
	return map[revocationlab.OCSPMode]string{
		revocationlab.OCSPForged: "forged", revocationlab.OCSPDelegated: "delegated",
		revocationlab.OCSPDelegatedNoEKU: "delegated without EKU", revocationlab.OCSPEmbedIssuer: "issuer embedded",
		revocationlab.OCSPStale: "stale", revocationlab.OCSPUnknown: "unknown", revocationlab.OCSPTryLater: "tryLater",
		revocationlab.OCSPGarbage: "garbage", revocationlab.OCSPHuge: "huge", revocationlab.OCSPDown: "down",
		revocationlab.OCSPHang: "hang",
	}[m]
}

// A fetched OCSP answer that does not verify is no answer: the CRL decides.
func TestFetchedOCSPRejected(t *testing.T) {
	for _, mode := range []revocationlab.OCSPMode{
		revocationlab.OCSPForged, revocationlab.OCSPDelegatedNoEKU, revocationlab.OCSPStale,
		revocationlab.OCSPUnknown, revocationlab.OCSPTryLater, revocationlab.OCSPGarbage,
		revocationlab.OCSPHuge, revocationlab.OCSPDown,
	} {
		t.Run(modeName(mode), func(t *testing.T) {
			p := newPKI(t)
			c := newChecker(t, certcheck.Config{Mode: certcheck.Hard})
			leaf := p.server(t, revocationlab.CertOptions{})
			p.inter.SetOCSPMode(mode)
			out, err := handshake(t, p, c, leaf, nil)
			wantGood(t, out, err, certcheck.SourceCRL)

			p.inter.Revoke(leaf.Cert)
			c = newChecker(t, certcheck.Config{Mode: certcheck.Hard})
			out, err = handshake(t, p, c, leaf, nil)
			wantRefused(t, out, err, certcheck.ErrRevoked)
			if out.Source != certcheck.SourceCRL {
				t.Errorf("outcome %+v, want revoked per CRL", out)
			}
			// With the CRL gone too, Hard refuses: the rejected answer
			// was not taken for one.
			p.inter.SetCRLMode(revocationlab.CRLDown)
			c = newChecker(t, certcheck.Config{Mode: certcheck.Hard})
			out, err = handshake(t, p, c, leaf, nil)
			wantRefused(t, out, err, certcheck.ErrNoRevocationInfo)
		})
	}
	t.Run("delegated accepted", func(t *testing.T) {
		p := newPKI(t)
		c := newChecker(t, certcheck.Config{Mode: certcheck.Hard})
		leaf := p.server(t, revocationlab.CertOptions{})
		p.inter.SetOCSPMode(revocationlab.OCSPDelegated)
		p.inter.Revoke(leaf.Cert)
		out, err := handshake(t, p, c, leaf, nil)
		wantRefused(t, out, err, certcheck.ErrRevoked)
		if out.Source != certcheck.SourceOCSP {
			t.Errorf("outcome %+v, want revoked per the delegated responder", out)
		}
	})
}

func TestForgedOCSPCounted(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	leaf := p.server(t, revocationlab.CertOptions{})
	p.inter.SetOCSPMode(revocationlab.OCSPForged)
	out, err := handshake(t, p, c, leaf, nil)
	wantGood(t, out, err, certcheck.SourceCRL)
	if s := c.Stats(); s.OCSPRejected != 1 {
		t.Errorf("OCSPRejected %d, want 1", s.OCSPRejected)
	}
}

func TestNoAnswer(t *testing.T) {
	newLeaf := func(t *testing.T, p *pki) *revocationlab.Issued {
		return p.server(t, revocationlab.CertOptions{
			OCSPURLs: []string{unreachable(t, "/ocsp")},
			CRLURLs:  []string{unreachable(t, "/leaf.crl")},
		})
	}
	t.Run("soft", func(t *testing.T) {
		p := newPKI(t)
		c := newChecker(t, certcheck.Config{})
		out, err := handshake(t, p, c, newLeaf(t, p), nil)
		if err != nil {
			t.Fatalf("soft mode refused: %v", err)
		}
		if out.Status != certcheck.Unknown || !out.SoftFailed || !strings.Contains(out.Reason, "certificate 0") {
			t.Errorf("outcome %+v", out)
		}
		if s := c.Stats(); s.SoftFails != 1 || s.FetchErrors != 2 || s.HardRefusals != 0 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("hard", func(t *testing.T) {
		p := newPKI(t)
		c := newChecker(t, certcheck.Config{Mode: certcheck.Hard})
		out, err := handshake(t, p, c, newLeaf(t, p), nil)
		wantRefused(t, out, err, certcheck.ErrNoRevocationInfo)
		if s := c.Stats(); s.HardRefusals != 1 || s.SoftFails != 0 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("hanging responders are bounded by Timeout", func(t *testing.T) {
		p := newPKI(t)
		c := newChecker(t, certcheck.Config{Timeout: 200 * time.Millisecond})
		leaf := p.server(t, revocationlab.CertOptions{})
		p.inter.SetOCSPMode(revocationlab.OCSPHang)
		p.inter.SetCRLMode(revocationlab.CRLHang)
		start := time.Now()
		out, err := c.VerifyChain(context.Background(), leaf.Chain, nil)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %v with a 200ms timeout per fetch", took)
		}
		if err != nil || !out.SoftFailed {
			t.Errorf("outcome %+v, %v", out, err)
		}
	})
	t.Run("caller's context bounds the wait", func(t *testing.T) {
		p := newPKI(t)
		c := newChecker(t, certcheck.Config{Mode: certcheck.Hard})
		leaf := p.server(t, revocationlab.CertOptions{})
		p.inter.SetOCSPMode(revocationlab.OCSPHang)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.VerifyChain(ctx, leaf.Chain, nil)
		if took := time.Since(start); took > time.Second {
			t.Errorf("took %v with a 100ms context", took)
		}
		if !errors.Is(err, certcheck.ErrNoRevocationInfo) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("failure remembered", func(t *testing.T) {
		p := newPKI(t)
		c := newChecker(t, certcheck.Config{})
		leaf := newLeaf(t, p)
		for range 3 {
			if _, err := c.VerifyChain(context.Background(), leaf.Chain, nil); err != nil {
				t.Fatal(err)
			}
		}
		if s := c.Stats(); s.FetchErrors != 2 || s.SoftFails != 3 {
			t.Errorf("stats %+v: want one failed fetch per URL for three checks", s)
		}
	})
}

func TestCRLProblems(t *testing.T) {
	cases := []struct {
		mode    revocationlab.CRLMode
		name    string
		counter func(certcheck.Stats) uint64
	}{
		{revocationlab.CRLBadSignature, "bad signature", func(s certcheck.Stats) uint64 { return s.BadCRLSignatures }},
		{revocationlab.CRLStale, "stale", func(s certcheck.Stats) uint64 { return s.CRLRejected }},
		{revocationlab.CRLGarbage, "garbage", func(s certcheck.Stats) uint64 { return s.CRLRejected }},
		{revocationlab.CRLDelta, "delta", func(s certcheck.Stats) uint64 { return s.CRLRejected }},
		{revocationlab.CRLOnlyCACerts, "scope excludes leaves", nil},
		{revocationlab.CRLHuge, "over MaxCRLSize", func(s certcheck.Stats) uint64 { return s.FetchErrors }},
		{revocationlab.CRLDown, "down", func(s certcheck.Stats) uint64 { return s.FetchErrors }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPKI(t)
			p.r.SetHugeBytes(256 << 10)
			leaf := p.server(t, revocationlab.CertOptions{NoOCSP: true})
			p.inter.Revoke(leaf.Cert) // listed, but the CRL must not be believed
			p.inter.SetCRLMode(tc.mode)

			soft := newChecker(t, certcheck.Config{MaxCRLSize: 64 << 10})
			out, err := handshake(t, p, soft, leaf, nil)
			if err != nil || !out.SoftFailed {
				t.Fatalf("soft: outcome %+v, %v; want allowed without answer", out, err)
			}
			if tc.counter != nil && tc.counter(soft.Stats()) != 1 {
				t.Errorf("stats %+v", soft.Stats())
			}
			hard := newChecker(t, certcheck.Config{Mode: certcheck.Hard, MaxCRLSize: 64 << 10})
			out, err = handshake(t, p, hard, leaf, nil)
			wantRefused(t, out, err, certcheck.ErrNoRevocationInfo)
		})
	}
	t.Run("PEM CRL accepted", func(t *testing.T) {
		p := newPKI(t)
		leaf := p.server(t, revocationlab.CertOptions{NoOCSP: true})
		p.inter.SetCRLMode(revocationlab.CRLPEM)
		out, err := handshake(t, p, newChecker(t, certcheck.Config{Mode: certcheck.Hard}), leaf, nil)
		wantGood(t, out, err, certcheck.SourceCRL)
	})
	t.Run("huge CRL within MaxCRLSize is used", func(t *testing.T) {
		p := newPKI(t)
		p.r.SetHugeBytes(256 << 10)
		leaf := p.server(t, revocationlab.CertOptions{NoOCSP: true})
		p.inter.SetCRLMode(revocationlab.CRLHuge)
		out, err := handshake(t, p, newChecker(t, certcheck.Config{Mode: certcheck.Hard, MaxCRLSize: 1 << 20}), leaf, nil)
		wantGood(t, out, err, certcheck.SourceCRL)
	})
}

func TestKeySizes(t *testing.T) {
	p := newPKI(t)
	t.Run("RSA 1024 refused in a real handshake", func(t *testing.T) {
		leaf := p.server(t, revocationlab.CertOptions{Key: revocationlab.RSA1024})
		c := newChecker(t, certcheck.Config{Mode: certcheck.Off})
		out, err := handshake(t, p, c, leaf, nil)
		wantRefused(t, out, err, certcheck.ErrWeakKey)
		if !strings.Contains(out.Reason, "RSA 1024 bits") {
			t.Errorf("reason %q", out.Reason)
		}
		if s := c.Stats(); s.KeyRejections != 1 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("ECDSA P-224 refused", func(t *testing.T) {
		leaf, err := p.inter.Issue(revocationlab.CertOptions{Key: revocationlab.ECDSAP224, DNSNames: []string{"localhost"}})
		if err != nil {
			t.Skipf("cannot issue a P-224 certificate here: %v", err)
		}
		// crypto/tls has no signature scheme for P-224, so the chain is
		// checked directly rather than through a handshake.
		out, err := newChecker(t, certcheck.Config{}).VerifyChain(context.Background(), leaf.Chain, nil)
		wantRefused(t, out, err, certcheck.ErrWeakKey)
		if !strings.Contains(out.Reason, "P-224") {
			t.Errorf("reason %q", out.Reason)
		}
	})
	for _, k := range []revocationlab.KeyKind{revocationlab.RSA2048, revocationlab.ECDSAP384, revocationlab.Ed25519} {
		t.Run(k.String()+" accepted", func(t *testing.T) {
			leaf := p.server(t, revocationlab.CertOptions{Key: k})
			out, err := handshake(t, p, newChecker(t, certcheck.Config{}), leaf, nil)
			wantGood(t, out, err, certcheck.SourceOCSP)
		})
	}
	t.Run("MinRSABits raised", func(t *testing.T) {
		leaf := p.server(t, revocationlab.CertOptions{Key: revocationlab.RSA2048})
		out, err := handshake(t, p, newChecker(t, certcheck.Config{MinRSABits: 3072}), leaf, nil)
		wantRefused(t, out, err, certcheck.ErrWeakKey)
	})
}

func TestCacheHit(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	leaf := p.server(t, revocationlab.CertOptions{})
	out, err := handshake(t, p, c, leaf, nil)
	wantGood(t, out, err, certcheck.SourceOCSP)
	out, err = handshake(t, p, c, leaf, nil)
	wantGood(t, out, err, certcheck.SourceCache)
	if n := p.inter.OCSPRequests(); n != 1 {
		t.Errorf("responder asked %d times, want 1", n)
	}
	if n := p.root.OCSPRequests(); n != 1 {
		t.Errorf("root responder asked %d times, want 1", n)
	}
	if s := c.Stats(); s.CacheHits != 2 || s.Fetches != 2 {
		t.Errorf("stats %+v: want 2 cache hits (leaf, intermediate) and 2 fetches", s)
	}
}

func TestRevokedCached(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	leaf := p.server(t, revocationlab.CertOptions{})
	p.inter.Revoke(leaf.Cert)
	for i := range 2 {
		out, err := c.VerifyChain(context.Background(), leaf.Chain, nil)
		wantRefused(t, out, err, certcheck.ErrRevoked)
		if i == 1 && out.Source != certcheck.SourceCache {
			t.Errorf("second outcome %+v", out)
		}
	}
}

func TestSingleflight(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	leaf := p.server(t, revocationlab.CertOptions{})
	p.r.SetDelay(200 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			out, err := c.VerifyChain(context.Background(), leaf.Chain, nil)
			if err == nil && out.Status != certcheck.Good {
				err = errors.New("not good: " + out.Reason)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := p.inter.OCSPRequests(); n != 1 {
		t.Errorf("16 concurrent checks asked the responder %d times, want 1", n)
	}
}

func TestCRLSharedBetweenCertificates(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	for range 3 {
		leaf := p.server(t, revocationlab.CertOptions{NoOCSP: true})
		out, err := c.VerifyChain(context.Background(), leaf.Chain, nil)
		wantGood(t, out, err, certcheck.SourceCRL)
	}
	if n := p.inter.CRLRequests(); n != 1 {
		t.Errorf("CRL downloaded %d times for three leaves, want 1", n)
	}
}

func TestModeOff(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{Mode: certcheck.Off})
	leaf := p.server(t, revocationlab.CertOptions{})
	p.inter.Revoke(leaf.Cert)
	out, err := handshake(t, p, c, leaf, nil)
	if err != nil || out.Status != certcheck.Unknown {
		t.Errorf("outcome %+v, %v", out, err)
	}
	if n := p.inter.OCSPRequests() + p.inter.CRLRequests(); n != 0 {
		t.Errorf("%d fetches with revocation off", n)
	}
}

func TestShortLived(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{Mode: certcheck.Hard})
	short := p.server(t, revocationlab.CertOptions{NoOCSP: true, NoCRL: true, NotAfter: time.Now().Add(5 * 24 * time.Hour)})
	out, err := c.VerifyChain(context.Background(), short.Chain, nil)
	wantGood(t, out, err, certcheck.SourceShortLived)

	long := p.server(t, revocationlab.CertOptions{NoOCSP: true, NoCRL: true, NotAfter: time.Now().Add(90 * 24 * time.Hour)})
	out, err = c.VerifyChain(context.Background(), long.Chain, nil)
	wantRefused(t, out, err, certcheck.ErrNoRevocationInfo)
	if !strings.Contains(out.Reason, "names no OCSP responder and no CRL") {
		t.Errorf("reason %q", out.Reason)
	}
}

func TestNotVerified(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	addr := serveTLS(t, p.server(t, revocationlab.CertOptions{}).TLS)
	err := dialTLS(addr, &tls.Config{InsecureSkipVerify: true, VerifyConnection: c.VerifyConnection(context.Background())})
	wantRefused(t, certcheck.Outcome{}, err, certcheck.ErrNotVerified)
}

func TestBadChains(t *testing.T) {
	p := newPKI(t)
	c := newChecker(t, certcheck.Config{})
	leaf := p.server(t, revocationlab.CertOptions{})
	long := make([]*x509.Certificate, certcheck.MaxChainLen+1)
	for i := range long {
		long[i] = leaf.Cert
	}
	for name, chain := range map[string][]*x509.Certificate{
		"nil": nil, "empty": {}, "nil certificate": {leaf.Cert, nil}, "too long": long,
		"zero certificate": {{}},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := c.VerifyChain(context.Background(), chain, nil)
			if err == nil {
				t.Fatalf("accepted: %+v", out)
			}
			if !errors.Is(err, certcheck.ErrBadChain) && !errors.Is(err, certcheck.ErrUnsupportedKey) {
				t.Errorf("error %v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []certcheck.Config{
		{Mode: certcheck.Mode(7)}, {Timeout: -1}, {CacheEntries: -1}, {MaxCRLSize: -1},
		{CRLCacheBytes: -1}, {MinRSABits: -1}, {MinECBits: -1},
	} {
		if _, err := certcheck.New(cfg); !errors.Is(err, certcheck.ErrConfig) {
			t.Errorf("New(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}
