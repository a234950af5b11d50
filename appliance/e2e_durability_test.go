package appliance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// TestE2EDurabilityUnderSIGKILL sends requests through the proxy while the
// appliance is killed with SIGKILL at random moments and restarted. Every
// response a client received in full must have exactly one activity event
// (after de-duplication by event id): audit-strict holds the end of each
// response until its event is durable.
func TestE2EDurabilityUnderSIGKILL(t *testing.T) {
	total := 100000
	if testing.Short() {
		total = 10000
	}
	l := newE2ELab(t, "transparent:\n  enabled: false\n")
	l.start()

	var (
		completed sync.Map // path -> struct{}
		done      atomic.Int64
		failures  atomic.Int64
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	const workers = 16
	deadline := time.Now().Add(6 * time.Minute)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				if done.Load() >= int64(total) || time.Now().After(deadline) {
					return
				}
				if conn == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					c, err := l.Client.Dial(ctx, "tcp", "198.18.1.1:3128")
					cancel()
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					conn, br = c, bufio.NewReader(c)
				}
				path := fmt.Sprintf("/r/%d-%d", w, seq)
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				_, err := fmt.Fprintf(conn, "GET http://origin.lab%s HTTP/1.1\r\nHost: origin.lab\r\n\r\n", path)
				var resp *http.Response
				if err == nil {
					resp, err = http.ReadResponse(br, nil)
				}
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					// The connection died with the appliance (or was refused
					// while it restarted): this response was not received.
					failures.Add(1)
					conn.Close()
					conn = nil
					continue
				}
				completed.Store(path, struct{}{})
				done.Add(1)
			}
		}()
	}

	kills := 0
	for done.Load() < int64(total) && time.Now().Before(deadline) {
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		if done.Load() >= int64(total) {
			break
		}
		l.stop(syscall.SIGKILL)
		kills++
		l.start()
	}
	close(stop)
	wg.Wait()
	l.stop(syscall.SIGTERM)
	if got := done.Load(); got < int64(total) {
		t.Fatalf("only %d of %d requests completed before the deadline (%d kills)", got, total, kills)
	}

	st, err := activity.Open(filepath.Join(l.dir, "state", "activity.db"), activity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	events := map[string]map[string]bool{} // path -> distinct event ids
	for {
		evs, err := st.ReadAfter("durability-test", 5000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if ev.Method == "" {
				continue
			}
			if events[ev.Path] == nil {
				events[ev.Path] = map[string]bool{}
			}
			events[ev.Path][ev.ID.String()] = true
		}
		if err := st.Advance("durability-test", evs[len(evs)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	var missing, duplicated int
	var example string
	completed.Range(func(k, _ any) bool {
		switch n := len(events[k.(string)]); {
		case n == 0:
			missing++
			example = k.(string)
		case n > 1:
			duplicated++
			example = k.(string)
		}
		return true
	})
	t.Logf("%d responses received, %d attempts cut short, %d SIGKILLs, %d distinct request paths in the store",
		done.Load(), failures.Load(), kills, len(events))
	if missing > 0 || duplicated > 0 {
		t.Fatalf("%d received responses without an event, %d with more than one (e.g. %s)", missing, duplicated, example)
	}
	if kills < 3 {
		t.Fatalf("only %d kills: the test did not exercise crashes", kills)
	}
	_ = os.Remove(filepath.Join(l.dir, "access.log"))
}
