package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
)

// ErrUpstreamOverrun means an origin sent bytes after the end of its
// response (more than its Content-Length, or past the last chunk) on an
// HTTP/1.1 connection the pool would reuse.
var ErrUpstreamOverrun = errors.New("origin sent bytes beyond its response")

// framedConn guards a pooled HTTP/1.1 upstream connection against response
// desync. net/http's transport puts a connection back in the pool as soon
// as a response body is read, and only then looks at what else is buffered:
// bytes an origin sent behind its response (more than its Content-Length, or
// a second response: a desync at the origin's own front end) can, in that
// window, be read as the response to the next request on the connection —
// another client's, since the pool is shared. framedConn follows the message
// framing both ways (requests written, responses read); a read never crosses
// the end of the last response expected, and bytes found there fail the
// connection instead of reaching the transport.
type framedConn struct {
	net.Conn
	s    *Server
	dest string

	wmu sync.Mutex
	req framer // what the transport writes

	rmu     sync.Mutex
	resp    framer // what the origin sends
	heads   []bool // per request written and not answered: was it HEAD
	pending []byte // bytes read past the end of the expected responses
	err     error

	expected atomic.Int32 // requests written whose response has not ended
	// tunneled: a 101 was read; what is written since is the new
	// protocol's, not requests (framing it would also take rmu, which a
	// tunnel's blocking Read holds: a deadlock).
	tunneled atomic.Bool
}

func (s *Server) frameUpstream(c net.Conn, dest string) net.Conn {
	fc := &framedConn{Conn: c, s: s, dest: dest}
	fc.req.request = true
	fc.req.onHead = fc.wroteHead
	fc.resp.onHead = fc.readHead
	fc.resp.onEnd = fc.responseEnded
	return fc
}

func (c *framedConn) Write(p []byte) (int, error) {
	if !c.tunneled.Load() {
		c.wmu.Lock()
		c.req.feed(p)
		c.wmu.Unlock()
	}
	return c.Conn.Write(p)
}

// wroteHead notes a request whose head was written (under wmu).
func (c *framedConn) wroteHead(f *framer) {
	c.rmu.Lock()
	c.heads = append(c.heads, f.method == "HEAD")
	c.rmu.Unlock()
	c.expected.Add(1)
}

// readHead decides the body of a response head (under rmu).
func (c *framedConn) readHead(f *framer) {
	head := len(c.heads) > 0 && c.heads[0]
	if head || f.status == 204 || f.status == 304 || f.status >= 100 && f.status < 200 {
		f.chunked, f.length = false, 0
	}
}

// responseEnded is the end of a response (under rmu).
func (c *framedConn) responseEnded(f *framer) {
	if f.status >= 100 && f.status < 200 && f.status != 101 {
		return // interim: the final response follows
	}
	if f.status == 101 {
		c.tunneled.Store(true)
	}
	if len(c.heads) > 0 {
		// Shifted down, not resliced: the backing is kept for the next
		// request (a pooled connection has one at a time).
		c.heads = c.heads[:copy(c.heads, c.heads[1:])]
	}
	c.expected.Add(-1)
}

func (c *framedConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.resp.tunnel || c.resp.untilClose {
		return c.Conn.Read(p)
	}
	if len(c.pending) > 0 {
		// Held back at the end of the last response: only a request
		// written since may claim them.
		if c.expected.Load() == 0 {
			return 0, c.overrun(len(c.pending))
		}
		n := c.take(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	c.rmu.Unlock()
	n, err := c.Conn.Read(p)
	c.rmu.Lock()
	if n == 0 || c.resp.tunnel || c.resp.untilClose {
		return n, err
	}
	m := c.take(p[:n], p[:n])
	if m < n {
		c.pending = append(c.pending[:0], p[m:n]...)
		if c.expected.Load() == 0 {
			// Nothing was asked: the rest is an overrun. The response it
			// follows is whole and is delivered; the connection is not.
			c.err = c.overrun(len(c.pending))
			c.pending = nil
		}
	}
	return m, err
}

// take feeds src (which starts at p's start, or is pending) to the
// response framer, copies the bytes that belong to expected responses into
// p and returns how many: it stops where the last expected response ends.
func (c *framedConn) take(p, src []byte) int {
	n := 0
	for n < len(src) && n < len(p) {
		if c.expected.Load() == 0 {
			break
		}
		k := c.resp.feedUntilEnd(src[n:min(len(src), len(p))])
		copy(p[n:], src[n:n+k])
		n += k
		if c.resp.tunnel || c.resp.untilClose {
			n += copy(p[n:], src[n:min(len(src), len(p))])
			break
		}
	}
	return n
}

func (c *framedConn) overrun(n int) error {
	c.s.limits.stats.UpstreamOverruns.Add(1)
	c.s.cfg.Log.Warn("origin sent bytes beyond its response: connection not reused", "dest", c.dest, "bytes", n)
	return fmt.Errorf("%w (%d bytes from %s)", ErrUpstreamOverrun, n, c.dest)
}

// framer follows HTTP/1.1 message framing over a byte stream: the head
// (status or request line and the fields that frame the body), then a body
// by Content-Length, by chunks, or (responses) until close. It keeps no
// more than one line of the head and reads nothing else.
type framer struct {
	request bool
	onHead  func(*framer)
	onEnd   func(*framer)

	state   framerState
	line    []byte // the current line, up to maxFramerLine
	long    bool   // the current line was longer
	first   bool   // the next head line is the start line
	method  string
	status  int
	length  int64 // -1: none
	chunked bool
	left    int64 // body or chunk bytes left
	// tunnel: a 101 response switched protocols; untilClose: a response
	// body delimited by the connection's end. Framing stops for both.
	tunnel, untilClose bool
}

type framerState uint8

const (
	inHead framerState = iota
	inBody
	inChunkSize
	inChunkData
	inChunkEnd
	inTrailer
)

const maxFramerLine = 512

func (f *framer) feed(p []byte) {
	for len(p) > 0 && !f.tunnel && !f.untilClose {
		p = p[f.feedUntilEnd(p):]
	}
}

// feedUntilEnd consumes p up to and including the end of the current
// message and returns how much it consumed.
func (f *framer) feedUntilEnd(p []byte) int {
	n := 0
	for n < len(p) {
		if f.tunnel || f.untilClose {
			return len(p)
		}
		switch f.state {
		case inBody, inChunkData:
			k := int64(len(p) - n)
			if k > f.left {
				k = f.left
			}
			n += int(k)
			f.left -= k
			if f.left == 0 {
				if f.state == inBody {
					f.end()
					return n
				}
				f.state = inChunkEnd
			}
			continue
		}
		i := bytes.IndexByte(p[n:], '\n')
		if i < 0 {
			f.addLine(p[n:])
			return len(p)
		}
		f.addLine(p[n : n+i])
		n += i + 1
		line := bytes.TrimSuffix(f.line, []byte("\r"))
		long := f.long
		f.line, f.long = f.line[:0], false
		if f.lineDone(line, long) {
			return n
		}
	}
	return n
}

func (f *framer) addLine(b []byte) {
	if room := maxFramerLine - len(f.line); room > 0 {
		if len(b) > room {
			b, f.long = b[:room], true
		}
		f.line = append(f.line, b...)
	} else if len(b) > 0 {
		f.long = true
	}
}

// lineDone handles one line; it reports whether a message ended with it.
func (f *framer) lineDone(line []byte, long bool) bool {
	switch f.state {
	case inHead:
		if len(line) == 0 {
			if !f.first {
				return false // blank lines before a message
			}
			return f.headDone()
		}
		if !f.first {
			f.first = true
			f.startLine(line)
			return false
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || long {
			return false
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if v, err := strconv.ParseInt(string(value), 10, 64); err == nil && v >= 0 {
				f.length = v
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			f.chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	case inChunkSize:
		size, _, _ := bytes.Cut(line, []byte(";"))
		v, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || v < 0 {
			f.untilClose = true // the transport fails this response itself
			return false
		}
		if v == 0 {
			f.state = inTrailer
			return false
		}
		f.left, f.state = v, inChunkData
	case inChunkEnd:
		f.state = inChunkSize
	case inTrailer:
		if len(line) == 0 {
			f.end()
			return true
		}
	}
	return false
}

func (f *framer) startLine(line []byte) {
	f.length, f.chunked, f.status = -1, false, 0
	if f.request {
		m, _, _ := bytes.Cut(line, []byte(" "))
		f.method = methodName(m)
		return
	}
	if _, rest, ok := bytes.Cut(line, []byte(" ")); ok && len(rest) >= 3 {
		f.status, _ = strconv.Atoi(string(rest[:3]))
	}
}

func (f *framer) headDone() bool {
	if f.onHead != nil {
		f.onHead(f)
	}
	switch {
	case !f.request && f.status == 101:
		f.tunnel = true
		f.end()
		return true
	case f.chunked:
		f.state = inChunkSize
	case f.length > 0:
		f.left, f.state = f.length, inBody
	case f.length < 0 && !f.request:
		// No length, not chunked, and a body is allowed (readHead zeroed
		// the length of those that have none): delimited by the close.
		f.untilClose = true
		return false
	default:
		f.end()
		return true
	}
	return false
}

func (f *framer) end() {
	f.state, f.first = inHead, false
	if f.onEnd != nil {
		f.onEnd(f)
	}
}

// methodName is m as a string, without a copy for the methods the lean
// path writes.
func methodName(m []byte) string {
	switch string(m) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	}
	return string(m)
}
