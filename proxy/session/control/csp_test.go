package control

import (
	"net/http"
	"strings"
	"testing"
)

func TestAllowInjected(t *testing.T) {
	const n, r = "N", "https://app.test/.portcullis/report"
	cases := []struct{ name, in, want string }{
		{"strict dynamic", "script-src 'nonce-abc' 'strict-dynamic'; object-src 'none'",
			"script-src 'nonce-abc' 'strict-dynamic' 'nonce-N'; object-src 'none'"},
		{"self only", "script-src 'self'", "script-src 'self' 'nonce-N'"},
		{"no script restriction", "img-src 'self'; frame-ancestors 'none'", "img-src 'self'; frame-ancestors 'none'"},
		{"default-src for all", "default-src 'self'", "default-src 'self' 'nonce-N'"},
		{"default-src none", "default-src 'none'", "default-src 'none' 'nonce-N' " + r},
		{"script-src-elem wins", "script-src 'self'; script-src-elem 'self' cdn.example", "script-src 'self'; script-src-elem 'self' cdn.example 'nonce-N'"},
		{"style and connect", "script-src 'self'; style-src 'self'; connect-src api.example",
			"script-src 'self' 'nonce-N'; style-src 'self' 'nonce-N'; connect-src api.example " + r},
		{"connect self", "connect-src 'self'; script-src 'none'", "connect-src 'self'; script-src 'none' 'nonce-N'"},
		{"unsafe-inline stays in force", "script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'", "script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'"},
		{"unsafe-inline with a hash", "script-src 'unsafe-inline' 'sha256-abc'", "script-src 'unsafe-inline' 'sha256-abc' 'nonce-N'"},
		{"shared default-src, styles inline", "default-src 'self' 'strict-dynamic' 'unsafe-inline'",
			"default-src 'self' 'strict-dynamic' 'unsafe-inline'; script-src 'self' 'strict-dynamic' 'unsafe-inline' 'nonce-N'"},
		{"first directive wins", "script-src 'self'; script-src *", "script-src 'self' 'nonce-N'; script-src *"},
		{"two policies", "script-src 'self', default-src https:", "script-src 'self' 'nonce-N', default-src https: 'nonce-N'"},
		{"case and spacing", "  Script-Src  'SELF' ;", "  Script-Src 'SELF' 'nonce-N';"},
	}
	for _, tc := range cases {
		if got := allowInjected(tc.in, n, r); got != tc.want {
			t.Errorf("%s:\n in  %s\n got %s\nwant %s", tc.name, tc.in, got, tc.want)
		}
	}
}

// TestInjectCSPHeaders: both CSP headers get the same nonce as the
// elements, and nothing that widens a policy is ever added.
func TestInjectCSPHeaders(t *testing.T) {
	c, _ := newTestController(t)
	h := http.Header{"Content-Type": {"text/html"},
		"Content-Security-Policy":             {"script-src 'nonce-abc' 'strict-dynamic'; object-src 'none'", "default-src 'self'"},
		"Content-Security-Policy-Report-Only": {"script-src 'self'"}}
	_, insert, err := injectBytes(t, c, h, []byte("<head>"), blockAll)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(insert), `nonce="`)
	nonce := string(insert[i+7 : i+7+22])
	for _, v := range append(h.Values("Content-Security-Policy"), h.Values("Content-Security-Policy-Report-Only")...) {
		if !strings.Contains(v, "'nonce-"+nonce+"'") {
			t.Errorf("policy %q lacks the elements' nonce %s", v, nonce)
		}
		for _, bad := range []string{"unsafe-inline", "unsafe-eval", " * ", "data:"} {
			if strings.Contains(v, bad) {
				t.Errorf("policy %q widened with %s", v, bad)
			}
		}
	}
	if strings.Count(string(insert), `nonce="`+nonce+`"`) != 2 {
		t.Errorf("style and script do not both carry the nonce")
	}
}
