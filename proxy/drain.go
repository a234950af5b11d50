package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Shutdown drain of tunnels. net/http's Shutdown waits for the requests it
// serves, but not for connections taken out of its hands: a switched (101)
// request's tunnel is hijacked, and a bypassed connection is spliced before
// any HTTP. Without their own drain they were cut the moment the HTTP
// servers returned, however much of the grace period was left, and nothing
// said so. Close gives each the rest of the grace period:
//
//   - a WebSocket tunnel is asked to end at once: each side gets a close
//     frame (1001, going away) at its next frame boundary, the frames each
//     side still sends are dropped until its own close frame answers, and
//     then the tunnel ends (websocket.go, goAway);
//   - a spliced or other opaque tunnel runs until it ends by itself;
//   - when the grace period is over, whatever is still open is cut: closed
//     at once, counted in Stats.TunnelsCut, logged, and its record (the
//     request's or the connection's) says "cut: shutdown grace period over".
//
// Close then waits at most cutRecordWait for the cut tunnels to write
// their records, so it returns within the grace period plus that bound.

// cutAtGraceOver is the reason on the record of a tunnel cut at shutdown.
const cutAtGraceOver = "cut: shutdown grace period over"

// drainable is a tunnel Close lets run out the grace period.
type drainable interface {
	// goAway asks it to end politely; it may block (on a slow peer), so it
	// runs on its own goroutine, and must return once cut.
	goAway()
	// cut closes it now, without blocking, and reports whether it was still
	// open (false: it had ended, and is only finishing its record).
	cut(reason string) bool
}

// tunnelSet is the Server's tunnels in progress. A tunnel is in it from
// the moment it starts until its record is written, so waiting for the set
// to empty waits for the records too.
type tunnelSet struct {
	mu       sync.Mutex
	open     map[drainable]struct{}
	draining bool   // Close began: new tunnels are asked to go away at once
	cutWith  string // the grace period is over: new tunnels are cut at once
	left     chan struct{}
	cuts     *atomic.Uint64 // counts every tunnel cut (Stats.TunnelsCut)
}

func newTunnelSet(cuts *atomic.Uint64) *tunnelSet {
	return &tunnelSet{open: map[drainable]struct{}{}, left: make(chan struct{}, 1), cuts: cuts}
}

// add puts d in the set. A tunnel that starts while the server drains is
// asked to go away at once (or cut, past the grace period). onlyBeforeDrain
// refuses it instead: the caller has not served it yet and closes it, as
// for any connection that arrives once the server is closing.
func (ts *tunnelSet) add(d drainable, onlyBeforeDrain bool) bool {
	ts.mu.Lock()
	if ts.draining && onlyBeforeDrain {
		ts.mu.Unlock()
		return false
	}
	ts.open[d] = struct{}{}
	draining, cutWith := ts.draining, ts.cutWith
	ts.mu.Unlock()
	switch {
	case cutWith != "":
		if d.cut(cutWith) {
			ts.cuts.Add(1)
		}
	case draining:
		go d.goAway()
	}
	return true
}

// remove takes d out of the set once its record is written.
func (ts *tunnelSet) remove(d drainable) {
	ts.mu.Lock()
	delete(ts.open, d)
	ts.mu.Unlock()
	select {
	case ts.left <- struct{}{}:
	default:
	}
}

// drain starts the drain: every tunnel in the set is asked to go away.
func (ts *tunnelSet) drain() {
	ts.mu.Lock()
	ts.draining = true
	open := ts.snapshot()
	ts.mu.Unlock()
	for _, d := range open {
		go d.goAway()
	}
}

// wait returns nil once the set is empty, or ctx's error.
func (ts *tunnelSet) wait(ctx context.Context) error {
	for {
		ts.mu.Lock()
		n := len(ts.open)
		ts.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ts.left:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// cut cuts every tunnel still open, and every one added later, counts
// them, and returns how many were open now.
func (ts *tunnelSet) cut(reason string) int {
	ts.mu.Lock()
	ts.cutWith = reason
	open := ts.snapshot()
	ts.mu.Unlock()
	n := 0
	for _, d := range open {
		if d.cut(reason) {
			n++
		}
	}
	ts.cuts.Add(uint64(n))
	return n
}

func (ts *tunnelSet) snapshot() []drainable {
	open := make([]drainable, 0, len(ts.open))
	for d := range ts.open {
		open = append(open, d)
	}
	return open
}

// cutRecordWait bounds how long Close waits, once the grace period is
// over, for the tunnels it cut to write their records: closing their
// sockets ends their copies at once, so this is only a backstop.
const cutRecordWait = time.Second
