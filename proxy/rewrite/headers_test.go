package rewrite

import (
	"net/http"
	"reflect"
	"testing"
)

func TestResponseHeaders(t *testing.T) {
	m := newTestMapper()
	h := http.Header{
		"Location":                            {"https://login.example.com/authorize?x=1"},
		"Content-Location":                    {"https://app.example.com/doc"},
		"Refresh":                             {"5; url=https://app.example.com/next"},
		"Link":                                {`<https://cdn.example.net/a.css>; rel=preload; as=style, </rel.js>; rel=preload, <https://other.org/x>; rel=dns-prefetch`},
		"Access-Control-Allow-Origin":         {"https://app.example.com"},
		"Service-Worker-Allowed":              {"/"},
		"Set-Cookie":                          {"a=1; Domain=example.com; Path=/", "b=2; Domain=evil.org", "__Host-c=3; Secure; Path=/"},
		"Content-Security-Policy":             {"script-src 'self' cdn.example.net"},
		"Content-Security-Policy-Report-Only": {"default-src 'self'"},
		"Strict-Transport-Security":           {"max-age=31536000; includeSubDomains"},
		"Alt-Svc":                             {`h3=":443"`},
		"X-Other":                             {"https://app.example.com/"},
	}
	ResponseHeaders(h, "app.example.com", m, HeaderOptions{Nonce: "n1"})
	want := http.Header{
		"Location":                            {"https://login.example.com.gw.test/authorize?x=1"},
		"Content-Location":                    {"https://app.example.com.gw.test/doc"},
		"Refresh":                             {"5; url=https://app.example.com.gw.test/next"},
		"Link":                                {`<https://cdn.example.net.gw.test/a.css>; rel=preload; as=style, </rel.js>; rel=preload, <https://other.org/x>; rel=dns-prefetch`},
		"Access-Control-Allow-Origin":         {"https://app.example.com.gw.test"},
		"Service-Worker-Allowed":              {"/"},
		"Set-Cookie":                          {"a=1; Path=/", "__Host-c=3; Secure; Path=/"},
		"Content-Security-Policy":             {"script-src 'self' cdn.example.net.gw.test 'nonce-n1'"},
		"Content-Security-Policy-Report-Only": {"default-src 'self' 'nonce-n1'"},
		"Strict-Transport-Security":           {"max-age=31536000; includeSubDomains"},
		"X-Other":                             {"https://app.example.com/"},
	}
	if !reflect.DeepEqual(h, want) {
		for k := range want {
			if !reflect.DeepEqual(h[k], want[k]) {
				t.Errorf("%s = %q, want %q", k, h[k], want[k])
			}
		}
		for k := range h {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected header %s: %q", k, h[k])
			}
		}
	}
}

// TestResponseHeadersPlainResponse: a response with none of the fields
// rewritten is left as it is, without an allocation, and fields are matched
// by their canonical names only (as the per-field lookups did): a
// non-canonical key in a hand-built header is not a Location.
func TestResponseHeadersPlainResponse(t *testing.T) {
	m := newTestMapper()
	h := http.Header{
		"Content-Type":   {"text/plain"},
		"Content-Length": {"38"},
		"Date":           {"Wed, 02 Dec 2026 14:00:00 GMT"},
		"location":       {"https://app.example.com/x"},
		"Set-Cookie":     {},
	}
	want := http.Header{}
	for k, vv := range h {
		want[k] = append([]string{}, vv...)
	}
	ResponseHeaders(h, "app.example.com", m, HeaderOptions{})
	if !reflect.DeepEqual(h, want) {
		t.Errorf("plain response became %q, want %q", h, want)
	}
	delete(h, "location")
	if n := testing.AllocsPerRun(100, func() { ResponseHeaders(h, "app.example.com", m, HeaderOptions{}) }); n != 0 {
		t.Errorf("%v allocations for a response with nothing to rewrite", n)
	}
}

func TestResponseHeadersRefusedHosts(t *testing.T) {
	m := newTestMapper()
	cases := []struct{ key, in string }{
		{"Location", "https://elsewhere.org/x"},
		{"Location", "/relative"},
		{"Location", "https://app.example.com.gw.test/already"},
		{"Access-Control-Allow-Origin", "*"},
		{"Access-Control-Allow-Origin", "null"},
		{"Refresh", "0"},
	}
	for _, c := range cases {
		h := http.Header{c.key: {c.in}}
		ResponseHeaders(h, "app.example.com", m, HeaderOptions{})
		if got := h.Get(c.key); got != c.in {
			t.Errorf("%s: %q became %q", c.key, c.in, got)
		}
	}
	// cookies of a host without a suffixed name are all dropped
	h := http.Header{"Set-Cookie": {"a=1"}}
	ResponseHeaders(h, "unknown.org", m, HeaderOptions{})
	if len(h["Set-Cookie"]) != 0 {
		t.Errorf("cookie of unmapped origin kept: %q", h["Set-Cookie"])
	}
}

func TestRequestHeaders(t *testing.T) {
	m := newTestMapper()
	h := http.Header{
		"Origin":  {"https://app.example.com.gw.test"},
		"Referer": {"https://app.example.com.gw.test/page?q=1"},
		"Cookie":  {"a=1"},
	}
	RequestHeaders(h, m)
	if got := h.Get("Origin"); got != "https://app.example.com" {
		t.Errorf("Origin = %q", got)
	}
	if got := h.Get("Referer"); got != "https://app.example.com/page?q=1" {
		t.Errorf("Referer = %q", got)
	}
	h = http.Header{"Origin": {"null"}, "Referer": {"https://elsewhere.org/"}}
	RequestHeaders(h, m)
	if h.Get("Origin") != "null" || h.Get("Referer") != "https://elsewhere.org/" {
		t.Errorf("unmapped headers changed: %v", h)
	}
}

func TestRefreshForms(t *testing.T) {
	m := newTestMapper()
	f := suffixFunc(m)
	cases := []struct{ in, want string }{
		{"0;url=https://app.example.com/", "0;url=https://app.example.com.gw.test/"},
		{"0; URL='https://app.example.com/x'", "0; URL='https://app.example.com.gw.test/x'"},
		{`3 ; url = "//cdn.example.net/y" `, `3 ; url = "//cdn.example.net.gw.test/y" `},
		{"1, https://app.example.com/", "1, https://app.example.com.gw.test/"},
		{"5", "5"},
	}
	for _, c := range cases {
		got, ok := rewriteRefresh(c.in, f)
		if !ok {
			got = c.in
		}
		if got != c.want {
			t.Errorf("refresh %q = %q, want %q", c.in, got, c.want)
		}
	}
}
