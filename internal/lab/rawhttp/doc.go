// Package rawhttp is the lab's byte-level HTTP/1.1 and HTTP/2 peers, for
// tests of what a proxy lets through: an origin that records the exact
// bytes it receives on every connection and parses them with a strict,
// independent HTTP/1.1 parser (so an ambiguous request shows as a parse
// error, never as a guess), and raw-socket clients that send exactly the
// bytes a test writes — HTTP/1.1 text or HTTP/2 frames built with
// golang.org/x/net/http2's Framer and hpack, including ones no well-behaved
// client would send. It is imported by tests only and binds loopback only.
package rawhttp
