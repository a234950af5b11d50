package rewrite

import "testing"

func TestCSP(t *testing.T) {
	m := newTestMapper()
	cases := []struct {
		name, in, nonce, want string
		mapper                Mapper
	}{
		{"hosts mapped", "default-src 'self' https://cdn.example.net; img-src *", "",
			"default-src 'self' https://cdn.example.net.gw.test; img-src *", nil},
		{"bare host and port and path", "script-src cdn.example.net:443/js/ app.example.com", "",
			"script-src cdn.example.net.gw.test:443/js/ app.example.com.gw.test", nil},
		{"unknown host kept", "connect-src https://api.other.org wss://app.example.com", "",
			"connect-src https://api.other.org wss://app.example.com.gw.test", nil},
		{"wildcard via WildcardMapper", "frame-src https://*.sharepoint.com", "",
			"frame-src https://*.sharepoint.com.gw.test", nil},
		{"wildcard without WildcardMapper kept", "frame-src https://*.sharepoint.com", "",
			"frame-src https://*.sharepoint.com", plainMapper{m}},
		{"unmappable wildcard kept", "frame-src *.example.com", "", "frame-src *.example.com", nil},
		{"nonce to script-src", "default-src 'self'; script-src 'self' cdn.example.net", "abc",
			"default-src 'self'; script-src 'self' cdn.example.net.gw.test 'nonce-abc'", nil},
		{"nonce to default-src", "default-src 'self'; img-src data:", "abc",
			"default-src 'self' 'nonce-abc'; img-src data:", nil},
		{"no script restriction: nothing added", "img-src 'self'", "abc", "img-src 'self'", nil},
		{"strict-dynamic and hashes", "script-src 'strict-dynamic' 'sha256-xyz'", "abc",
			"script-src 'strict-dynamic' 'sha256-xyz' 'nonce-abc'", nil},
		{"unsafe-inline alone keeps working", "script-src 'self' 'unsafe-inline'", "abc",
			"script-src 'self' 'unsafe-inline'", nil},
		{"unsafe-inline with nonce", "script-src 'unsafe-inline' 'nonce-page'", "abc",
			"script-src 'unsafe-inline' 'nonce-page' 'nonce-abc'", nil},
		{"script-src-elem too", "script-src 'self'; script-src-elem 'self'", "n",
			"script-src 'self' 'nonce-n'; script-src-elem 'self' 'nonce-n'", nil},
		{"none", "script-src 'none'", "n", "script-src 'none' 'nonce-n'", nil},
		{"duplicate directive: first only", "script-src 'self'; script-src cdn.example.net", "n",
			"script-src 'self' 'nonce-n'; script-src cdn.example.net.gw.test", nil},
		{"report-uri and others untouched", "sandbox allow-scripts; report-uri https://app.example.com/csp; upgrade-insecure-requests", "",
			"sandbox allow-scripts; report-uri https://app.example.com.gw.test/csp; upgrade-insecure-requests", nil},
		{"form-action frame-ancestors base-uri", "form-action login.example.com; frame-ancestors 'none'; base-uri 'self'", "",
			"form-action login.example.com.gw.test; frame-ancestors 'none'; base-uri 'self'", nil},
		{"two policies", "script-src 'self', img-src cdn.example.net", "n",
			"script-src 'self' 'nonce-n', img-src cdn.example.net.gw.test", nil},
		{"schemes kept", "img-src https: data: blob:", "", "img-src https: data: blob:", nil},
		{"empty", "", "n", "", nil},
	}
	for _, c := range cases {
		mm := c.mapper
		if mm == nil {
			mm = m
		}
		if got := CSP(c.in, mm, c.nonce); got != c.want {
			t.Errorf("%s: CSP(%q)\n got %q\nwant %q", c.name, c.in, got, c.want)
		}
	}
}
