package policy

import "testing"

func TestBlockRestsOnIdentity(t *testing.T) {
	const src = `apps:
  - {id: fin, name: Finance app, domains: [fin.test]}
  - {id: wiki, name: Wiki, domains: [wiki.test]}
  - {id: shut, name: Closed app, domains: [shut.test]}
access_policies:
  - {id: finance-only, filters: {apps: [fin], groups: {none_of: [finance]}}, action: block, message: Finance only.}
  - {id: no-interns, filters: {apps: [wiki], users: [intern@corp.example]}, action: block}
  - {id: wiki-from-outside, filters: {apps: [wiki], ip_ranges: {none_of: [198.18.0.0/15]}}, action: block}
  - {id: closed, filters: {apps: [shut]}, action: block}
  - {id: shut-compliant, filters: {apps: [shut], device_tags: {none_of: [compliant]}}, action: block}
`
	e := mustEngine(t, src)
	inside, outside := ip("198.18.1.2"), ip("192.0.2.9")
	tests := []struct {
		name string
		req  AccessRequest
		want bool
	}{
		{"anonymous blocked by a group filter", AccessRequest{Host: "fin.test", Subject: Subject{SourceIP: inside}}, true},
		{"a finance user is not blocked at all", AccessRequest{Host: "fin.test", Subject: Subject{Groups: []string{"finance"}}}, false},
		{"a user filter", AccessRequest{Host: "wiki.test", Subject: Subject{User: "intern@corp.example", SourceIP: inside}}, true},
		{"user filter plus a block that ignores the user", AccessRequest{Host: "wiki.test", Subject: Subject{User: "intern@corp.example", SourceIP: outside}}, false},
		{"a block without an identity filter", AccessRequest{Host: "wiki.test", Subject: Subject{SourceIP: outside}}, false},
		{"device tags count, but another block stands", AccessRequest{Host: "shut.test"}, false},
		{"not onboarded", AccessRequest{Host: "other.test"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Access(&tc.req)
			if got := d.BlockRestsOnIdentity(); got != tc.want {
				t.Fatalf("BlockRestsOnIdentity = %v, want %v (decision %v, %d matches)", got, tc.want, d.Action, len(d.Matches))
			}
		})
	}
	// Device tags alone: a claim may give the tag.
	e = mustEngine(t, `apps: [{id: a, name: A, domains: [a.test]}]
access_policies: [{id: compliant-only, filters: {apps: [a], device_tags: {none_of: [compliant]}}, action: block}]
`)
	if d := e.Access(&AccessRequest{Host: "a.test"}); !d.BlockRestsOnIdentity() {
		t.Fatal("a device-tag block is not lifted by the claims")
	}
}
