package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/scanners"
)

// stubScanner answers every scan with verdict or err, after release is
// closed when it is set, and counts the scans.
type stubScanner struct {
	calls   atomic.Int32
	verdict Verdict
	err     error
	started chan struct{} // receives one value per scan, when set
	release chan struct{}
}

func (s *stubScanner) Name() string { return "stub" }

func (s *stubScanner) Scan(ctx context.Context, r io.Reader, size int64, name string) (Verdict, error) {
	s.calls.Add(1)
	if s.started != nil {
		s.started <- struct{}{}
	}
	if s.release != nil {
		select {
		case <-s.release:
		case <-ctx.Done():
			return Verdict{}, ctx.Err()
		}
	}
	io.Copy(io.Discard, r)
	return s.verdict, s.err
}

func digestOf(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func scanDigest(c *Cached, s string) (Verdict, error) {
	return c.ScanDigest(background, digestOf(s), bytes.NewReader([]byte(s)), int64(len(s)), "f")
}

func TestCacheHit(t *testing.T) {
	stub := &stubScanner{verdict: Verdict{Infected: true, Signature: "X", Scanner: "stub"}}
	c := NewCache(stub, 10, time.Minute)
	v, err := scanDigest(c, "a")
	if err != nil || v.Cached || !v.Infected {
		t.Fatalf("first scan: %+v, %v", v, err)
	}
	// The hit must not touch the reader either.
	v, err = c.ScanDigest(background, digestOf("a"), iotestErrReader{}, 1, "f")
	if err != nil || !v.Cached || v.Signature != "X" || v.Scanner != "stub" {
		t.Fatalf("second scan: %+v, %v", v, err)
	}
	if n := stub.calls.Load(); n != 1 {
		t.Fatalf("scanner called %d times, want 1", n)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) {
	return 0, errors.New("the reader of a cached file was read")
}

func TestCacheErrorsNotKept(t *testing.T) {
	stub := &stubScanner{err: ErrUnavailable}
	c := NewCache(stub, 10, time.Minute)
	for range 3 {
		if _, err := scanDigest(c, "a"); !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
	}
	if n := stub.calls.Load(); n != 3 || c.Len() != 0 {
		t.Fatalf("%d scans, %d kept; want 3 and 0", n, c.Len())
	}
}

func TestCacheTTL(t *testing.T) {
	stub := &stubScanner{verdict: Verdict{Scanner: "stub"}}
	c := NewCache(stub, 10, time.Minute)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	scanDigest(c, "a")
	now = now.Add(59 * time.Second)
	if v, _ := scanDigest(c, "a"); !v.Cached {
		t.Fatal("verdict gone before its TTL")
	}
	now = now.Add(time.Second)
	if v, _ := scanDigest(c, "a"); v.Cached {
		t.Fatal("verdict kept past its TTL")
	}
	if n := stub.calls.Load(); n != 2 {
		t.Fatalf("%d scans, want 2", n)
	}
}

func TestCacheLRU(t *testing.T) {
	stub := &stubScanner{verdict: Verdict{Scanner: "stub"}}
	c := NewCache(stub, 2, time.Minute)
	scanDigest(c, "a")
	scanDigest(c, "b")
	scanDigest(c, "a") // a is now the newest
	scanDigest(c, "c") // drops b
	if c.Len() != 2 {
		t.Fatalf("%d entries, want 2", c.Len())
	}
	before := stub.calls.Load()
	if v, _ := scanDigest(c, "a"); !v.Cached {
		t.Error("a was used last but dropped")
	}
	if v, _ := scanDigest(c, "b"); v.Cached {
		t.Error("b was the oldest but kept")
	}
	if got := stub.calls.Load() - before; got != 1 {
		t.Errorf("%d scans, want 1", got)
	}
}

func TestCacheDisabled(t *testing.T) {
	for _, c := range []*Cached{NewCache(&stubScanner{}, 0, time.Minute), NewCache(&stubScanner{}, 10, 0)} {
		scanDigest(c, "a")
		if v, _ := scanDigest(c, "a"); v.Cached || c.Len() != 0 {
			t.Fatalf("kept a verdict: %+v, %d", v, c.Len())
		}
	}
}

// TestCacheSingleflight: concurrent scans of one digest make one scan,
// and the others get its verdict marked Cached. Nothing is kept, so only
// the sharing of the scan in flight can give them that.
func TestCacheSingleflight(t *testing.T) {
	stub := &stubScanner{verdict: Verdict{Scanner: "stub"}, started: make(chan struct{}, 100), release: make(chan struct{})}
	c := NewCache(stub, 0, time.Minute)
	var wg sync.WaitGroup
	var cached atomic.Int32
	for range 20 {
		wg.Go(func() {
			v, err := scanDigest(c, "same")
			if err != nil {
				t.Error(err)
			}
			if v.Cached {
				cached.Add(1)
			}
		})
	}
	<-stub.started
	for deadline := time.Now().Add(10 * time.Second); waiters(c, "same") < 19; {
		if time.Now().After(deadline) {
			t.Fatalf("%d callers waiting for the scan in flight, want 19", waiters(c, "same"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stub.release)
	wg.Wait()
	if n := stub.calls.Load(); n != 1 || cached.Load() != 19 {
		t.Fatalf("%d scans, %d shared verdicts; want 1 and 19", n, cached.Load())
	}
}

func waiters(c *Cached, s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.flights[digestOf(s)]; f != nil {
		return f.waiters
	}
	return 0
}

// TestCacheLeaderCancelled: when the scan in flight fails because its own
// caller gave up, a waiter scans the file itself instead of taking that
// error; other errors are shared.
func TestCacheLeaderCancelled(t *testing.T) {
	stub := &stubScanner{verdict: Verdict{Scanner: "stub"}, started: make(chan struct{}, 10), release: make(chan struct{})}
	c := NewCache(stub, 10, time.Minute)
	ctx, cancel := context.WithCancel(background)
	leader := make(chan error, 1)
	go func() {
		_, err := c.ScanDigest(ctx, digestOf("x"), bytes.NewReader([]byte("x")), 1, "f")
		leader <- err
	}()
	<-stub.started
	follower := make(chan Verdict, 1)
	go func() {
		v, err := scanDigest(c, "x")
		if err != nil {
			t.Error(err)
		}
		follower <- v
	}()
	for waiters(c, "x") == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v", err)
	}
	<-stub.started // the follower's own scan
	close(stub.release)
	if v := <-follower; v.Cached {
		t.Fatalf("follower: %+v, want its own scan", v)
	}

	// Errors other than the scanning caller's own context are shared.
	failing := &stubScanner{err: ErrTimeout, started: make(chan struct{}, 10), release: make(chan struct{})}
	c = NewCache(failing, 10, time.Minute)
	first := make(chan error, 1)
	go func() { _, err := scanDigest(c, "z"); first <- err }()
	<-failing.started
	second := make(chan error, 1)
	go func() { _, err := scanDigest(c, "z"); second <- err }()
	for waiters(c, "z") == 0 {
		time.Sleep(time.Millisecond)
	}
	close(failing.release)
	wantErr(t, <-first, ErrTimeout)
	wantErr(t, <-second, ErrTimeout)
	if n := failing.calls.Load(); n != 1 {
		t.Fatalf("%d scans, want 1", n)
	}

	// A waiter whose own context ends stops waiting.
	block := &stubScanner{verdict: Verdict{Scanner: "stub"}, started: make(chan struct{}, 10), release: make(chan struct{})}
	defer close(block.release)
	c = NewCache(block, 10, time.Minute)
	go scanDigest(c, "y")
	<-block.started
	wctx, wcancel := context.WithTimeout(background, 50*time.Millisecond)
	defer wcancel()
	_, err := c.ScanDigest(wctx, digestOf("y"), bytes.NewReader([]byte("y")), 1, "f")
	wantErr(t, err, context.DeadlineExceeded)
}

// TestCacheClamd: the cache in front of a real clamd.
func TestCacheClamd(t *testing.T) {
	sock := scanners.StartClamd(t)
	c := NewCache(newClamd(t, ClamdConfig{Network: "unix", Address: sock, Timeout: 10 * time.Second}), 100, time.Minute)
	eicar := scanners.EICAR()
	d := sha256.Sum256(eicar)
	v, err := c.ScanDigest(background, d, bytes.NewReader(eicar), int64(len(eicar)), "eicar.com")
	if err != nil || v.Cached || v.Signature != scanners.SigEICAR {
		t.Fatalf("first: %+v, %v", v, err)
	}
	v, err = c.ScanDigest(background, d, iotestErrReader{}, int64(len(eicar)), "eicar.com")
	if err != nil || !v.Cached || v.Signature != scanners.SigEICAR || v.Scanner != "clamd" {
		t.Fatalf("second: %+v, %v", v, err)
	}
}
