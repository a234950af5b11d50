package appliance

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The Go runtime keeps the heap a burst of traffic grew: its GC goal is
// twice the live heap, and the background scavenger returns only what lies
// above that goal (plus 10%), slowly. After wrk at 16 and 50 keep-alive
// connections the appliance held ~23 MiB of Go heap with ~8 MiB live, for
// as long as it stayed idle. The idle releaser watches the allocation
// counter and, once a busy stretch is followed by a quiet one, runs one
// freeIdleHeap: garbage collections that empty the sync.Pools, then every
// free page returned.
//
// It costs the request path nothing: it reads the runtime's counters
// (runtime/metrics, no stop-the-world) ten times a second from its own
// goroutine and never releases while allocations go on. A release costs two
// collections of the (small, idle) heap and, on the next burst, the page
// faults of the memory given back and the pooled buffers made again: a few
// milliseconds of CPU per burst.
type idleReleaser struct {
	// interval is how often the counters are read; quietIntervals readings
	// in a row with at most quietBytes allocated each make the appliance
	// idle. busyBytes allocated in one interval arm the next release.
	interval       time.Duration
	quietIntervals int
	quietBytes     uint64
	busyBytes      uint64
	// minRetained: a release is worth its collections only when the heap
	// holds at least this much beyond the live heap.
	minRetained uint64
	release     func()

	releases atomic.Uint64
}

func newIdleReleaser() *idleReleaser {
	return &idleReleaser{
		interval:       100 * time.Millisecond,
		quietIntervals: 2,
		// 256 KiB per 100 ms is ~200 intercepted requests/s (~14 KB
		// allocated each); an idle appliance allocates a few KiB.
		quietBytes:  256 << 10,
		busyBytes:   1 << 20,
		minRetained: 4 << 20,
		release:     freeIdleHeap,
	}
}

// freeIdleHeap is the Go side of a release: two collections, then every
// free page back to the OS. A collection only moves what the sync.Pools
// hold to their victim caches, and the next one drops it, so after the one
// collection of debug.FreeOSMemory the buffers pooled during the burst
// stayed live for the whole idle stretch: after wrk at 50 connections
// (GODEBUG=memprofilerate=512) ~1.6 MiB of 32 KiB copy buffers and ~0.9 MiB
// of bufio readers and writers, half the live heap. The next burst takes
// new ones, a few allocations per connection.
func freeIdleHeap() {
	runtime.GC()
	debug.FreeOSMemory()
}

// heapReading is what the releaser reads of the runtime at each interval.
type heapReading struct {
	allocated uint64 // cumulative bytes allocated on the heap
	retained  uint64 // heap memory held from the system beyond the live heap
}

var heapSampleNames = []string{
	"/gc/heap/allocs:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
}

func readHeap(samples []metrics.Sample) heapReading {
	metrics.Read(samples)
	v := func(i int) uint64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return samples[i].Value.Uint64()
	}
	held := v(1) + v(2) + v(3) // free pages, unused span space, objects (live or not yet swept)
	live := v(4)
	return heapReading{allocated: v(0), retained: held - min(live, held)}
}

// run reads the heap every interval until ctx ends.
func (r *idleReleaser) run(ctx context.Context) {
	samples := make([]metrics.Sample, len(heapSampleNames))
	for i, n := range heapSampleNames {
		samples[i].Name = n
	}
	t := time.NewTicker(r.interval)
	defer t.Stop()
	var s idleState
	s.last = readHeap(samples).allocated
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.step(r, readHeap(samples)) {
			r.release()
			r.releases.Add(1)
		}
	}
}

// idleState is the releaser's memory between readings.
type idleState struct {
	last  uint64 // allocated at the previous reading
	quiet int    // quiet readings in a row
	armed bool   // a busy interval since the last release
}

// step takes one reading and says whether to release now.
func (s *idleState) step(r *idleReleaser, h heapReading) bool {
	delta := h.allocated - s.last
	s.last = h.allocated
	if delta >= r.busyBytes {
		s.armed = true
	}
	if delta > r.quietBytes {
		s.quiet = 0
		return false
	}
	s.quiet++
	if !s.armed || s.quiet < r.quietIntervals || h.retained < r.minRetained {
		return false
	}
	s.armed = false
	return true
}

// Collect-time counter of the releases done.
func (r *idleReleaser) collector() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "portcullis_memory_idle_releases_total",
		Help: "Times the heap a burst of traffic grew was returned to the system once the appliance went idle.",
	}, func() float64 { return float64(r.releases.Load()) })
}
