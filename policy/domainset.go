package policy

import (
	"fmt"
	"strings"
)

// DomainSet matches host names against exact names and "*.suffix" wildcards.
// A wildcard matches any name below the suffix, not the suffix itself, the
// way certificate wildcards and admins' expectations agree.
type DomainSet struct {
	exact    map[string]struct{}
	suffixes map[string]struct{}
}

// NewDomainSet compiles patterns; it rejects empty patterns, wildcards
// anywhere but the first label, and characters that cannot appear in a host.
func NewDomainSet(patterns []string) (*DomainSet, error) {
	s := &DomainSet{exact: map[string]struct{}{}, suffixes: map[string]struct{}{}}
	for i, p := range patterns {
		n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(p)), ".")
		wild := strings.HasPrefix(n, "*.")
		if wild {
			n = n[2:]
		}
		if err := validHost(n); err != nil {
			return nil, fmt.Errorf("pattern %d %q: %w", i+1, p, err)
		}
		if wild {
			s.suffixes[n] = struct{}{}
		} else {
			s.exact[n] = struct{}{}
		}
	}
	return s, nil
}

// Match reports whether host (already lowercased, no trailing dot, as the
// proxy normalises it) is in the set. It walks the labels once and does not
// allocate.
func (s *DomainSet) Match(host string) bool {
	if s == nil || host == "" {
		return false
	}
	if _, ok := s.exact[host]; ok {
		return true
	}
	for i := 0; i < len(host); i++ {
		if host[i] == '.' {
			if _, ok := s.suffixes[host[i+1:]]; ok {
				return true
			}
		}
	}
	return false
}

// Len is the number of patterns.
func (s *DomainSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.exact) + len(s.suffixes)
}

func validHost(n string) error {
	if n == "" {
		return fmt.Errorf("empty host name")
	}
	if len(n) > 253 {
		return fmt.Errorf("host name longer than 253 characters")
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" {
			return fmt.Errorf("empty label")
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q not allowed in a host name (wildcards only as the whole first label, \"*.\")", c)
			}
		}
	}
	return nil
}
