package policy

import (
	"net/netip"
	"path"
	"strings"
)

// setMapThreshold: above this many names a filter uses a map; below it a
// linear EqualFold scan is faster and needs no lower-casing.
const setMapThreshold = 8

// nameSet is one side (any_of or none_of) of a compiled name filter,
// compared ASCII case-insensitively.
type nameSet struct {
	list []string
	m    map[string]struct{} // lower-cased, only for large sets
}

func newNameSet(names []string) nameSet {
	s := nameSet{list: make([]string, len(names))}
	for i, n := range names {
		s.list[i] = strings.ToLower(n)
	}
	if len(names) > setMapThreshold {
		s.m = make(map[string]struct{}, len(names))
		for _, n := range s.list {
			s.m[n] = struct{}{}
		}
	}
	return s
}

func (s *nameSet) has(v string) bool {
	if s.m != nil {
		if _, ok := s.m[v]; ok {
			return true
		}
		if !hasUpper(v) || len(v) > 256 {
			return false
		}
		// Lower-case on the stack; the map lookup with string(bytes) does
		// not allocate.
		var buf [256]byte
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c-'A' < 26 {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		_, ok := s.m[string(buf[:len(v)])]
		return ok
	}
	for _, x := range s.list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

func (s *nameSet) hasAny(vs []string) bool {
	for _, v := range vs {
		if s.has(v) {
			return true
		}
	}
	return false
}

func hasUpper(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i]-'A' < 26 {
			return true
		}
	}
	return false
}

// nameFilter is a compiled Names.
type nameFilter struct {
	any, none nameSet
	on        bool
}

func newNameFilter(n Names) nameFilter {
	return nameFilter{any: newNameSet(n.AnyOf), none: newNameSet(n.NoneOf), on: !n.IsZero()}
}

// one: a single-valued attribute (user).
func (f *nameFilter) one(v string) bool {
	if !f.on {
		return true
	}
	if len(f.any.list) > 0 && !f.any.has(v) {
		return false
	}
	return !f.none.has(v)
}

// many: a multi-valued attribute (groups, tags): at least one listed in
// any_of, none listed in none_of.
func (f *nameFilter) many(vs []string) bool {
	if !f.on {
		return true
	}
	if len(f.any.list) > 0 && !f.any.hasAny(vs) {
		return false
	}
	return !f.none.hasAny(vs)
}

// ipFilter is a compiled ip_ranges or ip_tags filter.
type ipFilter struct {
	any, none []netip.Prefix
	on        bool
}

func (f *ipFilter) match(a netip.Addr) bool {
	if !f.on {
		return true
	}
	a = a.Unmap()
	if len(f.any) > 0 && !prefixesContain(f.any, a) {
		return false
	}
	return !prefixesContain(f.none, a)
}

func prefixesContain(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Client-app bits.
const (
	clientBrowserBit uint8 = 1 << ClientBrowser
	clientNativeBit  uint8 = 1 << ClientMobileDesktop
)

// filters is a compiled Filters, minus apps (apps select the candidate
// list the policy is indexed under).
type filters struct {
	users, groups, deviceTags, uaTags nameFilter
	clients                           uint8 // allowed ClientApp bits
	explicitNative                    bool  // client_apps names mobile_desktop
	ipRanges, ipTags                  ipFilter
}

func (f *filters) match(s *Subject) bool {
	return f.clients&(1<<s.ClientApp) != 0 &&
		f.users.one(s.User) &&
		f.groups.many(s.Groups) &&
		f.deviceTags.many(s.DeviceTags) &&
		f.uaTags.many(s.UATags) &&
		f.ipRanges.match(s.SourceIP) &&
		f.ipTags.match(s.SourceIP)
}

// fileFilter is a compiled FileFilter.
type fileFilter struct {
	on               bool
	names            []string // lower-cased globs
	notNames         []string
	ext              nameFilter
	mime, notMIME    []string // lower-cased, "type/*" allowed
	minSize, maxSize int64
	label            LabelState
	labels           nameFilter
}

// needsLabel: the filter depends on the file's sensitivity label.
func (f *fileFilter) needsLabel() bool { return f.on && (f.label != LabelAny || f.labels.on) }

// matchBesidesLabel is match with the label conditions left out.
func (f *fileFilter) matchBesidesLabel(fi *FileInfo) bool {
	g := *f
	g.label, g.labels = LabelAny, nameFilter{}
	return g.match(fi)
}

func (f *fileFilter) match(fi *FileInfo) bool {
	if !f.on {
		return true
	}
	if fi == nil {
		return false
	}
	if len(f.names) > 0 && !globAny(f.names, fi.Name) || globAny(f.notNames, fi.Name) {
		return false
	}
	if f.ext.on && !f.ext.one(fileExt(fi)) {
		return false
	}
	m := mimeBase(fi.MIME)
	if len(f.mime) > 0 && !mimeAny(f.mime, m) || mimeAny(f.notMIME, m) {
		return false
	}
	if f.minSize > 0 && (fi.Size < 0 || fi.Size < f.minSize) {
		return false
	}
	if f.maxSize > 0 && (fi.Size < 0 || fi.Size > f.maxSize) {
		return false
	}
	switch f.label {
	case LabelPresent:
		if fi.Label == "" {
			return false
		}
	case LabelAbsent:
		if fi.Label != "" {
			return false
		}
	}
	if f.labels.on && (fi.Label == "" && len(f.labels.any.list) > 0 || !f.labels.one(fi.Label)) {
		return false
	}
	return true
}

// fileExt is the extension without the dot, from Ext or else the name.
func fileExt(fi *FileInfo) string {
	if fi.Ext != "" {
		return strings.TrimPrefix(fi.Ext, ".")
	}
	if i := strings.LastIndexByte(fi.Name, '.'); i >= 0 && i < len(fi.Name)-1 {
		return fi.Name[i+1:]
	}
	return ""
}

func mimeBase(m string) string {
	if i := strings.IndexByte(m, ';'); i >= 0 {
		m = m[:i]
	}
	return strings.TrimSpace(m)
}

func mimeAny(patterns []string, m string) bool {
	if m == "" {
		return false
	}
	for _, p := range patterns {
		if strings.HasSuffix(p, "/*") {
			if len(m) > len(p)-1 && strings.EqualFold(m[:len(p)-1], p[:len(p)-1]) {
				return true
			}
		} else if strings.EqualFold(p, m) {
			return true
		}
	}
	return false
}

// globAny matches file names against path.Match globs, ASCII
// case-insensitively for the common "*.ext" shape (patterns are stored
// lower-cased; names are lower-cased on the stack).
func globAny(patterns []string, name string) bool {
	if name == "" || len(patterns) == 0 {
		return false
	}
	var buf [256]byte
	lower := name
	if hasUpper(name) && len(name) <= len(buf) {
		for i := 0; i < len(name); i++ {
			c := name[i]
			if c-'A' < 26 {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		lower = unsafeString(buf[:len(name)])
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, lower); ok {
			return true
		}
	}
	return false
}
