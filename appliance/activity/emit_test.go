package activity

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Every event Emit accepted before Close is on disk after Close, and reads
// back field for field.
func TestCloseWritesEveryAcceptedEvent(t *testing.T) {
	s, path := openTest(t, Options{FlushInterval: 5 * time.Millisecond, MaxBatch: 100})
	const workers, each = 4, 2500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { emitN(t, s, w*each, (w+1)*each) })
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Queued != workers*each || st.Written != workers*each || st.Dropped+st.Refused+st.Lost != 0 {
		t.Fatalf("stats after close: %+v", st)
	}

	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	seen := map[uuid.UUID]bool{}
	byPath := map[string]Event{}
	for {
		evs, err := s2.ReadAfter("check", 3000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if seen[ev.ID] || ev.ID.Version() != 7 {
				t.Fatalf("bad or duplicate id %s", ev.ID)
			}
			seen[ev.ID] = true
			byPath[ev.Path] = ev
		}
		if err := s2.Advance("check", evs[len(evs)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != workers*each {
		t.Fatalf("read back %d events, want %d", len(seen), workers*each)
	}
	want := sampleEvent(1234)
	got := byPath[want.Path]
	want.ID, want.Seq = got.ID, got.Seq
	if !want.Time.Equal(got.Time) {
		t.Fatalf("time round trip: %v, want %v", got.Time, want.Time)
	}
	want.Time = got.Time
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("event round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestEmitAfterClose(t *testing.T) {
	s, _ := openTest(t, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Emit(sampleEvent(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Emit after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// stalledStore returns a store whose writer blocks before its first commit
// until release is called, with a queue of 8.
func stalledStore(t *testing.T, d Durability) (s *Store, release func()) {
	t.Helper()
	gate := make(chan struct{})
	stalled := make(chan struct{}, 1)
	var once sync.Once
	s, _ = openTest(t, Options{
		Durability:    d,
		QueueSize:     8,
		MaxBatch:      1,
		FlushInterval: time.Millisecond,
		beforeCommit: func() {
			select {
			case stalled <- struct{}{}:
			default:
			}
			<-gate
		},
	})
	if err := s.Emit(sampleEvent(0)); err != nil {
		t.Fatal(err)
	}
	<-stalled // the writer holds event 0 and waits: the queue is all that is left
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return s, release
}

func TestAuditStrictRefusesWhenQueueFull(t *testing.T) {
	s, release := stalledStore(t, AuditStrict)
	accepted := 1
	var err error
	for i := 1; i < 100; i++ {
		if err = s.Emit(sampleEvent(i)); err != nil {
			break
		}
		accepted++
	}
	if !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Emit on a full queue = %v, want ErrStoreUnavailable", err)
	}
	if accepted != 1+8 {
		t.Fatalf("accepted %d events, want the one in the writer plus a full queue of 8", accepted)
	}
	if st := s.Stats(); st.Refused != 1 || st.QueueDepth != 8 || st.Dropped != 0 {
		t.Fatalf("stats while stalled: %+v", st)
	}
	release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != uint64(accepted) {
		t.Fatalf("written %d, accepted %d", st.Written, accepted)
	}
}

func TestBestEffortDropsWithoutBlocking(t *testing.T) {
	s, release := stalledStore(t, BestEffort)
	start := time.Now()
	for i := 1; i < 1001; i++ {
		if err := s.Emit(sampleEvent(i)); err != nil {
			t.Fatalf("best-effort Emit = %v", err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("1000 Emits on a full queue took %v: best-effort must not block", d)
	}
	st := s.Stats()
	if st.Dropped != 1000-8 || st.Queued != 1+8 || st.Refused != 0 {
		t.Fatalf("stats while stalled: %+v", st)
	}
	release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != 9 {
		t.Fatalf("written %d, want 9", st.Written)
	}
}

// Grouping: with a wide window, a burst is committed in few transactions.
func TestWriterGroupsCommits(t *testing.T) {
	var commits int
	s, _ := openTest(t, Options{
		FlushInterval: 200 * time.Millisecond,
		MaxBatch:      1000,
		beforeCommit:  func() { commits++ }, // only the writer goroutine touches it
	})
	emitN(t, s, 0, 3000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if commits > 4 {
		t.Fatalf("%d commits for a burst of 3000 events with MaxBatch 1000", commits)
	}
	if st := s.Stats(); st.LastCommitLag <= 0 || st.LastCommitSize == 0 {
		t.Fatalf("commit lag not recorded: %+v", st)
	}
}
