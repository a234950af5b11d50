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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

// monitorLabDownloads makes every /files/ request to the lab origin an
// activity (a matched policy, action monitor) while the rest stays plain.
const monitorLabDownloads = `session_policies:
  - id: watch-lab-downloads
    filters:
      apps: [origin-lab]
      # The test drives native clients (Go, curl): a policy without
      # client_apps would apply to browsers only.
      client_apps: [browser, mobile_desktop]
    control: block_activities
    activities: [download_file]
    action: monitor
`

// lostPlainBound is what the test allows between a plain response's end
// and the SIGKILL that lost its event: the 20 ms linger (holdWindow) plus
// the group commit in progress, with room for a 2-core machine shared with
// other jobs.
const lostPlainBound = 500 * time.Millisecond

// TestE2EDurabilityUnderSIGKILL sends a mix of activities (monitored
// downloads) and plain requests through the proxy while the appliance is
// killed with SIGKILL at random moments and restarted, under the default
// hold_responses: activities. It proves the README's rule: every activity
// response a client received in full has exactly one event (after
// de-duplication by event id); a plain response has at most one, and one
// whose event is missing ended less than lostPlainBound before a kill (the
// window its event may spend in memory).
func TestE2EDurabilityUnderSIGKILL(t *testing.T) {
	total := 100000
	if testing.Short() {
		total = 10000
	}
	l := newE2ELab(t, "transparent:\n  enabled: false\n")
	polDir := filepath.Join(l.dir, "policies")
	if err := os.MkdirAll(polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(polDir, "monitor.yaml"), []byte(monitorLabDownloads), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(l.cfgPath)
	if err := os.WriteFile(l.cfgPath, append(b, "policy:\n  dir: "+polDir+"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	l.start()

	var (
		completed sync.Map // path -> time the response was received in full
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
				path := fmt.Sprintf("/r/%d-%d", w, seq) // plain
				if seq%2 == 0 {
					path = fmt.Sprintf("/files/%d-%d.txt", w, seq) // an activity
				}
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
				completed.Store(path, time.Now())
				done.Add(1)
			}
		}()
	}

	var killedAt []time.Time
	for done.Load() < int64(total) && time.Now().Before(deadline) {
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		if done.Load() >= int64(total) {
			break
		}
		killedAt = append(killedAt, time.Now())
		l.stop(syscall.SIGKILL)
		l.start()
	}
	kills := len(killedAt)
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
	monitored := map[string]bool{}         // path -> its event is the policy's
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
			monitored[ev.Path] = ev.Action == "monitor" && len(ev.Policies) > 0
		}
		if err := st.Advance("durability-test", evs[len(evs)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	var (
		activities, plain, missing, duplicated, unmonitored, lostPlain, lostLate int
		example                                                                  string
		maxGap                                                                   time.Duration
	)
	completed.Range(func(k, v any) bool {
		path, at := k.(string), v.(time.Time)
		activity := strings.HasPrefix(path, "/files/")
		n := len(events[path])
		switch {
		case n > 1:
			duplicated++
			example = path
		case n == 1 && activity && !monitored[path]:
			unmonitored++
			example = path
		case n == 0 && activity:
			missing++
			example = path
		case n == 0:
			// A plain event may be lost only if its response ended within
			// the window before a kill.
			lostPlain++
			gap := time.Duration(1<<63 - 1)
			for _, k := range killedAt {
				if k.After(at) && k.Sub(at) < gap {
					gap = k.Sub(at)
				}
			}
			maxGap = max(maxGap, gap)
			if gap > lostPlainBound {
				lostLate++
				example = path
			}
		}
		if activity {
			activities++
		} else {
			plain++
		}
		return true
	})
	t.Logf("%d responses received (%d activities, %d plain), %d attempts cut short, %d SIGKILLs; "+
		"plain events lost: %d (%.3f%%, at most %v before a kill)",
		done.Load(), activities, plain, failures.Load(), kills, lostPlain, 100*float64(lostPlain)/float64(max(plain, 1)), maxGap)
	if missing > 0 || duplicated > 0 || unmonitored > 0 {
		t.Fatalf("%d received activity responses without an event, %d responses with more than one, %d activity events not the policy's (e.g. %s)",
			missing, duplicated, unmonitored, example)
	}
	if lostLate > 0 {
		t.Fatalf("%d plain events lost whose responses ended more than %v before any kill (e.g. %s)", lostLate, lostPlainBound, example)
	}
	if kills < 3 {
		t.Fatalf("only %d kills: the test did not exercise crashes", kills)
	}
	_ = os.Remove(filepath.Join(l.dir, "access.log"))
}
