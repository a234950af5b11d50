package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
)

// BenchmarkSessionCheckUncovered is what session enforcement costs a
// request no session policy covers: the engine load and the host lookup.
// Budget: 2 µs.
func BenchmarkSessionCheckUncovered(b *testing.B) {
	e := compilePolicies(b, sessionPolicies)
	var p atomic.Pointer[policy.Engine]
	p.Store(e)
	s := &Server{cfg: Config{Session: &SessionConfig{Engine: p.Load}}}
	if err := s.initSession(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.sessionCovered("www.example.org") != nil {
				b.Fatal("covered")
			}
		}
	})
}

// scanningScanner reads every byte, as a real scanner does, and finds
// nothing.
type readingScanner struct{}

func (readingScanner) Scan(ctx context.Context, r io.Reader, size int64, name string) (bool, string, error) {
	_, err := io.Copy(io.Discard, r)
	return false, "", err
}

const benchPolicies = sessionPolicies + `
  - {id: dl-scan-monitor, filters: {apps: [origin-lab]}, control: download, files: {names: ["mscan-*"]}, malware: true, action: monitor}
  - {id: dl-hold-only, filters: {apps: [origin-lab]}, control: download, files: {names: ["hold-*"]}, action: protect, protect: {label: Confidential, unsupported: allow}}
`

// BenchmarkDownloadPolicies: a 4 MiB download through the proxy under each
// kind of policy, as a ratio against the same download with no session
// policy measured in the same run (speed_vs_nopolicy: the median baseline
// download time over the median policy download time, the two alternating).
// Two bodies: "prose", English text with a number now and then (the typical
// document), and "digits", a number every 45 bytes (the worst case for the
// detectors). Targets: monitor + DLP ≥ 0.6, monitor + malware scan ≥ 0.4.
func BenchmarkDownloadPolicies(b *testing.B) {
	sh := newSessionHarness(b, benchPolicies, false, func(sc *SessionConfig) { sc.Scanner = readingScanner{} })
	sh.srv.cfg.HoldForRecord = false
	sh.srv.durable = nil
	policies := sh.engine.Load()
	none := compilePolicies(b, "")
	c := sh.client(sh.dest, false)
	for _, body := range []struct {
		name string
		data []byte
	}{
		{"prose", proseBody(4<<20, 0)},
		{"digits", bytes.Repeat([]byte("lorem ipsum dolor sit amet 12345 consectetur\n"), 4<<20/45)},
	} {
		for _, name := range []string{"plain.txt", "watched-4m.txt", "secret-4m.txt", "mscan-4m.txt"} {
			sh.origin.put("/files/"+name, "text/plain", "attachment", body.data)
		}
		for _, tc := range []struct{ name, file string }{
			{"monitor_dlp", "watched-4m.txt"}, {"block_dlp_held", "secret-4m.txt"}, {"monitor_malware_scan", "mscan-4m.txt"},
		} {
			b.Run(body.name+"/"+tc.name, func(b *testing.B) {
				b.SetBytes(int64(len(body.data)))
				base, pol := alternate(b, sh, none, policies, c, "plain.txt", tc.file, len(body.data))
				b.ReportMetric(float64(base)/float64(pol), "speed_vs_nopolicy")
				b.ReportMetric(float64(pol.Nanoseconds()), "policy_ns/op")
				b.ReportMetric(float64(base.Nanoseconds()), "nopolicy_ns/op")
			})
		}
	}
}

// alternate downloads baseFile with the engine none and polFile with
// policies in turn, b.N times each, so that load from other processes on
// the machine hits both alike, and returns the median time of each.
func alternate(b *testing.B, sh *sessionHarness, none, policies *policy.Engine, c *http.Client, baseFile, polFile string, size int) (base, pol time.Duration) {
	m := alternateRuns(b, sh, c, size, transfer{none, baseFile}, transfer{policies, polFile})
	return m[0], m[1]
}

// transfer is one download of a benchmark: the file under an engine.
type transfer struct {
	engine *policy.Engine
	file   string
}

// alternateRuns downloads every transfer in turn, b.N rounds, and returns
// the median time of each.
func alternateRuns(b *testing.B, sh *sessionHarness, c *http.Client, size int, runs ...transfer) []time.Duration {
	fetch := func(name string) {
		resp, err := c.Get("https://origin.lab/files/" + name)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != int64(size) {
			b.Fatalf("%s: %d bytes", name, n)
		}
	}
	times := make([][]time.Duration, len(runs))
	round := 0
	for b.Loop() {
		// The order turns every round, so no transfer always pays for the
		// garbage of the one before it.
		for k := range runs {
			i := (k + round) % len(runs)
			r := runs[i]
			sh.engine.Store(r.engine)
			t0 := time.Now()
			fetch(r.file)
			times[i] = append(times[i], time.Since(t0))
		}
		round++
	}
	out := make([]time.Duration, len(runs))
	for i := range runs {
		out[i] = median(times[i])
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// vmRSS is the process's resident set in bytes.
func vmRSS(t testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// A 1 GiB download streams through a monitor + DLP policy, and through a
// held block + DLP policy past the inspection limit (whose oversize
// default here lets it through: spool to disk, then the rest streamed),
// with the resident set growing by at most 64 MiB.
func TestSessionLargeDownloadsBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB through the proxy twice")
	}
	sh := newSessionHarness(t, "settings: {max_inspection_size: 16MiB, oversize_file: allow}\n"+sessionPolicies, false, nil)
	c := sh.client(sh.dest, false)
	const size = 1 << 30
	for _, name := range []string{"watched-big.txt", "secret-big.txt"} {
		before := vmRSS(t)
		var peak atomic.Int64
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
					if r := vmRSS(t); r > peak.Load() {
						peak.Store(r)
					}
				}
			}
		}()
		c.Timeout = 5 * time.Minute
		resp, err := c.Get("https://origin.lab/gen/x?n=" + strconv.Itoa(size) + "&name=" + name)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		close(stop)
		if err != nil || n != size {
			t.Fatalf("%s: %d bytes, %v", name, n, err)
		}
		growth := peak.Load() - before
		t.Logf("%s: RSS %d MiB before, peak growth %d MiB", name, before>>20, growth>>20)
		if growth > 64<<20 {
			t.Errorf("%s: RSS grew by %d MiB", name, growth>>20)
		}
		rec := sh.recs.find(t, "GET", "/gen/x")
		if name == "secret-big.txt" && rec.Inspection != policy.InspectionTooLarge {
			t.Errorf("held over the limit: inspection %v", rec.Inspection)
		}
		if name == "watched-big.txt" && rec.Inspection != policy.InspectionDone {
			t.Errorf("streamed: inspection %v", rec.Inspection)
		}
	}
	if sh.srv.SessionStats().Held.Load() == 0 || sh.srv.SessionStats().Streamed.Load() == 0 {
		t.Error("held/streamed not counted")
	}
	_ = http.StatusOK
}
