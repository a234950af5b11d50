package policy

import (
	"errors"
	"strings"
	"testing"
)

// findings is what Check says about src, one line per problem.
func findings(t *testing.T, src string) ErrorList {
	t.Helper()
	set, err := Parse("lint.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if _, err := Compile(set); err != nil {
		t.Fatalf("lint findings must not fail Compile: %v", err)
	}
	var list ErrorList
	if err := Check(set); err != nil && !errors.As(err, &list) {
		t.Fatalf("check: %v", err)
	}
	return list
}

func hasFinding(l ErrorList, kind error, id, text string) bool {
	for _, e := range l {
		if errors.Is(e, kind) && strings.Contains(e.Msg, `"`+id+`"`) && strings.Contains(e.Msg, text) {
			return true
		}
	}
	return false
}

func TestLintShadowed(t *testing.T) {
	cases := []struct {
		name, src string
		shadowed  string // "" : no shadow finding at all
	}{
		{"broad block covers narrow monitor", `access_policies:
  - {id: block-box, filters: {apps: [box]}, action: block}
  - {id: watch-alice, filters: {apps: [box], users: [alice@corp.example]}, action: monitor}`, "watch-alice"},
		// Order does not matter for a lower action: block wins wherever it is.
		{"later block still wins", `access_policies:
  - {id: watch-alice, filters: {apps: [box], users: [alice@corp.example]}, action: monitor}
  - {id: block-box, filters: {apps: [box]}, action: block}`, "watch-alice"},
		// Among two blocks, the earlier decides: only the later is shadowed.
		{"earlier block shadows later block", `access_policies:
  - {id: block-all-box, filters: {apps: [box, slack]}, action: block}
  - {id: block-box-contractors, filters: {apps: [box], groups: [contractors]}, action: block}`, "block-box-contractors"},
		{"narrow earlier block shadows nothing", `access_policies:
  - {id: block-box-contractors, filters: {apps: [box], groups: [contractors]}, action: block}
  - {id: block-all-box, filters: {apps: [box, slack]}, action: block}`, ""},
		{"other app", `access_policies:
  - {id: block-box, filters: {apps: [box]}, action: block}
  - {id: watch, filters: {apps: [box, slack]}, action: monitor}`, ""},
		{"group exclusion is a narrower block", `access_policies:
  - {id: block-box, filters: {apps: [box], groups: {none_of: [admins]}}, action: block}
  - {id: watch, filters: {apps: [box]}, action: monitor}`, ""},
		{"exclusion kept by the narrow one", `access_policies:
  - {id: block-box, filters: {apps: [box], groups: {none_of: [admins]}}, action: block}
  - {id: watch, filters: {apps: [box], groups: {any_of: [sales], none_of: [admins, interns]}}, action: monitor}`, "watch"},
		{"native clients are not browsers", `access_policies:
  - {id: block-box, filters: {apps: [box]}, action: block}
  - {id: native, filters: {apps: [box], client_apps: [mobile_desktop]}, action: monitor}`, ""},
		{"ranges by containment", `access_policies:
  - {id: block-net, filters: {apps: [box], ip_ranges: [198.18.0.0/15]}, action: block}
  - {id: watch-host, filters: {apps: [box], ip_ranges: [198.18.5.7, 198.19.0.0/16]}, action: monitor}`, "watch-host"},
		{"range outside", `access_policies:
  - {id: block-net, filters: {apps: [box], ip_ranges: [198.18.0.0/16]}, action: block}
  - {id: watch-host, filters: {apps: [box], ip_ranges: [198.19.0.1]}, action: monitor}`, ""},
		{"an alert still does something", `access_policies:
  - {id: block-box, filters: {apps: [box]}, action: block}
  - {id: watch-alice, filters: {apps: [box], users: [alice@corp.example]}, action: monitor, alert: true}`, ""},
		{"session: same control, covered activities", `session_policies:
  - {id: no-print, filters: {apps: [box]}, control: block_activities, activities: [print, cut_copy], action: block}
  - {id: watch-print, filters: {apps: [box], groups: [sales]}, control: block_activities, activities: [print], action: monitor}`, "watch-print"},
		{"session: an activity the block does not list", `session_policies:
  - {id: no-print, filters: {apps: [box]}, control: block_activities, activities: [print], action: block}
  - {id: watch, filters: {apps: [box]}, control: block_activities, activities: [print, paste], action: monitor}`, ""},
		{"session: a content condition is not covered by another", `session_policies:
  - {id: no-cards, filters: {apps: [box]}, control: download, content: {detectors: [{id: credit_card}]}, action: block}
  - {id: watch-dl, filters: {apps: [box]}, control: download, action: monitor}`, ""},
		{"disabled blocks shadow nothing", `access_policies:
  - {id: block-box, disabled: true, filters: {apps: [box]}, action: block}
  - {id: watch-alice, filters: {apps: [box], users: [alice@corp.example]}, action: monitor}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := findings(t, tc.src)
			var shadow []string
			for _, e := range l {
				if errors.Is(e, ErrUnreachable) && strings.Contains(e.Msg, "never decides") {
					shadow = append(shadow, e.Error())
				}
			}
			switch {
			case tc.shadowed == "" && len(shadow) > 0:
				t.Fatalf("unexpected: %v", shadow)
			case tc.shadowed != "" && (len(shadow) != 1 || !hasFinding(l, ErrUnreachable, tc.shadowed, "never decides")):
				t.Fatalf("want %q shadowed, got %v", tc.shadowed, shadow)
			}
			if tc.shadowed != "" && !strings.Contains(shadow[0], "lint.yaml:") || tc.shadowed != "" && !strings.Contains(shadow[0], "(fix: ") {
				t.Fatalf("finding without position or hint: %s", shadow[0])
			}
		})
	}
}

// A shadow finding is backed by the engine: every request the shadowed
// policy matches is decided by the shadowing one.
func TestLintShadowedAgreesWithEngine(t *testing.T) {
	e := mustEngine(t, `access_policies:
  - {id: block-box, filters: {apps: [box]}, action: block}
  - {id: watch-alice, filters: {apps: [box], users: [alice@corp.example]}, action: monitor}`)
	d := e.Access(&AccessRequest{Host: "app.box.com", Subject: Subject{User: "alice@corp.example"}})
	if d.Action != ActionBlock || d.WinningPolicy().ID != "block-box" || len(d.Matches) != 2 {
		t.Fatalf("decision %v by %v", d.Action, d.WinningPolicy())
	}
}

func TestLintNoCondition(t *testing.T) {
	l := findings(t, `access_policies:
  - {id: everything, action: monitor}
  - {id: off, disabled: true, action: block}
session_policies:
  - {id: watch-all, control: monitor, action: monitor}
  - {id: all-downloads, control: download, action: monitor}`)
	if !hasFinding(l, ErrNoCondition, "everything", "no condition") || !hasFinding(l, ErrNoCondition, "watch-all", "no condition") {
		t.Fatalf("findings: %v", l)
	}
	for _, e := range l {
		if errors.Is(e, ErrNoCondition) && !IsWarning(e) {
			t.Errorf("not a warning: %v", e)
		}
		if strings.Contains(e.Msg, `"off"`) || strings.Contains(e.Msg, `"all-downloads"`) {
			t.Errorf("flagged: %v", e)
		}
	}
	if n := len(findings(t, `access_policies: [{id: a, filters: {apps: [box]}, action: block}]`)); n != 0 {
		t.Errorf("a policy with a condition: %d findings", n)
	}
}

// References to apps the catalog does not have are errors (not lint), with
// a suggestion.
func TestLintUnknownApp(t *testing.T) {
	set, _ := Parse("lint.yaml", []byte(`access_policies: [{id: a, filters: {apps: [boxx]}, action: block}]
custom_domains: [{app: slakc, domains: [chat.corp.example]}]`))
	err := Check(set)
	var list ErrorList
	if !errors.As(err, &list) || len(list) < 2 {
		t.Fatalf("check: %v", err)
	}
	for i, want := range []string{`unknown app "slakc"`, `unknown app "boxx"`} {
		if !errors.Is(list[i], ErrUnknownRef) || !strings.Contains(list[i].Error(), want) || !strings.Contains(list[i].Error(), "did you mean") {
			t.Errorf("finding %d: %v", i, list[i])
		}
	}
}
