package proxy

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// The watcher aborts the watched request when its context ends, never one
// that ended first, nor a later request when an earlier one's context ends:
// for a context of net/http's kind (watched by the watcher's goroutine) and
// for the HTTP/1.1 loop's, under the pipeline's request context (which
// calls the watcher itself and never makes its Done channel).
func TestLeanWatcher(t *testing.T) {
	t.Run("cancel context", func(t *testing.T) {
		testLeanWatcher(t, func() (context.Context, func()) { return context.WithCancel(context.Background()) })
	})
	var loopCtxs []*h1ReqCtx
	t.Run("loop context", func(t *testing.T) {
		testLeanWatcher(t, func() (context.Context, func()) {
			c := &h1ReqCtx{parent: context.Background()}
			loopCtxs = append(loopCtxs, c)
			return &requestCtx{Context: c}, func() { c.cancel(context.Canceled) }
		})
	})
	// The last one had ended before it was watched: the goroutine sees its
	// Done closed.
	for i, c := range loopCtxs[:len(loopCtxs)-1] {
		if c.done != nil {
			t.Errorf("loop context %d: its Done channel was made (the watcher's goroutine watched it)", i)
		}
	}
}

func testLeanWatcher(t *testing.T, withCancel func() (context.Context, func())) {
	c1, c2 := net.Pipe()
	t.Cleanup(func() { _ = c2.Close() })
	lc := &leanConn{conn: &framedConn{Conn: c1}}
	lc.watcher.start(lc)
	t.Cleanup(lc.close)
	// aborted reports whether the connection's deadline was put in the
	// past (what abort does) within d, and clears it.
	aborted := func(d time.Duration) bool {
		t.Helper()
		got := make(chan error, 1)
		go func() {
			var b [1]byte
			_, err := c1.Read(b[:])
			got <- err
		}()
		select {
		case err := <-got:
			_ = c1.SetDeadline(time.Time{})
			return errors.Is(err, os.ErrDeadlineExceeded)
		case <-time.After(d):
			_ = c1.SetDeadline(time.Unix(1, 0)) // end the read
			<-got
			_ = c1.SetDeadline(time.Time{})
			return false
		}
	}

	ctx, cancel := withCancel()
	gen := lc.watcher.watch(ctx)
	cancel()
	if !aborted(5 * time.Second) {
		t.Fatal("the request's context ended and the request was not aborted")
	}
	if lc.watcher.unwatch(gen) {
		t.Error("unwatch reported an aborted request as ended cleanly")
	}

	ctx, cancel = withCancel()
	gen = lc.watcher.watch(ctx)
	if !lc.watcher.unwatch(gen) {
		t.Fatal("unwatch of a request still running reported an abort")
	}
	cancel()
	if aborted(200 * time.Millisecond) {
		t.Error("a request that had ended was aborted when its context ended")
	}

	old, cancelOld := withCancel()
	gen = lc.watcher.watch(old)
	lc.watcher.unwatch(gen)
	ctx, cancel = withCancel()
	gen = lc.watcher.watch(ctx)
	cancelOld()
	if aborted(200 * time.Millisecond) {
		t.Error("the end of an earlier request's context aborted the next request")
	}
	cancel()
	if !aborted(5 * time.Second) {
		t.Error("the next request was not aborted when its own context ended")
	}
	lc.watcher.unwatch(gen)

	ctx, cancel = withCancel()
	cancel()
	gen = lc.watcher.watch(ctx)
	if !aborted(5 * time.Second) {
		t.Error("a request whose context had already ended was not aborted")
	}
	if lc.watcher.unwatch(gen) {
		t.Error("unwatch reported an aborted request as ended cleanly")
	}
}
