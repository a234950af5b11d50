package classify

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/policy"
)

func FuzzParseUserAgent(f *testing.F) {
	for _, ua := range []string{
		"", uaChrome156, uaFirefoxW7, uaSlack, uaSafariMac, uaIOS14, "curl/8.5.0",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 ((((", ")))(", "Mozilla/5.0 (Windows NT 99999999999999.1_2_3", "a/b/c/d (e; f; wv)",
	} {
		f.Add(ua)
	}
	constants := []string{"MSIE", "bot", "ms-office", "Safari", "AppleWebKit", "Opera", ""}
	f.Fuzz(func(t *testing.T, ua string) {
		u := ParseUserAgent(ua)
		if u.Browser && (u.Native || u.Bot) {
			t.Errorf("%q: both browser and native/bot: %+v", ua, u)
		}
		if u.Bot && !u.Native {
			t.Errorf("%q: a bot that is not native: %+v", ua, u)
		}
		if u.Major < 0 || u.Major > 999999 || u.OSVersion.Major < 0 || u.OSVersion.Major > 999999 {
			t.Errorf("%q: version out of range: %+v", ua, u)
		}
		bounded := ua[:min(len(ua), MaxUserAgentLen)]
		if !strings.Contains(bounded, u.Token) {
			found := false
			for _, c := range constants {
				found = found || u.Token == c
			}
			if !found {
				t.Errorf("%q: token %q neither from the input nor a constant", ua, u.Token)
			}
		}
	})
}

func FuzzClassify(f *testing.F) {
	f.Add(ja4Chromium, "h2,http/1.1", uaChrome156)
	f.Add(ja4Curl, "h2,http/1.1", uaChrome156)
	f.Add("t13d1518h2_8daaf6152771_0123456789ab", "h2", uaSlack)
	f.Add(ja4Unknown, "http/1.1", "")
	f.Add("t13d1517h2_8daaf6152771\n_cb7bf5808d99", "", "\x00\xff")
	f.Add("", "", "")
	c := Default()
	f.Fuzz(func(t *testing.T, ja4, alpn, ua string) {
		var protos []string
		if alpn != "" {
			protos = strings.Split(alpn, ",")
		}
		r := c.Classify(Input{JA4: ja4, ALPN: protos, UserAgent: ua})
		if r.Client != policy.ClientBrowser && r.Client != policy.ClientMobileDesktop {
			t.Fatalf("client %v", r.Client)
		}
		if r.Family == "" || !strings.HasPrefix(r.Why, "ja4 ") {
			t.Errorf("family %q, why %q", r.Family, r.Why)
		}
		for i := 0; i < len(r.Why); i++ {
			if r.Why[i] < 0x20 || r.Why[i] >= 0x7f {
				t.Fatalf("why has byte %#x: %q", r.Why[i], r.Why)
			}
		}
		native := r.Client == policy.ClientMobileDesktop
		hasNativeTag := len(r.UATags) > 0 && r.UATags[len(r.UATags)-1] == policy.UANativeClient
		if native != hasNativeTag {
			t.Errorf("client %v with tags %v", r.Client, r.UATags)
		}
		// The rule that matters: a known native stack is never a browser.
		if f := c.lookup(ja4); f != nil {
			if f.family.client == policy.ClientMobileDesktop && !native {
				t.Errorf("%s (%s) classified browser with ua %q", ja4, f.family.name, ua)
			}
			if r.Match != f.kind || r.Family != f.family.name {
				t.Errorf("match %v %s, lookup %v %s", r.Match, r.Family, f.kind, f.family.name)
			}
		} else if r.Match != MatchNone {
			t.Errorf("match %v without a lookup", r.Match)
		}
	})
}
