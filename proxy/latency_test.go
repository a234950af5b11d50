package proxy

import (
	"testing"
	"time"
)

func TestLatencyHistogramIsCumulative(t *testing.T) {
	var s Stats
	for _, d := range []time.Duration{500 * time.Microsecond, 3 * time.Millisecond, 3 * time.Millisecond, 2 * time.Second, time.Minute} {
		s.latency.observe(d)
	}
	h := s.RequestLatency()
	if h.Count != 5 {
		t.Fatalf("count %d, want 5", h.Count)
	}
	want := map[float64]uint64{0.001: 1, 0.0025: 1, 0.005: 3, 1: 3, 2.5: 4, 30: 4}
	for i, b := range LatencyBuckets {
		if w, ok := want[b]; ok && h.Cumulative[i] != w {
			t.Errorf("le=%v: %d, want %d", b, h.Cumulative[i], w)
		}
	}
	if h.Sum < 62 || h.Sum > 62.01 {
		t.Errorf("sum %v s, want ~62.0065", h.Sum)
	}
}
