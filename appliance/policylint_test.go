package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// policy check prints the lint findings: a policy without a condition is a
// warning (the check passes), a shadowed policy is a problem (it fails),
// each with its position.
func TestPolicyCheckLint(t *testing.T) {
	check := func(src string) (string, error) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := runCLI(t, "policy", "check", dir)
		return out + errOut, err
	}
	out, err := check("access_policies:\n  - {id: everything, action: monitor}\n")
	if err != nil || !strings.Contains(out, `p.yaml:2:5: access policy "everything" has no condition`) || !strings.Contains(out, "warning: ") || !strings.Contains(out, "1 file(s) OK") {
		t.Fatalf("no-condition policy: %v\n%s", err, out)
	}
	out, err = check(`access_policies:
  - {id: block-box, filters: {apps: [box]}, action: block}
  - {id: watch-alice, filters: {apps: [box], users: [alice@corp.example]}, action: monitor}
`)
	if err == nil || !strings.Contains(out, `p.yaml:3:5: policy "watch-alice" never decides: "block-box"`) {
		t.Fatalf("shadowed policy: %v\n%s", err, out)
	}
}
