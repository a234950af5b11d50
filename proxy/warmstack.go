package proxy

import (
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// HTTP/2 handlers run on warm stacks.
//
// x/net's HTTP/2 server starts a goroutine for every stream, and a new
// goroutine starts with the runtime's smallest stack (2 KiB). The pipeline
// is deep (limits, session checks, the reverse proxy, the HTTP/2 client
// upstream, the recorder), so each stream's stack was grown, copy by copy,
// to 16–32 KiB and thrown away at the end: in the lab profile at 16
// connections × 10 streams, runtime.newstack and copystack were 10% of the
// appliance's CPU, about 15 µs per request. HTTP/1.1 never paid it: a
// connection's goroutine lives as long as the connection.
//
// warmHandler hands each HTTP/2 request to a goroutine of a pool whose
// stacks have already grown and serves it there while the stream's own
// goroutine waits: two goroutine switches instead of the copies. A panic
// in the handler (http.ErrAbortHandler above all) is carried back and
// raised again on the stream's goroutine, where x/net's server expects it.
// HTTP/1 requests are served in place (their goroutine is the
// connection's). With every worker busy, the request is served in place
// too, as before: the pool never queues.

const (
	// warmMaxWorkers bounds the pool: beyond it requests run on their own
	// goroutine. Far above what two cores keep busy, well below what the
	// stream limits allow in total.
	warmMaxWorkers = 512
	// warmIdle is how long a worker waits for work before it exits. The
	// runtime halves the stack of a parked worker at each GC, so a pool
	// kept after a burst costs little even before its workers exit.
	warmIdle = 30 * time.Second
)

type warmPool struct {
	jobs    chan *warmJob // unbuffered: a send succeeds only to a waiting worker
	workers atomic.Int32  // running, busy or idle
	log     *slog.Logger

	closeOnce sync.Once
	quit      chan struct{} // closed by close: idle workers end
	closed    atomic.Bool
}

type warmJob struct {
	h    http.Handler
	w    http.ResponseWriter
	r    *http.Request
	done chan warmResult // buffered 1
}

// warmResult is how the handler ended on the worker: normally, by a panic
// (its value), or by runtime.Goexit.
type warmResult struct {
	panicked bool
	value    any
	goexit   bool
}

var warmJobs = sync.Pool{New: func() any { return &warmJob{done: make(chan warmResult, 1)} }}

func newWarmPool(log *slog.Logger) *warmPool {
	return &warmPool{jobs: make(chan *warmJob), log: log, quit: make(chan struct{})}
}

// close ends the idle workers, and the busy ones when they finish; a
// request that comes later runs in place. The server closes its pool once
// its HTTP servers are done.
func (p *warmPool) close() {
	if p == nil {
		return
	}
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		close(p.quit)
	})
}

// handler wraps h so that its HTTP/2 requests run on the pool.
func (p *warmPool) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			h.ServeHTTP(w, r)
			return
		}
		j := warmJobs.Get().(*warmJob)
		j.h, j.w, j.r = h, w, r
		select {
		case p.jobs <- j:
		default:
			if !p.start(j) {
				j.h, j.w, j.r = nil, nil, nil
				warmJobs.Put(j)
				h.ServeHTTP(w, r)
				return
			}
		}
		res := <-j.done
		warmJobs.Put(j)
		switch {
		case res.goexit:
			runtime.Goexit()
		case res.panicked:
			panic(res.value)
		}
	})
}

// start runs a new worker with j as its first job, unless the pool is full.
func (p *warmPool) start(j *warmJob) bool {
	for {
		n := p.workers.Load()
		if n >= warmMaxWorkers || p.closed.Load() {
			return false
		}
		if p.workers.CompareAndSwap(n, n+1) {
			break
		}
	}
	go p.work(j)
	return true
}

func (p *warmPool) work(j *warmJob) {
	idle := time.NewTimer(warmIdle)
	defer idle.Stop()
	for {
		// A handler that calls runtime.Goexit ends this goroutine inside
		// run (whose defer tells the stream's goroutine and the count).
		p.run(j)
		idle.Reset(warmIdle)
		select {
		case j = <-p.jobs:
		case <-idle.C:
			p.workers.Add(-1)
			// A job sent between the timer firing and the count dropping
			// cannot be lost: a send only succeeds to a receiver, and this
			// goroutine no longer receives.
			return
		case <-p.quit:
			p.workers.Add(-1)
			return
		}
	}
}

// run serves one job and hands back how it ended. A panic is recovered
// here (the worker goes on); runtime.Goexit cannot be, and takes the
// worker with it.
func (p *warmPool) run(j *warmJob) {
	// What the defer reports unless ServeHTTP returns or panics: recover()
	// is nil while Goexit unwinds.
	res := warmResult{goexit: true}
	defer func() {
		if v := recover(); v != nil {
			res = warmResult{panicked: true, value: v}
			if v != http.ErrAbortHandler {
				// The stream's goroutine raises it again, but the stack
				// that explains it is this one.
				p.log.Error("http2: handler panic", "panic", v, "stack", string(debug.Stack()))
			}
		}
		if res.goexit {
			p.workers.Add(-1)
		}
		j.h, j.w, j.r = nil, nil, nil
		j.done <- res
	}()
	j.h.ServeHTTP(j.w, j.r)
	res = warmResult{}
}
