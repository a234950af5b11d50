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
}

// RequestDecider makes the session decision for each intercepted request.
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
