// Package deptest guards the import edges between Portcullis's top-level
// packages (cmd → appliance → {proxy, agent, policy}, proxy → policy). Each
// package's deps_test.go calls Check with the module packages it may use.
package deptest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Module is this repository's module path.
const Module = "github.com/portcullis-gw/portcullis"

// Check fails if the package in the current directory (tests excluded)
// depends, directly or not, on a package of this module outside allowed
// (paths relative to the module, e.g. "policy"). internal/ packages used only
// by tests never appear here because test files are not listed.
func Check(t *testing.T, allowed ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	lines := strings.Fields(string(out))
	self := lines[len(lines)-1]
	// A package may always use its own subpackages.
	allowed = append(allowed, topLevel(self))
	for _, dep := range lines {
		if dep == self || !strings.HasPrefix(dep, Module+"/") {
			continue
		}
		if !slices.Contains(allowed, topLevel(dep)) {
			t.Errorf("%s imports %s: not allowed (allowed: %v)", self, dep, allowed)
		}
	}
}

func topLevel(importPath string) string {
	rel := strings.TrimPrefix(importPath, Module+"/")
	if i := strings.IndexByte(rel, '/'); i >= 0 && !strings.HasPrefix(rel, "cmd/") {
		return rel[:i]
	}
	return rel
}
