package session

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

// The session mechanism uses only the policy package of ours — not the
// proxy it serves (deptest allows a package's own top level, so the proxy
// tree is checked here explicitly).
func TestImportBoundaries(t *testing.T) {
	deptest.Check(t, "policy")
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, deptest.Module+"/proxy") && dep != deptest.Module+"/proxy/session" {
			t.Errorf("proxy/session imports %s", dep)
		}
	}
}
