package rewrite

import (
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

func TestImportBoundaries(t *testing.T) { deptest.Check(t) }

const testSuffix = "gw.test"

// testMapper onboards app.example.com, login.example.com, cdn.example.net
// and every *.sharepoint.com host under the suffix gw.test. It records the
// hosts it returned so properties can check nothing else shows up.
type testMapper struct {
	mu       sync.Mutex
	returned map[string]bool
}

func newTestMapper() *testMapper { return &testMapper{returned: map[string]bool{}} }

func onboarded(h string) bool {
	switch h {
	case "app.example.com", "login.example.com", "cdn.example.net":
		return true
	}
	p, ok := strings.CutSuffix(h, ".sharepoint.com")
	return ok && p != "" && !strings.HasPrefix(p, ".") && !strings.HasSuffix(p, ".")
}

func (m *testMapper) note(h string) {
	m.mu.Lock()
	m.returned[h] = true
	m.mu.Unlock()
}

func (m *testMapper) Suffix(h string) (string, bool) {
	if !onboarded(h) {
		return "", false
	}
	m.note(h + "." + testSuffix)
	return h + "." + testSuffix, true
}

func (m *testMapper) Unsuffix(h string) (string, bool) {
	o, ok := strings.CutSuffix(h, "."+testSuffix)
	if !ok || !onboarded(o) {
		return "", false
	}
	m.note(o)
	return o, true
}

func (m *testMapper) SuffixWildcard(parent string) (string, bool) {
	if parent != "sharepoint.com" {
		return "", false
	}
	return parent + "." + testSuffix, true
}

// plainMapper is testMapper without wildcard support.
type plainMapper struct{ m *testMapper }

func (p plainMapper) Suffix(h string) (string, bool)   { return p.m.Suffix(h) }
func (p plainMapper) Unsuffix(h string) (string, bool) { return p.m.Unsuffix(h) }

// noMapper refuses every host.
type noMapper struct{}

func (noMapper) Suffix(string) (string, bool)   { return "", false }
func (noMapper) Unsuffix(string) (string, bool) { return "", false }
