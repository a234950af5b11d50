// Package scan asks malware scanners about whole files and remembers their
// verdicts.
//
// Two scanners implement [Scanner]:
//
//   - [Clamd] streams the file to clamd over its socket with the INSTREAM
//     command (one connection per scan) and has [Clamd.Ping] and
//     [Clamd.Version] for health checks.
//   - [ICAP] is an RFC 3507 client: it learns the service's Preview size,
//     Allow: 204 and methods from OPTIONS ([ICAP.Options], cached for the
//     service's Options-TTL), then sends the file as the body of an
//     encapsulated HTTP response (RESPMOD) or request (REQMOD). 204 means
//     clean; a 200 whose message is the one sent, byte for byte, means clean;
//     a 200 that names a threat (X-Infection-Found, X-Violations-Found,
//     X-Virus-ID) or replaces the message in any other way means infected.
//
// [Cached] wraps either with a verdict cache keyed by the SHA-256 of the
// content, which the caller computes while it spools the file anyway: an
// LRU bounded in entries, each verdict kept for a TTL, errors never kept,
// and one scan in flight per digest however many requests carry the same
// file.
//
// An error from Scan always means "could not decide" (scanner down, slow,
// over its size limit, or speaking something other than its protocol); the
// sentinel errors say which, and the caller applies its default behaviour,
// which for Portcullis is to block. Scan returns only after it has stopped
// reading the caller's reader, so that reader must not block forever (a
// spooled body does not); every network step is bounded by the scanner's
// Timeout and by the context.
//
// The package counts nothing (the caller does) and imports nothing of
// Portcullis.
package scan
