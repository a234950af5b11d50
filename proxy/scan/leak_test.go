package scan

import (
	"bytes"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNoGoroutineLeak runs the failing and early-ending paths and checks
// that every goroutine they started has ended.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("paths", func(t *testing.T) {
		hang := hangingListener(t, "tcp")
		early := startFake(t, fakeOptions, func(r *fakeRequest) {
			r.reply("ICAP/1.0 200 OK\r\nX-Virus-ID: Early\r\nEncapsulated: null-body=0\r\n\r\n")
		})
		continueThenDrop := startFake(t, fakeOptions, func(r *fakeRequest) {
			r.readHTTPHeaders()
			r.readBody()
			r.reply("ICAP/1.0 100 Continue\r\n\r\n")
		})
		big := bytes.Repeat([]byte{'x'}, 8<<20)
		scans := []Scanner{
			newClamd(t, ClamdConfig{Network: "tcp", Address: hang, Timeout: 200 * time.Millisecond, MaxConns: 1}),
			newICAP(t, ICAPConfig{URL: "icap://" + hang + "/s", Timeout: 200 * time.Millisecond}),
			newICAP(t, ICAPConfig{URL: early.url, Timeout: 2 * time.Second, Preview: -1}),
			newICAP(t, ICAPConfig{URL: early.url, Timeout: 2 * time.Second}),
			newICAP(t, ICAPConfig{URL: continueThenDrop.url, Timeout: 2 * time.Second}),
		}
		var wg sync.WaitGroup
		for _, s := range scans {
			for range 3 {
				wg.Go(func() { s.Scan(background, bytes.NewReader(big), int64(len(big)), "f") })
				wg.Go(func() { s.Scan(background, strings.NewReader("small"), 5, "f") })
			}
		}
		wg.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
