package certcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// Checker checks key sizes and revocation of upstream chains and validates
// client certificates. It is safe for concurrent use; one Checker serves
// the whole appliance so its caches and counters are shared.
type Checker struct {
	cfg       Config
	answers   *lru[answer]   // per certificate and per staple
	crls      *lru[crlEntry] // per (issuer, URL), weighed by size
	lookups   flight[answer]
	crlFlight flight[crlEntry]
	n         counters
}

// New returns a Checker for cfg, or the reason cfg cannot be honoured.
func New(cfg Config) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Checker{
		cfg:     cfg,
		answers: newLRU[answer](int64(cfg.CacheEntries)),
		crls:    newLRU[crlEntry](cfg.CRLCacheBytes),
	}, nil
}

// VerifyChain checks a chain that crypto/x509 already verified: leaf first,
// trusted root last (tls.ConnectionState.VerifiedChains[0]). Every
// certificate's key must meet the size rules; every certificate but the
// root must not be revoked. For the leaf a stapled OCSP response is
// honoured first: revoked refuses; one that does not verify (forged, for
// another certificate, stale, garbage) is ignored, counted and the leaf is
// looked up as if nothing were stapled. Lookups ask the AIA OCSP responder,
// then the CRL distribution points; verified answers are cached until their
// nextUpdate (at most a day), failures for 30 s.
//
// The error is nil when the chain may be used, and wraps ErrRevoked,
// ErrNoRevocationInfo (Hard mode), ErrWeakKey, ErrUnsupportedKey or
// ErrBadChain otherwise. ctx bounds the wait; a lookup abandoned by ctx
// goes on for its cache entry and counts as no answer for this call.
func (c *Checker) VerifyChain(ctx context.Context, chain []*x509.Certificate, staple []byte) (Outcome, error) {
	c.n.checks.Add(1)
	if len(chain) == 0 || len(chain) > MaxChainLen {
		return Outcome{Reason: fmt.Sprintf("chain of %d certificates", len(chain))},
			fmt.Errorf("%w: %d certificates (1 to %d)", ErrBadChain, len(chain), MaxChainLen)
	}
	for i, cert := range chain {
		if cert == nil {
			return Outcome{Reason: "nil certificate in chain"}, fmt.Errorf("%w: certificate %d is nil", ErrBadChain, i)
		}
		if err := c.checkKey(cert); err != nil {
			c.n.keyRejections.Add(1)
			err = fmt.Errorf("%s: %w", describe(i, cert), err)
			return Outcome{Reason: err.Error()}, err
		}
	}
	if c.cfg.Mode == Off {
		return Outcome{Reason: "revocation checking is off"}, nil
	}
	out := Outcome{Status: Good}
	for i := 0; i < len(chain)-1; i++ {
		var st []byte
		if i == 0 {
			st = staple
		}
		a := c.certAnswer(ctx, chain[i], chain[i+1], i == 0, st)
		if i == 0 {
			out.Source = a.source
		}
		switch a.status {
		case Revoked:
			c.n.revoked.Add(1)
			err := fmt.Errorf("%w: %s: %s", ErrRevoked, describe(i, chain[i]), a.reason)
			return Outcome{Status: Revoked, Source: a.source, Reason: err.Error()}, err
		case Unknown:
			if c.cfg.Mode == Hard {
				c.n.hardRefusals.Add(1)
				err := fmt.Errorf("%w: %s: %s", ErrNoRevocationInfo, describe(i, chain[i]), a.reason)
				return Outcome{Status: Unknown, Source: a.source, Reason: err.Error()}, err
			}
			if !out.SoftFailed {
				out = Outcome{Status: Unknown, Source: a.source, SoftFailed: true,
					Reason: describe(i, chain[i]) + ": " + a.reason}
			}
		}
	}
	if out.SoftFailed {
		c.n.softFails.Add(1)
	}
	return out, nil
}

// VerifyConnection returns a func for tls.Config.VerifyConnection on the
// upstream side. crypto/tls calls it after its own chain and name
// verification, also on resumed sessions; it checks
// cs.VerifiedChains[0] with cs.OCSPResponse as the staple. A connection
// without a verified chain (InsecureSkipVerify) is refused with
// ErrNotVerified. ctx is the appliance's lifetime (the callback has no
// per-handshake context); each lookup is bounded by Config.Timeout.
func (c *Checker) VerifyConnection(ctx context.Context) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 {
			return ErrNotVerified
		}
		_, err := c.VerifyChain(ctx, cs.VerifiedChains[0], cs.OCSPResponse)
		return err
	}
}

// certAnswer is one certificate's revocation status (issuer verified it).
func (c *Checker) certAnswer(ctx context.Context, cert, issuer *x509.Certificate, leaf bool, staple []byte) answer {
	now := time.Now()
	key := statusKey(issuer, cert.SerialNumber)
	cached, hit := c.answers.get(key, now)
	// Revocation is final: a staple made before it, still inside its
	// validity window, must not undo what the checker already learned.
	if hit && cached.status == Revoked {
		c.n.cacheHits.Add(1)
		return cached.cached()
	}
	if len(staple) > 0 {
		if a, ok := c.checkStaple(cert, issuer, staple, now); ok {
			return a
		}
	}
	if hit {
		c.n.cacheHits.Add(1)
		return cached.cached()
	}
	nOCSP, nCRL := len(firstN(cert.OCSPServer)), len(firstN(cert.CRLDistributionPoints))
	if nOCSP+nCRL == 0 {
		if leaf && cert.NotAfter.Sub(cert.NotBefore) <= shortLivedMax {
			return answer{status: Good, source: SourceShortLived}
		}
		return answer{reason: "names no OCSP responder and no CRL"}
	}
	// Every fetch has its own Timeout; the lookup as a whole gets the sum.
	budget := c.cfg.Timeout * time.Duration(nOCSP+nCRL)
	a, err := c.lookups.do(ctx, key, budget, func(fctx context.Context) answer {
		a, exp := c.lookup(fctx, cert, issuer)
		c.answers.put(key, a, 1, exp)
		return a
	})
	if err != nil {
		return answer{reason: "check abandoned: " + err.Error()}
	}
	return a
}

// lookup asks OCSP, then the CRLs, and says until when the answer holds.
func (c *Checker) lookup(ctx context.Context, cert, issuer *x509.Certificate) (answer, time.Time) {
	a, exp, ok, whyOCSP := c.lookupOCSP(ctx, cert, issuer)
	if ok {
		return a.withHitReason(), exp
	}
	a, exp, ok, whyCRL := c.lookupCRL(ctx, cert, issuer)
	if ok {
		return a.withHitReason(), exp
	}
	why := whyOCSP
	if whyCRL != "" {
		if why != "" {
			why += "; "
		}
		why += whyCRL
	}
	return answer{reason: why}.withHitReason(), time.Now().Add(failureTTL)
}

func describe(i int, cert *x509.Certificate) string {
	return fmt.Sprintf("certificate %d (%q)", i, cert.Subject.CommonName)
}
