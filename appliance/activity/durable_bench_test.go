package activity

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkWaitDurable measures what audit-strict adds to a response: the
// time from EmitDurable to WaitDurable returning (the event's group
// fsynced), with 1, 16 and 256 emitters each looping emit-then-wait. It
// reports the median and p99 of that latency, the events per group commit
// (how many waiters one fsync served) and, as the baseline measured in the
// same run, the median time of one bare fsynced single-row commit on the
// same file system.
func BenchmarkWaitDurable(b *testing.B) {
	fsyncBase := bareCommitMedian(b)
	for _, emitters := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("emitters=%d", emitters), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "d.db"), Options{Durability: AuditStrict})
			if err != nil {
				b.Fatal(err)
			}
			ev := sampleEvent(1)
			lat := make([][]time.Duration, emitters)
			var wg sync.WaitGroup
			per := (b.N + emitters - 1) / emitters
			b.ResetTimer()
			start := time.Now()
			for e := range emitters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l := make([]time.Duration, 0, per)
					for range per {
						t0 := time.Now()
						tk, err := s.EmitDurable(ev)
						if err != nil {
							b.Error(err)
							return
						}
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						err = s.WaitDurable(ctx, tk)
						cancel()
						if err != nil {
							b.Error(err)
							return
						}
						l = append(l, time.Since(t0))
					}
					lat[e] = l
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			commits := s.Stats().Commits
			written := s.Stats().Written
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			all := slices.Concat(lat...)
			if len(all) == 0 {
				b.Fatal("no latency measured")
			}
			slices.Sort(all)
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50_µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99_µs")
			b.ReportMetric(float64(written)/float64(max(commits, 1)), "events/commit")
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ev/s")
			b.ReportMetric(float64(fsyncBase.Microseconds()), "bare_commit_p50_µs")
		})
	}
}

// bareCommitMedian is the median of 200 single-row fsynced commits through
// the same connection settings: the floor any durable wait sits on.
func bareCommitMedian(b *testing.B) time.Duration {
	s, err := Open(filepath.Join(b.TempDir(), "base.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ev := sampleEvent(1)
	var lat []time.Duration
	for range 200 {
		t0 := time.Now()
		if err := s.withWriter(func() error { return s.commit([]Event{ev}) }); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}
