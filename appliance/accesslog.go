package appliance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-gw/portcullis/proxy"
)

// bufferedLog batches access-log lines into few writes: one write(2) per
// request costs more than the rest of the log line. Lines reach the file
// within flushEvery, and everything buffered is written on Close.
//
// A write that fails (a full disk) drops what was buffered and the log
// goes on: bufio.Writer keeps its first error for good, so without the
// reset one failure would end the access log until a restart. Failures
// are counted (portcullis_access_log_write_errors_total) and logged at
// most once a minute.
type bufferedLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	dst  io.WriteCloser
	stop chan struct{}
	done chan struct{}

	onError     func(error) // set before the first write; may be nil
	writeErrors atomic.Uint64
	lastLogged  time.Time // under mu
}

const flushEvery = 200 * time.Millisecond

func newBufferedLog(dst io.WriteCloser) *bufferedLog {
	l := &bufferedLog{w: bufio.NewWriterSize(dst, 64<<10), dst: dst, stop: make(chan struct{}), done: make(chan struct{})}
	go l.flusher()
	return l
}

func (l *bufferedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if err != nil {
		l.failedLocked(err)
	}
	return n, err
}

// failedLocked drops what is buffered after a failed write, so the next
// lines are written again, and counts and (rate-limited) logs the failure.
func (l *bufferedLog) failedLocked(err error) {
	l.w.Reset(l.dst)
	l.writeErrors.Add(1)
	if now := time.Now(); l.onError != nil && now.Sub(l.lastLogged) >= time.Minute {
		l.lastLogged = now
		l.onError(fmt.Errorf("access log: %w (buffered lines dropped; %d failed writes so far)", err, l.writeErrors.Load()))
	}
}

func (l *bufferedLog) flusher() {
	defer close(l.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.mu.Lock()
			if err := l.w.Flush(); err != nil {
				l.failedLocked(err)
			}
			l.mu.Unlock()
		case <-l.stop:
			return
		}
	}
}

// Close flushes what is buffered and closes the destination.
func (l *bufferedLog) Close() error {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.w.Flush()
	if cerr := l.dst.Close(); err == nil {
		err = cerr
	}
	return err
}

// collector counts the failed writes, read at scrape time.
func (l *bufferedLog) collector() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "portcullis_access_log_write_errors_total",
		Help: "Access log writes that failed (a full disk): the lines buffered then were dropped, and the log went on.",
	}, func() float64 { return float64(l.writeErrors.Load()) })
}

// accessHandler writes the access log's JSON lines by hand into a pooled
// buffer: the same keys and values as slog.JSONHandler (RFC 3339 time,
// level, msg, then the attributes in order), without its per-record state,
// reflection fallbacks and escaping tables. The access log writes one line
// per request, so its cost is on the request path (BenchmarkAccessLogLine
// measures both in the same run). Groups are rare here and go to a
// JSONHandler that carries the same attributes.
type accessHandler struct {
	w        io.Writer
	pre      []byte       // attributes from WithAttrs, rendered with a leading comma
	fallback slog.Handler // for WithGroup
}

var _ slog.Handler = (*accessHandler)(nil)

func newAccessHandler(w io.Writer) *accessHandler {
	return &accessHandler{w: w, fallback: slog.NewJSONHandler(w, nil)}
}

var accessBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (h *accessHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *accessHandler) Handle(_ context.Context, r slog.Record) error {
	bp, b := h.begin(r.Time, r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAccessAttr(b, a)
		return true
	})
	return h.end(bp, b)
}

var _ proxy.RequestLineHandler = (*accessHandler)(nil)

// HandleRequestLine writes what Handle writes for the line's record
// (TestRequestLineAsRecord), with the keys known here and no slog.Record.
func (h *accessHandler) HandleRequestLine(t time.Time, l *proxy.RequestLine) error {
	bp, b := h.begin(t, slog.LevelInfo, proxy.RequestLineMessage)
	b = appendTextField(b, `,"id":`, l.ID)
	b = appendTextField(b, `,"mode":`, l.Mode)
	b = appendTextField(b, `,"client":`, l.Client)
	b = appendTextField(b, `,"dest":`, l.Dest)
	b = appendTextField(b, `,"sni":`, l.SNI)
	b = appendTextField(b, `,"host":`, l.Host)
	b = appendTextField(b, `,"user":`, l.User)
	b = appendTextField(b, `,"method":`, l.Method)
	b = appendTextField(b, `,"path":`, l.Path)
	b = appendTextField(b, `,"proto":`, l.Proto)
	b = strconv.AppendInt(append(b, `,"status":`...), int64(l.Status), 10)
	b = strconv.AppendInt(append(b, `,"bytes_in":`...), l.BytesIn, 10)
	b = strconv.AppendInt(append(b, `,"bytes_out":`...), l.BytesOut, 10)
	b = appendTextField(b, `,"decision":`, l.Decision)
	b = appendTextField(b, `,"reason":`, l.Reason)
	b = appendTextField(b, `,"ja4":`, l.JA4)
	b = appendTextField(b, `,"client_app":`, l.ClientApp)
	b = appendTextField(b, `,"client_why":`, l.ClientWhy)
	b = strconv.AppendInt(append(b, `,"duration_us":`...), l.DurationUS, 10)
	return h.end(bp, b)
}

func appendTextField(b []byte, key, v string) []byte { return appendJSONText(append(b, key...), v) }

// begin starts a line in a pooled buffer: time, level, message and the
// attributes from WithAttrs.
func (h *accessHandler) begin(t time.Time, level slog.Level, msg string) (*[]byte, []byte) {
	bp := accessBufs.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":`...)
	b = appendJSONText(b, msg)
	return bp, append(b, h.pre...)
}

// end closes the line, writes it and returns the buffer to the pool.
func (h *accessHandler) end(bp *[]byte, b []byte) error {
	b = append(b, '}', '\n')
	_, err := h.w.Write(b)
	if cap(b) <= 64<<10 { // a huge line's buffer is not kept
		*bp = b
		accessBufs.Put(bp)
	}
	return err
}

func (h *accessHandler) WithAttrs(as []slog.Attr) slog.Handler {
	pre := append([]byte(nil), h.pre...)
	for _, a := range as {
		pre = appendAccessAttr(pre, a)
	}
	return &accessHandler{w: h.w, pre: pre, fallback: h.fallback.WithAttrs(as)}
}

func (h *accessHandler) WithGroup(name string) slog.Handler { return h.fallback.WithGroup(name) }

// appendAccessAttr appends ,"key":value as slog.JSONHandler renders it.
func appendAccessAttr(b []byte, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	b = append(b, ',')
	b = appendJSONText(b, a.Key)
	b = append(b, ':')
	v := a.Value
	switch v.Kind() {
	case slog.KindString:
		return appendJSONText(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindFloat64:
		if f := v.Float64(); !math.IsInf(f, 0) && !math.IsNaN(f) {
			return strconv.AppendFloat(b, f, 'g', -1, 64)
		}
	case slog.KindTime:
		b = append(b, '"')
		b = v.Time().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	case slog.KindGroup:
		b = append(b, '{')
		n := len(b)
		for _, g := range v.Group() {
			b = appendAccessAttr(b, g)
		}
		if len(b) > n {
			b = append(b[:n], b[n+1:]...) // the first member's comma
		}
		return append(b, '}')
	}
	j, err := json.Marshal(v.Any())
	if err != nil {
		return appendJSONText(b, v.String())
	}
	return append(b, j...)
}

// appendJSONText appends s as a JSON string: quote, backslash and control
// characters escaped, invalid UTF-8 as U+FFFD, U+2028/U+2029 escaped for
// JavaScript readers (as encoding/json does).
func appendJSONText(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
