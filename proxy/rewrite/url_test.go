package rewrite

import "testing"

func TestURLToSuffix(t *testing.T) {
	m := newTestMapper()
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"https://app.example.com/a?b=c#d", "https://app.example.com.gw.test/a?b=c#d", true},
		{"http://app.example.com", "http://app.example.com.gw.test", true},
		{"HTTPS://APP.Example.COM:8443/x", "HTTPS://app.example.com.gw.test:8443/x", true},
		{"wss://app.example.com/socket", "wss://app.example.com.gw.test/socket", true},
		{"ws://cdn.example.net:80", "ws://cdn.example.net.gw.test:80", true},
		{"//cdn.example.net/lib.js", "//cdn.example.net.gw.test/lib.js", true},
		{"https://user:pw@app.example.com/", "https://user:pw@app.example.com.gw.test/", true},
		{"https://app.example.com./", "https://app.example.com.gw.test/", true},
		{"https:\\\\app.example.com\\x", "https:\\\\app.example.com.gw.test\\x", true},
		{"  https://app.example.com/", "  https://app.example.com.gw.test/", true},
		{"https://contoso.sharepoint.com/sites/x", "https://contoso.sharepoint.com.gw.test/sites/x", true},
		{"https://app.example.com?x", "https://app.example.com.gw.test?x", true},
		{"https://other.example.org/", "https://other.example.org/", false},
		{"https://app.example.com.gw.test/", "https://app.example.com.gw.test/", false},
		{"/relative/path", "/relative/path", false},
		{"relative", "relative", false},
		{"ftp://app.example.com/", "ftp://app.example.com/", false},
		{"javascript:alert(1)", "javascript:alert(1)", false},
		{"https://[::1]/", "https://[::1]/", false},
		{"https://app.example.com:abc/", "https://app.example.com:abc/", false},
		{"https://", "https://", false},
		{"https://xn--bcher-kva.example/", "https://xn--bcher-kva.example/", false},
		{"https://bücher.example/", "https://bücher.example/", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, ok := URLToSuffix(c.in, m)
		if got != c.want || ok != c.ok {
			t.Errorf("URLToSuffix(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestURLToOrigin(t *testing.T) {
	m := newTestMapper()
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"https://app.example.com.gw.test/cb?x=1", "https://app.example.com/cb?x=1", true},
		{"https://login.example.com.GW.TEST:443/", "https://login.example.com:443/", true},
		{"//cdn.example.net.gw.test/x", "//cdn.example.net/x", true},
		{"https://app.example.com/", "https://app.example.com/", false},
		{"https://evil.example.gw.test/", "https://evil.example.gw.test/", false},
		{"https://gw.test/", "https://gw.test/", false},
	}
	for _, c := range cases {
		got, ok := URLToOrigin(c.in, m)
		if got != c.want || ok != c.ok {
			t.Errorf("URLToOrigin(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
