package identity

import (
	"net/http"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
)

// StepUp is what a step-up asks the provider for: a fresh authentication
// (max_age=0, prompt=login) in the stronger context ACR (acr_values). On
// return the ID token must assert ACR and an auth_time after the request,
// and the session then counts as stepped up for TTL.
type StepUp struct {
	ACR string
	TTL time.Duration
}

// authParams are the authorization request's step-up parameters.
func (s *StepUp) authParams() []oauth2.AuthCodeOption {
	return []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("acr_values", s.ACR),
		oauth2.SetAuthURLParam("max_age", "0"),
		oauth2.SetAuthURLParam("prompt", "login"),
	}
}

// StartStepUp sends the browser to the provider for a step-up; after it,
// the browser comes back to returnURL (a page of this host) with the
// session marked stepped up.
func (l *OIDCLogin) StartStepUp(w http.ResponseWriter, r *http.Request, returnURL string, up StepUp) {
	if up.ACR == "" || up.TTL <= 0 {
		http.Error(w, "step-up is not configured", http.StatusInternalServerError)
		return
	}
	l.start(w, r, returnURL, &up)
}

// authTimeSkew tolerates clocks a little apart between the provider and
// the appliance when checking that the authentication is fresh.
const authTimeSkew = 30 * time.Second

// stepUpDone checks a step-up's ID token and marks id stepped up. It
// returns what to tell the user when the step-up does not count: the
// provider did not assert the required context, reused an older sign-in,
// or signed in someone other than the session's user.
func (l *OIDCLogin) stepUpDone(r *http.Request, host string, p *pendingLogin, claims *oidc.IDTokenClaims, id *Identity) string {
	if claims.AuthenticationContextClassReference != p.ACR {
		return "the identity provider did not confirm the stronger sign-in (acr " + quoteOrNone(claims.AuthenticationContextClassReference) + ", " + p.ACR + " required)"
	}
	if at := claims.GetAuthTime(); at.IsZero() || at.Add(authTimeSkew).Unix() < p.Started {
		return "the identity provider reused an earlier sign-in instead of asking again"
	}
	until := time.Now().Add(time.Duration(p.TTL) * time.Second).Unix()
	if prev, ok := l.sessions.Get(r, host); ok {
		if !sameUser(prev, *id) {
			return "the confirmation was made as another user than the one signed in"
		}
		// The session keeps who it was (a SAML login's name and groups
		// stay); the step-up is added to it.
		prev.ACR, prev.StepUpUntil = id.ACR, until
		*id = prev
		return ""
	}
	id.StepUpUntil = until
	return ""
}

// sameUser compares two identities of one person that may come from
// different sources (a SAML NameID that is an e-mail, an OIDC
// preferred_username): the user name or an e-mail address must match.
func sameUser(a, b Identity) bool {
	names := func(id Identity) []string {
		out := []string{strings.ToLower(id.User)}
		for _, e := range id.Attrs["email"] {
			out = append(out, strings.ToLower(e))
		}
		return out
	}
	bn := names(b)
	for _, x := range names(a) {
		for _, y := range bn {
			if x != "" && x == y {
				return true
			}
		}
	}
	return false
}

func quoteOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return `"` + s + `"`
}
