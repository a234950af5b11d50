package rawhttp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Client is a raw HTTP/1.1 client connection: it writes exactly the bytes it
// is given and reads responses strictly.
type Client struct {
	net.Conn
	BR *bufio.Reader
}

// Dial connects to addr, from local when it is not empty (a loopback source
// address such as "127.0.0.7").
func Dial(addr, local string) (*Client, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewClient(c), nil
}

// NewClient wraps an open connection (a TLS one, for instance).
func NewClient(c net.Conn) *Client { return &Client{Conn: c, BR: bufio.NewReader(c)} }

// Send writes s as is.
func (c *Client) Send(s string) error {
	_, err := io.WriteString(c.Conn, s)
	return err
}

// Response is one response as read off the wire.
type Response struct {
	Status int
	Header textproto.MIMEHeader
	Body   []byte
	// Complete is true when the body ended where its framing said: the
	// final chunk, the Content-Length reached, or (no framing) the close.
	Complete bool
	// Framing is "length", "chunked" or "close".
	Framing string
	// Err is why the body is incomplete.
	Err error
}

// ReadResponse reads one response to a request of method. A response whose
// body ends early comes back with Complete false and Err set; err is for a
// response that could not be read at all (io.EOF: the connection closed
// before a status line).
func (c *Client) ReadResponse(method string, timeout time.Duration) (*Response, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	tp := textproto.NewReader(c.BR)
	var resp *Response
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return nil, err
		}
		proto, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(proto, "HTTP/1.") || len(rest) < 3 {
			return nil, fmt.Errorf("bad status line %q", line)
		}
		code, err := strconv.Atoi(rest[:3])
		if err != nil {
			return nil, fmt.Errorf("bad status line %q", line)
		}
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return nil, err
		}
		if code >= 100 && code < 200 && code != 101 {
			continue
		}
		resp = &Response{Status: code, Header: h}
		break
	}
	if method == "HEAD" || resp.Status == 204 || resp.Status == 304 || resp.Status == 101 {
		resp.Complete, resp.Framing = true, "length"
		return resp, nil
	}
	switch {
	case strings.EqualFold(resp.Header.Get("Transfer-Encoding"), "chunked"):
		resp.Framing = "chunked"
		resp.Body, resp.Err = readChunkedBody(c.BR)
	case resp.Header.Get("Content-Length") != "":
		resp.Framing = "length"
		n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad Content-Length %q", resp.Header.Get("Content-Length"))
		}
		resp.Body = make([]byte, n)
		k, err := io.ReadFull(c.BR, resp.Body)
		resp.Body, resp.Err = resp.Body[:k], err
	default:
		resp.Framing = "close"
		resp.Body, resp.Err = io.ReadAll(c.BR)
	}
	resp.Complete = resp.Err == nil
	return resp, nil
}

func readChunkedBody(br *bufio.Reader) ([]byte, error) {
	var body []byte
	tp := textproto.NewReader(br)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return body, noEOF(err)
		}
		size, err := strconv.ParseUint(strings.TrimSpace(strings.SplitN(line, ";", 2)[0]), 16, 63)
		if err != nil {
			return body, fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			for {
				l, err := tp.ReadLine()
				if err != nil {
					return body, noEOF(err)
				}
				if l == "" {
					return body, nil
				}
			}
		}
		chunk := make([]byte, size+2)
		n, err := io.ReadFull(br, chunk)
		body = append(body, chunk[:min(n, int(size))]...)
		if err != nil {
			return body, noEOF(err)
		}
	}
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Closed reports whether the peer closed (or reset) the connection within
// timeout without sending anything more.
func (c *Client) Closed(timeout time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	var b [1]byte
	_, err := c.BR.Read(b[:])
	if err == nil {
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}
