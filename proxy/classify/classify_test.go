package classify

import (
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/policy"
)

// Fingerprints of the shipped data file (lab captures, see clients.yaml).
const (
	ja4Chromium = "t13d1517h2_8daaf6152771_cb7bf5808d99"
	ja4Firefox  = "t13d1617h2_86a278354501_3cbfd9057e0d"
	ja4Curl     = "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"
	ja4Requests = "t13d4312h1_c7886603b240_b26ce05bbdd6"
	ja4Go       = "t13d1312h2_f57a46bbacb6_ab7e3b40a677"
	ja4Unknown  = "t13d1111h2_0123456789ab_0123456789ab"
)

const (
	uaChrome156  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
	uaChrome120  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
	uaFirefox153 = "Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0"
	uaFirefoxW7  = "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0"
	uaSlack      = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.33.90 Chrome/116.0.5845.179 Electron/26.2.1 Safari/537.36"
	uaSafariMac  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15"
	uaIOS14      = "Mozilla/5.0 (iPhone; CPU iPhone OS 14_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.1.2 Mobile/15E148 Safari/604.1"
)

var h2h1 = []string{"h2", "http/1.1"}

func TestClassify(t *testing.T) {
	c := Default()
	browser, native := policy.ClientBrowser, policy.ClientMobileDesktop
	for _, tc := range []struct {
		name   string
		in     Input
		client policy.ClientApp
		family string
		match  Match
		tags   []string
		why    []string // substrings of Why
	}{
		// The JA4 decides the stack.
		{"chromium, connection level", Input{JA4: ja4Chromium, ALPN: h2h1}, browser, "chromium", MatchExact, nil,
			[]string{"ja4 " + ja4Chromium + " = chromium (exact; source: lab capture", "no user-agent yet"}},
		{"chromium + chrome ua", Input{JA4: ja4Chromium, ALPN: h2h1, UserAgent: uaChrome156}, browser, "chromium", MatchExact, nil,
			[]string{"ua Chrome/156 agrees"}},
		{"firefox + firefox ua", Input{JA4: ja4Firefox, ALPN: h2h1, UserAgent: uaFirefox153}, browser, "firefox", MatchExact, nil,
			[]string{"ua Firefox/153 agrees"}},
		{"curl with a chrome ua is curl", Input{JA4: ja4Curl, ALPN: h2h1, UserAgent: uaChrome156}, native, "curl", MatchExact, []string{policy.UANativeClient},
			[]string{"ua Chrome/156 claims a browser over a curl TLS stack: native"}},
		{"python requests with a firefox ua is python", Input{JA4: ja4Requests, ALPN: []string{"http/1.1"}, UserAgent: uaFirefox153}, native, "python", MatchExact, []string{policy.UANativeClient},
			[]string{"claims a browser over a python TLS stack"}},
		{"go with a chrome ua is go", Input{JA4: ja4Go, ALPN: h2h1, UserAgent: uaChrome156}, native, "go", MatchExact, []string{policy.UANativeClient}, nil},
		{"curl, connection level", Input{JA4: ja4Curl, ALPN: h2h1}, native, "curl", MatchExact, []string{policy.UANativeClient}, nil},
		{"curl + curl ua", Input{JA4: ja4Curl, ALPN: h2h1, UserAgent: "curl/7.88.1"}, native, "curl", MatchExact, []string{policy.UANativeClient},
			[]string{"ua curl/7 agrees"}},

		// Browser stacks shared with apps: the User-Agent names the app.
		{"electron app on chromium's stack", Input{JA4: "t13d1516h2_8daaf6152771_9b887d9acb53", ALPN: h2h1, UserAgent: uaSlack}, native, "chromium", MatchPattern, []string{policy.UANativeClient},
			[]string{"pattern t13?15??h2_8daaf6152771_*", "ua Electron/26 is an Electron app over the chromium stack: native"}},
		{"curl ua on chromium's stack", Input{JA4: ja4Chromium, ALPN: h2h1, UserAgent: "curl/8.5.0"}, native, "chromium", MatchExact, []string{policy.UANativeClient},
			[]string{"ua curl/8 is a native client"}},
		{"bot on chromium's stack", Input{JA4: ja4Chromium, ALPN: h2h1, UserAgent: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}, native, "chromium", MatchExact, []string{policy.UANativeClient},
			[]string{"is a bot"}},
		{"firefox ua on chromium's stack stays a browser", Input{JA4: ja4Chromium, ALPN: h2h1, UserAgent: uaFirefox153}, browser, "chromium", MatchExact, nil,
			[]string{"ua Firefox/153 is not a chromium browser; kept browser"}},

		// Matching beyond the whole JA4.
		{"chromium by IP literal (pattern)", Input{JA4: "t13i1516h2_8daaf6152771_cb7bf5808d99", ALPN: h2h1}, browser, "chromium", MatchPattern, nil, nil},
		{"chromium resumed (pattern)", Input{JA4: "t13d1518h2_8daaf6152771_0123456789ab", ALPN: h2h1}, browser, "chromium", MatchPattern, nil, nil},
		{"chromium websocket (h1 pattern)", Input{JA4: "t13d1517h1_8daaf6152771_0123456789ab", ALPN: []string{"http/1.1"}}, browser, "chromium", MatchPattern, nil, nil},
		{"boringssl cipher set without alpn is not assumed chromium", Input{JA4: "t13d151400_8daaf6152771_de4a06bb82e3"}, native, FamilyUnknown, MatchNone, []string{policy.UANativeClient},
			[]string{"unknown; no h2 offered"}},
		{"openssl default ciphers, other program (pattern)", Input{JA4: "t13d311200_e8f1e7e78f70_0123456789ab"}, native, "openssl", MatchPattern, []string{policy.UANativeClient}, nil},

		// Unknown fingerprints.
		{"unknown + browser ua: unverified browser", Input{JA4: ja4Unknown, ALPN: h2h1, UserAgent: uaChrome156}, browser, "chromium", MatchNone, nil,
			[]string{"unknown; ua Chrome/156: browser (unverified"}},
		{"unknown + h2, connection level: unverified browser", Input{JA4: ja4Unknown, ALPN: h2h1}, browser, FamilyUnknown, MatchNone, nil,
			[]string{"h2 offered, no user-agent yet: browser (unverified)"}},
		{"unknown without h2 + browser ua: native", Input{JA4: ja4Unknown, ALPN: []string{"http/1.1"}, UserAgent: uaChrome156}, native, "chromium", MatchNone, []string{policy.UANativeClient},
			[]string{"no h2 offered (every browser offers it): native despite ua Chrome/156"}},
		{"unknown + tool ua: native", Input{JA4: ja4Unknown, ALPN: h2h1, UserAgent: "python-httpx/0.27.0"}, native, "python", MatchNone, []string{policy.UANativeClient}, nil},
		{"unknown + app ua: native", Input{JA4: ja4Unknown, ALPN: h2h1, UserAgent: "Outlook-iOS/723.4027091.prod.iphone (4.2345.0)"}, native, FamilyUnknown, MatchNone, []string{policy.UANativeClient},
			[]string{"ua Outlook-iOS/723 is a native client"}},
		{"no ja4 at all", Input{}, native, FamilyUnknown, MatchNone, []string{policy.UANativeClient}, []string{"ja4 (none) unknown"}},
		{"garbage ja4", Input{JA4: "t13d1517h2_8daaf6152771\n_cb7bf5808d99", ALPN: h2h1}, browser, FamilyUnknown, MatchNone, nil, []string{"ja4 t13d1517h2_8daaf6152771?_cb7bf5808d9 unknown"}},

		// Outdated browsers and systems.
		{"old chrome", Input{JA4: ja4Chromium, ALPN: h2h1, UserAgent: uaChrome120}, browser, "chromium", MatchExact, []string{policy.UAOutdatedBrowser},
			[]string{"chrome 120 < 150: outdated browser"}},
		{"old firefox on windows 7", Input{JA4: ja4Firefox, ALPN: h2h1, UserAgent: uaFirefoxW7}, browser, "firefox", MatchExact, []string{policy.UAOutdatedBrowser, policy.UAOutdatedOS},
			[]string{"firefox 115 < 153", "windows nt 6.1 < 10.0: outdated os"}},
		{"frozen macos is not judged", Input{JA4: "t13d2014h2_a09f3c656075_14788d8d241b", ALPN: h2h1, UserAgent: uaSafariMac}, browser, "safari", MatchExact, []string{policy.UAOutdatedBrowser},
			[]string{"safari 17 < 18", "macos 10.15.7 is a frozen value browsers report: os not judged"}},
		{"old ios", Input{JA4: "t13d2014h2_a09f3c656075_14788d8d241b", ALPN: h2h1, UserAgent: uaIOS14}, browser, "safari", MatchExact, []string{policy.UAOutdatedBrowser, policy.UAOutdatedOS},
			[]string{"ios 14.8 < 15"}},
		{"outdated os on a native client", Input{JA4: ja4Curl, ALPN: h2h1, UserAgent: uaFirefoxW7}, native, "curl", MatchExact, []string{policy.UAOutdatedOS, policy.UANativeClient}, nil},
		{"no browser tag for a native client with an old browser ua", Input{JA4: ja4Curl, ALPN: h2h1, UserAgent: uaChrome120}, native, "curl", MatchExact, []string{policy.UANativeClient}, nil},
	} {
		r := c.Classify(tc.in)
		if r.Client != tc.client || r.Family != tc.family || r.Match != tc.match || !slices.Equal(r.UATags, tc.tags) {
			t.Errorf("%s: got %v %q %v %v, want %v %q %v %v\n why: %s", tc.name, r.Client, r.Family, r.Match, r.UATags, tc.client, tc.family, tc.match, tc.tags, r.Why)
		}
		for _, w := range tc.why {
			if !strings.Contains(r.Why, w) {
				t.Errorf("%s: why %q\n lacks %q", tc.name, r.Why, w)
			}
		}
	}
}

// The FoxIO vectors of proxy/testdata/clienthello, by what their pcaps
// hold: all are matched as the stack they are.
func TestClassifyFoxIOVectors(t *testing.T) {
	c := Default()
	for ja4, family := range map[string]string{
		"t13d1715h2_5b57614c22b0_3d5424432f57": "firefox",
		"t13d1615h2_46e7e9700bed_45f260be83e2": FamilyUnknown, // badcurveball: a crafted hello
		"t13d1516h2_8daaf6152771_9b887d9acb53": "chromium",    // Slack desktop (Electron)
		"t13d1516h2_8daaf6152771_02713d6af862": "chromium",
	} {
		if r := c.Classify(Input{JA4: ja4, ALPN: h2h1}); r.Family != family {
			t.Errorf("%s: family %q, want %q (%s)", ja4, r.Family, family, r.Why)
		}
	}
}

func TestClassifyAllocations(t *testing.T) {
	c := Default()
	for _, in := range benchInputs {
		if n := testing.AllocsPerRun(200, func() { _ = c.Classify(in) }); n > 1 {
			t.Errorf("Classify(%q, %q) allocates %v times, want at most 1 (the Why string)", in.JA4, in.UserAgent, n)
		}
	}
}

func TestTagSetsAreNotShareableForAppend(t *testing.T) {
	r := Default().Classify(Input{JA4: ja4Curl})
	tags := append(r.UATags, "extra")
	if again := Default().Classify(Input{JA4: ja4Curl}); len(again.UATags) != 1 || &tags[0] == &again.UATags[0] {
		t.Errorf("appending to a result's tags changed the shared set: %v", again.UATags)
	}
}
