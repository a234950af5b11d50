// Package console is the appliance's local web console: HTTPS pages
// rendered on the server (html/template, htmx for partial updates, uPlot for
// charts, every asset embedded) over a versioned JSON API under /api/v1/
// that the pages' scripts and the CLI use (documented in openapi.yaml,
// served at /api/v1/openapi.yaml).
//
// # Security
//
// There is no default password. While no account exists, a one-time setup
// token is kept in <state_dir>/console/setup-token (0600), printed to the
// log at start and by `portcullis console setup-token`; the first admin is
// created with it and the file is removed. Passwords are argon2id hashes; a
// TOTP second factor with single-use recovery codes is optional per
// account. Accounts, failed-login counters and lockouts are data in
// accounts.json (0600, written atomically), never parsed back from logs; a
// lockout ends the account's open sessions. Login attempts are rate limited
// per source address.
//
// Sessions live in memory (a restart logs everyone out): a random token in
// a __Host- cookie (Secure, HttpOnly, SameSite=Strict), a fresh one at every
// login so a planted cookie is never promoted, idle and absolute timeouts.
// Every request that changes something needs the session's CSRF token (form
// field or X-CSRF-Token header) and is refused from another site. Pages are
// served with a strict Content-Security-Policy: scripts and styles only from
// the console itself, nothing inline, no eval (htmx runs with allowEval
// off), frame-ancestors 'none'. Values that came from traffic are escaped
// on every page, shown with control characters made visible, and
// neutralised in CSV exports (formula injection).
//
// Roles: admin changes things, auditor reads everything (including the
// activity log and the admin audit log) and changes nothing. Every admin
// action - login, failed login, logout, lockout, account and policy change,
// export - is appended to the admin audit log (audit.jsonl), which the
// console shows.
//
// # Data
//
// Searches and exports use the activity store's Search. The dashboard's
// aggregations (counts by time bucket, mode and action, top apps and users,
// per-policy hits) are read through a read-only SQLite connection to the
// store's file, so the store's writer is never blocked by them.
//
// Policies stay files in the policy directory: the editor validates with
// policy.CheckFor and the appliance's capabilities, dry-runs a changed set
// against recorded events, writes the file atomically, keeps a revision
// (author, time, summary, diff) under <state_dir>/console/revisions and
// asks the appliance to reload. A save based on a file that changed on
// disk meanwhile is refused, never silently overwritten.
//
// Changes made from the pages (policy switches, editor changes, rollbacks,
// apps) are staged in one pending-changes tray shared by the admins
// (tray.go): each with its diff and summary, discardable, applied together
// with one validation, atomic writes, a revision per file and one reload.
// A change that could lock admins out is reverted unless confirmed within
// Options.ConfirmTimeout.
//
// The package imports only policy and appliance/activity of this module;
// the appliance wires it (appliance/consolewire.go).
package console
