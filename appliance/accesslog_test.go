package appliance

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuf struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	closed bool
}

func (b *lockedBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.b.Write(p)
}

func (b *lockedBuf) Close() error { b.mu.Lock(); b.closed = true; b.mu.Unlock(); return nil }

func (b *lockedBuf) snapshot() (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String(), b.writes
}

func TestBufferedLogBatchesAndLosesNothing(t *testing.T) {
	dst := &lockedBuf{}
	l := newBufferedLog(dst)
	for range 1000 {
		_, _ = l.Write([]byte("{\"msg\":\"request\"}\n"))
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		s, writes := dst.snapshot()
		if strings.Count(s, "\n") == 1000 {
			if writes > 10 {
				t.Errorf("1000 lines took %d writes, want them batched", writes)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lines not flushed within 2s: %d", strings.Count(s, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, _ = l.Write([]byte("last\n"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if s, _ := dst.snapshot(); !strings.HasSuffix(s, "last\n") || !dst.closed {
		t.Fatal("Close lost the buffered tail or did not close the destination")
	}
}

func TestCompactWhy(t *testing.T) {
	ja4 := "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"
	got := compactWhy("ja4 "+ja4+" = curl (exact; source: lab capture 2026-12-01, curl 7.88.1 (Debian 12)); ua curl/7 agrees", ja4)
	if got != "curl (exact); ua curl/7 agrees" {
		t.Errorf("compactWhy = %q", got)
	}
	if got := compactWhy("no classifier configured", ""); got != "no classifier configured" {
		t.Errorf("compactWhy = %q", got)
	}
	// Kept results are compactWhy's, by explanation and JA4, also past
	// the bound.
	var c compactWhys
	for i := range maxCompactWhys + 10 {
		why := fmt.Sprintf("ja4 %s = f%d (exact; source: s (x)); ua u", ja4, i%(maxCompactWhys+5))
		for _, j := range []string{ja4, "other"} {
			if got, want := c.get(why, j), compactWhy(why, j); got != want {
				t.Fatalf("kept %q, compactWhy %q", got, want)
			}
		}
	}
	if len(c.m) > maxCompactWhys {
		t.Errorf("%d results kept, bound %d", len(c.m), maxCompactWhys)
	}
}
