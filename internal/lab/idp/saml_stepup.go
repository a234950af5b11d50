package idp

import (
	"encoding/base64"
	"html/template"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
)

// Step-up in the lab SAML IdP. An AuthnRequest whose RequestedAuthnContext
// names StepUpSAMLContext takes two steps: the password (asked again, even
// with an IdP session, when ForceAuthn="true": samlidp honours it), then a
// "confirm with code" form expecting StepUpCode. Only a sign-in that passed
// both is asserted with StepUpSAMLContext; every other one, and one where
// the user chose "continue without the code" (id "skip") on the second
// step, is asserted with PasswordSAMLContext, whatever was asked for (the
// IdP does not enforce the request: the service provider must check).
const (
	StepUpSAMLContext   = "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken"
	PasswordSAMLContext = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
)

// samlStepUpTTL bounds the time between the password and the code.
const samlStepUpTTL = 5 * time.Minute

// stepUpSessions is samlidp's session provider with the second step; the
// server's other session interfaces (logout, participants) stay its own.
type stepUpSessions struct {
	*samlidp.Server

	mu      sync.Mutex
	pending map[string]pendingCode // by form token
}

type pendingCode struct {
	session   saml.Session
	requestID string
	expires   time.Time
}

func newStepUpSessions(s *samlidp.Server) *stepUpSessions {
	return &stepUpSessions{Server: s, pending: map[string]pendingCode{}}
}

// samlStepUpAsked: the request's RequestedAuthnContext names the stronger
// context.
func samlStepUpAsked(req *saml.IdpAuthnRequest) bool {
	rac := req.Request.RequestedAuthnContext
	return rac != nil && slices.Contains(rac.ClassRefs(), StepUpSAMLContext)
}

func (p *stepUpSessions) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	if !samlStepUpAsked(req) {
		return p.Server.GetSession(w, r, req)
	}
	if r.Method == http.MethodPost && r.PostForm.Get("stepup") != "" {
		token := r.PostForm.Get("stepup")
		pc, ok := p.lookup(token, req.Request.ID)
		if !ok {
			http.Error(w, "lab SAML IdP: sign in with your password first", http.StatusBadRequest)
			return nil
		}
		s := pc.session
		switch {
		case r.PostForm.Get("skip") != "":
			s.AuthnContextClassRef = PasswordSAMLContext
		case constantTimeEqual(r.PostForm.Get("code"), StepUpCode):
			s.AuthnContextClassRef = StepUpSAMLContext
		default:
			p.codeForm(w, req, token, "Wrong code", http.StatusUnauthorized)
			return nil
		}
		p.forget(token)
		return &s
	}
	s := p.Server.GetSession(w, r, req)
	if s == nil {
		return nil // samlidp answered: the password form, or an error
	}
	token := randomID(16)
	p.mu.Lock()
	now := time.Now()
	for k, v := range p.pending {
		if now.After(v.expires) {
			delete(p.pending, k)
		}
	}
	p.pending[token] = pendingCode{session: *s, requestID: req.Request.ID, expires: now.Add(samlStepUpTTL)}
	p.mu.Unlock()
	p.codeForm(w, req, token, "", http.StatusOK)
	return nil
}

func (p *stepUpSessions) lookup(token, requestID string) (pendingCode, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc, ok := p.pending[token]
	if !ok || pc.requestID != requestID || time.Now().After(pc.expires) {
		return pendingCode{}, false
	}
	return pc, true
}

func (p *stepUpSessions) forget(token string) {
	p.mu.Lock()
	delete(p.pending, token)
	p.mu.Unlock()
}

var samlCodeTemplate = template.Must(template.New("saml-code").Parse(`<!doctype html>
<html><head><title>Lab SAML IdP confirmation</title></head><body>
<h1>Confirm it is you</h1>
<p>Enter the code from your authenticator.</p>
{{if .Error}}<p id="error" style="color:red">{{.Error}}</p>{{end}}
<form method="post" action="{{.URL}}">
<input type="hidden" name="SAMLRequest" value="{{.SAMLRequest}}">
<input type="hidden" name="RelayState" value="{{.RelayState}}">
<input type="hidden" name="stepup" value="{{.Token}}">
<label>Code <input id="code" name="code" autocomplete="one-time-code"></label>
<button id="confirm" type="submit">Confirm</button>
<button id="skip" type="submit" name="skip" value="1">Continue without the code</button>
</form></body></html>`))

// codeForm is the second step; it posts back to the SSO endpoint with the
// original request, like samlidp's login form.
func (p *stepUpSessions) codeForm(w http.ResponseWriter, req *saml.IdpAuthnRequest, token, msg string, status int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = samlCodeTemplate.Execute(w, struct{ URL, SAMLRequest, RelayState, Token, Error string }{
		req.IDP.SSOURL.String(), base64.StdEncoding.EncodeToString(req.RequestBuffer), req.RelayState, token, msg})
}
