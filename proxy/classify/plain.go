package classify

import "github.com/portcullis-gw/portcullis/policy"

// plainStack classifies a plain-HTTP request: without a ClientHello there
// is no stack to weigh against the User-Agent, and the h2 rule of unknown
// stacks means nothing (no client offers h2 in cleartext), so the
// User-Agent decides. Every browser names itself; a request whose
// User-Agent is missing or not recognised is native.
func plainStack(ua *UA, haveUA bool, why []byte) (string, policy.ClientApp, []byte) {
	fam := ua.Family
	if fam == "" {
		fam = FamilyUnknown
	}
	why = append(why, " plain HTTP (no TLS stack)"...)
	switch {
	case !haveUA:
		why = append(why, "; no user-agent: native"...)
		return fam, policy.ClientMobileDesktop, why
	case ua.Native:
		why = append(why, "; ua "...)
		why = appendProduct(why, ua)
		why = append(why, nativeWhat(ua)...)
		why = append(why, ": native"...)
		return fam, policy.ClientMobileDesktop, why
	case ua.Browser:
		why = append(why, "; ua "...)
		why = appendProduct(why, ua)
		why = append(why, ": browser (unverified: no TLS fingerprint)"...)
		return fam, policy.ClientBrowser, why
	}
	why = append(why, "; ua not recognised: native"...)
	return fam, policy.ClientMobileDesktop, why
}
