package certcheck

import "fmt"

// Status is a revocation status. The zero value is Unknown, so a forgotten
// assignment never reads as Good.
type Status uint8

const (
	Unknown Status = iota
	Good
	Revoked
)

func (s Status) String() string {
	switch s {
	case Unknown:
		return "unknown"
	case Good:
		return "good"
	case Revoked:
		return "revoked"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Where an answer came from (Outcome.Source).
const (
	SourceStaple     = "staple"      // the OCSP response stapled to the handshake
	SourceOCSP       = "ocsp"        // the responder named in the certificate's AIA
	SourceCRL        = "crl"         // a CRL distribution point of the certificate
	SourceCRLFile    = "crl-file"    // a CRL file the admin configured (client certificates)
	SourceCache      = "cache"       // an earlier verified answer, still fresh
	SourceShortLived = "short-lived" // a leaf valid ≤ 7 days that names no revocation service
)

// Outcome is the result of VerifyChain. For a Good chain Source is where the
// leaf's answer came from; otherwise Status, Source and Reason describe the
// certificate that decided (the revoked one, or the first without an
// answer).
type Outcome struct {
	Status Status
	Source string
	// SoftFailed means the chain was allowed although some certificate got
	// no answer (Soft mode); Stats.SoftFails counts these.
	SoftFailed bool
	// Reason says why, for logs and block pages; empty for a fresh Good.
	Reason string
}

// answer is one certificate's verified revocation status, as cached.
type answer struct {
	status Status
	source string
	reason string
	// hitReason is Reason for a later cache hit, made when stored so a hit
	// does not build a string.
	hitReason string
}

func (a answer) cached() answer {
	a.source, a.reason = SourceCache, a.hitReason
	return a
}

func (a answer) withHitReason() answer {
	a.hitReason = "cached " + a.source + " answer"
	if a.status == Unknown {
		a.hitReason = "no answer, remembered for 30s"
	}
	if a.reason != "" {
		a.hitReason += ": " + a.reason
	}
	return a
}
