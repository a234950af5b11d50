// Package certcheck is the gateway's second look at certificates, after
// crypto/tls has verified chain and name: key sizes, revocation of upstream
// (origin) chains, and validation of the client certificates users present.
//
// One Checker (New(Config)) serves the appliance:
//
//   - VerifyChain(ctx, chain, staple) checks a verified chain (leaf first,
//     root last): every key against MinRSABits / MinECBits (Ed25519 is
//     accepted; DSA and unknown keys never), then every certificate but
//     the root for revocation. A stapled OCSP response for the leaf is
//     honoured first; a staple that does not verify is ignored and
//     counted. Otherwise the AIA OCSP responder is asked, then the CRL
//     distribution points. VerifyConnection wraps it for
//     tls.Config.VerifyConnection.
//   - LoadClientCAs builds the admin's client-CA set (PEM bundles, optional
//     CRL files); ValidClient decides whether presented certificates are a
//     valid client certificate: chain, validity, clientAuth EKU, keys, and
//     with ClientPolicy.CheckCRL the CRL files or the certificate's CDPs.
//   - Stats exposes atomic counters: every fail-open is counted.
//
// What is verified. An OCSP answer counts only when signed by the issuer or
// by a delegated responder the issuer certified with the OCSPSigning EKU,
// valid now, about this serial, and fresh (thisUpdate not in the future,
// nextUpdate not past, 5 minutes of skew). A CRL counts only when its issuer
// name is the certificate issuer's, its signature verifies against the
// issuer (x509.RevocationList.CheckSignatureFrom), every critical extension
// is understood, its scope (IssuingDistributionPoint) covers the
// certificate, and it is fresh. Delta, indirect and attribute CRLs are not
// supported: they are no answer. Answers are fetched only for certificates
// that already chain to a trusted root, only over http and https.
//
// Modes. Soft (default): a certificate without an answer is allowed, the
// Outcome says SoftFailed, Stats.SoftFails counts it. Hard: it is refused
// with ErrNoRevocationInfo, including a certificate that names no OCSP
// responder and no CRL, except a leaf valid for at most 7 days (the CA/B
// Forum's short-lived certificates, which need none). Off: no revocation
// checks; key rules still apply. Revoked is refused in Soft and Hard.
//
// Bounds. Each fetch is bounded by Timeout (3 s), OCSP answers by 64 KiB,
// CRLs by MaxCRLSize (20 MiB) — larger is no answer. At most two OCSP URLs
// and two CDPs per certificate are tried. Concurrent lookups of the same
// certificate or CRL share one fetch (singleflight) that a departing caller
// does not cancel. Answers are cached per (issuer key, serial) in an LRU of
// CacheEntries until their nextUpdate, at most 24 h; failures for 30 s, so
// an unreachable responder costs one timeout per half minute rather than
// one per handshake. Parsed CRLs are cached per (issuer key, URL) in an LRU
// weighed by size (CRLCacheBytes). Client chains are bounded by
// MaxClientCerts presented certificates and MaxChainLen verified ones.
//
// Not done here: OCSP for client certificates (CRL only), must-staple
// enforcement, delta CRLs. The package imports only the standard library
// and golang.org/x/crypto/ocsp.
package certcheck
