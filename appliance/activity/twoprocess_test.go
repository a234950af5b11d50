package activity

import (
	"sync"
	"testing"
	"time"
)

// A second Store on the same file (what `portcullis activity search` opened
// beside the running daemon before it used OpenReader; any second owner
// still can) writes its alert summaries and alerts while the first one
// group-commits events: every write waits for the lock instead of failing
// with SQLITE_BUSY, however the commits interleave. (Under -race the
// writer, slowed several times, holds the lock nearly always and the
// second owner's open can wait out the 10 s busy timeout: this package is
// not in make test's race run.)
func TestSecondStoreWritesBesideRunningWriter(t *testing.T) {
	daemon, path := openTest(t, Options{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = daemon.Emit(sampleEvent(i))
			if i%8 == 7 {
				time.Sleep(200 * time.Microsecond) // many small groups: many commits
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	start := daemon.Stats().Written
	deadline := time.Now().Add(2 * time.Second)
	rounds := 0
	for ; time.Now().Before(deadline); rounds++ {
		cli, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: open beside the writer: %v", rounds, err)
		}
		for j := range 5 {
			if _, err := cli.SummarizeAlerts(time.Now()); err != nil {
				t.Fatalf("round %d: summarize beside the writer: %v", rounds, err)
			}
			if _, err := cli.RaiseAlert(testAlert("p-busy", "alice", time.Now()), 1000); err != nil {
				t.Fatalf("round %d.%d: raise alert beside the writer: %v", rounds, j, err)
			}
		}
		if err := cli.Close(); err != nil {
			t.Fatalf("round %d: close: %v", rounds, err)
		}
	}
	if w := daemon.Stats().Written - start; w < 100 {
		t.Fatalf("the writer committed only %d events in %d rounds: nothing interleaved", w, rounds)
	}
	t.Logf("%d rounds, %d events committed meanwhile", rounds, daemon.Stats().Written-start)
}
