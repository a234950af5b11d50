// Package session enforces session policies on one HTTP exchange: it
// recognises what a request or response is (a download, an upload, a
// catalog activity with body fields), asks the policy engine, and carries
// out the answer while the bodies stream.
//
// API summary:
//
//   - Enforcer (New with Config) holds the scanner, the protector, the spool
//     directory, the limits and the Stats counters; one per proxy.
//   - Enforcer.Begin starts a Request for one covered request (the caller
//     checks policy.Engine.Covers first, the only cost uncovered requests
//     pay). Request.OnRequest decides the request before it goes upstream
//     (body fields, multipart and raw uploads) and may replace its body;
//     Request.OnResponse decides the response (downloads) and may replace
//     it. Request.Outcome is what the activity record needs.
//   - Scanner and Protector are the interfaces the malware scanners and the
//     protect transforms are adapted to; ErrUnsupported is what a protector
//     returns for a file it cannot protect.
//   - WriteBlock answers a blocked request with an HTML page for a
//     navigation or JSON for fetch/XHR; BlockedFile is the text file a
//     blocked download is replaced with.
//   - ReadFields parses JSON, URL-encoded and multipart text fields into a
//     policy.FieldGetter; WalkMultipart is the strict multipart reader.
//
// Decision flow, per file: the first decision uses what the headers say and
// the type sniffed from the first bytes (filetype.SniffLen). When a policy
// waits for inspection or a scan and could at most monitor (Pending ≤
// monitor), the body streams while it is inspected and the final decision
// is made when the last byte (Content-Length, or EOF) has been read — before
// it is delivered, so a record written at the last byte carries it. When a
// waiting policy could do more, the body is held: spooled (memory up to
// Config.MemorySpool, then an unlinked 0600 file in Config.SpoolDir) up to
// the engine's MaxInspectionSize, inspected, scanned, decided, and only
// then released, replaced or refused.
//
// Multipart uploads to covered apps are always held up to the inspection
// limit, so that every file part is decided with every form field known
// and the request reaches the app only when no part is blocked.
package session
