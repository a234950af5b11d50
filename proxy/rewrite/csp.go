package rewrite

import "strings"

// CSP rewrites a Content-Security-Policy (or -Report-Only) value: host
// and URL sources of mapped hosts take their suffixed form (wildcards
// *.parent only through a WildcardMapper), report-uri URLs likewise, and
// with a nonce 'nonce-<n>' is added to script-src (and script-src-elem),
// or to default-src when there is no script-src. Sources that cannot be
// mapped stay; no directive or source is removed and nothing that widens
// the policy (*, 'unsafe-*', schemes) is added.
//
// A directive allowing 'unsafe-inline' without any nonce, hash or
// 'strict-dynamic' already allows the injected script; a nonce is not
// added there, since it would switch 'unsafe-inline' off and break the
// page's own inline scripts.
func CSP(value string, m Mapper, nonce string) string {
	policies := strings.Split(value, ",")
	for i, p := range policies {
		policies[i] = cspPolicy(p, m, nonce)
	}
	return strings.Join(policies, ",")
}

func cspPolicy(policy string, m Mapper, nonce string) string {
	dirs := strings.Split(policy, ";")
	names := make([]string, len(dirs))
	toks := make([][]string, len(dirs))
	seen := map[string]bool{}
	for i, d := range dirs {
		toks[i] = strings.Fields(d)
		if len(toks[i]) > 0 {
			names[i] = strings.ToLower(toks[i][0])
			if seen[names[i]] { // browsers use the first only
				names[i] = ""
			} else {
				seen[names[i]] = true
			}
		}
	}
	nonceTo := map[string]bool{}
	if nonce != "" {
		if seen["script-src"] {
			nonceTo["script-src"] = true
			nonceTo["script-src-elem"] = true
		} else if seen["default-src"] {
			nonceTo["default-src"] = true
			nonceTo["script-src-elem"] = true
		}
	}
	f := suffixFunc(m)
	changed := false
	for i, t := range toks {
		if len(t) == 0 {
			continue
		}
		name := strings.ToLower(t[0])
		switch {
		case name == "report-uri":
			for k := 1; k < len(t); k++ {
				if n, ok := mapURL(t[k], f); ok {
					t[k], changed = n, true
				}
			}
		case isSourceListDirective(name):
			for k := 1; k < len(t); k++ {
				if n, ok := cspSource(t[k], m, f); ok {
					t[k], changed = n, true
				}
			}
		}
		if nonceTo[names[i]] && needsNonce(t[1:]) {
			t = append(t, "'nonce-"+nonce+"'")
			toks[i], changed = t, true
		}
		if changed {
			lead := dirs[i][:len(dirs[i])-len(strings.TrimLeft(dirs[i], " \t\n\r\f"))]
			dirs[i] = lead + strings.Join(t, " ")
			changed = false
		}
	}
	return strings.Join(dirs, ";")
}

func isSourceListDirective(name string) bool {
	if strings.HasSuffix(name, "-src") || strings.HasSuffix(name, "-src-elem") || strings.HasSuffix(name, "-src-attr") {
		return true
	}
	switch name {
	case "base-uri", "form-action", "frame-ancestors", "navigate-to":
		return true
	}
	return false
}

// needsNonce: false when 'unsafe-inline' is in force (no nonce, hash or
// 'strict-dynamic' beside it), since the injected script is allowed then.
func needsNonce(sources []string) bool {
	unsafeInline := false
	for _, s := range sources {
		ls := strings.ToLower(s)
		switch {
		case ls == "'unsafe-inline'":
			unsafeInline = true
		case strings.HasPrefix(ls, "'nonce-"), strings.HasPrefix(ls, "'sha"), ls == "'strict-dynamic'":
			return true
		}
	}
	return !unsafeInline
}

// cspSource maps one host-source ([scheme://]host[:port][/path]) of a
// mapped host. Keywords, schemes, nonces and hashes are never touched.
func cspSource(s string, m Mapper, f hostFunc) (string, bool) {
	if s == "" || s[0] == '\'' || s == "*" {
		return "", false
	}
	i := 0
	if k := strings.Index(s, "://"); k >= 0 {
		i = k + 3
	} else if strings.HasSuffix(s, ":") {
		return "", false // scheme-source
	}
	end := i
	for end < len(s) && s[end] != ':' && s[end] != '/' {
		end++
	}
	host := s[i:end]
	if parent, ok := strings.CutPrefix(host, "*."); ok {
		wm, ok := m.(WildcardMapper)
		if !ok {
			return "", false
		}
		p, ok := normalHost(parent)
		if !ok {
			return "", false
		}
		n, ok := wm.SuffixWildcard(p)
		if !ok || n == "" {
			return "", false
		}
		return s[:i] + "*." + n + s[end:], true
	}
	h, ok := normalHost(host)
	if !ok || !strings.Contains(h, ".") {
		return "", false
	}
	n, ok := f(h)
	if !ok {
		return "", false
	}
	return s[:i] + n + s[end:], true
}
