package activity

import (
	"errors"
	"testing"
	"time"
)

// PolicyHits counts the events each policy matched in the window and the
// last hit ever, for ids that matched and ids that never did.
func TestPolicyHits(t *testing.T) {
	s, _ := openTest(t, Options{})
	const n = 40
	for i := range n {
		if err := s.Emit(sampleEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitWritten(t, s, n)
	since := testEpoch.Add(20 * time.Second) // events 20..39
	hits, err := s.PolicyHits([]string{"p1", "audit-all", "p3", "never", "p1"}, since)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]PolicyHits{
		"p1":        {Count: 5, LastHit: testEpoch.Add(37 * time.Second)}, // 21, 25, ..., 37
		"p3":        {Count: 5, LastHit: testEpoch.Add(39 * time.Second)},
		"audit-all": {Count: 20, LastHit: testEpoch.Add(39 * time.Second)},
		"never":     {},
	}
	if len(hits) != len(want) {
		t.Fatalf("hits: %v", hits)
	}
	for id, w := range want {
		if got := hits[id]; got.Count != w.Count || !got.LastHit.Equal(w.LastHit) {
			t.Errorf("%s: %+v, want %+v", id, got, w)
		}
	}
	// A window after every event: nothing counted, the last hit still known.
	hits, err = s.PolicyHits([]string{"p0"}, testEpoch.Add(time.Hour))
	if err != nil || hits["p0"].Count != 0 || !hits["p0"].LastHit.Equal(testEpoch.Add(36*time.Second)) {
		t.Fatalf("late window: %+v %v", hits, err)
	}
	if _, err := s.PolicyHits(make([]string, MaxPolicyHitIDs+1), since); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("too many ids: %v", err)
	}
}
