package proxy

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// DiscoveredDomain is a domain seen in an app's responses that belongs to
// no onboarded app: the admin decides whether to onboard it.
type DiscoveredDomain struct {
	Host      string
	FirstSeen time.Time
	LastSeen  time.Time
	Seen      uint64
	// Via is the app host whose response first mentioned it.
	Via string
}

// discoveredSet is bounded: once full, new domains are still counted but not
// added (and not suffixed), so a page full of random names cannot grow it.
type discoveredSet struct {
	mu  sync.Mutex
	m   map[string]*DiscoveredDomain
	max int
}

func newDiscoveredSet(max int) *discoveredSet {
	return &discoveredSet{m: map[string]*DiscoveredDomain{}, max: max}
}

// note records host and reports whether it is in the set.
func (d *discoveredSet) note(host, via string) bool {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.m[host]; ok {
		e.LastSeen = now
		e.Seen++
		return true
	}
	if len(d.m) >= d.max {
		return false
	}
	d.m[host] = &DiscoveredDomain{Host: host, FirstSeen: now, LastSeen: now, Seen: 1, Via: via}
	return true
}

func (d *discoveredSet) has(host string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.m[host]
	return ok
}

func (d *discoveredSet) list() []DiscoveredDomain {
	d.mu.Lock()
	out := make([]DiscoveredDomain, 0, len(d.m))
	for _, e := range d.m {
		out = append(out, *e)
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b DiscoveredDomain) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// DiscoveredDomains lists the domains seen in app responses that belong to
// no onboarded app, sorted by name.
func (s *Server) DiscoveredDomains() []DiscoveredDomain {
	if s.suffix == nil {
		return nil
	}
	return s.suffix.discovered.list()
}

// rewriteMapper is the rewriters' view of the suffix mapping for responses
// of one app: onboarded hosts are suffixed; other names are recorded as
// discovered and suffixed when the admin chose so.
type rewriteMapper struct {
	s   *Server
	via string
}

func (m rewriteMapper) Suffix(origin string) (string, bool) {
	sm := m.s.cfg.Suffix.Mapper
	if name, ok := sm.ToSuffixed(origin); ok {
		return name, true
	}
	name, err := normalizeName(origin)
	if err != nil || looksNumeric(name) || !strings.Contains(name, ".") || strings.HasSuffix(name, "."+sm.suffix) || name == sm.suffix {
		return "", false
	}
	known := m.s.suffix.discovered.has(name)
	if !known {
		m.s.Stats.SuffixDiscovered.Add(1)
		known = m.s.suffix.discovered.note(name, m.via)
	}
	if known && m.s.cfg.Suffix.SuffixDiscovered {
		return name + "." + sm.suffix, true
	}
	return "", false
}

func (m rewriteMapper) Unsuffix(host string) (string, bool) {
	origin, err := m.s.suffixOrigin(host)
	return origin, err == nil
}
