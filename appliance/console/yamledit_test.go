package console

import (
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/policy"
)

func boolp(b bool) *bool { return &b }

// The policy list's edits keep everything else of the file as written:
// comments, order, flow or block style.
func TestEditPolicyInPlace(t *testing.T) {
	src := `# Lab policies (kept by hand)
access_policies:
  - id: close-lab   # the lab is closed at night
    filters:
      apps: [origin-lab]
    action: block
  - {id: flow-one, filters: {apps: [box]}, action: "monitor"}
session_policies:
  - id: no-dl
    disabled: true
    control: download
    action: block
`
	cases := []struct {
		id   string
		e    policyEdit
		want string // a line the result must contain
		gone string // a line it must not
	}{
		{"close-lab", policyEdit{Action: policy.ActionMonitor}, "    action: monitor\n", "    action: block\n  - {id"},
		{"close-lab", policyEdit{Disabled: boolp(true)}, "  - id: close-lab   # the lab is closed at night\n    disabled: true\n", ""},
		{"flow-one", policyEdit{Disabled: boolp(true)}, `  - {id: flow-one, disabled: true, filters: {apps: [box]}, action: "monitor"}`, ""},
		{"flow-one", policyEdit{Action: policy.ActionBlock}, `  - {id: flow-one, filters: {apps: [box]}, action: block}`, ""},
		{"no-dl", policyEdit{Disabled: boolp(false)}, "    disabled: false\n", "disabled: true"},
	}
	for _, tc := range cases {
		out, err := editPolicy("lab.yaml", []byte(src), tc.id, tc.e)
		if err != nil {
			t.Fatalf("%s: %v", tc.id, err)
		}
		s := string(out)
		if !strings.Contains(s, tc.want) || tc.gone != "" && strings.Contains(s, tc.gone) || !strings.HasPrefix(s, "# Lab policies (kept by hand)\n") {
			t.Errorf("%s %+v:\n%s", tc.id, tc.e, s)
		}
		if strings.Count(s, "\n") > strings.Count(src, "\n")+1 {
			t.Errorf("%s: more than one line added:\n%s", tc.id, s)
		}
	}
	if _, err := editPolicy("lab.yaml", []byte(src), "nope", policyEdit{Disabled: boolp(true)}); err == nil {
		t.Fatal("edit of a missing policy")
	}
}

// Monitor-only on a protect policy takes the protect block out (the model
// refuses protect settings without the protect action) and puts it back.
func TestEditPolicyProtectRoundTrip(t *testing.T) {
	src := `session_policies:
  - id: label-dl
    filters: {apps: [box]}
    control: download
    action: protect
    protect: {label: Confidential, encrypt: true}
`
	off, err := editPolicy("p.yaml", []byte(src), "label-dl", policyEdit{Action: policy.ActionMonitor, DropProtect: true})
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Parse("p.yaml", off)
	if err != nil || set.SessionPolicies[0].Action != policy.ActionMonitor || !set.SessionPolicies[0].Protect.IsZero() {
		t.Fatalf("monitor-only: %v\n%s", err, off)
	}
	if _, err := policy.Compile(set); err != nil {
		t.Fatalf("monitor-only does not compile: %v", err)
	}
	back, err := editPolicy("p.yaml", off, "label-dl", policyEdit{Action: policy.ActionProtect, Protect: "{label: Confidential, encrypt: true}"})
	if err != nil {
		t.Fatal(err)
	}
	set, err = policy.Parse("p.yaml", back)
	if err != nil || set.SessionPolicies[0].Action != policy.ActionProtect || set.SessionPolicies[0].Protect.Label != "Confidential" || !set.SessionPolicies[0].Protect.Encrypt {
		t.Fatalf("restored: %v\n%s", err, back)
	}
}
