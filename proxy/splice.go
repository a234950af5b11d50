package proxy

import (
	"context"
	"io"
	"net"
	"sync"
)

// splice joins a bypassed client to its original destination: the peeked
// bytes are replayed first, then both directions are copied by the kernel
// (splice(2) via TCPConn.ReadFrom) without user-space buffers.
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
	if !s.trackSplice(c, true) {
		_ = up.Close()
		_ = c.Close()
		return
	}
	defer s.trackSplice(c, false)
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

// trackSplice adds or removes a spliced client connection; adding fails once
// the server is closing.
func (s *Server) trackSplice(c net.Conn, add bool) bool {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if !add {
		delete(s.spliced, c)
		return true
	}
	if s.closing.Load() {
		return false
	}
	s.spliced[c] = struct{}{}
	return true
}
