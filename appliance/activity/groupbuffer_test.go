package activity

import (
	"context"
	"testing"
	"time"
)

// spareCaps is the capacities of the pooled group buffers.
func spareCaps(s *Store) []int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	caps := make([]int, len(s.spare))
	for i, b := range s.spare {
		caps[i] = cap(b)
	}
	return caps
}

// A small durable group takes a small buffer: a few events waited on one by
// one (the usual group under keep-alive traffic) must not each hold a buffer
// sized for MaxBatch (4096 events, 1.8 MB at the default).
func TestSmallDurableGroupBufferStaysSmall(t *testing.T) {
	s, _ := openTest(t, Options{Durability: AuditStrict})
	for i := range 5 {
		tk, err := s.EmitDurable(sampleEvent(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WaitDurable(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	caps := spareCaps(s)
	if len(caps) == 0 {
		t.Fatal("no group buffer was given back for reuse")
	}
	for _, c := range caps {
		if c > groupStartEvents {
			t.Fatalf("pooled group buffers of %v events after groups of one event, want <= %d", caps, groupStartEvents)
		}
	}
}

// A burst grows the groups to MaxBatch (the writer stalled while 3000 events
// queued, so the groups are full and few), every event is written, and once
// the writer is idle again the pool keeps no buffer the burst grew.
func TestBurstGroupBuffersGivenBackWhenIdle(t *testing.T) {
	gate := make(chan struct{})
	var commits, largest int
	var s *Store
	s, _ = openTest(t, Options{
		MaxBatch: 1000,
		beforeCommit: func() { // the writer goroutine only
			<-gate
			commits++
			s.qmu.Lock()
			for _, b := range s.spare {
				largest = max(largest, cap(b))
			}
			s.qmu.Unlock()
		},
	})
	emitN(t, s, 0, 3000)
	close(gate)
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Written < 3000 {
		if time.Now().After(deadline) {
			t.Fatalf("written %d of 3000", s.Stats().Written)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		caps := spareCaps(s)
		small := true
		for _, c := range caps {
			small = small && c <= spareIdleEvents
		}
		if small {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pooled group buffers of %v events with the writer idle, want <= %d", caps, spareIdleEvents)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The first commit's group was taken with one event (the writer was
	// idle); the rest queued behind it in groups of at most MaxBatch.
	if commits > 5 {
		t.Fatalf("%d commits for a stalled burst of 3000 events with MaxBatch 1000", commits)
	}
	if largest != 1000 {
		t.Fatalf("largest pooled buffer during the burst %d events, want MaxBatch (1000)", largest)
	}
}
