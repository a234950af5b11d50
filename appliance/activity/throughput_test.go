package activity

import (
	"database/sql"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// emitterRun is what a fixed set of concurrent emitters achieved.
type emitterRun struct {
	events, commits uint64
	elapsed         time.Duration
}

func (r emitterRun) eventsPerSec() float64 { return float64(r.events) / r.elapsed.Seconds() }
func (r emitterRun) fsyncsPerSec() float64 { return float64(r.commits) / r.elapsed.Seconds() }
func (r emitterRun) perCommit() float64    { return float64(r.events) / float64(max(r.commits, 1)) }

// runEmitters has emitters goroutines emit plain-traffic events for d on a
// store opened as the appliance opens it (audit-strict, 20 ms linger). A
// durable emitter waits for every event's commit before the next, as a held
// response does (hold_responses: all, or an activity); a plain one only
// emits, as unheld traffic does, and an event refused because the queue is
// full is retried after a pause (backpressure), so the rate is what the
// store sustains.
func runEmitters(tb testing.TB, emitters int, durable bool, d time.Duration) emitterRun {
	tb.Helper()
	s, err := Open(filepath.Join(tb.TempDir(), "t.db"), Options{Durability: AuditStrict, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	var (
		stop atomic.Bool
		wg   sync.WaitGroup
		fail atomic.Pointer[error]
	)
	start := time.Now()
	for e := range emitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := e; !stop.Load(); i += emitters {
				ev := plainEvent(i)
				if !durable {
					if err := s.Emit(ev); errors.Is(err, ErrStoreUnavailable) {
						time.Sleep(time.Millisecond)
					} else if err != nil {
						fail.Store(&err)
						return
					}
					continue
				}
				tk, err := s.EmitDurable(ev)
				if err == nil {
					err = s.WaitDurable(tb.Context(), tk)
				}
				if err != nil {
					fail.Store(&err)
					return
				}
			}
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	if p := fail.Load(); p != nil {
		tb.Fatal(*p)
	}
	// What was queued when the clock stopped is committed by Close: count
	// it, and the time it took.
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	st := s.Stats()
	return emitterRun{events: st.Written, commits: st.Commits, elapsed: time.Since(start)}
}

// rawLoopRate is the plain SQLite insert loop (rawInsert: one prepared
// single-row INSERT per event in one transaction) over n plain events: the
// baseline measured in the same run.
func rawLoopRate(tb testing.TB, n int) float64 {
	tb.Helper()
	events := make([]Event, 1000)
	for i := range events {
		events[i] = plainEvent(i)
	}
	start := time.Now()
	if err := rawInsert(filepath.Join(tb.TempDir(), "raw.db"), events, n); err != nil {
		tb.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// rawDurableRate is the naive durable store measured in the same run: one
// event per committed (fsynced) transaction, the store's own settings, for
// about d. A held response's wait is bounded by the disk's commit latency,
// which a neighbour's I/O changes as much as it changes this loop.
func rawDurableRate(tb testing.TB, d time.Duration) float64 {
	tb.Helper()
	db, err := sql.Open("sqlite", writeDSN(filepath.Join(tb.TempDir(), "rawdurable.db")))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := migrate(db); err != nil {
		tb.Fatal(err)
	}
	cols := "seq, " + eventColumns
	q := "INSERT INTO events (" + cols + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?,", strings.Count(cols, ",")+1), ",") + ")"
	var args []any
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		ev := plainEvent(n)
		ev.Time = time.Now()
		if ev.ID, err = uuid.NewV7(); err != nil {
			tb.Fatal(err)
		}
		args = appendEventArgs(args[:0], int64(n+1), &ev, nil)
		if _, err := db.Exec(q, args...); err != nil { // autocommit: one fsynced transaction
			tb.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// Throughput budget of the store (README "Activity log"): with 16 and 64
// concurrent emitters of plain-traffic events at the appliance's 20 ms
// linger, the store sustains at least plainBudget events/s. When every
// emitter waits for its commit before emitting again (held responses), the
// group commit makes the store at least durableGain16 and durableGain64
// times faster than the naive one-commit-per-event loop measured in the
// same run: fsync latency is the disk's, and a neighbour's I/O moves both
// figures together, so the bound is a ratio. On the 2-core build machine,
// quiet, the store measured about 56k plain events/s and 7.7k and 21k
// durable; shared with other engineers' builds (load average 12-17) it fell
// to 19-41k and 1.1-15k (bench/results/activity-20261201.txt).
const (
	plainBudget   = 15000
	durableGain16 = 2.0
	durableGain64 = 4.0
)

func TestThroughputBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the store for several seconds")
	}
	raw := rawLoopRate(t, 100000)
	rawDurable := rawDurableRate(t, time.Second)
	for _, tc := range []struct {
		emitters int
		durable  bool
		budget   float64
	}{
		{16, false, plainBudget}, {64, false, plainBudget},
		{16, true, durableGain16 * rawDurable}, {64, true, durableGain64 * rawDurable},
	} {
		// Best of three: the budget is what the store can do, and a
		// neighbour's build may take a core for a second.
		var best emitterRun
		for try := range 3 {
			if r := runEmitters(t, tc.emitters, tc.durable, time.Second); try == 0 || r.eventsPerSec() > best.eventsPerSec() {
				best = r
			}
			if best.eventsPerSec() >= 1.5*tc.budget {
				break
			}
		}
		t.Logf("%2d emitters durable=%-5v: %7.0f ev/s (%.2f× the raw loop's %.0f, %.2f× one commit per event's %.0f), %5.0f fsyncs/s, %6.1f events per fsync; budget %.0f",
			tc.emitters, tc.durable, best.eventsPerSec(), best.eventsPerSec()/raw, raw, best.eventsPerSec()/rawDurable, rawDurable,
			best.fsyncsPerSec(), best.perCommit(), tc.budget)
		if !(best.eventsPerSec() >= tc.budget) {
			t.Errorf("%d emitters durable=%v: %.0f events/s, budget %.0f", tc.emitters, tc.durable, best.eventsPerSec(), tc.budget)
		}
	}
}

// BenchmarkEmitters reports events/s, fsyncs/s and events per fsync with 16
// and 64 concurrent emitters, plain and durable, and the ratio to the plain
// SQLite insert loop measured in the same run. b.N is ignored beyond
// choosing nothing: each case runs for PORTCULLIS_EMIT_SECONDS (default 2).
func BenchmarkEmitters(b *testing.B) {
	d := 2 * time.Second
	if v := os.Getenv("PORTCULLIS_EMIT_SECONDS"); v != "" {
		if n, err := time.ParseDuration(v + "s"); err == nil {
			d = n
		}
	}
	raw := rawLoopRate(b, 200000)
	for _, emitters := range []int{16, 64} {
		for _, durable := range []bool{false, true} {
			b.Run(fmt.Sprintf("emitters=%d/durable=%v", emitters, durable), func(b *testing.B) {
				r := runEmitters(b, emitters, durable, d)
				b.ReportMetric(r.eventsPerSec(), "ev/s")
				b.ReportMetric(r.fsyncsPerSec(), "fsync/s")
				b.ReportMetric(r.perCommit(), "ev/fsync")
				b.ReportMetric(raw, "raw_loop_ev/s")
				b.ReportMetric(r.eventsPerSec()/raw, "store/raw")
			})
		}
	}
}
