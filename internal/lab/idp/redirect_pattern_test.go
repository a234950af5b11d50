package idp

import "testing"

func TestRedirectPatternMatches(t *testing.T) {
	p, err := parseRedirectPattern("https://*.gw.lab/.portcullis/oidc/callback")
	if err != nil {
		t.Fatal(err)
	}
	const cb = "/.portcullis/oidc/callback"
	cases := []struct {
		uri string
		ok  bool
	}{
		{"https://x.gw.lab" + cb, true},
		{"https://app.example.com.gw.lab" + cb, true},
		{"https://a-b.c1.gw.lab" + cb, true},
		{"https://gw.lab" + cb, false},             // no label before the suffix
		{"https://.gw.lab" + cb, false},            // empty label
		{"https://evil.com" + cb, false},           // other domain
		{"https://x.gw.lab.evil.com" + cb, false},  // suffix in the middle
		{"https://xgw.lab" + cb, false},            // not a label boundary
		{"http://x.gw.lab" + cb, false},            // scheme
		{"https://x.gw.lab:8443" + cb, false},      // port
		{"https://x.gw.lab" + cb + "?a=1", false},  // query
		{"https://x.gw.lab" + cb + "#f", false},    // fragment
		{"https://x.gw.lab/other", false},          // path
		{"https://x.gw.lab" + cb + "/", false},     // path
		{"https://evil.com?.gw.lab" + cb, false},   // query smuggling
		{"https://evil.com#.gw.lab" + cb, false},   // fragment smuggling
		{"https://evil.com@x.gw.lab" + cb, false},  // user info
		{"https://x.gw.lab@evil.com" + cb, false},  // user info
		{"https://evil.com%2F.gw.lab" + cb, false}, // escaped slash
		{"https://X.GW.LAB" + cb, false},           // not canonical
		{"https://-x.gw.lab" + cb, false},          // bad label
		{"https://x_y.gw.lab" + cb, false},         // bad label
		{"https://x.gw.lab/.portcullis/oidc/%63allback", false},
		{"HTTPS://x.gw.lab" + cb, false},
		{"//x.gw.lab" + cb, false},
		{"", false},
	}
	for _, tc := range cases {
		if got := p.matches(tc.uri); got != tc.ok {
			t.Errorf("matches(%q) = %v, want %v", tc.uri, got, tc.ok)
		}
	}
}

func TestRedirectPatternParse(t *testing.T) {
	for _, bad := range []string{
		"https://x.*.gw.lab/cb", "http://*.gw.lab/cb", "https://*.gw.lab", "https://*.gw.lab/cb?x=1",
		"https://*.*.gw.lab/cb", "https://*.GW_LAB/cb", "https://*gw.lab/cb",
	} {
		if _, err := parseRedirectPattern(bad); err == nil {
			t.Errorf("parseRedirectPattern(%q) accepted", bad)
		}
	}
	p, err := parseRedirectPattern("https://*.gw.lab:8443/cb")
	if err != nil {
		t.Fatal(err)
	}
	if !p.matches("https://a.gw.lab:8443/cb") || p.matches("https://a.gw.lab/cb") {
		t.Error("pattern with a port must require exactly that port")
	}
}
