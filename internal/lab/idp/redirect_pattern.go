package idp

import (
	"net/url"
	"strings"
)

// redirectPattern is a registered redirect URI whose host starts with a
// wildcard, "https://*.<suffix>/<path>": it matches https URIs whose host is
// one or more DNS labels followed by ".<suffix>", with exactly the pattern's
// port and path and no user info, query or fragment. It exists for the
// proxy's own login, whose callback lives on every suffixed host.
//
// The match is done on the parsed URI and then confirmed by rebuilding the
// URI from its parts and comparing strings, so encodings and delimiters
// ("?", "#", "@", "%2F") that a plain glob would let "*" swallow cannot
// smuggle another host in.
type redirectPattern struct {
	suffix string // lower-case host suffix without the leading dot, e.g. "gw.lab"
	port   string // "" or the explicit port of the pattern
	path   string // exact path, e.g. "/.portcullis/oidc/callback"
}

const wildcardPrefix = "https://*."

// isRedirectPattern tells a wildcard registration from an exact one.
func isRedirectPattern(s string) bool { return strings.Contains(s, "*") }

func parseRedirectPattern(s string) (redirectPattern, error) {
	if !strings.HasPrefix(s, wildcardPrefix) {
		return redirectPattern{}, errorf("redirect pattern %q: must start with %q", s, wildcardPrefix)
	}
	rest := strings.TrimPrefix(s, wildcardPrefix)
	if strings.Contains(rest, "*") {
		return redirectPattern{}, errorf("redirect pattern %q: only the leading host label may be a wildcard", s)
	}
	u, err := url.Parse("https://" + rest)
	if err != nil {
		return redirectPattern{}, errorf("redirect pattern %q: %v", s, err)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return redirectPattern{}, errorf("redirect pattern %q: user info, query and fragment are not allowed", s)
	}
	host := strings.ToLower(u.Hostname())
	if !validHostLabels(host) {
		return redirectPattern{}, errorf("redirect pattern %q: suffix %q is not a DNS name", s, host)
	}
	if u.Path == "" || u.RawPath != "" {
		return redirectPattern{}, errorf("redirect pattern %q: needs a plain absolute path", s)
	}
	return redirectPattern{suffix: host, port: u.Port(), path: u.Path}, nil
}

// matches reports whether uri is one the pattern allows.
func (p redirectPattern) matches(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Opaque != "" {
		return false
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawPath != "" || u.Path != p.path {
		return false
	}
	if u.Port() != p.port {
		return false
	}
	host := u.Hostname()
	labels, ok := strings.CutSuffix(host, "."+p.suffix)
	if !ok || labels == "" || !validHostLabels(labels) {
		return false
	}
	hostPort := host
	if p.port != "" {
		hostPort += ":" + p.port
	}
	return uri == "https://"+hostPort+p.path
}

// validHostLabels accepts dot-separated lower-case LDH labels of 1 to 63
// characters that neither start nor end with a hyphen.
func validHostLabels(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
