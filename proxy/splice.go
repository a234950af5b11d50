package proxy

import (
	"context"
	"io"
	"net"
	"sync"
)

// splice joins a bypassed client to its original destination: the peeked
// bytes are replayed first, then both directions are copied by the kernel
// (splice(2) via TCPConn.ReadFrom) without user-space buffers. At shutdown
// it runs until it ends or the grace period is over (drain.go).
func (s *Server) splice(c net.Conn, peeked []byte, ci *ConnInfo, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	up, err := s.dialer.DialContext(ctx, "tcp", ci.Dest.String())
	cancel()
	if err != nil {
		s.Stats.UpstreamErrors.Add(1)
		s.refuse(c, ci)
		s.logConn(ci, "error", "bypass dial: "+err.Error(), 0, 0)
		return
	}
	var upBytes, downBytes int64
	if _, err := up.Write(peeked); err != nil {
		_ = up.Close()
		_ = c.Close()
		s.logConn(ci, "error", "bypass replay: "+err.Error(), 0, 0)
		return
	}
	upBytes = int64(len(peeked))
	sc := &splicedConn{client: c, origin: up}
	// One that was not spliced before Close began is closed like any
	// connection that arrives once the server is closing.
	if !s.tunnels.add(sc, true) {
		_ = up.Close()
		_ = c.Close()
		return
	}
	defer s.tunnels.remove(sc)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, _ := io.Copy(up, c)
		upBytes += n
		closeWrite(up)
	}()
	downBytes, _ = io.Copy(c, up)
	closeWrite(c)
	wg.Wait()
	if cut := sc.end(); cut != "" {
		reason += "; " + cut
	}
	_ = up.Close()
	_ = c.Close()
	s.logConn(ci, "bypass", reason, upBytes, downBytes)
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = c.Close()
	}
}

// splicedConn is a spliced connection as the drain sees it: opaque, so it
// is never asked to end, only cut when the grace period is over.
type splicedConn struct {
	client, origin net.Conn

	mu     sync.Mutex
	ended  bool   // both copies returned
	cutWhy string // why it was cut, if it was
}

var _ drainable = (*splicedConn)(nil)

func (sc *splicedConn) goAway() {}

func (sc *splicedConn) cut(reason string) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.ended || sc.cutWhy != "" {
		return false
	}
	sc.cutWhy = reason
	_ = sc.client.Close()
	_ = sc.origin.Close()
	return true
}

// end marks the copies over and returns why it was cut ("" if it ended by
// itself).
func (sc *splicedConn) end() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.ended = true
	return sc.cutWhy
}
