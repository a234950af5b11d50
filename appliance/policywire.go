package appliance

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
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
	d := e.Access(&policy.AccessRequest{Subject: subj, Host: name})
	if d.Alert {
		p.alerts.alertsOf(d.Matches, d.App, subj, name, "access")
	}
	switch {
	case d.Action == policy.ActionBlock:
		return proxy.ConnDecision{Verdict: proxy.VerdictBlock, Reason: "policy " + winnerID(d.Matches, d.Winner)}
	case !d.Intercept:
		return proxy.ConnDecision{Verdict: proxy.VerdictBypass, Reason: "not an onboarded app"}
	}
	return proxy.ConnDecision{Verdict: proxy.VerdictIntercept, Reason: d.Action.String()}
}

// DecideRequest applies the session policies to one request. A policy that
// needs the body's content is decided as "could not be inspected" until body
// inspection is wired into the proxy, so it fails closed by default.
func (p *policyEnforcer) DecideRequest(ci *proxy.ConnInfo, r *http.Request) proxy.RequestDecision {
	e := p.engine.Load()
	if e == nil {
		return proxy.RequestDecision{}
	}
	subj := subjectOf(ci)
	if id, ok := proxy.RequestUser(r.Context()); ok {
		subj.User, subj.Groups = id.User, id.Groups
	}
	if ci.Mode == proxy.ModeSuffix {
		// The suffix proxy has no connection-level decision: the app is
		// only known per request, and so is the user.
		a := e.Access(&policy.AccessRequest{Subject: subj, Host: r.Host})
		if a.Alert {
			p.alerts.alertsOf(a.Matches, a.App, subj, r.Host, "access")
		}
		if a.Action == policy.ActionBlock {
			msg := a.Message
			if msg == "" {
				msg = "Access to this app is not allowed by your organisation's policy."
			}
			return proxy.RequestDecision{Block: true, Reason: "policy " + winnerID(a.Matches, a.Winner), Message: msg}
		}
	}
	req := &policy.SessionRequest{Subject: subj, Method: r.Method, Host: r.Host, Path: r.URL.Path}
	d := e.Session(req)
	if d.NeedInspection {
		req.Inspection = policy.InspectionFailed
		d = e.Session(req)
	}
	if d.Alert {
		act := d.Activity
		if act == "" {
			act = r.Method + " " + r.URL.Path
		}
		p.alerts.alertsOf(d.Matches, d.App, subj, r.Host, act)
	}
	switch d.Action {
	case policy.ActionAllow:
		return proxy.RequestDecision{}
	case policy.ActionMonitor:
		return proxy.RequestDecision{Monitor: true, Reason: "policy " + winnerID(d.Matches, d.Winner)}
	}
	// Block, and until their enforcement lands, step-up and protect are
	// refused rather than let through.
	msg := d.Message
	if msg == "" {
		msg = "This action is not allowed by your organisation's policy."
	}
	return proxy.RequestDecision{Block: true, Reason: "policy " + winnerID(d.Matches, d.Winner) + ": " + d.Action.String(), Message: msg}
}

func subjectOf(ci *proxy.ConnInfo) policy.Subject {
	// Users come from SSO sessions and client kinds from JA4/User-Agent in
	// later work; until then every client is an anonymous browser.
	return policy.Subject{SourceIP: ci.Client.Addr(), ClientApp: policy.ClientBrowser}
}

func winnerID(m []policy.Match, winner int) string {
	if winner < 0 || winner >= len(m) || m[winner].Policy == nil {
		return "default"
	}
	return m[winner].Policy.ID
}
