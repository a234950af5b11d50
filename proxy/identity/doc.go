// Package identity is how the suffix proxy knows who the user is: it
// verifies SAML assertions passing through to an app, runs the proxy's own
// OpenID Connect login for apps without SSO, and keeps the result in an
// encrypted, host-bound __Host- cookie keyed by secrets a fleet can share.
package identity
