package policy

import "strings"

// hostIndex maps host names to app indexes. Exact names win over wildcards,
// and a longer wildcard suffix over a shorter one, so "outlook.office.com"
// can belong to Outlook while "*.office.com" belongs to the portal.
type hostIndex struct {
	exact  map[string]int32
	suffix map[string]int32
}

// normHost drops a ":port" and a trailing dot without allocating. The proxy
// already lower-cases host names.
func normHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}

func (x *hostIndex) lookup(host string) int32 {
	host = normHost(host)
	if host == "" {
		return -1
	}
	if i, ok := x.exact[host]; ok {
		return i
	}
	for k := 0; k < len(host); k++ {
		if host[k] == '.' {
			if i, ok := x.suffix[host[k+1:]]; ok {
				return i
			}
		}
	}
	return -1
}
