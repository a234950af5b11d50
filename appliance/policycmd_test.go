package appliance

import (
	"strings"
	"testing"
)

func TestPolicyCheckAcceptsExamples(t *testing.T) {
	out, errOut, err := runCLI(t, "policy", "check", "../policy/testdata/examples")
	if err != nil {
		t.Fatalf("check of the shipped examples failed: %v\n%s%s", err, out, errOut)
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
