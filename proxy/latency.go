package proxy

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of the request latency
// histogram: from a cached small response to a long download.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// latencyHistogram counts request durations without locks; the appliance
// exports it as a Prometheus histogram.
type latencyHistogram struct {
	counts [14 + 1]atomic.Uint64 // one per bucket, plus +Inf
	sumNs  atomic.Uint64
}

func (h *latencyHistogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && s > LatencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d.Nanoseconds()))
}

// LatencySnapshot is a histogram reading: cumulative counts per bucket of
// LatencyBuckets, the total count and the sum in seconds.
type LatencySnapshot struct {
	Cumulative []uint64
	Count      uint64
	Sum        float64
}

// RequestLatency reads the histogram of intercepted request durations.
func (s *Stats) RequestLatency() LatencySnapshot {
	snap := LatencySnapshot{Cumulative: make([]uint64, len(LatencyBuckets))}
	var run uint64
	for i := range s.latency.counts {
		run += s.latency.counts[i].Load()
		if i < len(LatencyBuckets) {
			snap.Cumulative[i] = run
		}
	}
	snap.Count = run
	snap.Sum = float64(s.latency.sumNs.Load()) / 1e9
	return snap
}
