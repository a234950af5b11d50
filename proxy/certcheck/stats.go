package certcheck

import "sync/atomic"

// Stats are the checker's counters since New. Every fail-open (SoftFails,
// ClientSoftFails) is here so it can be exported and alerted on.
type Stats struct {
	Checks        uint64 // VerifyChain calls
	CacheHits     uint64 // certificates answered from the cache
	SoftFails     uint64 // chains allowed without a revocation answer (Soft)
	HardRefusals  uint64 // chains refused without a revocation answer (Hard)
	Revoked       uint64 // chains refused because a certificate is revoked
	KeyRejections uint64 // chains or client certificates refused for their keys
	Fetches       uint64 // OCSP and CRL HTTP fetches started
	FetchErrors   uint64 // fetches that failed: connect, status, timeout, size

	StaplesRejected  uint64 // staples ignored: forged, for another cert, stale, unparsable
	OCSPRejected     uint64 // fetched OCSP answers ignored for the same reasons
	BadCRLSignatures uint64 // CRLs whose signature did not verify against the issuer
	CRLRejected      uint64 // other unusable CRLs: malformed, stale, wrong issuer, unsupported kind

	ClientChecks         uint64 // ValidClient calls
	ClientRejected       uint64 // ValidClient results that were not valid
	ClientChainsRejected uint64 // of those: missing, oversized or malformed chains
	ClientSoftFails      uint64 // client certificates accepted without a CRL answer
}

type counters struct {
	checks, cacheHits, softFails, hardRefusals, revoked, keyRejections atomic.Uint64
	fetches, fetchErrors                                               atomic.Uint64
	staplesRejected, ocspRejected, badCRLSignatures, crlRejected       atomic.Uint64
	clientChecks, clientRejected, clientChainsRejected, clientSoft     atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (c *Checker) Stats() Stats {
	n := &c.n
	return Stats{
		Checks:               n.checks.Load(),
		CacheHits:            n.cacheHits.Load(),
		SoftFails:            n.softFails.Load(),
		HardRefusals:         n.hardRefusals.Load(),
		Revoked:              n.revoked.Load(),
		KeyRejections:        n.keyRejections.Load(),
		Fetches:              n.fetches.Load(),
		FetchErrors:          n.fetchErrors.Load(),
		StaplesRejected:      n.staplesRejected.Load(),
		OCSPRejected:         n.ocspRejected.Load(),
		BadCRLSignatures:     n.badCRLSignatures.Load(),
		CRLRejected:          n.crlRejected.Load(),
		ClientChecks:         n.clientChecks.Load(),
		ClientRejected:       n.clientRejected.Load(),
		ClientChainsRejected: n.clientChainsRejected.Load(),
		ClientSoftFails:      n.clientSoft.Load(),
	}
}
