package proxy

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// h1Body is the body of a request the loop serves: exactly the
// Content-Length's bytes of the connection's reader, which then goes on to
// the next request. The transport may read it from a goroutine of its own,
// and may still be reading when the handler returns (an origin that
// answered before reading the whole body), so every read holds mu, and
// end closes the body under mu before the loop touches the reader again:
// a read after that gets http.ErrBodyReadAfterClose and never reads the
// next request's bytes (or, once the reader is back in its pool, another
// connection's).
type h1Body struct {
	hc     *h1conn
	mu     sync.Mutex
	left   int64 // bytes of the body not read yet
	err    error // a failed read's error: the body and the connection are done
	closed bool  // end (or Close) was called: no read touches br again
	// ending is set before end wakes a read in flight, so that read
	// reports errBodyEnded rather than the timeout it was woken by.
	ending atomic.Bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.err != nil:
		return 0, b.err
	case b.left == 0:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.hc.br.Read(p)
	b.left -= int64(n)
	if err != nil {
		switch {
		case b.ending.Load():
			err = errBodyEnded
		case err == io.EOF:
			err = io.ErrUnexpectedEOF // the client closed mid-body
		}
		b.err = err
		return n, err
	}
	if b.left == 0 {
		b.hc.watchAfterBody()
		return n, io.EOF
	}
	return n, nil
}

// Close ends the body for its readers. The loop reads what is left of it
// (end), so the next request starts where it should.
func (b *h1Body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// SetReadDeadline is clientBody's deadline for the body's next read: it
// moves the connection's read deadline only while the body is open, so a
// reader that comes late cannot move the deadline the loop has set for the
// next request meanwhile (its idle or header timeout).
//
// Nor once the body has been read to its end: no read of it touches the
// connection again, and the client watch may be reading it (watchAfterBody
// cleared the deadline for it; a zero deadline set after the watch was
// woken would leave it blocked).
func (b *h1Body) SetReadDeadline(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.left == 0 {
		return nil
	}
	return b.hc.c.SetReadDeadline(t)
}

// maxBodyDrain is how much of a body the handler left unread the loop
// reads and drops to keep the connection (net/http's server does the same
// up to the same 256 KiB); past it the connection is closed instead.
const maxBodyDrain = 256 << 10

// unreadPastDrain reports a body of which more than maxBodyDrain is still
// unread while no read is in flight: the response is then marked
// "Connection: close" (as net/http's server marks it), since end will
// close the connection rather than read that much. A body being read, the
// transport sending it on, is not judged: the reader may well finish it.
func (b *h1Body) unreadPastDrain() bool {
	if !b.mu.TryLock() {
		return false
	}
	defer b.mu.Unlock()
	return !b.closed && b.err == nil && b.left > maxBodyDrain
}

// end closes the body once the response is written, and reports whether
// the connection can serve another request: the body was read to its end,
// or (when drain is asked for: the connection would otherwise stay open)
// what was left of it, at most maxBodyDrain, could be read and dropped
// within BodyReadTimeout. A read still in flight (the transport sending the
// body on) is woken by a past deadline and the connection closes: where
// the body stopped is not known any more.
func (b *h1Body) end(drain bool) bool {
	hc := b.hc
	if !b.mu.TryLock() {
		b.ending.Store(true)
		_ = hc.c.SetReadDeadline(aLongTimeAgo)
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		_ = hc.c.SetReadDeadline(time.Time{})
		return false
	}
	defer b.mu.Unlock()
	b.closed = true
	switch {
	case b.err != nil:
		return false
	case b.left == 0:
		return true
	case !drain || b.left > maxBodyDrain:
		return false
	}
	_ = hc.c.SetReadDeadline(time.Now().Add(hc.s.cfg.BodyReadTimeout))
	n, err := hc.br.Discard(int(b.left))
	b.left -= int64(n)
	_ = hc.c.SetReadDeadline(time.Time{})
	if err != nil {
		b.err = err
		return false
	}
	return true
}

// errBodyEnded is what a body read reports once the loop has ended the
// body under it (h1Body.end woke it): not the client's fault, so clientBody
// counts no error for it (nor for http.ErrBodyReadAfterClose, a read that
// came after the end).
var errBodyEnded = errors.New("request body ended with its request")

var (
	_ io.ReadCloser = (*h1Body)(nil)
	_ bodyDeadline  = (*h1Body)(nil)
	_ bodyDeadline  = (*http.ResponseController)(nil)
)

// bodyDeadline is how clientBody moves the read deadline of the body under
// it: *http.ResponseController for net/http's requests, the h1Body itself
// for the loop's.
type bodyDeadline interface{ SetReadDeadline(time.Time) error }

// bodyTooLongToDrain is unreadPastDrain for the request being served.
func (hc *h1conn) bodyTooLongToDrain() bool {
	return hc.body != nil && hc.body.unreadPastDrain()
}
