package certcheck

import (
	"context"
	"sync"
	"time"
)

// flight runs one lookup per key at a time and hands its result to every
// caller that asked meanwhile (singleflight). The lookup runs on its own
// goroutine under a context detached from the first caller's cancellation
// and bounded by a budget, so one impatient handshake giving up does not
// fail the others waiting on the same responder, and no lookup outlives
// its budget.
type flight[V any] struct {
	mu    sync.Mutex
	calls map[cacheKey]*flightCall[V]
}

type flightCall[V any] struct {
	done chan struct{}
	val  V
}

// do returns fn's result for key, or ctx's error if ctx ends first (the
// lookup then goes on for the others and for the cache).
func (f *flight[V]) do(ctx context.Context, key cacheKey, budget time.Duration, fn func(context.Context) V) (V, error) {
	f.mu.Lock()
	call, running := f.calls[key]
	if !running {
		if f.calls == nil {
			f.calls = map[cacheKey]*flightCall[V]{}
		}
		call = &flightCall[V]{done: make(chan struct{})}
		f.calls[key] = call
		go func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
			defer cancel()
			call.val = fn(fctx)
			f.mu.Lock()
			delete(f.calls, key)
			f.mu.Unlock()
			close(call.done)
		}()
	}
	f.mu.Unlock()
	select {
	case <-call.done:
		return call.val, nil
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}
