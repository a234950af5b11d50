package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyCheckAcceptsExamples(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "protect.pw")
	cfg := filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("session:\n  protect:\n    password_file: "+pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCLI(t, "policy", "check", "--config", cfg, "../policy/testdata/examples")
	if err != nil {
		t.Fatalf("check of the shipped examples failed: %v\n%s%s", err, out, errOut)
	}
	// The default configuration has no password for protected files: the
	// encrypting example is refused, with its position, not accepted.
	_, errOut, err = runCLI(t, "policy", "check", "../policy/testdata/examples")
	if err == nil || !strings.Contains(errOut, `session.yaml:34:`) || !strings.Contains(errOut, "no password for protected files is configured") {
		t.Fatalf("check without a protect password: %v\n%s", err, errOut)
	}
}

// Every control the appliance cannot enforce as configured is refused by
// policy check, at start-up and on reload, with the position and what to set.
func TestPolicyCheckRefusesUnenforceable(t *testing.T) {
	dir := t.TempDir()
	src := `session_policies:
  - {id: mal, control: upload, malware: true, action: block}
  - {id: step, control: download, action: require_step_up}
  - {id: clip, control: block_activities, activities: [print], action: block}
`
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("session:\n  control_script: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := runCLI(t, "policy", "check", "--config", cfg, dir)
	if err == nil {
		t.Fatal("unenforceable policies accepted")
	}
	for _, want := range []string{"p.yaml:2:5: session policy \"mal\" scans for malware, but no malware scanner is configured",
		"p.yaml:3:5: session policy \"step\" requires step-up", "p.yaml:4:", "needs the control script"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("check output lacks %q:\n%s", want, errOut)
		}
	}
}

func TestPolicyCheckReportsEveryProblemWithPosition(t *testing.T) {
	out, errOut, err := runCLI(t, "policy", "check", "../policy/testdata/badpolicies")
	if err == nil {
		t.Fatal("check accepted bad policies")
	}
	all := out + errOut + err.Error()
	for _, want := range []string{
		`bad.yaml:4:14: unknown app "slak" (fix: did you mean "slack"?)`,
		`bad.yaml:5:7: unknown key "device_tag"`,
		`bad.yaml:8:5: detector "broken": error parsing regexp`,
		`bad.yaml:15:5: policy "b" matches exactly the same traffic as "a"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("check output lacks %q:\n%s", want, all)
		}
	}
}

func TestPolicyExplainShowsDecisionAndMaskedMatch(t *testing.T) {
	out, errOut, err := runCLI(t, "policy", "explain", "--request", "../policy/testdata/requests/chat_card.json", "--policies", "../policy/testdata/examples")
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, errOut)
	}
	if strings.Contains(out, "4111 1111 1111 1111") {
		t.Errorf("explain printed an unmasked card number:\n%s", out)
	}
	for _, want := range []string{"chat.lab", "send_message"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
}
