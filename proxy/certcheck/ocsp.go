package certcheck

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"
)

// verifyOCSP accepts an OCSP response about cert only if it is signed by
// issuer itself, or by a responder certificate that issuer signed with the
// OCSPSigning EKU and that is valid now (RFC 6960 §4.2.2.2, the std lib's
// own rule), and only while fresh. x/crypto/ocsp checks the response
// signature against an embedded certificate but neither that EKU nor that
// the certificate's issuer is a CA, so the checks are done here.
func verifyOCSP(der []byte, cert, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	// Parsed without issuer: with one, x/crypto/ocsp refuses responses that
	// embed the issuer's own certificate (it checks the issuer's signature
	// on itself), which some public responders send.
	resp, err := ocsp.ParseResponseForCert(der, cert, nil)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.Certificate == nil:
		if err := resp.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("%w: %v", errOCSPSignature, err)
		}
	case bytes.Equal(resp.Certificate.Raw, issuer.Raw):
		// The parser verified the signature against the embedded issuer.
	default:
		responder := resp.Certificate
		if err := responder.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("%w: %v", errOCSPResponder, err)
		}
		if !slices.Contains(responder.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return nil, errOCSPResponderEK
		}
		if now.Before(responder.NotBefore) || now.After(responder.NotAfter) {
			return nil, errOCSPResponderTS
		}
	}
	if resp.ThisUpdate.After(now.Add(clockSkew)) {
		return nil, errOCSPNotYet
	}
	until := resp.NextUpdate
	if until.IsZero() {
		until = resp.ThisUpdate.Add(noNextUpdateTTL)
	}
	if until.Add(clockSkew).Before(now) {
		return nil, errOCSPStale
	}
	return resp, nil
}

// answerFromOCSP turns a verified response into an answer; ok is false for
// "unknown", which is no answer.
func answerFromOCSP(resp *ocsp.Response, source string) (answer, bool) {
	switch resp.Status {
	case ocsp.Good:
		return answer{status: Good, source: source}, true
	case ocsp.Revoked:
		return answer{status: Revoked, source: source, reason: fmt.Sprintf("revoked at %s (reason %d)",
			resp.RevokedAt.UTC().Format(time.RFC3339), resp.RevocationReason)}, true
	}
	return answer{}, false
}

// checkStaple honours a stapled response for the leaf. ok is false when the
// staple gives no answer (rejected or "unknown"): the caller falls back to
// fetching. Accepted staples are cached by their bytes, so a server
// stapling the same response to every handshake costs one signature check.
func (c *Checker) checkStaple(cert, issuer *x509.Certificate, staple []byte, now time.Time) (answer, bool) {
	key := stapleKey(issuer, cert.SerialNumber, staple)
	if a, ok := c.answers.get(key, now); ok {
		return a, true
	}
	resp, err := verifyOCSP(staple, cert, issuer, now)
	if err != nil {
		// Not cached: an origin sending a new junk staple per handshake
		// would otherwise push good answers out of the LRU.
		c.n.staplesRejected.Add(1)
		return answer{source: SourceStaple, reason: "staple ignored: " + err.Error()}, false
	}
	a, ok := answerFromOCSP(resp, SourceStaple)
	if !ok {
		return answer{source: SourceStaple, reason: "staple says unknown"}, false
	}
	a = a.withHitReason()
	exp := expiry(now, resp.ThisUpdate, resp.NextUpdate)
	c.answers.put(key, a, 1, exp)
	// A verified staple is as good as a fetched answer for later
	// connections that arrive without one. (certAnswer never gets here
	// with a Revoked answer cached, so none is overwritten.)
	c.answers.put(statusKey(issuer, cert.SerialNumber), a, 1, exp)
	return a, true
}

// lookupOCSP asks the certificate's OCSP responders in turn. ok is false
// with why when none gave a usable answer.
func (c *Checker) lookupOCSP(ctx context.Context, cert, issuer *x509.Certificate) (a answer, exp time.Time, ok bool, why string) {
	if len(cert.OCSPServer) == 0 {
		return answer{}, time.Time{}, false, ""
	}
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return answer{}, time.Time{}, false, "OCSP request: " + err.Error()
	}
	var whys []string
	for _, u := range firstN(cert.OCSPServer) {
		body, err := c.fetch(ctx, u, "application/ocsp-request", req, maxOCSPResponse)
		if err != nil {
			whys = append(whys, "OCSP "+u+": "+err.Error())
			continue
		}
		now := time.Now()
		resp, err := verifyOCSP(body, cert, issuer, now)
		if err != nil {
			c.n.ocspRejected.Add(1)
			whys = append(whys, "OCSP "+u+": answer ignored: "+err.Error())
			continue
		}
		if a, ok := answerFromOCSP(resp, SourceOCSP); ok {
			return a, expiry(now, resp.ThisUpdate, resp.NextUpdate), true, ""
		}
		whys = append(whys, "OCSP "+u+": responder does not know the certificate")
	}
	return answer{}, time.Time{}, false, strings.Join(whys, "; ")
}

func firstN(urls []string) []string {
	return urls[:min(len(urls), maxURLsPerCert)]
}
