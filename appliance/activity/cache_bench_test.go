package activity

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"modernc.org/sqlite"
)

// cacheChildEnv, set to a cache size in KiB, makes BenchmarkWriterCache
// measure that one size in this process (the child of the benchmark).
const cacheChildEnv = "ACTIVITY_WRITER_CACHE_KIB"

// BenchmarkWriterCache is what the writer's page cache costs and buys. For
// each size it runs a fresh process (its own heaps: the C allocator keeps
// what it freed) that emits writerCacheEvents sample events through the
// store, so the store grows past every cache measured, and reports:
//   - cpu_us/ev over the second half of the events, when the store is
//     larger than the cache (lowest of the rounds);
//   - miss/ev and hit%: the writer's page cache misses per event (each a
//     read from the OS) and its hit rate over that half;
//   - cache_MiB: the pages the writer's cache holds at the end, as SQLite
//     counts them, and readers_MiB those of the read connections after a
//     handful of console searches;
//   - c_heap_MiB: the process's anonymous resident memory less the Go
//     runtime's, i.e. SQLite's heap in the C allocator, before and after
//     Close (closed_c_heap_MiB: what the allocator keeps of what it freed).
//
// Run with -benchtime=1x; ACTIVITY_WRITER_CACHE_EVENTS overrides the event
// count (default 400000).
func BenchmarkWriterCache(b *testing.B) {
	if kib := os.Getenv(cacheChildEnv); kib != "" {
		n, err := strconv.Atoi(kib)
		if err != nil {
			b.Fatal(err)
		}
		if err := writerCacheChild(b.TempDir(), n); err != nil {
			b.Fatal(err)
		}
		return
	}
	sizes := []int{16384, 8192, 4096, 2048}
	type result struct{ cpu, miss, hit, cache, readers, heap, closed float64 }
	best := map[int]*result{}
	const rounds = 3
	for round := 0; round < rounds; round++ {
		for _, kib := range sizes {
			r, err := runWriterCacheChild(kib)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("round %d, %5d KiB: %v", round, kib, r)
			if best[kib] == nil {
				best[kib] = &result{cpu: r["cpu_us/ev"]}
			}
			x := best[kib]
			x.cpu = min(x.cpu, r["cpu_us/ev"])
			x.miss += r["miss/ev"] / rounds
			x.hit += r["hit%"] / rounds
			x.cache += r["cache_MiB"] / rounds
			x.readers += r["readers_MiB"] / rounds
			x.heap += r["c_heap_MiB"] / rounds
			x.closed += r["closed_c_heap_MiB"] / rounds
		}
	}
	for _, kib := range sizes {
		x, name := best[kib], fmt.Sprintf("%dKiB_", kib)
		b.ReportMetric(x.cpu, name+"cpu_us/ev")
		b.ReportMetric(x.cpu/best[sizes[0]].cpu, name+"cpu_ratio")
		b.ReportMetric(x.miss, name+"miss/ev")
		b.ReportMetric(x.hit, name+"hit%")
		b.ReportMetric(x.cache, name+"cache_MiB")
		b.ReportMetric(x.readers, name+"readers_MiB")
		b.ReportMetric(x.heap, name+"c_heap_MiB")
		b.ReportMetric(x.closed, name+"closed_c_heap_MiB")
	}
}

// runWriterCacheChild runs this benchmark in a new process for one cache
// size and returns the metrics its "writercache:" line reports.
func runWriterCacheChild(kib int) (map[string]float64, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkWriterCache$", "-test.benchtime=1x")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", cacheChildEnv, kib))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("cache %d KiB: %w\n%s", kib, err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if _, rest, ok := strings.Cut(line, "writercache:"); ok {
			m := map[string]float64{}
			for _, f := range strings.Fields(rest) {
				k, v, _ := strings.Cut(f, "=")
				if m[k], err = strconv.ParseFloat(v, 64); err != nil {
					return nil, fmt.Errorf("cache %d KiB: %q: %w", kib, f, err)
				}
			}
			return m, nil
		}
	}
	return nil, fmt.Errorf("cache %d KiB: no result in\n%s", kib, out)
}

func writerCacheChild(dir string, kib int) error {
	n := 400000
	if v := os.Getenv("ACTIVITY_WRITER_CACHE_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			return err
		}
	}
	path := filepath.Join(dir, "cache.db")
	s, err := Open(path, Options{Durability: AuditStrict, writerCacheKiB: kib})
	if err != nil {
		return err
	}
	defer s.Close()
	events := make([]Event, 1000)
	for i := range events {
		events[i] = sampleEvent(i)
		events[i].Time = time.Time{}
	}
	emit := func(from, to int) error {
		for i := from; i < to; i++ {
			for {
				err := s.Emit(events[i%len(events)])
				if err == nil {
					break
				}
				if !errors.Is(err, ErrStoreUnavailable) {
					return err
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		for s.Stats().Written < uint64(to) {
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	if err := emit(0, n/2); err != nil {
		return err
	}
	if _, _, err := writerStatus(s, sqlite.DBStatusCacheHit, true); err != nil {
		return err
	}
	if _, _, err := writerStatus(s, sqlite.DBStatusCacheMiss, true); err != nil {
		return err
	}
	cpu0 := processCPU()
	if err := emit(n/2, n); err != nil {
		return err
	}
	cpu := float64((processCPU() - cpu0).Nanoseconds()) / 1e3 / float64(n-n/2)
	hits, _, err := writerStatus(s, sqlite.DBStatusCacheHit, false)
	if err != nil {
		return err
	}
	misses, _, err := writerStatus(s, sqlite.DBStatusCacheMiss, false)
	if err != nil {
		return err
	}
	used, _, err := writerStatus(s, sqlite.DBStatusCacheUsed, false)
	if err != nil {
		return err
	}

	// What the console reads: the newest page, a user's, an app's blocks,
	// a rare and a common text, the dashboard's counts and top lists.
	now := time.Now().Truncate(time.Hour).Add(time.Hour)
	for _, q := range []Query{
		{}, {User: "user3@corp.example"}, {App: "box", Action: "block"},
		{Text: "report-123"}, {Text: "example"}, {Policy: "p2", From: now.Add(-time.Hour)},
	} {
		if _, err := s.Search(q); err != nil {
			return err
		}

	}
	if _, err := s.Counts(now.Add(-time.Hour), now, time.Minute); err != nil {
		return err
	}
	if _, err := s.Top("user", now.Add(-24*time.Hour), now, 10); err != nil {
		return err
	}
	readers, err := readerCacheUsed(s)
	if err != nil {
		return err
	}
	heap := cHeapBytes()
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	closed := cHeapBytes()
	const mib = 1 << 20
	fmt.Printf("writercache: cpu_us/ev=%.2f miss/ev=%.3f hit%%=%.2f cache_MiB=%.2f readers_MiB=%.2f c_heap_MiB=%.1f closed_c_heap_MiB=%.1f db_MiB=%.0f\n",
		cpu, float64(misses)/float64(n-n/2), 100*float64(hits)/float64(max(hits+misses, 1)), float64(used)/mib, float64(readers)/mib,
		float64(heap)/mib, float64(closed)/mib, float64(st.Size())/mib)
	return nil
}

// writerStatus reads one of the write connection's sqlite3_db_status
// counters.
func writerStatus(s *Store, op sqlite.DBStatusOp, reset bool) (cur, high int, err error) {
	err = s.withWriter(func() error {
		conn, err := s.wdb.Conn(context.Background())
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Raw(func(dc any) error {
			cur, high, err = dc.(sqlite.DBStatus).Status(op, reset)
			return err
		})
	})
	return cur, high, err
}

// readerCacheUsed is the page cache the read pool's connections hold.
func readerCacheUsed(s *Store) (int, error) {
	var conns []interface{ Close() error }
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	total := 0
	for range 4 { // rdb's MaxOpenConns: every connection it may hold
		conn, err := s.rdb.Conn(context.Background())
		if err != nil {
			return 0, err
		}
		conns = append(conns, conn)
		if err := conn.Raw(func(dc any) error {
			cur, _, err := dc.(sqlite.DBStatus).Status(sqlite.DBStatusCacheUsed, false)
			total += cur
			return err
		}); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// cHeapBytes is the process's anonymous resident memory less what the Go
// runtime holds (its heap, stacks and metadata, less what it returned to
// the OS): the C allocator's share, SQLite's heap.
func cHeapBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	var anon int64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			anon = kb << 10
		}
	}
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(sample)
	return anon - int64(sample[0].Value.Uint64()-sample[1].Value.Uint64())
}
