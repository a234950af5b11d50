package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		kind error
		pos  string // "line:col"
		hint string
	}{
		{"unknown top key", "acess_policies: []\n", ErrUnknownKey, "1:1", `did you mean "access_policies"?`},
		{"unknown nested key", "access_policies:\n  - id: a\n    acton: block\n", ErrUnknownKey, "3:5", `did you mean "action"?`},
		{"unknown far key", "access_policies:\n  - id: a\n    colour: red\n", ErrUnknownKey, "3:5", "valid keys here:"},
		{"bad action", "access_policies:\n  - id: a\n    action: blok\n", ErrBadValue, "3:13", `did you mean "block"?`},
		{"bad severity", "access_policies:\n  - {id: a, action: block, severity: huge}\n", ErrBadValue, "2:38", "low, medium, high"},
		{"list expected", "access_policies: {id: a}\n", ErrBadValue, "1:18", "write a list"},
		{"filter scalar", "access_policies:\n  - id: a\n    action: block\n    filters: {apps: slack}\n", ErrBadValue, "4:21", "[slack]"},
		{"filter bad key", "access_policies:\n  - id: a\n    action: block\n    filters: {apps: {any: [slack]}}\n", ErrUnknownKey, "4:22", "any_of and none_of"},
		{"bool expected", "access_policies:\n  - {id: a, action: block, alert: maybe}\n", ErrBadValue, "2:35", "true or false"},
		{"int expected", "session_policies:\n  - {id: a, control: upload, action: block, content: {detectors: [{id: email, min_count: lots}]}}\n", ErrBadValue, "2:90", "whole number"},
		{"bad size", "settings: {max_inspection_size: 12 parsecs}\n", ErrBadValue, "1:33", ""},
		{"duplicate key", "settings: {block_message: a, block_message: b}\n", ErrDuplicate, "1:30", "delete one"},
		{"anchor", "ip_tags:\n  - &x {id: a, ranges: [192.0.2.1]}\n  - *x\n", ErrBadValue, "2:5", "anchors"},
		{"syntax", "access_policies:\n  - id: a\n   action: [\n", ErrSyntax, "", "indentation"},
		{"two documents", "apps: []\n---\napps: []\n", ErrSyntax, "2:1", "own file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v is not %v", err, tc.kind)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("not an ErrorList: %T", err)
			}
			e := list[0]
			if tc.pos != "" && !strings.HasPrefix(e.Error(), "f.yaml:"+tc.pos+":") {
				t.Errorf("position: %v, want f.yaml:%s", e, tc.pos)
			}
			if !strings.Contains(e.Hint, tc.hint) {
				t.Errorf("hint %q lacks %q", e.Hint, tc.hint)
			}
			if tc.hint != "" && !strings.Contains(e.Error(), "(fix: ") {
				t.Errorf("message has no fix hint: %v", e)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		kind error
		msg  string
	}{
		{"unknown app", "access_policies: [{id: a, filters: {apps: [slak]}, action: block}]", ErrUnknownRef, `did you mean "slack"?`},
		{"unknown device tag", "access_policies: [{id: a, filters: {device_tags: [managed]}, action: block}]", ErrUnknownRef, `unknown device tag "managed"`},
		{"unknown ip tag", "access_policies: [{id: a, filters: {ip_tags: [corp]}, action: block}]", ErrUnknownRef, "ip tag"},
		{"unknown client app", "access_policies: [{id: a, filters: {client_apps: [desktop]}, action: block}]", ErrUnknownRef, "client app"},
		{"bad ip range", "access_policies: [{id: a, filters: {ip_ranges: [10.0.0.300/8]}, action: block}]", ErrBadValue, "not an IP range"},
		{"host bits", "ip_tags: [{id: a, ranges: [10.0.0.1/8]}]", ErrBadValue, "host bits"},
		{"bad regex", "detectors: [{id: d, regex: 'a(b'}]", ErrBadRegex, "missing closing )"},
		{"empty regex match", "detectors: [{id: d, regex: 'a*'}]", ErrBadRegex, "empty text"},
		{"detector both", "detectors: [{id: d, regex: 'a', keywords: [b]}]", ErrBadValue, "both"},
		{"unknown detector", "session_policies: [{id: a, control: upload, content: {detectors: [{id: ccn}]}, action: block}]", ErrUnknownRef, "unknown detector"},
		{"access protect", "access_policies: [{id: a, action: protect}]", ErrBadValue, "cannot protect"},
		{"missing action", "access_policies: [{id: a}]", ErrMissing, "no action"},
		{"monitor control blocks", "session_policies: [{id: a, control: monitor, action: block}]", ErrBadValue, "cannot block"},
		{"protect without settings", "session_policies: [{id: a, control: download, action: protect}]", ErrMissing, "neither label nor encrypt"},
		{"files on monitor", "session_policies: [{id: a, control: monitor, files: {extensions: [pdf]}, action: monitor}]", ErrBadValue, "file filters"},
		{"unknown activity", "session_policies: [{id: a, control: block_activities, activities: [prnt], action: block}]", ErrUnknownRef, `did you mean "print"?`},
		{"no activities", "session_policies: [{id: a, control: block_activities, action: block}]", ErrMissing, "lists none"},
		{"duplicate policy id", "access_policies: [{id: a, action: block}, {id: a, action: allow}]", ErrDuplicate, "already used"},
		{"duplicate app", "apps: [{id: x, domains: [x.example]}, {id: x, domains: [y.example]}]", ErrDuplicate, "already defined"},
		{"domain conflict", "apps: [{id: x, domains: [slack.com]}]", ErrConflict, "already belongs"},
		{"bad domain", "apps: [{id: x, domains: [\"a.*.example\"]}]", ErrBadValue, "domain"},
		{"bad path", "apps: [{id: x, domains: [x.example], activities: [{id: a, path: 'api/x'}]}]", ErrBadValue, "does not start with /"},
		{"reserved activity", "apps: [{id: x, domains: [x.example], activities: [{id: print, path: /p}]}]", ErrBadValue, "reserved"},
		{"custom domain unknown app", "custom_domains: [{app: slak, domains: [a.example]}]", ErrUnknownRef, "slack"},
		{"bad mime", "session_policies: [{id: a, control: upload, files: {mime_types: [pdf]}, action: block}]", ErrBadValue, "MIME"},
		{"bad glob", "session_policies: [{id: a, control: upload, files: {names: ['[a']}, action: block}]", ErrBadValue, "pattern"},
		{"settings action", "settings: {inspection_failure: protect}", ErrBadValue, "allow, monitor or block"},
		{"bad id", "access_policies: [{id: 'Has Space', action: block}]", ErrBadValue, "not a valid id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := Parse("c.yaml", []byte(tc.src))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			_, err = Compile(set)
			if err == nil {
				t.Fatal("compiled")
			}
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v; want %v containing %q", err, tc.kind, tc.msg)
			}
			if !strings.Contains(err.Error(), "c.yaml:1:") || !strings.Contains(err.Error(), "(fix: ") {
				t.Fatalf("no position or hint: %v", err)
			}
		})
	}
}

func TestCheckLogicProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		kind error
		msg  string
	}{
		{"conflict", "access_policies: [{id: a, filters: {groups: [x, y]}, action: allow}, {id: b, filters: {groups: [Y, x]}, action: block}]", ErrConflict, "exactly the same traffic"},
		{"duplicate", "access_policies: [{id: a, action: block}, {id: b, filters: {client_apps: [browser]}, action: block}]", ErrUnreachable, "duplicates"},
		{"any minus none", "access_policies: [{id: a, filters: {users: {any_of: [u], none_of: [U]}}, action: block}]", ErrUnreachable, "never matches"},
		{"no client", "access_policies: [{id: a, filters: {client_apps: {none_of: [browser, mobile_desktop]}}, action: block}]", ErrUnreachable, "excludes every client"},
		{"no app", "access_policies: [{id: a, filters: {apps: {any_of: [slack], none_of: [slack]}}, action: block}]", ErrUnreachable, "applies to no app"},
		{"activity of another app", "session_policies: [{id: a, filters: {apps: [box]}, control: block_activities, activities: [send_message], action: block}]", ErrUnreachable, "not defined by any app"},
		{"sizes", "session_policies: [{id: a, control: upload, files: {min_size: 2MB, max_size: 1MB}, action: block}]", ErrUnreachable, "min_size"},
		{"label contradiction", "session_policies: [{id: a, control: upload, files: {label: absent, labels: [X]}, action: block}]", ErrUnreachable, "contradicts"},
		{"unscannable without content", "session_policies: [{id: a, control: upload, apply_if_unscannable: true, action: block}]", ErrUnreachable, "no effect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := Parse("k.yaml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Compile(set); err != nil {
				t.Fatalf("logic problems must not fail Compile: %v", err)
			}
			err = Check(set)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "(fix: ") {
				t.Fatalf("got %v; want %v containing %q", err, tc.kind, tc.msg)
			}
		})
	}
}

func loadExamples(t testing.TB) *PolicySet {
	t.Helper()
	files, _ := filepath.Glob("testdata/examples/*.yaml")
	var sets []*PolicySet
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(f, b)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, s)
	}
	set, err := Merge(sets...)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestExamplesPassCheck(t *testing.T) {
	if err := Check(loadExamples(t)); err != nil {
		t.Fatal(err)
	}
}

func TestMergeRejectsTwoSettings(t *testing.T) {
	a, _ := Parse("a.yaml", []byte("settings: {oversize_file: allow}"))
	b, _ := Parse("b.yaml", []byte("settings: {oversize_file: block}"))
	if _, err := Merge(a, b); !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "b.yaml:1:11") {
		t.Fatalf("got %v", err)
	}
}

func TestBuiltinCatalogCompiles(t *testing.T) {
	apps, err := BuiltinApps()
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) < 10 {
		t.Fatalf("only %d apps", len(apps))
	}
	if _, err := Compile(nil); err != nil {
		t.Fatal(err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	set := loadExamples(t)
	out, err := Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("again.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out2, _ := Marshal(again)
	if string(out) != string(out2) {
		t.Fatalf("not stable:\n%s\n---\n%s", out, out2)
	}
	if err := Check(again); err != nil {
		t.Fatal(err)
	}
}

// The bad example directory shows every problem in one run, as
// `portcullis policy check` prints them.
func TestBadPoliciesReportEverything(t *testing.T) {
	b, err := os.ReadFile("testdata/badpolicies/bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, perr := Parse("bad.yaml", b)
	err = errors.Join(perr, Check(set))
	for _, kind := range []error{ErrUnknownKey, ErrBadRegex, ErrUnknownRef, ErrConflict} {
		if !errors.Is(err, kind) {
			t.Errorf("missing %v in:\n%v", kind, err)
		}
	}
}
