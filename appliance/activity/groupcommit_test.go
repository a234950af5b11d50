package activity

import (
	"context"
	"sync"
	"testing"
	"time"
)

// One fsync serves every waiter that queued while the previous commit ran:
// with the writer held in a commit, 200 durable emitters end up in one or
// two further groups, not 200.
func TestDurableWaitersShareAGroup(t *testing.T) {
	gate := make(chan struct{})
	var held sync.Once
	stalled := make(chan struct{})
	s, _ := openTest(t, Options{beforeCommit: func() {
		held.Do(func() { close(stalled); <-gate })
	}})
	first, err := s.EmitDurable(sampleEvent(0))
	if err != nil {
		t.Fatal(err)
	}
	<-stalled
	const n = 200
	tickets := make([]Ticket, n)
	for i := range tickets {
		if tickets[i], err = s.EmitDurable(sampleEvent(i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	if d := s.Stats().QueueDepth; d != n {
		t.Fatalf("queue depth %d while the writer is held, want %d", d, n)
	}
	close(gate)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tk := range append(tickets, first) {
		if err := s.WaitDurable(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Commits > 3 || st.Written != n+1 {
		t.Fatalf("%d commits for %d events queued behind one commit: %+v", st.Commits, n+1, st)
	}
}

// Natural group commit: without FlushInterval the writer commits as soon as
// an event arrives; with it, a group of events no one waits on lingers up
// to the interval.
func TestWriterCommitsWhenIdle(t *testing.T) {
	for _, tc := range []struct {
		linger   time.Duration
		min, max time.Duration
	}{
		// 300 ms: one fsync on a loaded CI disk can take a good part of
		// it, and the linger case's lower bound (350 ms) still tells the
		// two apart.
		{0, 0, 300 * time.Millisecond},
		{400 * time.Millisecond, 350 * time.Millisecond, 3 * time.Second},
	} {
		s, _ := openTest(t, Options{FlushInterval: tc.linger})
		start := time.Now()
		if err := s.Emit(sampleEvent(1)); err != nil {
			t.Fatal(err)
		}
		waitWritten(t, s, 1)
		if d := time.Since(start); d < tc.min || d > tc.max {
			t.Errorf("FlushInterval %v: first event written after %v, want %v..%v", tc.linger, d, tc.min, tc.max)
		}
	}
}
