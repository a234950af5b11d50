package activity

import (
	"testing"
	"time"
)

func TestPruneByAge(t *testing.T) {
	s, _ := openTest(t, Options{FlushInterval: time.Millisecond, MaxAge: time.Minute, PruneInterval: time.Hour})
	emitN(t, s, 0, 300) // one event per second from testEpoch
	waitWritten(t, s, 300)
	if err := s.Advance("syslog", 100); err != nil {
		t.Fatal(err)
	}
	// Keep the last minute before testEpoch+300s: events 240..299.
	res, err := s.Prune(testEpoch.Add(300 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 240 || res.Undelivered != 140 {
		t.Fatalf("prune = %+v, want 240 deleted, 140 of them past the syslog cursor", res)
	}
	got := searchAll(t, s, Query{Limit: 1000})
	if len(got) != 60 || got[len(got)-1] != 240 {
		t.Fatalf("kept %d events, oldest %d", len(got), got[len(got)-1])
	}
	// Side tables follow the events they index.
	if n := len(searchAll(t, s, Query{Policy: "audit-all", Limit: 1000})); n != 60 {
		t.Fatalf("policy index holds %d events after prune, want 60", n)
	}
	if n := len(searchAll(t, s, Query{DeviceTag: "managed", Limit: 1000})); n != 60 {
		t.Fatalf("tag index holds %d events after prune, want 60", n)
	}
	if st := s.Stats(); st.Pruned != 240 || st.PrunedUndelivered != 140 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestPruneBySize(t *testing.T) {
	s, _ := openTest(t, Options{FlushInterval: time.Millisecond, PruneInterval: time.Hour})
	emitN(t, s, 0, 5000)
	waitWritten(t, s, 5000)
	full, err := s.usedBytes()
	if err != nil {
		t.Fatal(err)
	}
	s.maxBytes.Store(full / 2) // the pruner runs hourly: it does not race this Prune
	res, err := s.Prune(testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	used, _ := s.usedBytes()
	if used > full/2 {
		t.Fatalf("used %d bytes after prune, limit %d", used, full/2)
	}
	kept := searchAll(t, s, Query{Limit: 1000})
	if res.Deleted == 0 || len(kept)+int(res.Deleted) != 5000 || len(kept) < 1000 {
		t.Fatalf("deleted %d, kept %d: want roughly the oldest half gone", res.Deleted, len(kept))
	}
	if kept[0] != 4999 || kept[len(kept)-1] != int(res.Deleted) {
		t.Fatalf("kept %d..%d, want the newest", kept[len(kept)-1], kept[0])
	}
	var pages, free int64
	if err := s.rdb.QueryRow("SELECT p.page_count, f.freelist_count FROM pragma_page_count p, pragma_freelist_count f").Scan(&pages, &free); err != nil {
		t.Fatal(err)
	}
	if free != 0 {
		t.Fatalf("%d free pages left: incremental vacuum did not run", free)
	}
}

// The background loop prunes without being called.
func TestPruneLoop(t *testing.T) {
	s, _ := openTest(t, Options{FlushInterval: time.Millisecond, MaxAge: time.Hour, PruneInterval: 10 * time.Millisecond})
	for i := range 50 {
		ev := sampleEvent(i)
		ev.Time = time.Now().Add(-2 * time.Hour) // independent of the machine's clock
		if err := s.Emit(ev); err != nil {
			t.Fatal(err)
		}
	}
	waitWritten(t, s, 50)
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Pruned < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("background prune: %+v", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Retention set while the store runs (a reload) applies at once, without
// waiting for the next PruneInterval; turning it off again stops it.
func TestSetRetention(t *testing.T) {
	s, _ := openTest(t, Options{FlushInterval: time.Millisecond, PruneInterval: time.Hour})
	emit := func(n int, age time.Duration) {
		for i := range n {
			ev := sampleEvent(i)
			ev.Time = time.Now().Add(-age)
			if err := s.Emit(ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	emit(40, 3*time.Hour)
	emit(10, time.Minute)
	waitWritten(t, s, 50)
	if a, b := s.Retention(); a != 0 || b != 0 {
		t.Fatalf("retention at open = %s, %d; want off", a, b)
	}
	if err := s.SetRetention(-time.Hour, 0); err == nil {
		t.Fatal("a negative max_age was accepted")
	}
	if err := s.SetRetention(time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Pruned < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("retention set at run time did not prune: %+v", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := len(searchAll(t, s, Query{Limit: 1000})); got != 10 {
		t.Fatalf("kept %d events, want the 10 of the last hour", got)
	}
	if err := s.SetRetention(0, 0); err != nil {
		t.Fatal(err)
	}
	emit(5, 3*time.Hour)
	waitWritten(t, s, 55)
	time.Sleep(100 * time.Millisecond)
	if st := s.Stats(); st.Pruned != 40 {
		t.Fatalf("retention off still pruned: %+v", st)
	}
}
