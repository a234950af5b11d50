package certcheck

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

var (
	oidCRLNumber                = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRLIndicator        = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidAuthorityKeyID           = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidEntryReasonCode          = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidEntryInvalidityDate      = asn1.ObjectIdentifier{2, 5, 29, 24}
)

// reasonRemoveFromCRL (RFC 5280 §5.3.1) un-revokes an entry; it belongs in
// delta CRLs, and such an entry is not a revocation.
const reasonRemoveFromCRL = 8

// crlInfo is what is kept of a verified CRL: its revoked serials and the
// scope it claims.
type crlInfo struct {
	revoked                map[string]struct{}
	thisUpdate, nextUpdate time.Time
	onlyUser, onlyCA       bool
	// partial: the CRL covers only some revocation reasons, so a serial
	// missing from it is not known to be good.
	partial bool
}

// parseCRL parses a DER (or PEM "X509 CRL") CRL and accepts it only if
// issuer signed it and every critical extension is understood. Time is not
// checked here (see fresh): an admin's stale CRL file still proves
// revocations.
func parseCRL(raw []byte, issuer *x509.Certificate) (*crlInfo, error) {
	rl, err := decodeCRL(raw)
	if err != nil {
		return nil, err
	}
	return verifyCRL(rl, issuer)
}

func decodeCRL(raw []byte) (*x509.RevocationList, error) {
	der := raw
	if block, _ := pem.Decode(raw); block != nil {
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("%w: PEM block %q, want X509 CRL", errCRLMalformed, block.Type)
		}
		der = block.Bytes
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCRLMalformed, err)
	}
	return rl, nil
}

func verifyCRL(rl *x509.RevocationList, issuer *x509.Certificate) (*crlInfo, error) {
	if !bytes.Equal(rl.RawIssuer, issuer.RawSubject) {
		return nil, errCRLIssuer
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("%w: %v", errCRLSignature, err)
	}
	info := &crlInfo{thisUpdate: rl.ThisUpdate, nextUpdate: rl.NextUpdate}
	for _, ext := range rl.Extensions {
		switch {
		case ext.Id.Equal(oidIssuingDistributionPoint):
			if err := info.readIDP(ext.Value); err != nil {
				return nil, err
			}
		case ext.Id.Equal(oidDeltaCRLIndicator):
			return nil, fmt.Errorf("%w: delta CRL", errCRLUnsupported)
		case ext.Id.Equal(oidCRLNumber), ext.Id.Equal(oidAuthorityKeyID):
		case ext.Critical:
			return nil, fmt.Errorf("%w: unknown critical extension %v", errCRLUnsupported, ext.Id)
		}
	}
	info.revoked = make(map[string]struct{}, len(rl.RevokedCertificateEntries))
	for i := range rl.RevokedCertificateEntries {
		e := &rl.RevokedCertificateEntries[i]
		for _, ext := range e.Extensions {
			// certificateIssuer (indirect CRLs) and anything else critical
			// changes what the entry means.
			if ext.Critical && !ext.Id.Equal(oidEntryReasonCode) && !ext.Id.Equal(oidEntryInvalidityDate) {
				return nil, fmt.Errorf("%w: entry with critical extension %v", errCRLUnsupported, ext.Id)
			}
		}
		if e.ReasonCode == reasonRemoveFromCRL || e.SerialNumber == nil {
			continue
		}
		info.revoked[string(serialBytes(e.SerialNumber))] = struct{}{}
	}
	return info, nil
}

// issuingDistributionPoint is RFC 5280 §5.2.5 (implicit tags).
type issuingDistributionPoint struct {
	DistributionPoint          asn1.RawValue  `asn1:"optional,tag:0"`
	OnlyContainsUserCerts      bool           `asn1:"optional,tag:1"`
	OnlyContainsCACerts        bool           `asn1:"optional,tag:2"`
	OnlySomeReasons            asn1.BitString `asn1:"optional,tag:3"`
	IndirectCRL                bool           `asn1:"optional,tag:4"`
	OnlyContainsAttributeCerts bool           `asn1:"optional,tag:5"`
}

func (info *crlInfo) readIDP(der []byte) error {
	var idp issuingDistributionPoint
	rest, err := asn1.Unmarshal(der, &idp)
	if err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: issuing distribution point", errCRLMalformed)
	}
	if idp.IndirectCRL || idp.OnlyContainsAttributeCerts {
		return fmt.Errorf("%w: indirect or attribute-certificate CRL", errCRLUnsupported)
	}
	info.onlyUser, info.onlyCA = idp.OnlyContainsUserCerts, idp.OnlyContainsCACerts
	info.partial = idp.OnlySomeReasons.BitLength > 0
	return nil
}

// fresh reports whether the CRL may be used now for "not revoked".
func (info *crlInfo) fresh(now time.Time) error {
	if info.thisUpdate.After(now.Add(clockSkew)) {
		return errCRLNotYet
	}
	until := info.nextUpdate
	if until.IsZero() {
		until = info.thisUpdate.Add(noNextUpdateTTL)
	}
	if until.Add(clockSkew).Before(now) {
		return fmt.Errorf("%w since %s", errCRLStale, until.UTC().Format(time.RFC3339))
	}
	return nil
}

// covers reports whether the CRL's scope includes cert's kind.
func (info *crlInfo) covers(cert *x509.Certificate) bool {
	return !(info.onlyUser && cert.IsCA) && !(info.onlyCA && !cert.IsCA)
}

func (info *crlInfo) lists(serial *big.Int) bool {
	_, ok := info.revoked[string(serialBytes(serial))]
	return ok
}

// cost approximates the memory a parsed CRL holds (map entry, key bytes).
func (info *crlInfo) cost() int64 { return int64(len(info.revoked))*64 + 256 }

// crlEntry is a cached CRL fetch: the CRL, or why there is none.
type crlEntry struct {
	info *crlInfo
	err  error
}

// crlFor returns the fresh, verified CRL at url for issuer, from the cache
// or downloaded once for all concurrent askers.
func (c *Checker) crlFor(ctx context.Context, url string, issuer *x509.Certificate) (*crlInfo, error) {
	key := crlKey(issuer, url)
	if e, ok := c.crls.get(key, time.Now()); ok {
		return e.info, e.err
	}
	e, err := c.crlFlight.do(ctx, key, c.cfg.Timeout, func(fctx context.Context) crlEntry {
		e := c.downloadCRL(fctx, url, issuer)
		now := time.Now()
		if e.err != nil {
			c.crls.put(key, e, 1, now.Add(failureTTL))
		} else {
			c.crls.put(key, e, e.info.cost(), expiry(now, e.info.thisUpdate, e.info.nextUpdate))
		}
		return e
	})
	if err != nil {
		return nil, err
	}
	return e.info, e.err
}

func (c *Checker) downloadCRL(ctx context.Context, url string, issuer *x509.Certificate) crlEntry {
	der, err := c.fetch(ctx, url, "", nil, c.cfg.MaxCRLSize)
	if err != nil {
		return crlEntry{err: err}
	}
	info, err := parseCRL(der, issuer)
	if err == nil {
		err = info.fresh(time.Now())
	}
	if err != nil {
		if errors.Is(err, errCRLSignature) {
			c.n.badCRLSignatures.Add(1)
		} else {
			c.n.crlRejected.Add(1)
		}
		return crlEntry{err: err}
	}
	return crlEntry{info: info}
}

// lookupCRL consults the certificate's distribution points in turn.
func (c *Checker) lookupCRL(ctx context.Context, cert, issuer *x509.Certificate) (a answer, exp time.Time, ok bool, why string) {
	var whys []string
	for _, u := range firstN(cert.CRLDistributionPoints) {
		info, err := c.crlFor(ctx, u, issuer)
		switch {
		case err != nil:
			whys = append(whys, "CRL "+u+": "+err.Error())
		case !info.covers(cert):
			whys = append(whys, "CRL "+u+": scope excludes this certificate")
		case info.lists(cert.SerialNumber):
			return answer{status: Revoked, source: SourceCRL, reason: "listed in CRL " + u}, expiry(time.Now(), info.thisUpdate, info.nextUpdate), true, ""
		case info.partial:
			whys = append(whys, "CRL "+u+": covers only some reasons")
		default:
			return answer{status: Good, source: SourceCRL}, expiry(time.Now(), info.thisUpdate, info.nextUpdate), true, ""
		}
	}
	return answer{}, time.Time{}, false, strings.Join(whys, "; ")
}
