package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
)

// connInbox is a net.Listener fed by the pipeline: connections that passed
// the access decision (TLS already terminated, or plain HTTP) are handed to
// one shared http.Server, which serves HTTP/1.1 itself and HTTP/2 through
// TLSNextProto, so every request of either version runs the same hooks.
type connInbox struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newConnInbox() *connInbox {
	return &connInbox{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connInbox) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *connInbox) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connInbox) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *connInbox) Addr() net.Addr { return &net.TCPAddr{} }

// connInfoOf finds the pipeline's ConnInfo under whatever the http.Server was
// handed.
func connInfoOf(c net.Conn) *ConnInfo {
	if rc, ok := c.(*replayConn); ok {
		return rc.ci
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if pc, ok := c.(*peekedConn); ok {
		return pc.ci
	}
	return nil
}

func connContext(ctx context.Context, c net.Conn) context.Context {
	if ci := connInfoOf(c); ci != nil {
		return withConnInfo(ctx, ci)
	}
	return ctx
}
