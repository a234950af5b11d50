package classify

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/deptest"
)

// The classifier uses only policy: the proxy imports it, so it may not
// import the proxy (deptest.Check alone would allow that, as proxy/classify
// is under proxy/).
func TestImportBoundaries(t *testing.T) {
	deptest.Check(t, "policy")
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	self := deptest.Module + "/proxy/classify"
	for _, dep := range strings.Fields(string(out)) {
		rel, ours := strings.CutPrefix(dep, deptest.Module+"/")
		if !ours || dep == self || rel == "policy" || strings.HasPrefix(rel, "policy/") {
			continue
		}
		t.Errorf("%s imports %s: only policy is allowed", self, dep)
	}
}
