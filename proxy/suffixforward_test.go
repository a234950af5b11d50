package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSuffixLeanRequestAndResponse is a GET through the suffix listener over
// HTTP/1.1 (the lean path, suffixForwardLean), over HTTP/1.1 with
// "Connection: close" (the ReverseProxy, to an HTTP/1.1 origin) and over
// HTTP/2 (the ReverseProxy, to an HTTP/2 origin): the origin sees the same
// request from each — Origin, Referer and the query mapped back, the proxy's
// cookie, Forwarded and X-Forwarded-For gone, no User-Agent when the client
// sent none — and the client the same response: hop-by-hop fields gone
// (HTTP/2 has none), Location suffixed, the streamed body whole and its
// trailer.
func TestSuffixLeanRequestAndResponse(t *testing.T) {
	sh := newSuffixHarness(t, nil)
	for _, tc := range []struct {
		name      string
		h2, close bool
	}{{"lean", false, false}, {"reverse proxy", false, true}, {"h2", true, false}} {
		h2 := tc.h2
		ret := url.QueryEscape("https://app.test.gw.test/x")
		req, _ := http.NewRequest("GET", "https://app.test.gw.test/relay?return="+ret, nil)
		req.Header.Set("Origin", "https://app.test.gw.test")
		req.Header.Set("Referer", "https://app.test.gw.test/page")
		req.Header.Set("Forwarded", "for=192.0.2.1")
		req.Header.Set("X-Forwarded-For", "192.0.2.1")
		req.Header.Set("User-Agent", "")
		req.AddCookie(&http.Cookie{Name: "sid", Value: "s1"})
		req.AddCookie(&http.Cookie{Name: "__Host-portcullis", Value: "secret-session"})
		req.Close = tc.close
		resp, err := sh.client(h2, false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (resp.ProtoMajor == 2) != h2 {
			t.Fatalf("%s: status %d proto %s", tc.name, resp.StatusCode, resp.Proto)
		}
		if body != "part one;part two" || resp.Trailer.Get("X-Sum") != "abc" {
			t.Errorf("%s: body %q, trailer %v", tc.name, body, resp.Trailer)
		}
		if !h2 && resp.Header.Get("X-Hop") != "" || resp.Header.Get("Location") != "https://app.test.gw.test/next" {
			t.Errorf("%s: response header %v", tc.name, resp.Header)
		}
		var seen *http.Request
		select {
		case seen = <-sh.seen:
		case <-time.After(5 * time.Second):
			t.Fatal("origin saw no request")
		}
		h := seen.Header
		for k, want := range map[string]string{"Origin": "https://app.test", "Referer": "https://app.test/page", "Cookie": "sid=s1"} {
			if got := h.Values(k); !slices.Equal(got, []string{want}) {
				t.Errorf("%s: origin saw %s %q, want %q", tc.name, k, got, want)
			}
		}
		for _, k := range []string{"Forwarded", "X-Forwarded-For", "User-Agent"} {
			if v, ok := h[k]; ok {
				t.Errorf("%s: origin saw %s %q", tc.name, k, v)
			}
		}
		if seen.Host != "app.test" || seen.URL.Query().Get("return") != "https://app.test/x" || (seen.ProtoMajor == 2) != h2 {
			t.Errorf("%s: origin saw Host %q, query %q, %s", tc.name, seen.Host, seen.URL.RawQuery, seen.Proto)
		}
	}
}

// TestSuffixOutgoingLeavesTheClientRequest: the outgoing request of the
// lean path is mapped back without changing the client's request, whose
// cookies (the proxy's own among them) and suffixed URLs the session
// pipeline and the record still read; a request with nothing to rewrite
// shares the client's header.
func TestSuffixOutgoingLeavesTheClientRequest(t *testing.T) {
	sh := newSuffixHarness(t, nil)
	outgoing := func(r *http.Request) *http.Request {
		o := &suffixOutgoingRequest{m: rewriteMapper{s: sh.srv, via: "app.test"}}
		return o.from(r, "app.test")
	}
	r, _ := http.NewRequest("GET", "https://app.test.gw.test/p?return="+url.QueryEscape("https://app.test.gw.test/x"), nil)
	r.Header.Set("Referer", "https://app.test.gw.test/page")
	r.Header.Set("Origin", "https://app.test.gw.test")
	r.Header.Set("Cookie", "sid=s1; __Host-portcullis=secret")
	r.Header.Set("Accept", "*/*")
	r.Host = "app.test"
	before := r.Header.Clone()
	beforeURL := r.URL.String()

	out := outgoing(r)
	if !mapsEqualHeader(r.Header, before) || r.URL.String() != beforeURL || r.Host != "app.test" {
		t.Fatalf("the client's request changed: %v %s", r.Header, r.URL)
	}
	if out.URL.String() != "https://app.test/p?return="+url.QueryEscape("https://app.test/x") || out.Host != "app.test" {
		t.Errorf("outgoing URL %s Host %s", out.URL, out.Host)
	}
	for k, want := range map[string]string{"Referer": "https://app.test/page", "Origin": "https://app.test", "Cookie": "sid=s1", "Accept": "*/*"} {
		if got := out.Header.Values(k); !slices.Equal(got, []string{want}) {
			t.Errorf("outgoing %s %q, want %q", k, got, want)
		}
	}

	plain, _ := http.NewRequest("GET", "https://app.test.gw.test/p", nil)
	plain.Header.Set("Cookie", "sid=s1")
	out = outgoing(plain)
	if out == plain || out.URL == plain.URL {
		t.Fatal("the outgoing request is the client's")
	}
	out.Header.Set("X-Probe", "1")
	if plain.Header.Get("X-Probe") != "1" {
		t.Error("a request with nothing to rewrite got a header copy")
	}
}

func mapsEqualHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// TestStripOwnCookies: what reaches the origin of a Cookie field is the
// client's cookies less the proxy's, each trimmed, joined into one line, as
// the cookie-by-cookie join it replaces sent them, in one allocation for
// the line (and its one-value slice).
func TestStripOwnCookies(t *testing.T) {
	join := func(lines []string) []string { // the per-cookie join stripOwnCookies was
		var kept []string
		for _, line := range lines {
			for part := range strings.SplitSeq(line, ";") {
				name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
				if name == "" || strings.HasPrefix(name, "__Host-portcullis") {
					continue
				}
				kept = append(kept, strings.TrimSpace(part))
			}
		}
		if len(kept) == 0 {
			return nil
		}
		return []string{strings.Join(kept, "; ")}
	}
	for _, lines := range [][]string{
		{"__Host-portcullis=abc"},
		{"a=1; __Host-portcullis=abc; b=2"},
		{"__Host-portcullis=abc; a=1", " b = 2 ;; ;c", "__Host-portcullis-ctl=x"},
		{"a=1", "b=2"},
		{";", " ", ""},
		{"=x; __Host-portcullisX=y; x__Host-portcullis=z"},
		{"a=1;b=2;__Host-portcullis=abc;c=3"},
	} {
		h := http.Header{"Cookie": slices.Clone(lines), "Accept": {"*/*"}}
		stripOwnCookies(h)
		if got, want := h["Cookie"], join(lines); !slices.Equal(got, want) {
			t.Errorf("%q: sent %q, want %q", lines, got, want)
		}
		if _, ok := h["Cookie"]; ok == (len(join(lines)) == 0) || len(h["Accept"]) != 1 {
			t.Errorf("%q: header after: %q", lines, h)
		}
	}
	line := "theme=dark; __Host-portcullis=" + strings.Repeat("s", 200) + "; lang=en; tz=UTC"
	h := http.Header{}
	if n := testing.AllocsPerRun(100, func() { h["Cookie"] = []string{line}; stripOwnCookies(h) }); n > 3 {
		t.Errorf("%v allocations per strip, want at most 3 (the test's own slice, the line, its slice)", n)
	}
}
