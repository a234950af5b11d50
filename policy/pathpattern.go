package policy

import (
	"fmt"
	"strings"
)

// pathPattern matches URL paths segment by segment: a literal segment
// matches itself, "*" any one segment, "**" any number of segments (also
// none). Precompiled so matching never allocates.
type pathPattern struct {
	raw  string
	segs []string
}

func compilePath(p string) (pathPattern, error) {
	if !strings.HasPrefix(p, "/") {
		return pathPattern{}, fmt.Errorf("path %q does not start with /", p)
	}
	if strings.ContainsAny(p, "?#") {
		return pathPattern{}, fmt.Errorf("path %q has a query or fragment; activities match the path only", p)
	}
	segs := strings.Split(p[1:], "/")
	for _, s := range segs {
		if s != "*" && s != "**" && strings.Contains(s, "*") {
			return pathPattern{}, fmt.Errorf("path %q: '*' must be a whole segment (/a/*/b or /a/**)", p)
		}
	}
	return pathPattern{raw: p, segs: segs}, nil
}

func (pp *pathPattern) match(path string) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	return matchSegs(pp.segs, path[1:], true)
}

// matchSegs matches segs against the remaining path p; more is false once
// the path has no segment left (distinguishing "/a" from "/a/").
func matchSegs(segs []string, p string, more bool) bool {
	for i, s := range segs {
		if s == "**" {
			rest := segs[i+1:]
			if len(rest) == 0 {
				return true
			}
			for {
				if matchSegs(rest, p, more) {
					return true
				}
				if !more {
					return false
				}
				j := strings.IndexByte(p, '/')
				if j < 0 {
					more = false
					p = ""
				} else {
					p = p[j+1:]
				}
			}
		}
		if !more {
			return false
		}
		var seg string
		if j := strings.IndexByte(p, '/'); j < 0 {
			seg, p, more = p, "", false
		} else {
			seg, p = p[:j], p[j+1:]
		}
		if s != "*" && s != seg {
			return false
		}
	}
	return !more
}
