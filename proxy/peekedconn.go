package proxy

import (
	"net"
)

// peekedConn replays the bytes consumed while peeking the ClientHello before
// reading from the socket again, so TLS termination sees the whole handshake.
type peekedConn struct {
	net.Conn
	peeked []byte
	ci     *ConnInfo
	// batch gathers the TLS records of an HTTP/2 connection's writes
	// (recordbatch.go); set before the connection is handed to HTTP/2, nil
	// for HTTP/1.
	batch *recordBatch
}

func (c *peekedConn) Write(p []byte) (int, error) {
	if c.batch != nil {
		return c.batch.write(c.Conn, p)
	}
	return c.Conn.Write(p)
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.peeked) > 0 {
		n := copy(p, c.peeked)
		c.peeked = c.peeked[n:]
		if len(c.peeked) == 0 {
			c.peeked = nil // let the peek buffer be collected
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes when the underlying connection supports it.
func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
