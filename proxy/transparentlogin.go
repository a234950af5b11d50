package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/identity"
)

// IdentityConfig is who the user is in transparent (and explicit) mode,
// and how step-up authentication runs in both modes.
//
// A browser on an intercepted TLS host is known by the proxy's session, an
// encrypted __Host- cookie of that host. Where RequireUser says the app
// needs the user, a browser without a session is sent once through Login
// (a redirect to the provider that ends on the URL it asked for); fetch and
// XHR requests get 401 with an X-Portcullis-Login header naming the URL
// that starts the login instead, since a redirect would only break them.
// Native clients are never redirected: their client certificate names them
// (devices.user_from) or SourceUser does; otherwise they are anonymous.
type IdentityConfig struct {
	// Sessions seal the transparent-mode sessions (host-bound).
	Sessions *identity.Sessions
	// Login is the appliance's OIDC login on intercepted hosts: its
	// callback is served on every one of them. nil: no login.
	Login *identity.OIDCLogin
	// RequireUser reports whether the app at host needs the user.
	RequireUser func(host string) bool
	// SourceUser names the user of a native client's address.
	SourceUser func(addr netip.Addr) (identity.Identity, bool)
	// StepUp, with an ACR, lets require_step_up policies run in both
	// modes (transparent with Login, suffix with SuffixConfig.Login): the
	// stopped action sends the user to the provider for the stronger
	// context, and the session counts as stepped up for StepUp.TTL.
	StepUp identity.StepUp
	// SAMLStepUp, when set, runs the step-ups instead of the OIDC login
	// (in both modes), for StepUp.TTL.
	SAMLStepUp *identity.SAMLStepUp
}

// The proxy's identity endpoints, beside the OIDC callback.
const (
	loginStartPath  = suffixEndpointPrefix + "login"
	stepUpStartPath = suffixEndpointPrefix + "step-up"
	// LoginHeader tells a script which URL signs the user in.
	LoginHeader = "X-Portcullis-Login"
	// StepUpHeader tells a script which URL runs the step-up.
	StepUpHeader = "X-Portcullis-Step-Up"
)

// transparentIdentity learns the user of an intercepted request and runs
// the login where the app needs one. It reports whether it answered.
func (s *Server) transparentIdentity(w http.ResponseWriter, r *http.Request, ci *ConnInfo, st *requestState) bool {
	ic := s.cfg.Identity
	if ic == nil || ci.Mode == ModeSuffix {
		return false
	}
	host := hostOnly(r.Host)
	if ci.TLS && ic.Sessions != nil {
		if id, ok := ic.Sessions.Get(r, host); ok {
			st.user = &id
		}
	}
	if ci.TLS && strings.HasPrefix(r.URL.Path, suffixEndpointPrefix) && s.stepUpEndpoint(w, r, ci, st) {
		return true
	}
	if ci.TLS && ic.Login != nil && strings.HasPrefix(r.URL.Path, suffixEndpointPrefix) {
		switch {
		case ic.Login.IsCallback(r):
			st.set("allow", "login callback")
			ic.Login.Callback(w, r)
			return true
		case r.URL.Path == loginStartPath:
			st.set("allow", "login started")
			ic.Login.Start(w, r, r.URL.Query().Get("return"))
			return true
		}
	}
	if st.user != nil {
		return false
	}
	if ClientOf(r).Client == policy.ClientMobileDesktop {
		if d := ci.Device(); (d == nil || !d.Valid || d.User == "") && ic.SourceUser != nil {
			if id, ok := ic.SourceUser(ci.Client.Addr()); ok {
				st.user = &id
			}
		}
		return false
	}
	if !ci.TLS || ic.Login == nil || ic.RequireUser == nil || !ic.RequireUser(host) {
		return false
	}
	here := "https://" + host + r.URL.RequestURI()
	if isNavigation(r) {
		st.set("allow", "login started")
		ic.Login.Start(w, r, here)
		return true
	}
	ret := here
	if ref := r.Referer(); ref != "" {
		if u, err := url.Parse(ref); err == nil && strings.EqualFold(u.Hostname(), host) {
			ret = ref // a script's page is where the user should land
		}
	}
	st.set("block", "login required")
	w.Header().Set(LoginHeader, "https://"+host+loginStartPath+"?return="+url.QueryEscape(ret))
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "sign-in required: open "+loginStartPath+" on this site", http.StatusUnauthorized)
	return true
}

// isNavigation: a top-level page load a redirect can take through the
// provider. Fetch and XHR say otherwise in Sec-Fetch-Mode or by asking for
// JSON; without fetch metadata, a GET for HTML is one.
func isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate" && r.Header.Get("Sec-Fetch-Dest") != "iframe"
	}
	accept := r.Header.Get("Accept")
	if strings.Contains(accept, "json") || r.Header.Get("X-Requested-With") != "" {
		return false
	}
	return accept == "" || strings.Contains(accept, "text/html") || strings.Contains(accept, "*/*")
}

// hostOnly is a Host header without its port, lower-cased.
func hostOnly(h string) string {
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}
