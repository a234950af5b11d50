// Package control is the in-page side of session policies: the control
// script that blocks or monitors print, cut/copy and paste, its report
// endpoint, and the "this session is monitored" notice. The proxy calls it;
// it knows nothing of the proxy.
//
// # Per page
//
// For an HTML response the proxy calls Inject with the page's Rules (one
// Mode per activity, ModeFor maps a policy decision) and the request's
// session (Session). Inject inserts, at the start of <head>, a <style> and
// a <script>, both with a fresh CSP nonce that it adds to the page's
// Content-Security-Policy without weakening it. The insertion is streamed
// at the tokenizer level: every other byte of the page stays as it was.
//
// The script, configured through a JSON data attribute (never through
// script text):
//
//   - cut/copy and paste: catches the copy, cut and paste events on the
//     window in the capture phase, before the page's own handlers, and
//     cancels them (the clipboard keeps what it had); the asynchronous
//     Clipboard API (navigator.clipboard) is refused the same way;
//   - print: window.print and Ctrl/Cmd+P are stopped, and the <style>
//     makes print media render the admin's message instead of the page,
//     which needs no script at all (printing from the browser's menu, or
//     with scripts switched off, prints only the message);
//   - shows the message in a small dismissable banner, inserted as text;
//   - reports each attempt, blocked or monitored, to {Endpoint}report;
//   - guards the same-origin frames the page builds itself (about:blank
//     editors), which never pass through the proxy.
//
// Monitor lets the activity happen and reports it.
//
// # Per request
//
// ServeEndpoint takes every path under Config.Endpoint (default
// "/.portcullis/") before anything reaches the origin; accepted reports go
// to its callback as typed Report values, which the proxy decides as
// activities (policy.SessionRequest.Kind) and logs. NeedsNotice and
// RedirectToNotice put the notice in front of a top-level navigation once
// per session, app and host. The Example shows the wiring.
//
// # Tokens and cookies
//
// Every token is an HMAC-SHA256 over its bound values and an expiry, each
// kind with its own key derived (HKDF) from Config.Key, so a fleet sharing
// the key accepts each other's tokens and a token of one kind is never
// valid as another:
//
//   - the session cookie __Host-portcullis-control (transparent mode; with
//     Config.SessionID the proxy's own session is used): a random id,
//     signed for the host; Secure, HttpOnly, SameSite=Lax, until the
//     browser closes;
//   - a page's report token: host, session, the page's Rules, expiry
//     (Config.TokenTTL). A report needs it, the same session, and same
//     origin (Origin / Sec-Fetch-Site); Report.Blocked comes from the
//     token, not from the page;
//   - a notice link: host, app, message and the path to return to, for an
//     hour; its Continue form carries a CSRF token bound to host, session
//     and that link;
//   - the notice cookie __Host-portcullis-notice: host, app, session,
//     expiry. Continuing sets it and redirects (303) to the path the user
//     came from, which can only be a path on the same host.
//
// # Limits
//
// The script works in the page, so a user who controls the browser (its
// developer tools, an extension, reader view, "save page as") can get past
// the clipboard controls; the print stylesheet holds as long as the page's
// CSS is applied. Reports need connect access to the same origin: a
// <meta> Content-Security-Policy that forbids it stops reports, not the
// blocking. Pages sandboxed without scripts, UTF-16 pages, partial
// responses and encodings other than gzip, br, deflate and zstd are not
// injected (Inject's errors, Body.Skipped), and the caller decides.
package control
