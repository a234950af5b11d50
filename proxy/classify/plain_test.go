package classify

import (
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/policy"
)

// TestClassifyPlainHTTP: without TLS the User-Agent decides — a browser
// on port 80 is not made native by the missing h2 offer.
func TestClassifyPlainHTTP(t *testing.T) {
	c := Default()
	browser, native := policy.ClientBrowser, policy.ClientMobileDesktop
	for _, tc := range []struct {
		name   string
		in     Input
		client policy.ClientApp
		tags   []string
		why    string
	}{
		{"chrome", Input{PlainHTTP: true, UserAgent: uaChrome156}, browser, nil, "plain HTTP (no TLS stack); ua Chrome/156: browser (unverified"},
		{"old chrome keeps its tag", Input{PlainHTTP: true, UserAgent: uaChrome120}, browser, []string{policy.UAOutdatedBrowser}, "outdated browser"},
		{"curl", Input{PlainHTTP: true, UserAgent: "curl/8.14.1"}, native, []string{policy.UANativeClient}, "ua curl/8 is a native client: native"},
		{"no user-agent", Input{PlainHTTP: true}, native, []string{policy.UANativeClient}, "no user-agent: native"},
		{"unrecognised", Input{PlainHTTP: true, UserAgent: "Mozilla/5.0"}, native, []string{policy.UANativeClient}, "ua not recognised: native"},
		// A JA4 means TLS: PlainHTTP does not override the stack.
		{"tls stack still decides", Input{PlainHTTP: true, JA4: ja4Curl, ALPN: h2h1, UserAgent: uaChrome156}, native, []string{policy.UANativeClient}, "curl TLS stack: native"},
	} {
		r := c.Classify(tc.in)
		if r.Client != tc.client || !slices.Equal(r.UATags, tc.tags) || !strings.Contains(r.Why, tc.why) {
			t.Errorf("%s: got %v %v %q, want %v %v and %q", tc.name, r.Client, r.UATags, r.Why, tc.client, tc.tags, tc.why)
		}
	}
}
