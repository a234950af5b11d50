package proxy

import (
	"net/http"
	"strings"

	"github.com/portcullis-gw/portcullis/policy"
)

// Access decisions that wait for the user. In transparent (and explicit)
// mode the connection is decided from its ClientHello, before anyone has
// signed in; a block that rests on who the user is (ConnDecision.
// UserMayAllow) would then refuse everybody, the users the policy lets in
// included. Where the proxy can still learn the user — a browser on a host
// that requires the user, whose login runs inside the intercepted
// connection — the connection is intercepted instead, the login runs
// (transparentIdentity), and the RequestDecider decides each request with
// the user known. Until the user is known nothing reaches the origin.

// deferToUser turns a connection-level block that rests on the user into
// an interception decided per request, where the user can be learnt;
// otherwise d is returned unchanged (native clients keep the TLS alert).
func (s *Server) deferToUser(ci *ConnInfo, d ConnDecision) ConnDecision {
	if d.Verdict != VerdictBlock || !d.UserMayAllow || !ci.TLS || !s.canLearnUser(ci, ci.ServerName(), ci.ClientKind.Client) {
		return d
	}
	blocked := d
	ci.userBlock = &blocked
	return ConnDecision{Verdict: VerdictIntercept, Reason: "decided per request with the user: " + d.Reason}
}

// canLearnUser: the proxy's login can tell who the user of host is — a
// browser, outside suffix mode, on a host that requires the user.
func (s *Server) canLearnUser(ci *ConnInfo, host string, client policy.ClientApp) bool {
	ic := s.cfg.Identity
	return ic != nil && ci.Mode != ModeSuffix && ic.Login != nil && ic.Sessions != nil && ic.RequireUser != nil &&
		client == policy.ClientBrowser && host != "" && ic.RequireUser(host)
}

// requestAccess is the per-request access decision of an intercepted
// request outside suffix mode; it reports whether it answered the request.
//
// A connection let in to learn the user whose request still has none (one
// the login does not take, such as a client whose User-Agent says it is
// native) keeps the connection's block. A plain-HTTP navigation whose
// block rests on the user is sent to the same URL over HTTPS, where the
// browser can sign in and be decided like every HTTPS request, instead of
// being refused on port 80 what it may be allowed on 443.
func (s *Server) requestAccess(w http.ResponseWriter, r *http.Request, ci *ConnInfo, st *requestState) bool {
	if b := ci.userBlock; b != nil && st.user == nil {
		s.Stats.RequestsBlocked.Add(1)
		st.set("block", b.Reason+" (user unknown)")
		writeBlockPage(w, http.StatusForbidden, blockPage{Title: "Blocked by policy", Reason: accessMessage(b.Message), Host: r.Host, RequestID: st.id})
		return true
	}
	if s.cfg.Request == nil {
		return false
	}
	d := s.cfg.Request.DecideRequest(ci, r)
	if d.Monitor {
		st.set("monitor", d.Reason)
	}
	if !d.Block {
		return false
	}
	if host := hostOnly(r.Host); d.UserMayAllow && !ci.TLS && st.user == nil && isNavigation(r) && s.canLearnUser(ci, host, ClientOf(r).Client) {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		st.set("allow", "sent to HTTPS to sign in: "+d.Reason)
		w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusFound)
		return true
	}
	s.Stats.RequestsBlocked.Add(1)
	st.set("block", d.Reason)
	writeBlockPage(w, http.StatusForbidden, blockPage{Title: "Blocked by policy", Reason: d.Message, Host: r.Host, RequestID: st.id})
	return true
}

// accessMessage is the block page's text for an access block.
func accessMessage(m string) string {
	if m == "" {
		return "Access to this site is not allowed by your organisation's policy."
	}
	return m
}
