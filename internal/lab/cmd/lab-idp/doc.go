// Command lab-idp serves the lab's identity providers and SSO apps on one
// TLS listener, routed by Host: the SAML IdP (idp.lab), the SAML app
// (sp.lab), the OpenID Provider (op.lab) and the OIDC app (rp.lab). It is
// meant to run inside an origin network namespace of the lab (ip netns exec),
// where /etc/netns/<ns>/hosts gives those names their addresses; it resolves
// and dials them normally, trusting the lab CA given with -ca.
//
// The OP also registers the appliance's own OIDC client (-proxy-client-id,
// -proxy-client-secret), whose redirect URI is
// https://*.<suffix>/.portcullis/oidc/callback for the -suffix given.
package main
