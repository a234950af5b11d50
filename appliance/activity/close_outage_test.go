package activity

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Close during a disk outage cannot make the queued events durable: it
// gives up after a few attempts, says how many accepted events were lost
// (Stats.Lost, an error wrapping ErrStoreUnavailable), and every waiter of
// a lost event is told so rather than left hanging; what was acknowledged
// before stays stored.
func TestCloseDuringOutageReportsLoss(t *testing.T) {
	dir := mountSmallFS(t, "8m")
	path := filepath.Join(dir, "activity.db")
	s, err := Open(path, Options{Durability: AuditStrict, QueueSize: 2000, MaxBatch: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	acked := emitDurably(t, s, 0, 300)

	filler := filepath.Join(dir, "filler")
	fillFS(t, filler)
	var tickets []Ticket
	for i := 0; s.Stats().Healthy && i < 100_000; i++ {
		tk, err := s.EmitDurable(sampleEvent(i))
		if err == nil {
			tickets = append(tickets, tk)
		}
		if i%256 == 255 {
			time.Sleep(time.Millisecond)
		}
	}
	if s.Stats().Healthy {
		t.Fatal("store healthy after the disk filled")
	}
	var ackedDuringFill int
	var unsettled []Ticket
	for _, tk := range tickets {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		if s.WaitDurable(ctx, tk) == nil {
			ackedDuringFill++
		} else {
			unsettled = append(unsettled, tk)
		}
		cancel()
	}

	closeErr := s.Close()
	st := s.Stats()
	t.Logf("close during the outage: %v; %+v", closeErr, st)
	if !errors.Is(closeErr, ErrStoreUnavailable) || st.Lost == 0 || st.Queued != st.Written+st.Lost {
		t.Fatalf("Close during an outage = %v with %+v", closeErr, st)
	}
	lostWaiters := 0
	for _, tk := range unsettled {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.WaitDurable(ctx, tk)
		cancel()
		switch {
		case errors.Is(err, ErrStoreUnavailable):
			lostWaiters++
		case err != nil:
			t.Fatalf("waiter after Close: %v", err)
		}
	}
	if uint64(lostWaiters) != st.Lost {
		t.Fatalf("%d waiters told of a loss, %d events lost", lostWaiters, st.Lost)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	assertStored(t, s2, acked)
}
