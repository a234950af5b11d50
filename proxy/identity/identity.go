package identity

import (
	"errors"
	"time"
)

// Identity is what the proxy learnt about a user.
type Identity struct {
	User    string              `json:"u"`
	Groups  []string            `json:"g,omitempty"`
	Attrs   map[string][]string `json:"a,omitempty"`
	Source  string              `json:"s"` // "saml" or "oidc"
	Issuer  string              `json:"i,omitempty"`
	Expires time.Time           `json:"-"`
}

// Errors callers match.
var (
	ErrEncryptedAssertion = errors.New("encrypted SAML assertions are not supported: configure the IdP to sign without encrypting for apps behind the proxy")
	ErrUnsigned           = errors.New("SAML response carries no valid signature from a trusted IdP certificate")
	ErrSessionTooLarge    = errors.New("identity too large for a session cookie")
	ErrReplayed           = errors.New("SAML assertion was already observed (replayed response)")
)
