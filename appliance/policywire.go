package appliance

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync/atomic"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/proxy/identity"
)

// policyEnforcer connects the policy engine to the proxy's hooks. The engine
// is swapped atomically on reload: a request sees one engine from start to
// end, and a bad policy directory never replaces a good one.
type policyEnforcer struct {
	dir    string
	caps   policy.Capabilities // what this configuration can enforce
	static *accessDecider
	engine atomic.Pointer[policy.Engine]
	// alerts receives the alerts of matched policies; nil drops them.
	alerts *alerter
	// devices: the TLS listeners ask for client certificates (devicewire.go);
	// set at start and by each reload of the device CAs.
	devices atomic.Bool
	// certUsers: devices, and a valid client certificate names its user
	// (devices.user_from).
	certUsers atomic.Bool
	// loginFor: the hosts whose browsers the transparent login names
	// (identity.require_user_for with the OIDC provider); nil: none.
	loginFor func(host string) bool
	// sourceUser: identity.source_users, for native clients; nil: none.
	sourceUser func(netip.Addr) (identity.Identity, bool)
}

var (
	_ proxy.ConnDecider    = (*policyEnforcer)(nil)
	_ proxy.RequestDecider = (*policyEnforcer)(nil)
)

func newPolicyEnforcer(dir string, caps policy.Capabilities, static *accessDecider) (*policyEnforcer, error) {
	p := &policyEnforcer{dir: dir, caps: caps, static: static}
	if dir != "" {
		if err := p.reload(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// reload compiles the policy directory and swaps it in only if it is valid
// and everything in it can be enforced by this configuration.
func (p *policyEnforcer) reload() error {
	set, _, err := loadPolicyDir(p.dir)
	if err != nil {
		return fmt.Errorf("policy.dir: %w", err)
	}
	e, err := policy.CompileFor(set, p.caps)
	if err != nil {
		return fmt.Errorf("policy.dir: %w", err)
	}
	p.engine.Store(e)
	return nil
}

// DecideConn applies the static lists, then the access policies. With
// policies loaded, only onboarded apps are intercepted; everything else is
// spliced untouched, as a CASB proxies the apps it controls and no others.
func (p *policyEnforcer) DecideConn(ci *proxy.ConnInfo) proxy.ConnDecision {
	if d := p.static.DecideConn(ci); d.Verdict != proxy.VerdictIntercept {
		return d
	}
	e := p.engine.Load()
	if e == nil {
		return proxy.ConnDecision{Verdict: proxy.VerdictIntercept}
	}
	name := ci.ServerName()
	if name == "" && !ci.TLS {
		// Plain HTTP: the host is only known per request.
		return proxy.ConnDecision{Verdict: proxy.VerdictIntercept}
	}
	subj := subjectOf(ci)
	if subj.ClientApp == policy.ClientMobileDesktop && subj.User == "" && p.sourceUser != nil {
		// A native client identity.source_users names is decided as that
		// user here, as its requests are (transparentIdentity).
		if id, ok := p.sourceUser(ci.Client.Addr()); ok {
			subj.User, subj.Groups = id.User, id.Groups
		}
	}
	d := e.Access(&policy.AccessRequest{Subject: subj, Host: name})
	userMayAllow := d.BlockRestsOnIdentity()
	if d.Action == policy.ActionBlock && (p.deviceMayAllow(e, ci, subj, name) || p.certUserMayAllow(ci, subj, userMayAllow)) {
		return proxy.ConnDecision{Verdict: proxy.VerdictIntercept, Reason: "decided per request: client certificate"}
	}
	if d.Alert && !(userMayAllow && subj.ClientApp == policy.ClientBrowser && p.loginFor != nil && p.loginFor(name)) {
		// A browser that will sign in is decided (and alerted on) per
		// request, with its user (userRecheck).
		p.alerts.alertsOf(d.Matches, d.App, subj, name, "access")
	}
	switch {
	case d.Action == policy.ActionBlock:
		// Browsers get a page saying why; native clients the TLS alert.
		return proxy.ConnDecision{Verdict: proxy.VerdictBlock, Reason: "policy " + winnerID(d.Matches, d.Winner),
			Page: subj.ClientApp == policy.ClientBrowser, Message: d.Message, UserMayAllow: userMayAllow}
	case !d.Intercept:
		return proxy.ConnDecision{Verdict: proxy.VerdictBypass, Reason: "not an onboarded app"}
	}
	return proxy.ConnDecision{Verdict: proxy.VerdictIntercept, Reason: d.Action.String()}
}

// DecideRequest makes the per-request access decision where the
// connection could not: in suffix mode (the app and the user are known per
// request) and for plain HTTP (the host is only known from the Host
// header), so a host blocked over HTTPS is blocked on port 80 too. Session
// policies are the proxy's session enforcement (sessionConfig).
func (p *policyEnforcer) DecideRequest(ci *proxy.ConnInfo, r *http.Request) proxy.RequestDecision {
	if ci.Mode != proxy.ModeSuffix && !ci.TLS && p.static.blocks(r.Host) {
		return proxy.RequestDecision{Block: true, Reason: "access.block_hosts", Message: "Access to this site is not allowed by your organisation's policy."}
	}
	e := p.engine.Load()
	if e != nil && ci.Mode != proxy.ModeSuffix && ci.TLS && ci.Device() != nil {
		return p.deviceRecheck(e, ci, r)
	}
	if _, ok := proxy.RequestUser(r.Context()); ok && e != nil && ci.Mode != proxy.ModeSuffix && ci.TLS {
		return p.userRecheck(e, ci, r)
	}
	if e == nil || ci.Mode != proxy.ModeSuffix && ci.TLS {
		return proxy.RequestDecision{}
	}
	subj := requestSubject(ci, r)
	a := e.Access(&policy.AccessRequest{Subject: subj, Host: r.Host})
	if a.Alert {
		p.alerts.alertsOf(a.Matches, a.App, subj, r.Host, "access")
	}
	if a.Action == policy.ActionBlock {
		msg := a.Message
		if msg == "" {
			msg = "Access to this app is not allowed by your organisation's policy."
		}
		return proxy.RequestDecision{Block: true, Reason: "policy " + winnerID(a.Matches, a.Winner), Message: msg,
			UserMayAllow: !ci.TLS && a.BlockRestsOnIdentity()}
	}
	return proxy.RequestDecision{}
}

// subjectOf is who opened the connection: the client's address, its kind
// from the ClientHello (browser or native, user-agent tags), its device.
func subjectOf(ci *proxy.ConnInfo) policy.Subject {
	return policy.Subject{SourceIP: ci.Client.Addr(), ClientApp: ci.ClientKind.Client, UATags: ci.ClientKind.UATags,
		DeviceTags: deviceTagsOf(ci), User: deviceUserOf(ci)}
}

func winnerID(m []policy.Match, winner int) string {
	if winner < 0 || winner >= len(m) || m[winner].Policy == nil {
		return "default"
	}
	return m[winner].Policy.ID
}
