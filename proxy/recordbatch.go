package proxy

import (
	"crypto/tls"
	"net"
	"sync"
)

// An HTTP/2 DATA frame of the size every client allows (16384 bytes of
// payload) is 16393 bytes with its header. x/net writes each frame with one
// Write on the *tls.Conn, and crypto/tls seals at most 16384 bytes per
// record and writes every record on its own: one full record and a second
// one of 9 bytes, two write(2) calls, two segments through the kernel and
// two records for the client to open. The lab measured 2.5 write calls per
// 16 KiB on h2 downloads against HTTP/1.1's 1.0, and twice the CPU per MiB.
//
// recordBatch is how an h2 connection's records leave as one write: while a
// Write on the TLS connection is in progress (h2TLSConn), the records it
// produces are gathered under the connection (peekedConn.Write) and written
// together when it returns. Every other write (the handshake, alerts,
// close_notify, a write racing the held one) goes through at once, or, if a
// Write is being held, after the records held before it: the order on the
// wire is the order the records were sealed in.
type recordBatch struct {
	mu      sync.Mutex
	holding bool
	buf     []byte // pooled while holding something, nil otherwise
}

// recordBatchMax bounds what one hold gathers: past it what is held is
// written and gathering goes on (a client may allow frames of up to 16 MiB).
const recordBatchMax = 64 << 10

var recordBatchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, recordBatchMax+(16<<10)+64); return &b }}

func (b *recordBatch) hold() {
	b.mu.Lock()
	b.holding = true
	b.mu.Unlock()
}

// write is the connection's Write: p, one record, is gathered while a Write
// is held, or written through.
func (b *recordBatch) write(c net.Conn, p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.holding { // nothing is held then: release wrote it
		return c.Write(p)
	}
	if b.buf == nil {
		b.buf = (*recordBatchBuffers.Get().(*[]byte))[:0]
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= recordBatchMax {
		if err := b.flushLocked(c); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// release ends the hold and writes what it gathered, reporting the write's
// error: the records were accepted from crypto/tls, so this is where a
// failure to send them shows.
func (b *recordBatch) release(c net.Conn) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding = false
	return b.flushLocked(c)
}

func (b *recordBatch) flushLocked(c net.Conn) error {
	if b.buf == nil {
		return nil
	}
	buf := b.buf
	b.buf = nil
	var err error
	if len(buf) > 0 {
		_, err = c.Write(buf)
	}
	buf = buf[:0]
	recordBatchBuffers.Put(&buf)
	return err
}

// h2TLSConn is the *tls.Conn an HTTP/2 connection is served over, each of
// its Writes held so the records it seals go out in one write.
type h2TLSConn struct {
	*tls.Conn
	raw   net.Conn // under the TLS connection: where the batch is written
	batch *recordBatch
}

func (c *h2TLSConn) Write(p []byte) (int, error) {
	c.batch.hold()
	n, err := c.Conn.Write(p)
	if ferr := c.batch.release(c.raw); ferr != nil && err == nil {
		return 0, ferr
	}
	return n, err
}

// batchedH2 returns the connection HTTP/2 is to be served over: tc with its
// records batched when it runs over the pipeline's peekedConn, else tc.
func batchedH2(tc *tls.Conn) net.Conn {
	pc, ok := tc.NetConn().(*peekedConn)
	if !ok || pc.batch == nil {
		return tc
	}
	return &h2TLSConn{Conn: tc, raw: pc.Conn, batch: pc.batch}
}
