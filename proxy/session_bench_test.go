package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
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
`

// BenchmarkDownloadPolicies: a 4 MiB download through the proxy under each
// kind of policy, as a ratio against the same download with no session
// policy measured in the same run (speed_vs_nopolicy). Targets: monitor +
// DLP ≥ 0.6, monitor + malware scan ≥ 0.4.
func BenchmarkDownloadPolicies(b *testing.B) {
	body := bytes.Repeat([]byte("lorem ipsum dolor sit amet 12345 consectetur\n"), 4<<20/45)
	sh := newSessionHarness(b, benchPolicies, false, func(sc *SessionConfig) { sc.Scanner = readingScanner{} })
	sh.srv.cfg.HoldForRecord = false
	sh.srv.durable = nil
	policies := sh.engine.Load()
	none := compilePolicies(b, "")
	for _, name := range []string{"plain.txt", "watched-4m.txt", "secret-4m.txt", "mscan-4m.txt"} {
		sh.origin.put("/files/"+name, "text/plain", "attachment", body)
	}
	c := sh.client(sh.dest, false)
	fetch := func(name string) {
		resp, err := c.Get("https://origin.lab/files/" + name)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != int64(len(body)) {
			b.Fatalf("%s: %d bytes", name, n)
		}
	}
	for _, tc := range []struct{ name, file string }{
		{"monitor_dlp", "watched-4m.txt"}, {"block_dlp_held", "secret-4m.txt"}, {"monitor_malware_scan", "mscan-4m.txt"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// Baseline and policy downloads alternate, so load from other
			// processes on the machine hits both alike.
			var base, pol time.Duration
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				sh.engine.Store(none)
				t0 := time.Now()
				fetch("plain.txt")
				sh.engine.Store(policies)
				t1 := time.Now()
				fetch(tc.file)
				base, pol = base+t1.Sub(t0), pol+time.Since(t1)
			}
			b.ReportMetric(float64(base)/float64(pol), "speed_vs_nopolicy")
			b.ReportMetric(float64(pol.Nanoseconds())/float64(b.N), "policy_ns/op")
		})
	}
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
