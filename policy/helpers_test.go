package policy

import (
	"net/netip"
	"testing"
)

func mustEngine(t testing.TB, src string) *Engine {
	t.Helper()
	set, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	e, err := Compile(set)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return e
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// fields is a FieldGetter over a map.
type fields map[string]string

func (f fields) Field(n string) (string, bool) { v, ok := f[n]; return v, ok }
