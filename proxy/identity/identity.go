package identity

import (
	"errors"
	"time"
)

// Identity is what the proxy learnt about a user.
type Identity struct {
	User   string              `json:"u"`
	Groups []string            `json:"g,omitempty"`
	Attrs  map[string][]string `json:"a,omitempty"`
	Source string              `json:"s"` // "saml" or "oidc"
	Issuer string              `json:"i,omitempty"`
	// DeviceTags come from claims or attributes the configuration maps to
	// device tags (ClaimMap.DeviceClaims).
	DeviceTags []string `json:"d,omitempty"`
	// ACR is the authentication context the IdP asserted at the last
	// sign-in (OIDC acr, SAML AuthnContextClassRef).
	ACR string `json:"c,omitempty"`
	// StepUpUntil: the user completed step-up authentication in this
	// session; it counts until this time (Unix seconds, 0: never).
	StepUpUntil int64     `json:"su,omitempty"`
	Expires     time.Time `json:"-"`
}

// SteppedUp reports whether the session's step-up still counts at now.
func (id *Identity) SteppedUp(now time.Time) bool {
	return id != nil && id.StepUpUntil > now.Unix()
}

// Errors callers match.
var (
	ErrEncryptedAssertion = errors.New("encrypted SAML assertions are not supported: configure the IdP to sign without encrypting for apps behind the proxy")
	ErrUnsigned           = errors.New("SAML response carries no valid signature from a trusted IdP certificate")
	ErrSessionTooLarge    = errors.New("identity too large for a session cookie")
	ErrReplayed           = errors.New("SAML assertion was already observed (replayed response)")
)
