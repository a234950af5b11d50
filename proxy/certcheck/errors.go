package certcheck

import "errors"

// Errors that callers match with errors.Is. VerifyChain and VerifyConnection
// wrap them with which certificate of the chain was refused and why.
var (
	// ErrRevoked means a certificate of the chain is revoked per a verified
	// staple, OCSP response or CRL. It is refused in every mode but Off.
	ErrRevoked = errors.New("certificate revoked")
	// ErrNoRevocationInfo means no verified answer could be had for a
	// certificate in Hard mode: responders unreachable, answers unusable,
	// or no responder named at all. In Soft mode the same case is allowed
	// and counted instead.
	ErrNoRevocationInfo = errors.New("revocation status unavailable")
	// ErrWeakKey means a certificate's key is below Config.MinRSABits or
	// Config.MinECBits. Key rules apply in every mode, Off included.
	ErrWeakKey = errors.New("key too small")
	// ErrUnsupportedKey means a certificate's key is none of RSA, ECDSA or
	// Ed25519 (DSA, for instance), which nothing here accepts.
	ErrUnsupportedKey = errors.New("unsupported public key type")
	// ErrBadChain means the chain handed to VerifyChain is empty, holds a
	// nil certificate, or is longer than MaxChainLen.
	ErrBadChain = errors.New("unusable certificate chain")
	// ErrNotVerified means VerifyConnection saw no verified chain: the TLS
	// configuration skipped verification, so there is nothing trustworthy
	// to check revocation for. It is refused rather than passed.
	ErrNotVerified = errors.New("connection has no verified chain")
	// ErrClientCAs wraps every problem LoadClientCAs finds in the admin's
	// bundles or CRL files, with which input and which PEM block.
	ErrClientCAs = errors.New("client CA configuration")
	// ErrConfig wraps every problem Config.Validate finds.
	ErrConfig = errors.New("certcheck config")
)

// Reasons a fetched or stapled answer is not used; internal, counted in
// Stats and shown in Outcome.Reason.
var (
	errTooLarge        = errors.New("answer exceeds its size limit")
	errHTTPStatus      = errors.New("unexpected HTTP status")
	errURL             = errors.New("URL is not http or https")
	errOCSPSignature   = errors.New("OCSP response not signed by the issuer or its delegated responder")
	errOCSPResponder   = errors.New("OCSP responder certificate not issued by the issuer")
	errOCSPResponderEK = errors.New("OCSP responder certificate lacks the OCSPSigning EKU")
	errOCSPResponderTS = errors.New("OCSP responder certificate outside its validity")
	errOCSPNotYet      = errors.New("OCSP response thisUpdate is in the future")
	errOCSPStale       = errors.New("OCSP response is stale")
	errCRLIssuer       = errors.New("CRL issuer is not the certificate's issuer")
	errCRLSignature    = errors.New("CRL signature does not verify against the issuer")
	errCRLNotYet       = errors.New("CRL thisUpdate is in the future")
	errCRLStale        = errors.New("CRL is stale")
	errCRLUnsupported  = errors.New("CRL kind not supported")
	errCRLMalformed    = errors.New("CRL malformed")
)
