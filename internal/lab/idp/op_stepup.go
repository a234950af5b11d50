package idp

import (
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// Step-up in the lab OP. An authorization request whose acr_values name
// StepUpACR takes two steps: the password (asked again even with a browser
// session when prompt=login or max_age=0 asks for a fresh sign-in), then a
// "confirm with code" form expecting StepUpCode. Only a login that passed
// both carries acr=StepUpACR (and amr pwd, otp) in its ID token; every
// other login has no acr.
const (
	StepUpACR  = "urn:portcullis:lab:acr:mfa"
	StepUpCode = "246810"
)

func stepUpAsked(ar op.AuthRequest) bool {
	a, ok := ar.(*authRequest)
	return ok && slices.Contains(a.req.ACRValues, StepUpACR)
}

// freshLoginAsked: the relying party wants the user to authenticate again,
// not a browser session reused.
func freshLoginAsked(ar op.AuthRequest) bool {
	a, ok := ar.(*authRequest)
	if !ok {
		return false
	}
	return slices.Contains(a.req.Prompt, "login") || a.req.MaxAge != nil && *a.req.MaxAge == 0 || stepUpAsked(ar)
}

var codeTemplate = template.Must(template.New("code").Parse(`<!doctype html>
<html><head><title>Lab OP confirmation</title></head><body>
<h1>Confirm it is you</h1>
<p>Enter the code from your authenticator.</p>
{{if .Error}}<p id="error" style="color:red">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label>Code <input id="code" name="code" autocomplete="one-time-code"></label>
<button id="confirm" type="submit">Confirm</button>
</form></body></html>`))

func (l *opLogin) codeForm(w http.ResponseWriter, id, msg string, status int) {
	csrf := randomID(16)
	http.SetCookie(w, &http.Cookie{Name: opCSRFCookie, Value: csrf, Path: loginPath, Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(authRequestTTL / time.Second)})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = codeTemplate.Execute(w, struct{ ID, CSRF, Error string }{id, csrf, msg})
}

// postCode is the second step: the code, for a request whose password step
// passed. The CSRF check was made by post.
func (l *opLogin) postCode(w http.ResponseWriter, r *http.Request, id string) {
	user, ok := l.storage.passwordUser(id)
	if !ok {
		http.Error(w, "lab OP: sign in with your password first", http.StatusBadRequest)
		return
	}
	if !constantTimeEqual(r.PostForm.Get("code"), StepUpCode) {
		l.codeForm(w, id, "Wrong code", http.StatusUnauthorized)
		return
	}
	l.storage.setACR(id, StepUpACR)
	sid := l.storage.newBrowserSession(user)
	http.SetCookie(w, &http.Cookie{Name: opSessionCookie, Value: sid, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(browserSessionTTL / time.Second)})
	l.finish(w, r, id, user, sid)
}

func (s *opStorage) passwordChecked(id, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.authRequests[id]; ok {
		a.pwUser = user
	}
}

func (s *opStorage) passwordUser(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[id]
	if !ok || a.pwUser == "" {
		return "", false
	}
	return a.pwUser, true
}

func (s *opStorage) setACR(id, acr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.authRequests[id]; ok {
		a.acr = acr
	}
}
