package activity

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// OR within a field, NOT, the source address and NOT text give the same
// events as a check of every event, on the index walk and on the
// full-text path (a text term of three characters or more), across pages.
func TestSearchAnyNotSource(t *testing.T) {
	const n = 120
	s := searchStore(t, n)
	src := netip.AddrFrom4([4]byte{198, 18, 0, 8})
	for _, tc := range []struct {
		name  string
		q     Query
		match func(ev Event) bool
	}{
		{"any users", Query{Any: map[Field][]string{FieldUser: {"user1@corp.example", "user3@corp.example"}}}, func(e Event) bool {
			return e.User == "user1@corp.example" || e.User == "user3@corp.example"
		}},
		{"any apps and an action", Query{Action: "block", Any: map[Field][]string{FieldApp: {"box", "github"}}}, func(e Event) bool {
			return e.Action == "block" && (e.App == "box" || e.App == "github")
		}},
		{"not an action", Query{Not: map[Field][]string{FieldAction: {"allow"}}}, func(e Event) bool { return e.Action != "allow" }},
		{"user but not an app", Query{User: "user2@corp.example", Not: map[Field][]string{FieldApp: {"box"}}}, func(e Event) bool {
			return e.User == "user2@corp.example" && e.App != "box"
		}},
		{"not a policy", Query{Not: map[Field][]string{FieldPolicy: {"p1", "p2"}}}, func(e Event) bool {
			return !slices.Contains(e.Policies, "p1") && !slices.Contains(e.Policies, "p2")
		}},
		{"any tag, not a host", Query{Any: map[Field][]string{FieldTag: {"os1"}}, Not: map[Field][]string{FieldHost: {"host3.example.com"}}}, func(e Event) bool {
			return slices.Contains(e.DeviceTags, "os1") && e.Host != "host3.example.com"
		}},
		{"source", Query{Source: src}, func(e Event) bool { return e.SourceIP == src }},
		{"source as mapped IPv6", Query{Source: netip.AddrFrom16(src.As16())}, func(e Event) bool { return e.SourceIP == src }},
		{"any sources", Query{Any: map[Field][]string{FieldSource: {"198.18.0.8", "::ffff:198.18.0.9"}}}, func(e Event) bool {
			return e.SourceIP == src || e.SourceIP == netip.AddrFrom4([4]byte{198, 18, 0, 9})
		}},
		{"not text", Query{NotText: "host1.", App: "box"}, func(e Event) bool { return e.App == "box" && !strings.HasPrefix(e.Host, "host1.") }},
		{"text (full-text path) and not", Query{Text: "report-1", Not: map[Field][]string{FieldActivity: {"view"}}}, func(e Event) bool {
			return strings.Contains(e.FileName, "report-1") && e.Activity != "view"
		}},
		{"text (full-text path) and any", Query{Text: "host4.", Any: map[Field][]string{FieldAction: {"block", "monitor"}}}, func(e Event) bool {
			return strings.HasPrefix(e.Host, "host4.") && (e.Action == "block" || e.Action == "monitor")
		}},
		{"hostile value", Query{Not: map[Field][]string{FieldUser: {"') OR 1=1 --"}}}, func(Event) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []int
			for i := n - 1; i >= 0; i-- {
				if tc.match(sampleEvent(i)) {
					want = append(want, i)
				}
			}
			tc.q.Limit = 7
			if got := searchAll(t, s, tc.q); !slices.Equal(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
	for name, q := range map[string]Query{
		"unknown field":   {Not: map[Field][]string{"password": {"x"}}},
		"bad source":      {Any: map[Field][]string{FieldSource: {"not-an-ip"}}},
		"too many values": {Any: map[Field][]string{FieldUser: make([]string, maxBoolValues+1)}},
	} {
		if _, err := s.Search(q); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%s: %v, want ErrBadQuery", name, err)
		}
	}
}
