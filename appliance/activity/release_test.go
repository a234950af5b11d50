package activity

import (
	"os"
	"strings"
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
	burst(t, s, n)
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
	emitAndClose(t, s, n, n+10)
}

// What a burst freed in SQLite's C heap stays resident in the allocator's
// retained pages until trimCHeap hands them back (cheap.go).
func TestReleaseMemoryTrimsCHeap(t *testing.T) {
	s, _ := openTest(t, Options{Durability: AuditStrict})
	const n = 20000
	burst(t, s, n)
	// ReleaseMemory's steps before the trim.
	if err := s.releaseCaches(); err != nil {
		t.Fatal(err)
	}
	before := cHeapBytes()
	if err := trimCHeap(); err != nil {
		t.Fatal(err)
	}
	after := cHeapBytes()
	t.Logf("C heap resident %.1f -> %.1f MiB", float64(before)/(1<<20), float64(after)/(1<<20))
	if before-after < 2<<20 {
		t.Fatalf("trim gave back %d bytes of C heap, want at least 2 MiB", before-after)
	}
	// The statements are prepared again and the allocator maps again.
	emitAndClose(t, s, n, n+100)
}

// burst emits n events into an audit-strict store, waiting while its queue
// is full, and returns once all are written.
func burst(t *testing.T, s *Store, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		for s.Emit(sampleEvent(i)) != nil {
			time.Sleep(time.Millisecond) // audit-strict: the queue is full
		}
	}
	for s.Stats().Written < uint64(n) {
		time.Sleep(time.Millisecond)
	}
}

// emitAndClose emits events from..to after a release, closes the store and
// checks that every event was written.
func emitAndClose(t *testing.T, s *Store, from, to int) {
	t.Helper()
	emitN(t, s, from, to)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != uint64(to) {
		t.Fatalf("written %d, want %d", st.Written, to)
	}
}

// cheap.go reaches into modernc.org/libc by name; a new libc or memory must
// be read again before the versions here move. (A test binary's build info
// lists no dependencies, so the versions come from go.mod.)
func TestCHeapTrimVersions(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "require" {
			f = f[1:]
		}
		if len(f) < 2 {
			continue
		}
		want, ok := cHeapTrimChecked[f[0]]
		if !ok {
			continue
		}
		seen++
		if f[1] != want {
			t.Errorf("go.mod has %s %s; cheap.go was checked against %s: check that libc's allocator is still a memory.Allocator whose every use holds allocatorMu, then update cHeapTrimChecked",
				f[0], f[1], want)
		}
	}
	if strings.Contains(string(b), "replace modernc.org/libc") || strings.Contains(string(b), "replace modernc.org/memory") {
		t.Error("go.mod replaces modernc.org/libc or memory: cheap.go was checked against the released modules")
	}
	if seen != len(cHeapTrimChecked) {
		t.Fatalf("found %d of the %d modules cheap.go depends on in go.mod", seen, len(cHeapTrimChecked))
	}
}
