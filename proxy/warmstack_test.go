package proxy

import (
	"bytes"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// deepStack recurses n frames with a few hundred bytes each, so a fresh
// goroutine has to grow its stack to serve it.
//
//go:noinline
func deepStack(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return deepStack(n-1) + int(pad[n%256])
}

func newWarmTestServer(t *testing.T, log *slog.Logger, h http.Handler) (*httptest.Server, *warmPool) {
	t.Helper()
	p := newWarmPool(log)
	srv := httptest.NewUnstartedServer(p.handler(h))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // x/net logs the re-raised panics
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, p
}

// TestWarmPoolServesHTTP2OnReusedGoroutines: HTTP/2 requests run on the
// pool's goroutines, which are reused (a few workers serve many requests,
// each a new stream goroutine in x/net), and HTTP/1.1 requests run in
// place. The response is the handler's, whole.
func TestWarmPoolServesHTTP2OnReusedGoroutines(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = deepStack(100) // ~30 KiB of stack
		buf := make([]byte, 64)
		first := string(buf[:runtime.Stack(buf, false)])
		id, _, _ := strings.Cut(strings.TrimPrefix(first, "goroutine "), " ")
		onPool := bytes.Contains(stackOf(), []byte("(*warmPool).work"))
		mu.Lock()
		seen[id]++
		mu.Unlock()
		w.Header().Set("X-On-Pool", map[bool]string{true: "yes", false: "no"}[onPool])
		_, _ = io.WriteString(w, "hello "+r.Proto)
	})
	srv, p := newWarmTestServer(t, slog.New(slog.DiscardHandler), h)
	c := srv.Client()
	const n = 200
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < n/8; j++ {
				resp, err := c.Get(srv.URL)
				if err != nil {
					t.Error(err)
					bad.Add(1)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != 2 || string(body) != "hello HTTP/2.0" || resp.Header.Get("X-On-Pool") != "yes" {
					t.Errorf("HTTP/2 response %s %q on pool %q", resp.Proto, body, resp.Header.Get("X-On-Pool"))
					bad.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		return
	}
	mu.Lock()
	goroutines := len(seen)
	mu.Unlock()
	// A worker that has just answered may not be waiting again when its
	// client's next request comes, so a few more than 8 may start; what
	// matters is that they are reused.
	if w := int(p.workers.Load()); goroutines > w || w > n/4 {
		t.Errorf("%d requests ran on %d goroutines with %d workers, want a few reused workers", n, goroutines, w)
	}

	// HTTP/1.1: in place, on the connection's goroutine.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: c.Transport.(*http.Transport).TLSClientConfig.Clone()}}
	h1.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	defer h1.CloseIdleConnections()
	resp, err := h1.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 1 || string(body) != "hello HTTP/1.1" || resp.Header.Get("X-On-Pool") != "no" {
		t.Errorf("HTTP/1.1 response %s %q on pool %q", resp.Proto, body, resp.Header.Get("X-On-Pool"))
	}
}

func stackOf() []byte {
	buf := make([]byte, 64<<10)
	return buf[:runtime.Stack(buf, false)]
}

// TestWarmPoolPanics: a handler's panic is raised again on the stream's
// goroutine, so x/net does what it always did. http.ErrAbortHandler resets
// the stream quietly; any other panic resets it too and is logged with the
// stack where it happened. Goexit ends the stream as well. The worker of a
// panic keeps serving, and every case leaves the pool serving others.
func TestWarmPoolPanics(t *testing.T) {
	var logBuf bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logBuf}, nil))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/abort":
			panic(http.ErrAbortHandler)
		case "/boom":
			panic("boom in the handler")
		case "/goexit":
			runtime.Goexit()
		}
		_, _ = io.WriteString(w, "ok")
	})
	srv, p := newWarmTestServer(t, log, h)
	c := srv.Client()
	for _, path := range []string{"/abort", "/boom", "/goexit", "/abort"} {
		resp, err := c.Get(srv.URL + path)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil {
				t.Errorf("%s: got %s %q, want the stream reset", path, resp.Status, body)
			}
		}
		resp, err = c.Get(srv.URL + "/")
		if err != nil {
			t.Fatalf("after %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ok" {
			t.Fatalf("after %s: %q", path, body)
		}
	}
	logMu.Lock()
	logged := logBuf.String()
	logMu.Unlock()
	if !strings.Contains(logged, "boom in the handler") || !strings.Contains(logged, "TestWarmPoolPanics") {
		t.Errorf("the panic's log lacks its value or the handler's stack:\n%s", logged)
	}
	if strings.Contains(logged, "abort Handler") {
		t.Errorf("http.ErrAbortHandler was logged:\n%s", logged)
	}
	// Goexit took its worker with it and the count says so.
	if w := p.workers.Load(); w < 1 || w > 8 {
		t.Errorf("%d workers after the panics", w)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestWarmPoolFullRunsInPlace: with every worker busy a request is served
// on its own goroutine at once, never queued behind the others.
func TestWarmPoolFullRunsInPlace(t *testing.T) {
	p := newWarmPool(slog.New(slog.DiscardHandler))
	p.workers.Store(warmMaxWorkers) // as if all were busy
	ran := make(chan bool, 1)
	h := p.handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran <- bytes.Contains(stackOf(), []byte("(*warmPool).work"))
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.ProtoMajor, r.ProtoMinor, r.Proto = 2, 0, "HTTP/2.0"
	done := make(chan struct{})
	go func() { h.ServeHTTP(httptest.NewRecorder(), r); close(done) }()
	select {
	case onPool := <-ran:
		if onPool {
			t.Error("served on a pool worker past the limit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a request waited for a worker")
	}
	<-done
	if p.workers.Load() != warmMaxWorkers {
		t.Errorf("workers %d, want the count untouched", p.workers.Load())
	}
}

// BenchmarkWarmPool is the pool's hand-off against a fresh goroutine
// growing its stack to the pipeline's depth, as x/net's stream goroutines
// did.
func BenchmarkWarmPool(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = deepStack(60) })
	r := httptest.NewRequest("GET", "/", nil)
	r.ProtoMajor = 2
	b.Run("fresh-goroutine", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				done := make(chan struct{})
				go func() { h.ServeHTTP(nil, r); close(done) }()
				<-done
			}
		})
	})
	b.Run("warm-pool", func(b *testing.B) {
		p := newWarmPool(slog.New(slog.DiscardHandler))
		wh := p.handler(h)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				done := make(chan struct{})
				go func() { wh.ServeHTTP(nil, r); close(done) }()
				<-done
			}
		})
	})
}

// TestWarmPoolClose: closing the pool ends its idle workers, and a request
// after that is served in place.
func TestWarmPoolClose(t *testing.T) {
	p := newWarmPool(slog.New(slog.DiscardHandler))
	onPool := make(chan bool, 1)
	h := p.handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		onPool <- bytes.Contains(stackOf(), []byte("(*warmPool).work"))
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.ProtoMajor, r.ProtoMinor, r.Proto = 2, 0, "HTTP/2.0"
	h.ServeHTTP(httptest.NewRecorder(), r)
	if !<-onPool || p.workers.Load() != 1 {
		t.Fatalf("first request: not on the pool, or %d workers", p.workers.Load())
	}
	p.close()
	p.close() // twice is harmless
	for deadline := time.Now().Add(5 * time.Second); p.workers.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers 5 s after close", p.workers.Load())
		}
	}
	h.ServeHTTP(httptest.NewRecorder(), r)
	if <-onPool {
		t.Error("served on a pool worker after close")
	}
	var nilPool *warmPool
	nilPool.close()
}
