package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A request that switched protocols (101) becomes a tunnel: the
// ReverseProxy copies bytes between the client's connection and the
// origin's, through the origin side's body, which here is a tunnel:
//
//   - WebSocket (RFC 6455): every frame is parsed as it passes, both ways,
//     and passed on byte for byte. A frame over WebSocketMaxFrame, a
//     message over WebSocketMaxMessage (close status 1009), or framing
//     that breaks the protocol (1002: a client frame not masked, an origin
//     frame masked, a reserved opcode or bit, a control frame fragmented
//     or over 125 bytes, a continuation without a message, a length not
//     in its shortest form) ends the tunnel: each side gets a close frame
//     (when its stream is at a frame boundary), the connections close, and
//     the request's record says why.
//   - Any tunnel: no byte either way for TunnelIdleTimeout ends it (1001 on
//     a WebSocket).
//   - At shutdown (drain.go) a WebSocket is asked to end: each side gets a
//     close frame (1001) at its next frame boundary, what each side sends
//     after it is dropped until that side's own close frame answers, and
//     then both connections close. Any other tunnel runs on; either is cut
//     when the grace period is over.
//
// The refused frame is never forwarded: its header is held until it is
// whole and checked, so each side has only ever received whole frames.
// Nothing else is held; memory per tunnel is two 32 KiB copy buffers.

// wsClose codes (RFC 6455 7.4.1).
const (
	wsCloseGoingAway = 1001
	wsCloseProtocol  = 1002
	wsCloseTooBig    = 1009
)

// tunnelLinger bounds how long a tunnel that is being closed keeps reading
// (and dropping) what the client still sends, so that the close frame is
// not lost to a reset, before the connections close.
const tunnelLinger = time.Second

// wsViolation is why a frame was refused.
type wsViolation struct {
	code   uint16
	reason string
}

func (v *wsViolation) Error() string {
	return fmt.Sprintf("websocket: %s (close %d)", v.reason, v.code)
}

// errTunnelEnded is what the copy loops end with once the tunnel was closed
// by a limit.
var errTunnelEnded = errors.New("tunnel closed by a limit")

// wsFramer follows one direction's frames.
type wsFramer struct {
	fromClient bool
	maxFrame   int64
	maxMessage int64
	rsv1       bool // permessage-deflate was negotiated: RSV1 marks compressed messages

	hdr       [14]byte // the frame header being read (held, not yet forwarded)
	hn        int
	remaining int64 // payload bytes of the current frame still to pass
	inMessage bool  // a fragmented message is open
	msgLen    int64

	// The closing handshake (RFC 6455 5.5.1), followed for the drain.
	sentClose bool   // a close frame went out this way (passed on, or the proxy's)
	sawClose  bool   // a close frame came in this way (passed on, or dropped)
	goAway    []byte // the proxy's close frame, to go out at the next frame boundary
	dropping  bool   // the proxy's close frame went out: later frames are followed, not passed on
}

// headerLen is the size of the header whose first two bytes are in hdr.
func (f *wsFramer) headerLen() int {
	n := 2
	switch f.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if f.hdr[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// atBoundary reports that what was forwarded ends with a whole frame, so a
// close frame may follow it.
func (f *wsFramer) atBoundary() bool { return f.remaining == 0 }

// feed passes p to dst, checking each frame header as it completes. A
// header cut by the end of p is held until the next feed. It returns the
// violation of a refused frame (everything before it was written) or
// dst's error. A close frame armed (arm) goes out at the first frame
// boundary, and nothing after it does.
func (f *wsFramer) feed(dst io.Writer, p []byte) (*wsViolation, error) {
	start, i := 0, 0
	for i < len(p) {
		if f.remaining > 0 {
			k := int(min(int64(len(p)-i), f.remaining))
			f.remaining -= int64(k)
			i += k
			continue
		}
		if f.goAway != nil {
			if err := f.sendGoAway(dst, p[start:i]); err != nil {
				return nil, err
			}
		}
		hs, carried := i, f.hn
		for {
			need := 2
			if f.hn >= 2 {
				need = f.headerLen()
			}
			if f.hn >= need {
				break
			}
			if i == len(p) {
				return nil, f.flush(dst, p[start:hs])
			}
			f.hdr[f.hn] = p[i]
			f.hn++
			i++
		}
		if v := f.check(); v != nil {
			return v, f.pass(dst, p[start:hs])
		}
		if f.hdr[0]&0x0f == 8 {
			f.sawClose = true
			f.sentClose = f.sentClose || !f.dropping
		}
		if carried > 0 {
			// The header began in an earlier feed (so hs == start == 0):
			// its first bytes go out before this feed's.
			if err := f.pass(dst, f.hdr[:carried]); err != nil {
				return nil, err
			}
		}
		f.hn = 0
	}
	return nil, f.flush(dst, p[start:])
}

// pass writes b on, unless the proxy's close frame went out before it.
func (f *wsFramer) pass(dst io.Writer, b []byte) error {
	if f.dropping {
		return nil
	}
	return writeSpan(dst, b)
}

// flush passes on the end of a feed, then the armed close frame if what
// went out ends with a whole frame.
func (f *wsFramer) flush(dst io.Writer, b []byte) error {
	if err := f.pass(dst, b); err != nil {
		return err
	}
	if f.goAway != nil && f.remaining == 0 {
		return f.sendGoAway(dst, nil)
	}
	return nil
}

// sendGoAway passes on before, then the armed close frame; from now on
// frames are only followed (for the answering close frame).
func (f *wsFramer) sendGoAway(dst io.Writer, before []byte) error {
	if err := f.pass(dst, before); err != nil {
		return err
	}
	frame := f.goAway
	f.goAway, f.dropping, f.sentClose = nil, true, true
	return writeSpan(dst, frame)
}

// arm makes frame (a close frame) go out at the next frame boundary,
// unless a close frame already went this way.
func (f *wsFramer) arm(frame []byte) {
	if !f.sentClose && f.goAway == nil {
		f.goAway = frame
	}
}

func writeSpan(dst io.Writer, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := dst.Write(b)
	return err
}

// check validates the complete header in hdr and starts its frame.
func (f *wsFramer) check() *wsViolation {
	b0, b1 := f.hdr[0], f.hdr[1]
	fin, rsv, op, masked := b0&0x80 != 0, b0&0x70, b0&0x0f, b1&0x80 != 0
	var n uint64
	switch l := b1 & 0x7f; l {
	case 126:
		n = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
		if n < 126 {
			return &wsViolation{wsCloseProtocol, "frame length not in its shortest form"}
		}
	case 127:
		n = binary.BigEndian.Uint64(f.hdr[2:10])
		if n>>63 != 0 {
			return &wsViolation{wsCloseProtocol, "frame length over 2^63"}
		}
		if n < 1<<16 {
			return &wsViolation{wsCloseProtocol, "frame length not in its shortest form"}
		}
	default:
		n = uint64(l)
	}
	who := "origin"
	if f.fromClient {
		who = "client"
	}
	switch {
	case f.fromClient && !masked:
		return &wsViolation{wsCloseProtocol, "client frame not masked"}
	case !f.fromClient && masked:
		return &wsViolation{wsCloseProtocol, "origin frame masked"}
	case op > 2 && op < 8 || op > 10:
		return &wsViolation{wsCloseProtocol, fmt.Sprintf("%s frame has reserved opcode %d", who, op)}
	case rsv&^0x40 != 0 || rsv != 0 && (!f.rsv1 || op >= 8):
		return &wsViolation{wsCloseProtocol, fmt.Sprintf("%s frame sets a reserved bit no extension allows", who)}
	}
	if op >= 8 {
		if !fin || n > 125 {
			return &wsViolation{wsCloseProtocol, fmt.Sprintf("%s control frame fragmented or over 125 bytes", who)}
		}
		if op == 8 && n == 1 {
			return &wsViolation{wsCloseProtocol, fmt.Sprintf("%s close frame of one byte", who)}
		}
		f.remaining = int64(n)
		return nil
	}
	if n > uint64(f.maxFrame) {
		return &wsViolation{wsCloseTooBig, fmt.Sprintf("%s frame of %d bytes over the limit of %d", who, n, f.maxFrame)}
	}
	switch {
	case op == 0 && !f.inMessage:
		return &wsViolation{wsCloseProtocol, fmt.Sprintf("%s continuation frame outside a message", who)}
	case op != 0 && f.inMessage:
		return &wsViolation{wsCloseProtocol, fmt.Sprintf("%s new message inside a fragmented one", who)}
	case op != 0:
		f.msgLen = 0
	}
	f.msgLen += int64(n)
	if f.msgLen > f.maxMessage {
		return &wsViolation{wsCloseTooBig, fmt.Sprintf("%s message over the limit of %d bytes", who, f.maxMessage)}
	}
	f.inMessage = !fin
	f.remaining = int64(n)
	return nil
}

// wsCloseFrame builds a close frame; masked for the origin (the appliance
// speaks to it as the client).
func wsCloseFrame(code uint16, reason string, masked bool) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	payload := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(payload, code)
	payload = append(payload, reason...)
	frame := []byte{0x88, byte(len(payload))}
	if !masked {
		return append(frame, payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	frame[1] |= 0x80
	frame = append(frame, key[:]...)
	for i, c := range payload {
		frame = append(frame, c^key[i%4])
	}
	return frame
}

// tunnel is the origin side of a switched request as the ReverseProxy
// copies it: its WriteTo is the origin-to-client loop, its ReadFrom the
// client-to-origin loop (io.Copy picks them), so both directions' frames
// and the idle time are seen here.
type tunnel struct {
	origin io.ReadWriteCloser
	s      *Server
	st     *requestState
	ws     bool // WebSocket framing is checked
	idle   time.Duration

	up, down     wsFramer   // client to origin, origin to client
	upMu, downMu sync.Mutex // held while writing to the origin, to the client
	clientConn   net.Conn   // the client's connection, once a loop saw it
	clientSeen   sync.Once
	upDone       chan struct{} // closed when the client-to-origin loop returned
	upDoneOnce   sync.Once
	last         atomic.Int64 // unix nanoseconds of the last byte either way
	timer        *time.Timer
	closeOnce    sync.Once
	mu           sync.Mutex
	closed       bool   // the origin's side was closed (by the proxy or a limit)
	ended        bool   // a limit closed the tunnel
	reason       string // why, for the record
	decision     string
	left         bool // a loop returned: the handler may be reading st
	wasCut       bool // cut at shutdown: the decision stands, the reason says so
	wentAway     bool // ended by the drain's closing handshake

	goingAway atomic.Bool   // the server drains: each side is sent a close frame
	closes    atomic.Uint32 // closing-handshake bits (closeTo*, closeFrom*)
}

// The closing-handshake bits of a tunnel: a close frame went to, or came
// from, each side. All four: both sides have closed.
const (
	closeToClient uint32 = 1 << iota
	closeFromOrigin
	closeToOrigin
	closeFromClient
	closedBothWays = closeToClient | closeFromOrigin | closeToOrigin | closeFromClient
)

// goingAwayReason is the close frames' reason at shutdown; wentAwayReason
// the record's when the handshake completed.
const (
	goingAwayReason = "gateway shutting down"
	wentAwayReason  = "closed at shutdown (1001 going away)"
)

// tunnelResponse wraps a 101 response's body (the origin's connection) so
// the tunnel is bounded. The response is returned unchanged if its body is
// not a connection.
func (s *Server) tunnelResponse(r *http.Request, resp *http.Response) *http.Response {
	origin, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		return resp
	}
	t := &tunnel{origin: origin, s: s, st: stateOf(r.Context()), idle: s.cfg.TunnelIdleTimeout, upDone: make(chan struct{})}
	if upgradeIs(resp.Header, "websocket") {
		t.ws = true
		rsv1 := strings.Contains(strings.ToLower(strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ",")), "permessage-deflate")
		t.up = wsFramer{fromClient: true, maxFrame: s.cfg.WebSocketMaxFrame, maxMessage: s.cfg.WebSocketMaxMessage, rsv1: rsv1}
		t.down = wsFramer{maxFrame: s.cfg.WebSocketMaxFrame, maxMessage: s.cfg.WebSocketMaxMessage, rsv1: rsv1}
	}
	t.touch()
	t.timer = time.AfterFunc(t.idle, t.checkIdle)
	// In the drain's set until the handler returned, i.e. the request's
	// record is written (net/http ends the request's context then).
	s.tunnels.add(t, false)
	context.AfterFunc(r.Context(), func() { s.tunnels.remove(t) })
	resp.Body = t
	return resp
}

var (
	_ drainable          = (*tunnel)(nil)
	_ io.ReadWriteCloser = (*tunnel)(nil)
	_ io.WriterTo        = (*tunnel)(nil)
	_ io.ReaderFrom      = (*tunnel)(nil)
)

func (t *tunnel) touch() { t.last.Store(time.Now().UnixNano()) }

func (t *tunnel) checkIdle() {
	left := t.idle - time.Since(time.Unix(0, t.last.Load()))
	if left > 0 {
		t.timer.Reset(left)
		return
	}
	t.end(&wsViolation{wsCloseGoingAway, fmt.Sprintf("idle for %s", t.idle)}, "error", &t.s.limits.stats.TunnelsIdle)
}

func (t *tunnel) sawClient(c any) {
	t.clientSeen.Do(func() {
		nc, ok := c.(net.Conn)
		if !ok {
			return
		}
		t.mu.Lock()
		t.clientConn = nc
		cut := t.wasCut
		t.mu.Unlock()
		switch {
		case cut:
			_ = nc.SetDeadline(time.Now())
		case t.goingAway.Load():
			go t.sendCloses()
		}
	})
}

// WriteTo is the origin-to-client loop.
func (t *tunnel) WriteTo(client io.Writer) (int64, error) {
	t.sawClient(client)
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	var total int64
	for {
		n, rerr := t.origin.Read(buf)
		if n > 0 && !t.isEnded() {
			t.touch()
			t.downMu.Lock()
			var v *wsViolation
			var werr error
			if t.ws {
				v, werr = t.down.feed(client, buf[:n])
				t.noteCloses(&t.down, closeToClient, closeFromOrigin)
			} else {
				werr = writeSpan(client, buf[:n])
			}
			t.downMu.Unlock()
			t.finishIfClosed()
			total += int64(n)
			if v != nil {
				t.refuse(v)
				return total, t.lingerLeave()
			}
			if werr != nil {
				return total, t.leave(werr)
			}
		}
		if rerr != nil {
			if t.isEnded() {
				return total, t.lingerLeave()
			}
			if rerr == io.EOF {
				return total, t.leave(nil)
			}
			return total, t.leave(rerr)
		}
	}
}

// lingerLeave ends the origin-to-client loop of a tunnel a limit closed.
// It first lets the client's loop drain what the client still sends
// (bounded by tunnelLinger), so the close frame is not lost to a reset when
// the ReverseProxy closes the connections.
func (t *tunnel) lingerLeave() error {
	select {
	case <-t.upDone:
	case <-time.After(2 * tunnelLinger):
	}
	return t.leave(errTunnelEnded)
}

// ReadFrom is the client-to-origin loop.
func (t *tunnel) ReadFrom(client io.Reader) (int64, error) {
	t.sawClient(client)
	defer t.upDoneOnce.Do(func() { close(t.upDone) })
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	var total int64
	for {
		n, rerr := client.Read(buf)
		if n > 0 {
			t.touch()
			total += int64(n)
			if !t.isEnded() {
				if err := t.forwardUp(buf[:n]); err != nil && !errors.Is(err, errTunnelEnded) {
					return total, t.leave(err)
				}
			}
		}
		if rerr != nil {
			if t.isEnded() {
				return total, t.leave(errTunnelEnded)
			}
			if rerr == io.EOF {
				return total, t.leave(nil)
			}
			return total, t.leave(rerr)
		}
	}
}

// Write passes client bytes to the origin (for a copier that does not use
// ReadFrom).
func (t *tunnel) Write(p []byte) (int, error) {
	t.touch()
	if t.isEnded() {
		return 0, t.leave(errTunnelEnded)
	}
	if err := t.forwardUp(p); err != nil {
		return 0, t.leave(err)
	}
	return len(p), nil
}

func (t *tunnel) forwardUp(p []byte) error {
	t.upMu.Lock()
	var v *wsViolation
	var err error
	if t.ws {
		v, err = t.up.feed(t.origin, p)
		t.noteCloses(&t.up, closeToOrigin, closeFromClient)
	} else {
		err = writeSpan(t.origin, p)
	}
	t.upMu.Unlock()
	t.finishIfClosed()
	if v != nil {
		t.refuse(v)
		return errTunnelEnded
	}
	return err
}

// Read passes origin bytes (for a copier that does not use WriteTo): frames
// are checked, but a refusal can only close, with no close frame to the
// client.
func (t *tunnel) Read(p []byte) (int, error) {
	n, err := t.origin.Read(p)
	if n > 0 {
		t.touch()
		if t.ws {
			var sink countWriter
			if v, _ := t.down.feed(&sink, p[:n]); v != nil {
				t.refuse(v)
				return int(sink), t.leave(errTunnelEnded)
			}
		}
	}
	return n, err
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// Close closes the origin's side and stops the idle timer.
func (t *tunnel) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		t.timer.Stop()
		err = t.origin.Close()
	})
	return err
}

func (t *tunnel) isEnded() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ended
}

// refuse ends the tunnel for a refused frame.
func (t *tunnel) refuse(v *wsViolation) {
	stat := &t.s.limits.stats.WebSocketProtocol
	if v.code == wsCloseTooBig {
		stat = &t.s.limits.stats.WebSocketOversize
	}
	t.end(v, "block", stat)
}

// end closes the tunnel once: a close frame to each side whose stream is
// at a frame boundary, then the origin's connection; the client's is closed
// by the ReverseProxy when the loops return (the client's loop lingers
// first, see tunnelLinger). stat counts it, before either side can see it.
func (t *tunnel) end(v *wsViolation, decision string, stat *atomic.Uint64) {
	t.mu.Lock()
	if t.ended || t.closed {
		t.mu.Unlock()
		return
	}
	t.ended, t.reason, t.decision = true, v.Error(), decision
	client := t.clientConn
	t.mu.Unlock()
	stat.Add(1)
	id := ""
	if t.st != nil {
		id = t.st.id
	}
	t.s.cfg.Log.Warn("tunnel closed by a limit", "reason", t.reason, "id", id)
	if t.ws {
		if lockWithin(&t.downMu, 100*time.Millisecond) {
			if client != nil && t.down.atBoundary() && !t.down.sentClose {
				_ = client.SetWriteDeadline(time.Now().Add(tunnelLinger))
				_, _ = client.Write(wsCloseFrame(v.code, v.reason, false))
			}
			t.downMu.Unlock()
		} else if client != nil {
			// A write to the client is stuck (it does not read): unstick it.
			_ = client.SetWriteDeadline(time.Now())
		}
		if lockWithin(&t.upMu, 100*time.Millisecond) {
			if t.up.atBoundary() && !t.up.sentClose {
				_, _ = t.origin.Write(wsCloseFrame(v.code, v.reason, true))
			}
			t.upMu.Unlock()
		}
	} else if client != nil {
		_ = client.SetWriteDeadline(time.Now())
	}
	if client != nil {
		_ = client.SetReadDeadline(time.Now().Add(tunnelLinger))
	}
	_ = t.Close()
}

// leave is every return of a copy loop. The first one puts the reason on
// the request's record: the ReverseProxy's handler returns (and the record
// is written) only after a loop returned, and never reads it before.
func (t *tunnel) leave(err error) error {
	t.mu.Lock()
	if !t.left && t.st != nil {
		t.left = true
		switch {
		case t.wasCut:
			t.st.set(t.st.decision, withReason(t.st.reason, t.reason))
		case t.ended:
			t.st.set(t.decision, t.reason)
		case t.wentAway:
			t.st.set(t.st.decision, withReason(t.st.reason, wentAwayReason))
		}
	}
	t.mu.Unlock()
	return err
}

// withReason adds why a tunnel ended to the request's reason.
func withReason(reason, more string) string {
	if reason == "" {
		return more
	}
	return reason + "; " + more
}

// goAway asks the tunnel to end, at the start of the drain (drain.go). A
// WebSocket's sides each get a close frame (1001); an opaque tunnel runs
// on until it ends or is cut.
func (t *tunnel) goAway() {
	if !t.ws {
		return
	}
	t.goingAway.Store(true)
	t.sendCloses()
}

// sendCloses arms each side's close frame and sends it now if that side's
// stream is at a frame boundary (otherwise its copy loop sends it at the
// next one). It waits for a write in progress: it runs on its own
// goroutine, and a cut unblocks the writes.
func (t *tunnel) sendCloses() {
	t.mu.Lock()
	client := t.clientConn
	t.mu.Unlock()
	if client != nil {
		t.downMu.Lock()
		if !t.isEnded() {
			t.down.arm(wsCloseFrame(wsCloseGoingAway, goingAwayReason, false))
			_, _ = t.down.feed(client, nil)
			t.noteCloses(&t.down, closeToClient, closeFromOrigin)
		}
		t.downMu.Unlock()
	}
	t.upMu.Lock()
	if !t.isEnded() {
		t.up.arm(wsCloseFrame(wsCloseGoingAway, goingAwayReason, true))
		_, _ = t.up.feed(t.origin, nil)
		t.noteCloses(&t.up, closeToOrigin, closeFromClient)
	}
	t.upMu.Unlock()
	t.finishIfClosed()
}

// noteCloses records what f saw of the closing handshake; f's lock is held.
func (t *tunnel) noteCloses(f *wsFramer, sent, saw uint32) {
	var b uint32
	if f.sentClose {
		b |= sent
	}
	if f.sawClose {
		b |= saw
	}
	t.closes.Or(b)
}

// finishIfClosed ends a draining WebSocket once both sides have sent and
// received a close frame: the origin's connection closes, and the
// client's read ends so the ReverseProxy closes that one.
func (t *tunnel) finishIfClosed() {
	if !t.goingAway.Load() || t.closes.Load() != closedBothWays {
		return
	}
	t.mu.Lock()
	if t.ended || t.closed || t.wentAway {
		t.mu.Unlock()
		return
	}
	t.wentAway = true
	client := t.clientConn
	t.mu.Unlock()
	if client != nil {
		_ = client.SetReadDeadline(time.Now())
	}
	_ = t.Close()
}

// cut closes the tunnel now: the grace period is over (drain.go).
func (t *tunnel) cut(reason string) bool {
	t.mu.Lock()
	if t.ended || t.closed {
		t.mu.Unlock()
		return false
	}
	t.ended, t.wasCut, t.reason = true, true, reason
	client := t.clientConn
	t.mu.Unlock()
	id := ""
	if t.st != nil {
		id = t.st.id
	}
	t.s.cfg.Log.Warn("tunnel cut", "reason", reason, "id", id)
	if client != nil {
		_ = client.SetDeadline(time.Now())
	}
	// Closing the origin's TLS connection sends close_notify, which may
	// wait on an origin that does not read: not on Close's path.
	go func() { _ = t.Close() }()
	return true
}

// lockWithin takes mu if it comes free within d.
func lockWithin(mu *sync.Mutex, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !mu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}
