package rewrite

import "strings"

// hostFunc maps one normalised host name; it is how every scanner in this
// package is told which direction it rewrites.
type hostFunc func(host string) (string, bool)

// suffixFunc maps origin hosts to suffixed ones. A host that already is a
// suffixed name is never suffixed twice.
func suffixFunc(m Mapper) hostFunc {
	return func(h string) (string, bool) {
		if _, already := m.Unsuffix(h); already {
			return "", false
		}
		s, ok := m.Suffix(h)
		if !ok || s == "" || s == h {
			return "", false
		}
		return s, true
	}
}

// originFunc maps suffixed hosts back to their origin.
func originFunc(m Mapper) hostFunc {
	return func(h string) (string, bool) {
		o, ok := m.Unsuffix(h)
		if !ok || o == "" || o == h {
			return "", false
		}
		return o, true
	}
}

// URLToSuffix maps the host of an absolute http(s)/ws(s) URL or a
// protocol-relative //host URL to its suffixed name, keeping every other
// byte (scheme, user info, port, path, query, fragment). ok=false (and raw
// returned) when the URL is relative, of another scheme, or its host is
// refused by the Mapper.
func URLToSuffix(raw string, m Mapper) (string, bool) {
	return mapURL(raw, suffixFunc(m))
}

// URLToOrigin is URLToSuffix the other way: suffixed host -> origin host.
func URLToOrigin(raw string, m Mapper) (string, bool) {
	return mapURL(raw, originFunc(m))
}

func mapURL(raw string, f hostFunc) (string, bool) {
	hs, he, n, ok := mapURLHost(raw, f)
	if !ok {
		return raw, false
	}
	return raw[:hs] + n + raw[he:], true
}

// mapURLHost is mapURL without building the result: the span of raw's
// host and what replaces it.
func mapURLHost(raw string, f hostFunc) (hs, he int, n string, ok bool) {
	hs, he, ok = urlHostSpan(raw)
	if !ok {
		return 0, 0, "", false
	}
	h, ok := normalHost(raw[hs:he])
	if !ok {
		return 0, 0, "", false
	}
	if n, ok = f(h); !ok {
		return 0, 0, "", false
	}
	return hs, he, n, true
}

// urlHostSpan locates the host of an absolute URL of a rewritable scheme or
// of a protocol-relative URL. Like browsers it skips leading spaces and C0
// controls and accepts backslashes as slashes.
func urlHostSpan[T string | []byte](s T) (start, end int, ok bool) {
	i := 0
	for i < len(s) && s[i] <= ' ' {
		i++
	}
	j := i
	for j < len(s) && j-i < 6 && isAlpha(s[j]) {
		j++
	}
	if j < len(s) && s[j] == ':' && j > i {
		if !isWebScheme(string(s[i:j])) {
			return 0, 0, false
		}
		i = j + 1
	}
	if len(s)-i < 2 || !isSlash(s[i]) || !isSlash(s[i+1]) {
		return 0, 0, false
	}
	i += 2
	end = i
	for end < len(s) && !isSlash(s[end]) && s[end] != '?' && s[end] != '#' {
		end++
	}
	start = i
	for k := end - 1; k >= i; k-- {
		if s[k] == '@' {
			start = k + 1
			break
		}
	}
	if start < end && s[start] == '[' {
		return 0, 0, false // IPv6 literal: never proxied
	}
	hostEnd := start
	for hostEnd < end && s[hostEnd] != ':' {
		hostEnd++
	}
	for p := hostEnd + 1; p < end; p++ {
		if s[p] < '0' || s[p] > '9' {
			return 0, 0, false
		}
	}
	if hostEnd == start {
		return 0, 0, false
	}
	return start, hostEnd, true
}

// normalHost lower-cases an ASCII host and drops one trailing dot;
// ok=false for anything that is not a plain DNS name.
func normalHost(h string) (string, bool) {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "", false
	}
	upper := false
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		case c >= 'A' && c <= 'Z':
			upper = true
		default:
			return "", false
		}
	}
	if upper {
		h = strings.ToLower(h)
	}
	return h, true
}

func isWebScheme(s string) bool {
	return strings.EqualFold(s, "https") || strings.EqualFold(s, "http") ||
		strings.EqualFold(s, "wss") || strings.EqualFold(s, "ws")
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isSlash(c byte) bool { return c == '/' || c == '\\' }
func isHostByte(c byte) bool {
	return c|0x20 >= 'a' && c|0x20 <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'
}

// hostCache remembers a hostFunc's answers for one body, so a page that
// names the same few hosts thousands of times asks the Mapper once per
// host and allocates nothing for repeats. It holds at most
// maxCachedHosts answers.
type hostCache struct {
	f hostFunc
	m map[string]hostAnswer
}

type hostAnswer struct {
	host string
	ok   bool
}

const maxCachedHosts = 1024

func newHostCache(f hostFunc) *hostCache { return &hostCache{f: f} }

// lookup is a hostFunc over an already normalised host.
func (c *hostCache) lookup(h string) (string, bool) {
	if a, ok := c.m[h]; ok {
		return a.host, a.ok
	}
	n, ok := c.f(h)
	c.remember(h, n, ok)
	return n, ok
}

func (c *hostCache) remember(h, n string, ok bool) {
	if c.m == nil {
		c.m = make(map[string]hostAnswer)
	}
	if len(c.m) < maxCachedHosts {
		c.m[h] = hostAnswer{n, ok}
	}
}

// lookupBytes normalises a raw host (as normalHost does) and maps it.
func (c *hostCache) lookupBytes(b []byte) (string, bool) {
	for len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
		break
	}
	var buf [253]byte
	if len(b) == 0 || len(b) > len(buf) {
		return "", false
	}
	for i, ch := range b {
		switch {
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9', ch == '-', ch == '.', ch == '_':
		case ch >= 'A' && ch <= 'Z':
			ch += 'a' - 'A'
		default:
			return "", false
		}
		buf[i] = ch
	}
	key := buf[:len(b)]
	if a, ok := c.m[string(key)]; ok {
		return a.host, a.ok
	}
	h := string(key)
	n, ok := c.f(h)
	c.remember(h, n, ok)
	return n, ok
}
