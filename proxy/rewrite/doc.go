// Package rewrite is the pure rewriting library of the suffix reverse proxy:
// it moves URLs, cookies, headers and bodies from an origin host
// (app.example.com) to its suffixed name (app.example.com.<suffix>) on the
// way to the browser, and back on the way to the origin.
//
// Only host names change. Every URL keeps its scheme, user info, port, path,
// query and fragment byte for byte; hosts the Mapper refuses are left alone.
//
// Bodies are rewritten as streams with bounded memory:
//
//   - HTML goes through a small tokenizer-level scanner (tags, attributes,
//     comments, raw-text elements, CDATA). Tags are never re-serialised: the
//     scanner copies the input and only replaces the spans of attribute
//     values it rewrote, and the text of <script> and <style> elements. A
//     tag longer than MaxTagSize bytes is passed through unmodified and
//     counted (HTMLStats). Comments are left alone, including conditional
//     comments that hold markup: browsers that honour those are gone.
//     Character references are decoded before a URL attribute's host is
//     looked at, and the value is re-escaped when it changes. An iframe
//     srcdoc document is rewritten by a nested writer. Script text ends at
//     the first </script (the tokenizer's "escaped script" states, entered
//     by <!--<script> inside a script, are not modelled: the text after an
//     inner </script> is then scanned as markup, which can only rewrite
//     hosts).
//   - Subresource integrity is dropped only from <script src> and <link
//     rel=stylesheet|modulepreload|preload href> elements whose URL was
//     moved to the suffix, since the proxy may rewrite those bodies.
//   - The injected script (BodyOptions.Inject) goes right after <head>, or
//     after <body>, or before the first other tag or text.
//   - CSS, JavaScript, JSON and XML go through a text scanner that finds
//     absolute URLs (http, https, ws, wss), their JSON-escaped forms
//     (https:\/\/host, https:\u002F\u002Fhost) and protocol-relative URLs
//     that start a quoted string (or a CSS url( )).
//
// Known limits, by design: host names must be ASCII (IDN hosts in U-label
// form and percent-encoded hosts are left alone), URLs split by the
// browser's tab/newline stripping are not recognised, and URLs that are
// themselves percent-encoded inside another URL's query are rewritten only
// on the request side (Query).
package rewrite
