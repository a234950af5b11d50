// Package classify tells a browser from a native (mobile or desktop) client
// from what the proxy sees of a connection: the ClientHello's JA4
// fingerprint, the ALPN protocols the client offered and, once a request has
// arrived, its User-Agent. The result feeds the policies' client_apps
// (browser | mobile_desktop) and user_agent_tags (outdated_browser,
// outdated_os, native_client) filters.
//
// # Why the TLS stack decides
//
// A User-Agent is one header any client can set; a ClientHello is what the
// client's TLS library builds, and changing it means changing libraries. So
// the JA4 decides the TLS stack's family, and the User-Agent only refines:
//
//   - A known non-browser stack is native whatever User-Agent it sends: curl
//     with a Chrome User-Agent, or Python requests with a Firefox one, is
//     still curl or Python.
//   - A known browser stack with a browser User-Agent is a browser. When the
//     User-Agent names another browser (Chrome's stack, Firefox's
//     User-Agent) it stays a browser and Why says they disagree.
//   - A known browser stack with a User-Agent that names a native client is
//     native: apps built on a browser engine (Electron, Android WebView, iOS
//     WKWebView, CFNetwork) share the browser's ClientHello, and there is no
//     reason for a browser to call itself curl. Bots are native too.
//   - A known browser stack and no User-Agent yet (the connection-level
//     decision, before any request) is a browser.
//
// # Unknown fingerprints
//
// New browser releases appear before the data file learns them, so an
// unknown JA4 falls back to ALPN and User-Agent, in this order:
//
//  1. A User-Agent that names a tool, library, app or bot: native.
//  2. No "h2" among the offered ALPN protocols: native. Every browser has
//     offered h2 over TLS since 2016; libraries default to http/1.1 or to no
//     ALPN at all. A browser User-Agent does not override this: a client that
//     claims to be a browser yet does not behave like one is the spoofing
//     case this package exists for. (Browsers' WebSocket connections offer
//     only http/1.1; the data file's cipher-set patterns cover the known
//     browser stacks there.)
//  3. A browser User-Agent: browser, and Why says "unverified".
//  4. No User-Agent yet (or a Mozilla/… one naming no product) and h2
//     offered: browser, "unverified". Calling every unknown h2 client
//     native at connection level would block each new browser release on
//     its first day; a native client passed here is still judged by its
//     User-Agent on its first request.
//
// # Matching
//
// The data file lists JA4 fingerprints, each with a family and a source. An
// entry is the whole JA4 (t13d1516h2_8daaf6152771_02713d6af862), or
// JA4_a+JA4_b with "*" for JA4_c (same cipher set and counts, any
// extension set or signature algorithms: a release that swaps one
// extension for another still matches), or a pattern with "?" for single characters of JA4_a (t13?15??h2_8daaf6152771_*:
// the stack's cipher set with any SNI mark or extension count, which is how
// a resumed session, with its extra pre_shared_key extension, still
// matches). The cipher set (JA4_b) is always given: it is what identifies a
// TLS library, and a pattern without it would claim stacks it knows nothing
// about. The most specific kind wins (whole, then cipher set, then pattern
// in file order). Chrome's random extension order needs no care here: JA4
// sorts extensions before hashing.
//
// # Outdated browsers and systems
//
// outdated_browser is set for a browser whose User-Agent product (chrome,
// edge, firefox, safari…) has a major version below the data file's
// threshold for that product; products, not families, because Opera and
// Samsung Internet number their Chromium builds their own way.
// outdated_os is set, for any client, when the User-Agent reports an OS
// version below the data file's threshold (Windows NT 10.0, Android 10, iOS
// 15, macOS 12). Browsers freeze some values (macOS 10.15.7 since macOS 11,
// "Android 10; K" in Chrome's reduced User-Agent); the data file lists them
// and they are not judged. Without a User-Agent neither tag is set.
// native_client is set exactly when the client is mobile_desktop.
//
// The data file (clients.yaml, embedded; see Default) is YAML (so JSON too),
// read strictly: unknown keys, unknown families, malformed fingerprints,
// duplicates and thresholds for products or systems the parser never
// reports are errors with line and column. The fingerprints shipped in it
// come from real clients captured by the tests in ./clienttest, and from
// published sources named in each entry.
package classify
