package scan

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/scanners"
)

func newICAP(t testing.TB, cfg ICAPConfig) *ICAP {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	c, err := NewICAP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// simpleMode makes c-icap's virus_scan answer only once the scan is done
// (service arguments in the ICAP URL's query). In its default mode it may
// start sending the response back before the end of a file arrives, and
// then it can only cut the body short when the file is infected.
const simpleMode = "?mode=simple&sizelimit=off"

// TestICAPVirusScan scans the samples through c-icap's virus_scan service
// (backed by a clamd with the test signatures), in both modes, with and
// without preview and 204, with the size known and unknown.
func TestICAPVirusScan(t *testing.T) {
	base := scanners.StartICAP(t)
	o, err := newICAP(t, ICAPConfig{URL: base + "/" + scanners.ServiceVirusScan + simpleMode}).Options(background)
	if err != nil {
		t.Fatal(err)
	}
	if o.Preview < 0 || !o.Allow204 || o.ISTag == "" || !strings.Contains(strings.Join(o.Methods, ","), "RESPMOD") {
		t.Fatalf("virus_scan OPTIONS: %+v", o)
	}
	for _, mode := range []string{"respmod", "reqmod"} {
		for _, variant := range []struct {
			name     string
			preview  int
			allow204 bool
		}{{"preview+204", 0, true}, {"preview", 0, false}, {"204", -1, true}, {"plain", -1, false}, {"preview 10", 10, true}} {
			c := newICAP(t, ICAPConfig{URL: base + "/" + scanners.ServiceVirusScan + simpleMode, Mode: mode, Preview: variant.preview, Allow204: variant.allow204})
			for _, s := range samples(t) {
				t.Run(fmt.Sprintf("%s/%s/%s", mode, variant.name, s.name), func(t *testing.T) {
					v, err := c.Scan(background, bytes.NewReader(s.data), int64(len(s.data)), s.name)
					checkVerdict(t, s, "icap", v, err)
					v, err = c.Scan(background, unknownSize{bytes.NewReader(s.data)}, -1, s.name)
					checkVerdict(t, s, "icap", v, err)
				})
			}
		}
	}
}

// TestICAPVirusScanStreaming: in virus_scan's default mode a large
// infected file comes back as the original response with its body cut
// short, without naming the threat. That is a replaced message, so
// infected.
func TestICAPVirusScanStreaming(t *testing.T) {
	base := scanners.StartICAP(t)
	for _, allow204 := range []bool{false, true} {
		c := newICAP(t, ICAPConfig{URL: base + "/" + scanners.ServiceVirusScan, Allow204: allow204})
		for _, s := range samples(t) {
			t.Run(fmt.Sprintf("204=%v/%s", allow204, s.name), func(t *testing.T) {
				v, err := c.Scan(background, bytes.NewReader(s.data), int64(len(s.data)), s.name)
				if err != nil {
					t.Fatal(err)
				}
				// Whether c-icap had started answering decides between the
				// name and none; either way the file is infected.
				if v.Infected != (s.signature != "") || v.Infected && v.Signature != s.signature && v.Signature != UnnamedThreat {
					t.Fatalf("%+v, want signature %q", v, s.signature)
				}
			})
		}
	}
}

// TestICAPEcho: the echo service sends every message back unchanged (or
// answers 204 when allowed), which is clean however large the file.
func TestICAPEcho(t *testing.T) {
	base := scanners.StartICAP(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for _, mode := range []string{"respmod", "reqmod"} {
		for _, allow204 := range []bool{false, true} {
			for _, preview := range []int{0, -1} {
				c := newICAP(t, ICAPConfig{URL: base + "/" + scanners.ServiceEcho, Mode: mode, Allow204: allow204, Preview: preview})
				for _, data := range [][]byte{nil, []byte("small"), big, scanners.EICAR()} {
					name := fmt.Sprintf("%s/204=%v/preview=%d/%d", mode, allow204, preview, len(data))
					t.Run(name, func(t *testing.T) {
						v, err := c.Scan(background, bytes.NewReader(data), int64(len(data)), "f")
						if err != nil || v != (Verdict{Scanner: "icap"}) {
							t.Fatalf("%+v, %v", v, err)
						}
					})
				}
			}
		}
	}
}

func TestICAPUnknownService(t *testing.T) {
	base := scanners.StartICAP(t)
	c := newICAP(t, ICAPConfig{URL: base + "/no-such-service"})
	_, err := c.Scan(background, strings.NewReader("x"), 1, "x")
	wantErr(t, err, ErrScanner)
}

func TestICAPConcurrent(t *testing.T) {
	base := scanners.StartICAP(t)
	c := newICAP(t, ICAPConfig{URL: base + "/" + scanners.ServiceVirusScan + simpleMode, Allow204: true})
	all := samples(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 24 {
		s := all[i%len(all)]
		wg.Go(func() {
			v, err := c.Scan(background, bytes.NewReader(s.data), int64(len(s.data)), s.name)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", s.name, err)
			} else if v.Signature != s.signature || v.Infected != (s.signature != "") {
				errs <- fmt.Errorf("%s: %+v", s.name, v)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestICAPDownAndHanging(t *testing.T) {
	down := newICAP(t, ICAPConfig{URL: "icap://127.0.0.1:1/avscan", Timeout: 5 * time.Second})
	err := within(t, time.Second, func() error {
		_, err := down.Scan(background, strings.NewReader("x"), 1, "x")
		return err
	})
	wantErr(t, err, ErrUnavailable)

	addr := hangingListener(t, "tcp")
	hang := newICAP(t, ICAPConfig{URL: "icap://" + addr + "/avscan", Timeout: 300 * time.Millisecond})
	err = within(t, 2*time.Second, func() error {
		_, err := hang.Scan(background, strings.NewReader("x"), 1, "x")
		return err
	})
	wantErr(t, err, ErrTimeout)
	ctx, cancel := context.WithCancel(background)
	time.AfterFunc(100*time.Millisecond, cancel)
	slow := newICAP(t, ICAPConfig{URL: "icap://" + addr + "/avscan", Timeout: time.Minute})
	err = within(t, 2*time.Second, func() error {
		_, err := slow.Scan(ctx, strings.NewReader("x"), 1, "x")
		return err
	})
	wantErr(t, err, context.Canceled)
}
