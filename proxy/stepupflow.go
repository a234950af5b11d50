package proxy

import (
	"bytes"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/identity"
	"github.com/portcullis-gw/portcullis/proxy/session"
)

// Step-up authentication in both pipelines. A session policy with action
// require_step_up stops the action (session.StepUpNeeded) and the proxy
// answers it here instead of with a block page:
//
//   - a navigation (a download link, a page) is redirected to
//     /.portcullis/step-up?return=<itself>, which sends the browser to the
//     provider for the stronger context and, once it is confirmed, back to
//     the same URL: the download then starts;
//   - a form post gets a page saying to confirm, with the link, and then to
//     submit the form again (its body is not kept across the sign-in);
//   - fetch and XHR get 401 with X-Portcullis-Step-Up naming that link.
//
// The step-up is kept in the session cookie of the host (bound to it and
// to the session's user) and counts for IdentityConfig.StepUp.TTL.

// stepUpMethod is how step-ups run for a request: the OIDC login or the
// appliance's SAML service provider, or neither.
type stepUpMethod struct {
	oidc *identity.OIDCLogin
	saml *identity.SAMLStepUp
}

func (m stepUpMethod) available() bool { return m.oidc != nil || m.saml != nil }

// stepUpMethodFor is the method that runs step-ups for this request.
func (s *Server) stepUpMethodFor(ci *ConnInfo) stepUpMethod {
	ic := s.cfg.Identity
	if ic == nil || ic.StepUp.TTL <= 0 {
		return stepUpMethod{}
	}
	if ci.Mode != ModeSuffix && !ci.TLS {
		return stepUpMethod{} // the session is a Secure cookie: no step-up over plain HTTP
	}
	if ic.SAMLStepUp != nil {
		return stepUpMethod{saml: ic.SAMLStepUp}
	}
	if ic.StepUp.ACR == "" {
		return stepUpMethod{}
	}
	if ci.Mode == ModeSuffix {
		if s.cfg.Suffix != nil && s.cfg.Suffix.Login != nil {
			return stepUpMethod{oidc: s.cfg.Suffix.Login}
		}
		return stepUpMethod{}
	}
	if ic.Login == nil {
		return stepUpMethod{}
	}
	return stepUpMethod{oidc: ic.Login}
}

// stepUpState is what session enforcement is told about step-up.
func (s *Server) stepUpState(ci *ConnInfo, st *requestState) session.StepUp {
	switch {
	case !s.stepUpMethodFor(ci).available():
		return session.StepUpUnavailable
	case st.user.SteppedUp(time.Now()):
		return session.StepUpDone
	}
	return session.StepUpNeeded
}

// stepUpEndpoint serves the step-up endpoints under /.portcullis/ (in the
// suffix pipeline w suffixes the redirects); false when r is none of them.
func (s *Server) stepUpEndpoint(w http.ResponseWriter, r *http.Request, ci *ConnInfo, st *requestState) bool {
	m := s.stepUpMethodFor(ci)
	switch {
	case r.URL.Path == stepUpStartPath:
		s.stepUpStart(w, r, ci, st, m)
	case r.URL.Path == stepUpResubmitPath:
		s.stepUpResubmit(w, r, st)
	case m.saml == nil || !m.saml.IsEndpoint(r):
		return false
	case r.URL.Path == identity.SAMLMetadataPath:
		st.set("allow", "saml step-up metadata")
		m.saml.ServeMetadata(w, r, s.samlACS(ci, r, st, m.saml))
	case r.URL.Path == identity.SAMLACSPath:
		if why := m.saml.ServeACS(unsuffixedWriter(w), r); why != "" {
			st.set("block", why)
		} else {
			st.set("allow", "saml step-up response accepted")
		}
	default: // identity.SAMLDonePath
		if why := m.saml.ServeDone(unsuffixedWriter(w), r); why != "" {
			st.set("block", why)
		} else {
			st.set("allow", "saml step-up done")
		}
	}
	return true
}

// unsuffixedWriter: the SAML endpoints redirect only within this host, so
// their Location needs no suffixing.
func unsuffixedWriter(w http.ResponseWriter) http.ResponseWriter {
	if lw, ok := w.(locationWriter); ok {
		return lw.ResponseWriter
	}
	return w
}

// samlACS is this host's ACS URL as the IdP addresses it. Through the
// suffix, an IdP that is itself an onboarded app is reached under the
// suffix too, and the proxy maps the URLs inside the (unsigned)
// AuthnRequest back to the origin on the way, as for any app's SAML: that
// IdP then addresses the origin's name, and its post comes back here
// through the response rewriting.
func (s *Server) samlACS(ci *ConnInfo, r *http.Request, st *requestState, sp *identity.SAMLStepUp) string {
	host := hostOnly(r.Host)
	if ci.Mode == ModeSuffix && s.cfg.Suffix != nil && st.origin != "" {
		if _, suffixed := s.cfg.Suffix.Mapper.ToSuffixed(sp.IdPHost()); suffixed {
			host = st.origin
		}
	}
	return "https://" + host + identity.SAMLACSPath
}

// stepUpStart serves /.portcullis/step-up?return=<path or URL of this host>.
func (s *Server) stepUpStart(w http.ResponseWriter, r *http.Request, ci *ConnInfo, st *requestState, m stepUpMethod) {
	ic := s.cfg.Identity
	ret := r.URL.Query().Get("return")
	switch {
	case m.saml != nil:
		st.set("allow", "step-up started (saml)")
		m.saml.Start(w, r, ret, s.samlACS(ci, r, st, m.saml), ic.StepUp.TTL)
	case m.oidc != nil:
		st.set("allow", "step-up started")
		m.oidc.StartStepUp(w, r, ret, ic.StepUp)
	default:
		st.set("block", "step-up not configured")
		writeBlockPage(w, http.StatusNotFound, blockPage{Title: "Not found", Reason: "No such gateway page.", Host: r.Host, RequestID: st.id})
	}
}

// stepUpLink is the step-up endpoint (relative to the host the browser
// uses) that comes back to ret.
func stepUpLink(ret string) string { return stepUpStartPath + "?return=" + url.QueryEscape(ret) }

// stepUpReturn is where the user lands after a step-up for r: the same
// URL for a GET, else the page the form was on (this host's Referer).
func stepUpReturn(r *http.Request, host string) string {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return r.URL.RequestURI()
	}
	if u, err := url.Parse(r.Referer()); err == nil && u.Host != "" && strings.EqualFold(hostOnly(u.Host), host) {
		return u.RequestURI()
	}
	return "/"
}

// stepUpRequired answers a request that session enforcement stopped for a
// step-up; false when the stop is not one.
func (s *Server) stepUpRequired(w http.ResponseWriter, r *http.Request, st *requestState) bool {
	if st.sess == nil || st.sess.Outcome().Action != policy.ActionStepUp {
		return false
	}
	in := r
	if st.in != nil {
		in = st.in
	}
	host := hostOnly(in.Host)
	ret := stepUpReturn(in, host)
	link := stepUpLink(ret)
	if formSubmission(in) {
		// The form's body is not kept across the sign-in: the user lands
		// on a page that says to submit it again, then goes back to it.
		link = stepUpLink(stepUpResubmitPath + "?return=" + url.QueryEscape(ret))
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	switch {
	case browserNavigation(in):
		http.Redirect(w, r, link, http.StatusFound)
	case formSubmission(in) && ClientOf(in).Client != policy.ClientMobileDesktop:
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		h.Set(StepUpHeader, link)
		w.WriteHeader(http.StatusForbidden)
		_ = stepUpTemplate.Execute(w, stepUpPage{Link: link, Message: st.sess.Block().Message, Host: host, RequestID: st.id})
	default:
		h.Set(StepUpHeader, link)
		http.Error(w, "step-up authentication required: open "+link+" on this site, then repeat the action", http.StatusUnauthorized)
	}
	return true
}

// stepUpResponse turns a download stopped for a step-up (already replaced
// by the blocked-file notice) into the same answers: a redirect for a
// navigation, 401 with the header otherwise.
func (s *Server) stepUpResponse(resp *http.Response, st *requestState) {
	if st.sess == nil || st.sess.Outcome().Action != policy.ActionStepUp {
		return
	}
	in := resp.Request
	if st.in != nil {
		in = st.in
	}
	link := stepUpLink(stepUpReturn(in, hostOnly(in.Host)))
	h := http.Header{}
	for _, c := range resp.Header.Values("Set-Cookie") {
		h.Add("Set-Cookie", c)
	}
	h.Set("Cache-Control", "no-store")
	h.Set(StepUpHeader, link)
	var body []byte
	if browserNavigation(in) {
		h.Set("Location", link)
		resp.StatusCode, resp.Status = http.StatusFound, "302 Found"
	} else {
		body = []byte("step-up authentication required: open " + link + " on this site, then repeat the download\n")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		resp.StatusCode, resp.Status = http.StatusUnauthorized, "401 Unauthorized"
	}
	_ = resp.Body.Close()
	h.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header = h
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.TransferEncoding, resp.Trailer = nil, nil
}

// browserNavigation: a navigation of a browser; native clients are never
// redirected to a sign-in they cannot do.
func browserNavigation(r *http.Request) bool {
	return isNavigation(r) && ClientOf(r).Client != policy.ClientMobileDesktop
}

// formSubmission: a form the browser posted as a navigation (not a script).
func formSubmission(r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// stepUpResubmitPath is where a step-up stopped at a form ends: a page
// saying the sign-in is confirmed and the form must be submitted again.
const stepUpResubmitPath = stepUpStartPath + "/resubmit"

// stepUpResubmit serves stepUpResubmitPath?return=<path of this host>.
func (s *Server) stepUpResubmit(w http.ResponseWriter, r *http.Request, st *requestState) {
	back := r.URL.Query().Get("return")
	// Only a path of this host: the page is no redirector.
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") || strings.HasPrefix(back, "/\\") {
		back = "/"
	}
	st.set("allow", "step-up: submit the form again")
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_ = resubmitTemplate.Execute(w, stepUpPage{Link: back, Host: hostOnly(r.Host), RequestID: st.id})
}

var resubmitTemplate = template.Must(template.New("resubmit").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign-in confirmed: submit again</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}a.button{display:inline-block;padding:.5rem 1rem;background:#1d4ed8;color:#fff;text-decoration:none;border-radius:.3rem}
code{background:#f3f3f3;padding:.1rem .3rem}</style></head>
<body><h1>Sign-in confirmed</h1>
<p id="step-up-resubmit">Your sign-in is confirmed. The form you submitted was not sent: go back to the page and submit it again.</p>
<p><a class="button" id="back" href="{{.Link}}">Back to the form</a></p>
<p>Site: <code>{{.Host}}</code><br>Reference: <code>{{.RequestID}}</code></p>
<p>Portcullis gateway</p></body></html>
`))

type stepUpPage struct{ Link, Message, Host, RequestID string }

var stepUpTemplate = template.Must(template.New("step-up").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Confirm it is you</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}a.button{display:inline-block;padding:.5rem 1rem;background:#1d4ed8;color:#fff;text-decoration:none;border-radius:.3rem}
code{background:#f3f3f3;padding:.1rem .3rem}</style></head>
<body><h1>Confirm it is you</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
<p id="step-up-message">Your organisation asks you to confirm your sign-in before this action. Nothing was sent yet:
after confirming you are brought back to the page, where you submit the form again.</p>
<p><a class="button" id="step-up" href="{{.Link}}">Confirm my sign-in</a></p>
<p>Site: <code>{{.Host}}</code><br>Reference: <code>{{.RequestID}}</code></p>
<p>Portcullis gateway</p></body></html>
`))
