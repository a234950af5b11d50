package proxy

import (
	"context"
	"sync"
	"sync/atomic"
)

// leanWatcher aborts a lean connection's request when the request's
// context ends before the request does: the client went away (its
// connection closed, its stream was reset). It is one goroutine per pooled
// connection (started when first needed: start), told of each request in
// turn, where context.AfterFunc would
// register and unregister a child of every request's context (five
// allocations a request; this costs the context's Done channel).
//
// The state is the request's generation and whether it is watched or was
// aborted; watch and unwatch (the request's goroutine) and the watcher
// change it only by compare-and-swap, so a request's end and its abort
// never both win, and a late end of an old request's context (net/http
// cancels it when the handler returns, after the connection may already
// carry the next request) finds a newer generation and does nothing.
//
// A request of the pipeline's own HTTP/1.1 loop (h1ReqCtx) is watched
// without the goroutine: its context calls fire when it ends, unless
// unwatch came first (requestEnd). That saves the Done channel and two
// goroutine switches a request (the watcher's send, run and close were
// about 5% of the appliance's CPU in a lab profile at 50 keep-alive
// connections).
type leanWatcher struct {
	lc    *leanConn
	gen   uint64        // the last request's generation (the request's goroutine only)
	state atomic.Uint64 // gen<<2 | watchIdle, watchArmed or watchFired
	end   requestEnd    // the watched request's context, when it calls fire itself
	next  chan watchedRequest
	quit  chan struct{}
	once  sync.Once
}

// requestEnd is a request context that calls w.fire(gen) when it ends, with
// no channel or goroutine of its own, until unwatchEnd. watchEnd reports
// false when the context cannot (it has ended, or it does not know how).
type requestEnd interface {
	watchEnd(w *leanWatcher, gen uint64) bool
	unwatchEnd(w *leanWatcher)
}

const (
	watchIdle = iota
	watchArmed
	watchFired
)

type watchedRequest struct {
	done <-chan struct{}
	gen  uint64
}

// start binds the watcher to its connection. The goroutine starts with the
// first request whose context is not a requestEnd: the pipeline's HTTP/1.1
// requests never need it, so their pooled connections cost no goroutine
// (after the lab's 50 keep-alive connections, 50 idle goroutines and their
// stacks, 0.4 MiB).
func (w *leanWatcher) start(lc *leanConn) { w.lc = lc }

func (w *leanWatcher) run() {
	var cur watchedRequest
	for {
		select {
		case cur = <-w.next:
		case <-cur.done: // nil until a request is watched
			w.fire(cur.gen)
			cur.done = nil
		case <-w.quit:
			return
		}
	}
}

// fire aborts request gen if it is still watched. It does not block.
func (w *leanWatcher) fire(gen uint64) {
	if w.state.CompareAndSwap(gen<<2|watchArmed, gen<<2|watchFired) {
		w.lc.abort()
	}
}

// watch arms the watcher for a request with context ctx and returns the
// request's generation.
func (w *leanWatcher) watch(ctx context.Context) uint64 {
	w.gen++
	gen := w.gen
	w.state.Store(gen<<2 | watchArmed)
	if e, ok := ctx.(requestEnd); ok && e.watchEnd(w, gen) {
		w.end = e
		return gen
	}
	done := ctx.Done()
	if done == nil {
		return gen // never cancelled
	}
	if w.next == nil {
		// The connection's owner runs watch; the pool's lock orders owners,
		// and stop (the pool's sweep, too) after them.
		w.next = make(chan watchedRequest, 1)
		w.quit = make(chan struct{})
		go w.run()
	}
	req := watchedRequest{done: done, gen: gen}
	select {
	case w.next <- req:
	default:
		// The watcher has not taken the last request yet: this one
		// replaces it (the request's goroutine is the only sender).
		select {
		case <-w.next:
		default:
		}
		w.next <- req
	}
	return gen
}

// unwatch ends the watch of request gen. It reports false when the request
// was aborted (or is being aborted): its connection must not be reused.
func (w *leanWatcher) unwatch(gen uint64) bool {
	ok := w.state.CompareAndSwap(gen<<2|watchArmed, gen<<2|watchIdle)
	if w.end != nil {
		w.end.unwatchEnd(w)
		w.end = nil
	}
	return ok
}

// stop ends the watcher (the connection is closed).
func (w *leanWatcher) stop() {
	if w.quit != nil {
		w.once.Do(func() { close(w.quit) })
	}
}
