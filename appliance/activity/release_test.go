package activity

import (
	"testing"
	"time"

	"modernc.org/sqlite"
)

// After a burst the writer's page cache is full (the 4 MiB of writeDSN) and
// SQLite's C heap holds it; ReleaseMemory empties the cache and the heap
// shrinks, and the store goes on taking events.
func TestReleaseMemoryEmptiesWriterCache(t *testing.T) {
	s, _ := openTest(t, Options{Durability: AuditStrict})
	const n = 20000
	for i := 0; i < n; i++ {
		for s.Emit(sampleEvent(i)) != nil {
			time.Sleep(time.Millisecond) // audit-strict: the queue is full
		}
	}
	for s.Stats().Written < n {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Search(Query{Text: "example"}); err != nil {
		t.Fatal(err)
	}
	before, _, err := writerStatus(s, sqlite.DBStatusCacheUsed, false)
	if err != nil {
		t.Fatal(err)
	}
	heapBefore := cHeapBytes()
	if before < 2<<20 {
		t.Fatalf("writer cache %d bytes after %d events: the test did not fill it", before, n)
	}
	if err := s.ReleaseMemory(); err != nil {
		t.Fatal(err)
	}
	after, _, err := writerStatus(s, sqlite.DBStatusCacheUsed, false)
	if err != nil {
		t.Fatal(err)
	}
	heapAfter := cHeapBytes()
	t.Logf("writer cache %d -> %d bytes, C heap %.1f -> %.1f MiB", before, after, float64(heapBefore)/(1<<20), float64(heapAfter)/(1<<20))
	if after > before/8 {
		t.Fatalf("writer cache %d bytes after ReleaseMemory (was %d)", after, before)
	}
	if heapBefore-heapAfter < 2<<20 {
		t.Fatalf("C heap %d -> %d bytes: under 2 MiB given back", heapBefore, heapAfter)
	}
	emitN(t, s, n, n+10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != n+10 {
		t.Fatalf("written %d, want %d", st.Written, n+10)
	}
}
