package control

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

// The control package uses the policy model (activity kinds and actions)
// and nothing else of ours; package proxy imports it, never the reverse.
func TestImportBoundaries(t *testing.T) {
	deptest.Check(t, "policy")
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == deptest.Module+"/proxy" {
			t.Errorf("imports package proxy, which imports this one")
		}
	}
}
