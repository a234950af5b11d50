package activity

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// searchStore holds sampleEvent(0..n-1), all committed.
func searchStore(t *testing.T, n int) *Store {
	t.Helper()
	s, _ := openTest(t, Options{FlushInterval: time.Millisecond})
	emitN(t, s, 0, n)
	waitWritten(t, s, uint64(n))
	return s
}

// searchAll follows Next to the end and returns the events' indexes (their
// BytesUp) in the order served.
func searchAll(t *testing.T, s *Store, q Query) []int {
	t.Helper()
	var got []int
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		p, err := s.Search(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range p.Events {
			got = append(got, int(ev.BytesUp))
		}
		if p.Next == "" {
			return got
		}
		q.After = p.Next
	}
}

func TestSearchFilters(t *testing.T) {
	const n = 120
	s := searchStore(t, n)
	for _, tc := range []struct {
		name  string
		q     Query
		match func(ev Event) bool
	}{
		{"all", Query{}, func(Event) bool { return true }},
		{"user", Query{User: "user3@corp.example"}, func(e Event) bool { return e.User == "user3@corp.example" }},
		{"app", Query{App: "box"}, func(e Event) bool { return e.App == "box" }},
		{"action", Query{Action: "block"}, func(e Event) bool { return e.Action == "block" }},
		{"activity", Query{Activity: "download"}, func(e Event) bool { return e.Activity == "download" }},
		{"client app", Query{ClientApp: "mobile"}, func(e Event) bool { return e.ClientApp == "mobile" }},
		{"policy", Query{Policy: "p2"}, func(e Event) bool { return slices.Contains(e.Policies, "p2") }},
		{"device tag", Query{DeviceTag: "os1"}, func(e Event) bool { return slices.Contains(e.DeviceTags, "os1") }},
		{"policy and tag", Query{Policy: "p1", DeviceTag: "os1", App: "github"}, func(e Event) bool {
			return slices.Contains(e.Policies, "p1") && slices.Contains(e.DeviceTags, "os1") && e.App == "github"
		}},
		{"time range", Query{From: testEpoch.Add(10 * time.Second), To: testEpoch.Add(20 * time.Second)}, func(e Event) bool {
			return !e.Time.Before(testEpoch.Add(10*time.Second)) && e.Time.Before(testEpoch.Add(20*time.Second))
		}},
		{"policy in time range", Query{Policy: "audit-all", From: testEpoch.Add(100 * time.Second)}, func(e Event) bool {
			return !e.Time.Before(testEpoch.Add(100 * time.Second))
		}},
		{"text host", Query{Text: "HOST4.example"}, func(e Event) bool { return strings.HasPrefix(e.Host, "host4.") }},
		{"text path", Query{Text: "/doc/11"}, func(e Event) bool { return strings.Contains(e.Path, "/doc/11") }},
		{"text file", Query{Text: "report-7.pdf"}, func(e Event) bool { return e.FileName == "report-7.pdf" }},
		{"text is not a pattern", Query{Text: "%_"}, func(Event) bool { return false }},
		{"combined", Query{User: "user1@corp.example", Action: "allow", Activity: "view"}, func(e Event) bool {
			return e.User == "user1@corp.example" && e.Action == "allow" && e.Activity == "view"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []int
			for i := n - 1; i >= 0; i-- { // newest first
				if tc.match(sampleEvent(i)) {
					want = append(want, i)
				}
			}
			tc.q.Limit = 7 // several pages per query
			if got := searchAll(t, s, tc.q); !slices.Equal(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
}

func TestSearchPagination(t *testing.T) {
	s := searchStore(t, 25)
	p, err := s.Search(Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 10 || p.Next == "" || p.Events[0].BytesUp != 24 {
		t.Fatalf("first page: %d events, next %q", len(p.Events), p.Next)
	}
	// Events stored after the first page was served do not shift later pages.
	emitN(t, s, 25, 30)
	waitWritten(t, s, 30)
	p2, err := s.Search(Query{Limit: 10, After: p.Next})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Events[0].BytesUp != 14 {
		t.Fatalf("second page starts at %d, want 14", p2.Events[0].BytesUp)
	}
	// An exact multiple of the limit ends without an empty extra page.
	if got := searchAll(t, s, Query{Limit: 10}); len(got) != 30 {
		t.Fatalf("paged through %d events, want 30", len(got))
	}
	p3, err := s.Search(Query{Limit: 30})
	if err != nil || p3.Next != "" || len(p3.Events) != 30 {
		t.Fatalf("single full page: %d events, next %q, %v", len(p3.Events), p3.Next, err)
	}
}

func TestSearchRejectsBadInput(t *testing.T) {
	s, _ := openTest(t, Options{})
	if _, err := s.Search(Query{After: "not-a-token"}); !errors.Is(err, ErrBadPageToken) {
		t.Fatalf("bad token: %v", err)
	}
	if _, err := s.Search(Query{From: testEpoch, To: testEpoch.Add(-time.Second)}); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("from after to: %v", err)
	}
}
