package control

import "strings"

// allowInjected returns a Content-Security-Policy value (one or more
// comma-separated policies) that also allows the injected elements: the
// nonce joins the directive that governs script elements (script-src-elem,
// else script-src, else default-src) and the one for style elements, and
// reportURL joins the one for fetch (connect-src, else default-src) when it
// could refuse a same-origin request. Nothing else changes: no directive or
// source is removed, no keyword or wildcard added, and a policy without the
// directive for a type leaves that type unrestricted as it was.
//
// A directive already allowing inline elements ('unsafe-inline' without a
// nonce or hash, or for scripts 'strict-dynamic') gets no nonce: the
// nonce would switch 'unsafe-inline' off for the page's own inline code.
// When default-src governs both scripts and styles and only one of them
// needs the nonce, that one gets its own directive, a copy of default-src
// with the nonce.
func allowInjected(value, nonce, reportURL string) string {
	policies := strings.Split(value, ",")
	for i, p := range policies {
		policies[i] = allowInjectedPolicy(p, nonce, reportURL)
	}
	return strings.Join(policies, ",")
}

func allowInjectedPolicy(policy, nonce, reportURL string) string {
	dirs := strings.Split(policy, ";")
	toks := make([][]string, len(dirs))
	index := map[string]int{}
	for i, d := range dirs {
		toks[i] = strings.Fields(d)
		if len(toks[i]) == 0 {
			continue
		}
		name := strings.ToLower(toks[i][0])
		if _, dup := index[name]; !dup { // browsers use the first only
			index[name] = i
		}
	}
	effective := func(names ...string) int {
		for _, n := range names {
			if i, ok := index[n]; ok {
				return i
			}
		}
		return -1
	}
	nonceSrc := "'nonce-" + nonce + "'"
	add := map[int][]string{}
	var extra []string
	script := effective("script-src-elem", "script-src", "default-src")
	style := effective("style-src-elem", "style-src", "default-src")
	scriptNeeds := script >= 0 && needsNonce(toks[script][1:], true)
	styleNeeds := style >= 0 && needsNonce(toks[style][1:], false)
	if script >= 0 && script == style && scriptNeeds != styleNeeds {
		// One shared default-src, and a nonce would switch off inline
		// elements of the type that allows them.
		clone := "style-src"
		if scriptNeeds {
			clone = "script-src"
		}
		extra = append(extra, clone+" "+strings.Join(toks[script][1:], " ")+" "+nonceSrc)
	} else {
		if scriptNeeds {
			add[script] = append(add[script], nonceSrc)
		}
		if styleNeeds && style != script {
			add[style] = append(add[style], nonceSrc)
		}
	}
	if connect := effective("connect-src", "default-src"); connect >= 0 && !allowsSameOrigin(toks[connect][1:], reportURL) {
		add[connect] = append(add[connect], reportURL)
	}
	if len(add) == 0 && len(extra) == 0 {
		return policy
	}
	for i, srcs := range add {
		lead := dirs[i][:len(dirs[i])-len(strings.TrimLeft(dirs[i], " \t\n\r\f"))]
		dirs[i] = lead + strings.Join(append(toks[i], srcs...), " ")
	}
	out := strings.Join(dirs, ";")
	for _, e := range extra {
		if strings.TrimSpace(dirs[len(dirs)-1]) == "" {
			out += " " + e + ";"
		} else {
			out += "; " + e
		}
	}
	return out
}

// needsNonce is false when the sources already allow inline elements.
// For scripts 'strict-dynamic' disables 'unsafe-inline' like a nonce.
func needsNonce(sources []string, script bool) bool {
	unsafeInline := false
	for _, s := range sources {
		ls := strings.ToLower(s)
		switch {
		case ls == "'unsafe-inline'":
			unsafeInline = true
		case strings.HasPrefix(ls, "'nonce-"), strings.HasPrefix(ls, "'sha256-"), strings.HasPrefix(ls, "'sha384-"), strings.HasPrefix(ls, "'sha512-"):
			return true
		case ls == "'strict-dynamic'" && script:
			return true
		}
	}
	return !unsafeInline
}

// allowsSameOrigin: the sources surely allow a same-origin https request
// ('self', *, https:, or the report URL itself). Anything else gets the
// report URL added, which allows that one URL and nothing more.
func allowsSameOrigin(sources []string, reportURL string) bool {
	for _, s := range sources {
		switch ls := strings.ToLower(s); ls {
		case "'self'", "*", "https:", strings.ToLower(reportURL):
			return true
		}
	}
	return false
}

// sandboxedNoScripts reports whether an enforced policy sandboxes the page
// without allow-scripts.
func sandboxedNoScripts(value string) bool {
	for _, p := range strings.Split(value, ",") {
		for _, d := range strings.Split(p, ";") {
			f := strings.Fields(strings.ToLower(d))
			if len(f) == 0 || f[0] != "sandbox" {
				continue
			}
			allowed := false
			for _, t := range f[1:] {
				allowed = allowed || t == "allow-scripts"
			}
			if !allowed {
				return true
			}
		}
	}
	return false
}
