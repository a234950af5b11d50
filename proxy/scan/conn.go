package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// defaultTimeout bounds a scan whose configuration leaves Timeout at zero.
const defaultTimeout = 30 * time.Second

// aLongTimeAgo is a deadline in the past: setting it fails pending I/O now.
var aLongTimeAgo = time.Unix(1, 0)

// exchange is one connection to a scanner, bounded by a deadline (the
// scanner's Timeout or the context's, whichever is first) and failed at once
// when the context is cancelled.
type exchange struct {
	ctx     context.Context
	scanner string
	conn    net.Conn
	stop    func() bool
	// ctxDeadline: the connection's deadline is the context's, so running
	// into it is the context's deadline even before ctx.Err says so.
	ctxDeadline bool
}

// dial connects and arms the deadline (the earlier of deadline and the
// context's) and the cancellation watch. The caller must call close.
func dial(ctx context.Context, scanner, network, address string, deadline time.Time) (*exchange, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextError(scanner, "before dialling", err)
	}
	d, fromCtx := ctx.Deadline()
	if fromCtx = fromCtx && d.Before(deadline); fromCtx {
		deadline = d
	}
	dialer := net.Dialer{Deadline: deadline}
	conn, err := dialer.DialContext(ctx, network, address)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, contextError(scanner, "dial", ctxErr)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if fromCtx {
				return nil, contextError(scanner, "dial", context.DeadlineExceeded)
			}
			return nil, fmt.Errorf("%w: %s: dial %s %s: %w", ErrTimeout, scanner, network, address, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, scanner, err)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, scanner, err)
	}
	x := &exchange{ctx: ctx, scanner: scanner, conn: conn, ctxDeadline: fromCtx}
	x.stop = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	return x, nil
}

func (x *exchange) close() {
	x.stop()
	_ = x.conn.Close()
}

// abort fails every pending and later read and write on the connection.
func (x *exchange) abort() { _ = x.conn.SetDeadline(aLongTimeAgo) }

// ioError names a failed network step, telling a cancelled or expired
// context and the scanner's own timeout apart from other failures.
func (x *exchange) ioError(op string, err error) error {
	if ctxErr := x.ctx.Err(); ctxErr != nil {
		return contextError(x.scanner, op, ctxErr)
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && x.ctxDeadline:
		return contextError(x.scanner, op, context.DeadlineExceeded)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: %s: %s: no answer in time", ErrTimeout, x.scanner, op)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %s: %s: connection closed before the answer", ErrProtocol, x.scanner, op)
	}
	return fmt.Errorf("%s: %s: %w", x.scanner, op, err)
}

func contextError(scanner, op string, ctxErr error) error {
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %s: %w", ErrTimeout, scanner, op, ctxErr)
	}
	return fmt.Errorf("%s: %s: %w", scanner, op, ctxErr)
}

// sourceError wraps a failure of the caller's reader: the file could not be
// read, which is not the scanner's fault.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read file: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
