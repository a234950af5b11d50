package rewrite

import "testing"

func TestSetCookie(t *testing.T) {
	const origin, sfx = "app.example.com", "app.example.com.gw.test"
	cases := []struct {
		name, in, want string
		ok             bool
	}{
		{"plain", "sid=abc", "sid=abc", true},
		{"attributes kept", "sid=abc; Path=/x; Secure; HttpOnly; SameSite=Lax; Max-Age=60",
			"sid=abc; Path=/x; Secure; HttpOnly; SameSite=Lax; Max-Age=60", true},
		{"domain of host dropped", "sid=abc; Domain=app.example.com; Path=/", "sid=abc; Path=/", true},
		{"parent domain dropped", "sid=abc; domain=.example.com; Secure", "sid=abc; Secure", true},
		{"domain case and dot", "sid=abc; DOMAIN=.Example.COM.", "sid=abc", true},
		{"empty domain ignored", "sid=abc; Domain=", "sid=abc", true},
		{"foreign domain refused", "sid=abc; Domain=other.org", "", false},
		{"sibling domain refused", "sid=abc; Domain=login.example.com", "", false},
		{"lookalike parent refused", "sid=abc; Domain=ple.com", "", false},
		{"suffix as domain refused", "sid=abc; Domain=gw.test", "", false},
		{"expires with comma", "a=b; Expires=Wed, 21 Oct 2026 07:28:00 GMT", "a=b; Expires=Wed, 21 Oct 2026 07:28:00 GMT", true},
		{"empty value", "a=", "a=", true},
		{"host prefix ok", "__Host-id=1; Secure; Path=/", "__Host-id=1; Secure; Path=/", true},
		{"host prefix with domain", "__Host-id=1; Secure; Path=/; Domain=app.example.com", "", false},
		{"host prefix no secure", "__Host-id=1; Path=/", "", false},
		{"host prefix bad path", "__Host-id=1; Secure; Path=/x", "", false},
		{"host prefix case", "__HOST-id=1; Path=/", "", false},
		{"secure prefix ok", "__Secure-id=1; Secure; Domain=example.com", "__Secure-id=1; Secure", true},
		{"secure prefix missing", "__Secure-id=1", "", false},
		{"no equals", "justvalue", "", false},
		{"empty name", "=abc", "", false},
		{"control char", "a=b\x01; Path=/", "", false},
		{"newline injection", "a=b\r\nSet-Cookie: x=y", "", false},
		{"space in name", "a b=c", "", false},
	}
	for _, c := range cases {
		got, ok := SetCookie(c.in, origin, sfx)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: SetCookie(%q) = %q, %v; want %q, %v", c.name, c.in, got, ok, c.want, c.ok)
		}
	}
	if _, ok := SetCookie("a=b", origin, ""); ok {
		t.Error("empty suffixed host accepted")
	}
}
