package scan

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// ClamdConfig says where clamd listens and how long a scan may take.
type ClamdConfig struct {
	// Network is "unix" (Address is clamd's LocalSocket path) or "tcp"
	// (Address is host:port of its TCPSocket).
	Network string
	Address string
	// Timeout bounds one scan or health check, connecting included; 0 means
	// 30 seconds. The context's deadline applies too, whichever is first.
	Timeout time.Duration
	// MaxStream is the longest file sent, in bytes. Set it to clamd's
	// StreamMaxLength: a file known to be longer fails before it is sent,
	// one of unknown size as soon as it is. 0 leaves the limit to clamd,
	// which stops reading at its own limit (ErrTooLarge either way).
	MaxStream int64
	// MaxConns bounds concurrent connections to clamd; 0 means no bound.
	// With it at or below clamd's MaxThreads, scans wait here, within their
	// Timeout and context, instead of in clamd's queue.
	MaxConns int
}

// Validate reports a configuration this client cannot honour.
func (c ClamdConfig) Validate() error {
	switch c.Network {
	case "unix":
		if c.Address == "" {
			return errors.New("clamd: Address: the socket path is empty")
		}
	case "tcp":
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			return fmt.Errorf("clamd: Address: %w", err)
		}
	default:
		return fmt.Errorf("clamd: Network %q: want \"unix\" or \"tcp\"", c.Network)
	}
	if c.Timeout < 0 || c.MaxStream < 0 || c.MaxConns < 0 {
		return errors.New("clamd: Timeout, MaxStream and MaxConns must not be negative")
	}
	return nil
}

// Clamd scans files with clamd's INSTREAM command, one connection per scan.
// Connections are not kept: dialling a local socket costs microseconds, and a
// kept connection that clamd had closed in the meantime would be found dead
// only after the caller's reader was consumed, when the file can no longer
// be sent again.
type Clamd struct {
	cfg   ClamdConfig
	slots chan struct{} // nil without MaxConns
}

// NewClamd checks cfg and returns a client; it does not connect.
func NewClamd(cfg ClamdConfig) (*Clamd, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	c := &Clamd{cfg: cfg}
	if cfg.MaxConns > 0 {
		c.slots = make(chan struct{}, cfg.MaxConns)
	}
	return c, nil
}

// Name is "clamd".
func (c *Clamd) Name() string { return clamdName }

const (
	clamdName = "clamd"
	// clamdChunk is the INSTREAM chunk size: large enough that the 4-byte
	// length prefix and the write call are noise, small enough for clamd's
	// smallest StreamMaxLength settings.
	clamdChunk = 64 << 10
	// maxClamdReply bounds an answer; the longest real one is a signature
	// name with a few words around it.
	maxClamdReply = 4 << 10
)

var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 4+clamdChunk); return &b }}

// Scan streams the file to clamd and returns its verdict.
func (c *Clamd) Scan(ctx context.Context, r io.Reader, size int64, name string) (Verdict, error) {
	if c.cfg.MaxStream > 0 && size > c.cfg.MaxStream {
		return Verdict{}, fmt.Errorf("%w: clamd: %d bytes, MaxStream is %d", ErrTooLarge, size, c.cfg.MaxStream)
	}
	x, err := c.connect(ctx)
	if err != nil {
		return Verdict{}, err
	}
	defer c.release(x)

	werr := c.send(x.conn, r, size)
	var src *sourceError
	if errors.As(werr, &src) || errors.Is(werr, ErrTooLarge) {
		return Verdict{}, fmt.Errorf("clamd: %w", werr)
	}
	// Read the answer even after a failed write: clamd closes the connection
	// once a stream is over its limit, and says so first.
	reply, rerr := readClamdReply(x.conn)
	if rerr != nil {
		if werr != nil {
			return Verdict{}, x.ioError("send file", werr)
		}
		return Verdict{}, x.ioError("read answer", rerr)
	}
	v, err := parseInstreamReply(reply)
	if err != nil {
		return Verdict{}, err
	}
	if werr != nil {
		// clamd answered without the whole file: no verdict about this file.
		return Verdict{}, x.ioError("send file", werr)
	}
	return v, nil
}

// send writes the INSTREAM command, the file in length-prefixed chunks and
// the zero-length terminator.
func (c *Clamd) send(w io.Writer, r io.Reader, size int64) error {
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	if _, err := io.WriteString(w, "zINSTREAM\x00"); err != nil {
		return err
	}
	var total int64
	for {
		n, err := io.ReadFull(r, buf[4:])
		if n > 0 {
			total += int64(n)
			if c.cfg.MaxStream > 0 && total > c.cfg.MaxStream {
				return fmt.Errorf("%w: more than MaxStream (%d bytes)", ErrTooLarge, c.cfg.MaxStream)
			}
			if size >= 0 && total > size {
				return sizeMismatch(total, size, true)
			}
			binary.BigEndian.PutUint32(buf, uint32(n))
			if _, werr := w.Write(buf[:4+n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return &sourceError{err}
		}
	}
	if size >= 0 && total != size {
		return sizeMismatch(total, size, false)
	}
	_, err := w.Write([]byte{0, 0, 0, 0})
	return err
}

func sizeMismatch(got, size int64, more bool) error {
	if more {
		return &sourceError{fmt.Errorf("the reader gave more than the %d bytes of size", size)}
	}
	return &sourceError{fmt.Errorf("the reader gave %d bytes, size said %d", got, size)}
}

// Ping checks that clamd answers PING with PONG.
func (c *Clamd) Ping(ctx context.Context) error {
	reply, err := c.command(ctx, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("%w: clamd: PING answered %q", ErrProtocol, reply)
	}
	return nil
}

// Version returns clamd's VERSION answer, e.g. "ClamAV 1.4.6" or, with the
// official databases, "ClamAV 1.4.6/27500/Tue Dec  1 09:00:00 2026".
func (c *Clamd) Version(ctx context.Context) (string, error) {
	reply, err := c.command(ctx, "VERSION")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(reply, "ClamAV ") {
		return "", fmt.Errorf("%w: clamd: VERSION answered %q", ErrProtocol, reply)
	}
	return reply, nil
}

func (c *Clamd) command(ctx context.Context, cmd string) (string, error) {
	x, err := c.connect(ctx)
	if err != nil {
		return "", err
	}
	defer c.release(x)
	if _, err := io.WriteString(x.conn, "z"+cmd+"\x00"); err != nil {
		return "", x.ioError(cmd, err)
	}
	reply, err := readClamdReply(x.conn)
	if err != nil {
		return "", x.ioError(cmd, err)
	}
	return reply, nil
}

// connect takes a connection slot and dials, both within Timeout and ctx.
func (c *Clamd) connect(ctx context.Context) (*exchange, error) {
	deadline := time.Now().Add(c.cfg.Timeout)
	if c.slots != nil {
		select {
		case c.slots <- struct{}{}:
		default:
			wait := time.NewTimer(time.Until(deadline))
			select {
			case c.slots <- struct{}{}:
				wait.Stop()
			case <-wait.C:
				return nil, fmt.Errorf("%w: clamd: all %d connections busy", ErrTimeout, c.cfg.MaxConns)
			case <-ctx.Done():
				wait.Stop()
				return nil, contextError(clamdName, "waiting for a connection slot", ctx.Err())
			}
		}
	}
	x, err := dial(ctx, clamdName, c.cfg.Network, c.cfg.Address, deadline)
	if err != nil && c.slots != nil {
		<-c.slots
	}
	return x, err
}

func (c *Clamd) release(x *exchange) {
	x.close()
	if c.slots != nil {
		<-c.slots
	}
}

// readClamdReply reads one NUL-terminated answer (commands sent with the
// "z" prefix are answered that way) of at most maxClamdReply bytes.
func readClamdReply(r io.Reader) (string, error) {
	var buf [maxClamdReply]byte
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return string(buf[:i]), nil
		}
		if n == len(buf) {
			return "", fmt.Errorf("%w: clamd: answer longer than %d bytes", ErrProtocol, maxClamdReply)
		}
		if err != nil {
			if err == io.EOF && n > 0 {
				// Unterminated but complete: clamd closed after writing.
				return string(bytes.TrimRight(buf[:n], "\n")), nil
			}
			return "", err
		}
	}
}

// parseInstreamReply turns clamd's answer to INSTREAM into a verdict or an
// error. The answers are "stream: OK", "stream: <signature> FOUND",
// "INSTREAM size limit exceeded. ERROR" and "<reason> ERROR".
func parseInstreamReply(reply string) (Verdict, error) {
	if !printable(reply) {
		return Verdict{}, fmt.Errorf("%w: clamd: answer with control bytes: %q", ErrProtocol, reply)
	}
	v := Verdict{Scanner: clamdName}
	switch {
	case reply == "stream: OK":
		return v, nil
	case strings.HasPrefix(reply, "stream: ") && strings.HasSuffix(reply, " FOUND"):
		sig := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(reply, "stream: "), " FOUND"))
		if sig == "" {
			return Verdict{}, fmt.Errorf("%w: clamd: FOUND without a signature: %q", ErrProtocol, reply)
		}
		v.Infected, v.Signature = true, sig
		return v, nil
	case strings.Contains(reply, "size limit exceeded"):
		return Verdict{}, fmt.Errorf("%w: clamd: %s", ErrTooLarge, reply)
	case strings.HasSuffix(reply, "ERROR"):
		return Verdict{}, fmt.Errorf("%w: clamd: %s", ErrScanner, reply)
	}
	return Verdict{}, fmt.Errorf("%w: clamd: unexpected answer %q", ErrProtocol, reply)
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
