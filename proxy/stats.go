package proxy

import "sync/atomic"

// Stats are the pipeline's counters, read at scrape time by the appliance's
// collector. Every field only ever grows.
type Stats struct {
	ConnsAccepted      atomic.Uint64
	ConnsNotTLS        atomic.Uint64 // non-TLS bytes on a TLS port: closed
	HelloMalformed     atomic.Uint64 // garbage ClientHello: closed
	HelloIncomplete    atomic.Uint64 // client closed or stalled mid-hello
	HandshakeFailed    atomic.Uint64 // client-side TLS handshake failed
	Intercepted        atomic.Uint64
	Bypassed           atomic.Uint64
	Blocked            atomic.Uint64
	Requests           atomic.Uint64
	RequestsBlocked    atomic.Uint64
	Misdirected        atomic.Uint64
	UpstreamUnverified atomic.Uint64 // origin certificate failed verification
	UpstreamErrors     atomic.Uint64 // origin unreachable or broke mid-response
	RefusedUnrecorded  atomic.Uint64 // sessions refused: the activity log could not record them
	RecordsFailed      atomic.Uint64 // records the activity log did not accept
	TunnelsCut         atomic.Uint64 // tunnels (WebSocket, spliced) still open when Close's grace period ended
	// H1Plain counts HTTP/1.1 requests the pipeline read and served itself;
	// H1HandedOver the connections it gave to net/http's server at a request
	// that was not plain (h1serve.go).
	H1Plain      atomic.Uint64
	H1HandedOver atomic.Uint64

	SuffixRefused   atomic.Uint64 // suffix requests refused before any dial: bad, unknown or IP-literal host
	SuffixForbidden atomic.Uint64 // suffix origins that resolved to a forbidden address: not dialled
	SuffixRewritten atomic.Uint64 // response bodies rewritten
	ControlInjected atomic.Uint64 // pages the control script was put in
	// PassThroughLearnt counts destinations learnt from pinned clients.
	PassThroughLearnt atomic.Uint64
	SuffixDiscovered  atomic.Uint64 // domains seen in app responses that belong to no onboarded app
	SuffixLogins      atomic.Uint64 // identities learnt (SAML assertion or the proxy's OIDC login)

	latency latencyHistogram // intercepted request durations
}
