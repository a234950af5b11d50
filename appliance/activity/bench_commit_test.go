package activity

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCommitGroup is the writer's own cost per event, without the
// queue: groups of commitGroupSize events committed through the inserter
// (fsynced, full-text index and rollups on). One op is one event, so
// allocs/op is the writer's allocations per event, the driver's included,
// and cpu_us/ev is the process's CPU time per event.
//   - sample: sampleEvent, two policies, two device tags, a file;
//   - plain: plainEvent, allowed browsing of one app by an unknown user,
//     the bulk of an appliance's traffic;
//   - audited: the same by known users under one audit policy.
func BenchmarkCommitGroup(b *testing.B) {
	// audited: plain browsing by a known user under one policy that matches
	// everything (an audit policy), so every event has one side row.
	audited := func(i int) Event {
		ev := plainEvent(i)
		ev.User = []string{"alice@corp.example", "bob@corp.example", "carol@corp.example"}[i%3]
		ev.Policies = []string{"audit-all"}
		return ev
	}
	for _, c := range []struct {
		name string
		make func(int) Event
	}{{"sample", sampleEvent}, {"plain", plainEvent}, {"audited", audited}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "c.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const commitGroupSize = 256
			tmpl := make([]Event, 1000)
			for i := range tmpl {
				tmpl[i] = c.make(i)
			}
			group := make([]Event, commitGroupSize)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for done := 0; done < b.N; {
				n := min(commitGroupSize, b.N-done)
				now := time.Now()
				for i := range group[:n] {
					group[i] = tmpl[(done+i)%len(tmpl)]
					group[i].Time = now
					group[i].ID = newEventID(now)
				}
				if err := s.withWriter(func() error { return s.commit(group[:n]) }); err != nil {
					b.Fatal(err)
				}
				done += n
			}
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu_us/ev")
		})
	}
}
