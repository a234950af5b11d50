package proxy

import "errors"

// Errors callers match with errors.Is. Everything else is wrapped with short
// lowercase context only.
var (
	// ErrUpstreamUnverified means the origin's certificate failed verification;
	// such an origin is never served.
	ErrUpstreamUnverified = errors.New("upstream certificate failed verification")
	// ErrMisdirected means a request's Host does not match the TLS server name
	// the client connected with (domain fronting or connection reuse across
	// hosts the appliance did not mint for).
	ErrMisdirected = errors.New("request host does not match connection server name")
	// ErrForbiddenDestination means an explicit-proxy client asked for an
	// address the appliance never dials (loopback, link-local, unspecified,
	// multicast).
	ErrForbiddenDestination = errors.New("destination not allowed")
)
