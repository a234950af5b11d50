package rewrite

import (
	"net/http"
	"strings"
)

// HeaderOptions configure response header rewriting.
type HeaderOptions struct {
	// Nonce of the proxy's injected script, added to CSP ("" = none).
	Nonce string
}

// RequestHeaders maps the browser's Origin and Referer back to the origin
// host before a request goes upstream. The caller sets Host.
func RequestHeaders(h http.Header, m Mapper) {
	f := originFunc(m)
	for _, k := range [...]string{"Origin", "Referer"} {
		vs := h[k]
		for i, v := range vs {
			if n, ok := mapURL(v, f); ok {
				vs[i] = n
			}
		}
	}
}

// ResponseHeaders rewrites a response's headers for the browser:
// Location, Content-Location, Refresh, Link, Access-Control-Allow-Origin
// and an absolute Service-Worker-Allowed move to the suffix; Set-Cookie
// lines go through SetCookie (refused lines are dropped, and all of them
// when originHost has no suffixed name); CSP and
// CSP-Report-Only go through CSP. Alt-Svc is removed: it would advertise
// the origin's alternative services for the suffixed name. Everything else,
// Strict-Transport-Security included, is kept as is. URLs of hosts the
// Mapper refuses stay as they are.
//
// The fields are found in one pass over h (a response has a handful; ten
// lookups of fields it mostly lacks cost more), by their canonical names
// as before.
func ResponseHeaders(h http.Header, originHost string, m Mapper, o HeaderOptions) {
	f := suffixFunc(m)
	for k, vs := range h {
		switch k {
		case "Location", "Content-Location", "Access-Control-Allow-Origin", "Service-Worker-Allowed":
			for i, v := range vs {
				if n, ok := mapURL(v, f); ok {
					vs[i] = n
				}
			}
		case "Refresh":
			for i, v := range vs {
				if n, ok := rewriteRefresh(v, f); ok {
					vs[i] = n
				}
			}
		case "Link":
			for i, v := range vs {
				vs[i] = rewriteLink(v, f)
			}
		case "Set-Cookie":
			if len(vs) == 0 {
				continue
			}
			if kept := setCookies(vs, originHost, f); len(kept) == 0 {
				delete(h, k)
			} else {
				h[k] = kept
			}
		case "Content-Security-Policy", "Content-Security-Policy-Report-Only":
			for i, v := range vs {
				vs[i] = CSP(v, m, o.Nonce)
			}
		case "Alt-Svc":
			delete(h, k)
		}
	}
}

// setCookies is what ResponseHeaders keeps of a response's Set-Cookie
// lines (in place, in cookies' array): each through SetCookie, none when
// originHost has no suffixed name.
func setCookies(cookies []string, originHost string, f hostFunc) []string {
	host := strings.ToLower(strings.TrimSuffix(originHost, "."))
	suffixed, ok := f(host)
	if !ok {
		return nil
	}
	kept := cookies[:0]
	for _, c := range cookies {
		if n, ok := SetCookie(c, host, suffixed); ok {
			kept = append(kept, n)
		}
	}
	return kept
}

// rewriteLink rewrites each <URI-Reference> of a Link header value.
func rewriteLink(v string, f hostFunc) string {
	var b strings.Builder
	last, i := 0, 0
	for {
		s := strings.IndexByte(v[i:], '<')
		if s < 0 {
			break
		}
		s += i + 1
		e := strings.IndexByte(v[s:], '>')
		if e < 0 {
			break
		}
		e += s
		if n, ok := mapURL(v[s:e], f); ok {
			b.WriteString(v[last:s])
			b.WriteString(n)
			last = e
		}
		i = e + 1
	}
	if last == 0 {
		return v
	}
	b.WriteString(v[last:])
	return b.String()
}
