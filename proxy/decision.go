package proxy

import "net/http"

// Verdict is the connection-level outcome of the access decision.
type Verdict uint8

const (
	// VerdictIntercept terminates TLS and runs every request through the
	// session hooks.
	VerdictIntercept Verdict = iota
	// VerdictBypass splices the raw bytes to the original destination: the
	// client sees the origin's own certificate.
	VerdictBypass
	// VerdictBlock refuses the connection: a TLS alert (or a reset for plain
	// HTTP) and an access-log line with the reason.
	VerdictBlock
)

func (v Verdict) String() string {
	switch v {
	case VerdictBypass:
		return "bypass"
	case VerdictBlock:
		return "block"
	default:
		return "intercept"
	}
}

// ConnDecision is a verdict and the reason the access log records for it.
type ConnDecision struct {
	Verdict Verdict
	Reason  string
	// Page (with VerdictBlock on TLS): complete the handshake with the
	// appliance's leaf and answer every request with a block page carrying
	// Message, instead of a bare TLS alert — what a browser user needs to
	// understand the refusal. Native clients get the alert.
	Page    bool
	Message string
	// UserMayAllow (with VerdictBlock): the block rests on who the user is
	// (the policies that block filter on users, groups or device tags), and
	// the connection was decided before the user was known. Where the proxy
	// can still learn the user of this connection (a browser on a host
	// IdentityConfig.RequireUser names), it intercepts instead, runs the
	// login and leaves the decision to the RequestDecider per request;
	// otherwise the block stands.
	UserMayAllow bool
}

// ConnDecider makes the access decision once per connection, after the
// ClientHello has been peeked and before any byte goes upstream.
type ConnDecider interface {
	DecideConn(ci *ConnInfo) ConnDecision
}

// RequestDecision is the session decision for one request.
type RequestDecision struct {
	Block bool
	// Monitor lets the request through and records it as a policy match.
	Monitor bool
	Reason  string
	// Message is shown to the user on the block page.
	Message string
	// UserMayAllow (with Block): as ConnDecision.UserMayAllow — a plain
	// HTTP navigation of a browser whose user the proxy can learn over
	// HTTPS is sent there instead of being refused.
	UserMayAllow bool
}

// RequestDecider makes the session decision for each intercepted request,
// and the access decision where the connection could not make it: plain
// HTTP, suffix mode, and connections let in to learn the user
// (ConnDecision.UserMayAllow), which it decides with the user known.
type RequestDecider interface {
	DecideRequest(ci *ConnInfo, r *http.Request) RequestDecision
}

// ConnDeciderFunc adapts a function to ConnDecider.
type ConnDeciderFunc func(ci *ConnInfo) ConnDecision

// DecideConn calls f.
func (f ConnDeciderFunc) DecideConn(ci *ConnInfo) ConnDecision { return f(ci) }

// RequestDeciderFunc adapts a function to RequestDecider.
type RequestDeciderFunc func(ci *ConnInfo, r *http.Request) RequestDecision

// DecideRequest calls f.
func (f RequestDeciderFunc) DecideRequest(ci *ConnInfo, r *http.Request) RequestDecision {
	return f(ci, r)
}
