package activity

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// TestEmitDurable: once WaitDurable returns nil the event is in the store,
// and a waiter does not wait out a long flush window.
func TestEmitDurable(t *testing.T) {
	st, _ := openTest(t, Options{FlushInterval: 5 * time.Second})
	const n = 64
	var wg sync.WaitGroup
	lat := make([]time.Duration, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			tk, err := st.EmitDurable(Event{Host: "h", Path: fmt.Sprintf("/d/%d", i), Method: "GET"})
			if err != nil {
				t.Error(err)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := st.WaitDurable(ctx, tk); err != nil {
				t.Error(err)
			}
			lat[i] = time.Since(start)
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	t.Logf("durable wait with 64 concurrent emitters: median %v, max %v", lat[n/2], lat[n-1])
	if lat[n-1] > 2*time.Second {
		t.Fatalf("a durable waiter waited out the flush window: %v", lat[n-1])
	}
	evs, err := st.ReadAfter("durable-test", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Fatalf("%d events in the store after %d durable waits", len(evs), n)
	}
	if err := st.WaitDurable(context.Background(), Ticket{}); err == nil {
		t.Error("a zero ticket waited successfully")
	}
}
