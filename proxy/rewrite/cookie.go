package rewrite

import "strings"

// SetCookie rewrites one Set-Cookie line for the suffixed host. The
// cookie always becomes host-only on suffixedHost: any Domain attribute is
// dropped, so a cookie of one app can never reach another app nor the
// suffix itself. ok=false means drop the cookie: the line is malformed,
// its Domain does not cover originHost (the origin browser would have
// refused it), or it breaks its __Host- / __Secure- prefix rules.
func SetCookie(line string, originHost, suffixedHost string) (string, bool) {
	if suffixedHost == "" || originHost == "" {
		return "", false
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < ' ' && c != '\t' || c == 0x7f {
			return "", false
		}
	}
	parts := strings.Split(line, ";")
	name, _, ok := strings.Cut(parts[0], "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\",\\") {
		return "", false
	}
	var secure, hasDomain bool
	path := ""
	kept := make([]string, 1, len(parts))
	kept[0] = strings.TrimSpace(parts[0])
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "domain":
			if v == "" {
				continue // ignored by browsers: the cookie is host-only
			}
			d := strings.ToLower(strings.TrimPrefix(v, "."))
			d = strings.TrimSuffix(d, ".")
			if d != originHost && !strings.HasSuffix(originHost, "."+d) {
				return "", false
			}
			hasDomain = true
			continue
		case "secure":
			secure = true
		case "path":
			path = v
		}
		kept = append(kept, p)
	}
	lname := strings.ToLower(name)
	switch {
	case strings.HasPrefix(lname, "__host-"):
		if !secure || hasDomain || path != "/" {
			return "", false
		}
	case strings.HasPrefix(lname, "__secure-"):
		if !secure {
			return "", false
		}
	}
	return strings.Join(kept, "; "), true
}
