// Package policy holds the policy model and its evaluation. It is pure: no
// network or disk I/O, so every decision can be reproduced and explained.
//
// # Files and model
//
// Admins write YAML files (see testdata/examples). Parse reads one file
// strictly — unknown keys, wrong types, duplicate keys and anchors are
// errors carrying file:line:column and a one-line fix hint (*Error, grouped
// in an ErrorList; the kinds are the Err* sentinels). Merge combines the
// files of a directory into one PolicySet, Marshal writes one back in
// canonical form. The app catalog is the built-in one (package catalog:
// real SaaS apps and the lab apps) plus the set's own apps, which replace
// built-ins of the same id, plus custom_domains.
//
// # Compiling and evaluating
//
// Compile validates references (apps, activities, tags, detectors, regexes)
// and builds an immutable *Engine, safe for concurrent use; reload compiles
// a new one and swaps an atomic.Pointer[Engine]. Check adds the logic
// problems `portcullis policy check` reports: conflicting, duplicate and
// unreachable policies.
//
// Per connection the proxy calls AccessInto (or Access) with an
// AccessRequest: host, user, groups, device tags, client app (browser or
// mobile_desktop, from JA4/User-Agent), user-agent tags and source address.
// Per request or activity it calls SessionInto (or Session) with a
// SessionRequest, which adds method, host, path, the activity kind
// (download, upload, print, cut_copy, paste), the catalog activity
// (resolved by the engine from method/host/path, see ResolveActivity),
// file information and the content inspection result.
//
// Every matching policy is listed in the decision with its Cause; the
// action is the most restrictive one (block > require_step_up > protect >
// monitor > allow, the order of Action's values), the earliest policy
// winning among equals. A policy without client_apps applies to browsers
// only, so native clients are tunnelled untouched unless a policy names
// mobile_desktop. Hosts outside the catalog are never intercepted.
//
// With a decision reused per worker, AccessInto and SessionInto do not
// allocate. Policies are indexed by app at compile time, so a request only
// visits the policies of its app.
//
// # Content
//
// When a matching session policy depends on content and the request carries
// none, the decision says NeedInspection: the proxy tees the body through
// an Inspector (Engine.NewInspector; package dlp does the scanning in
// bounded memory), or extracts text first with package filetype for
// OOXML and PDF files, and evaluates again with the Result. If inspection
// fails, times out or the file exceeds the size limit, the policy's action
// applies when it says apply_if_unscannable, and otherwise the settings'
// default behaviour (block unless configured).
//
// ExplainAccess and ExplainSession render a decision with the reason for
// every match, for `portcullis policy explain` and the console.
package policy
