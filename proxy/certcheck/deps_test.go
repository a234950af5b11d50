package certcheck

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

// The checker uses nothing of ours.
func TestImportBoundaries(t *testing.T) { deptest.Check(t) }

// Beyond the module: only the standard library and x/crypto/ocsp, directly
// and transitively, so the TLS path carries no surprise dependencies.
func TestThirdPartyImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == deptest.Module+"/proxy/certcheck" || dep == "golang.org/x/crypto/ocsp" {
			continue
		}
		t.Errorf("imports %s: only the standard library and golang.org/x/crypto/ocsp are allowed", dep)
	}
}
