// Package idp runs real identity providers and single-sign-on applications for
// the lab: an OpenID Provider built on zitadel/oidc's op package, a SAML
// identity provider built on crewjam/saml's samlidp, a SAML service provider
// app (crewjam/saml/samlsp) and an OIDC relying-party app (zitadel/oidc's rp).
// End-to-end tests drive full browser logins through the appliance's suffix
// reverse proxy against them. Everything is held in memory and is lost on
// restart; it is test support, never production code.
package idp
