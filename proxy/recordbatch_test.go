package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeLog is a net.Conn that records its writes.
type writeLog struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	err    error
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

func TestRecordBatch(t *testing.T) {
	t.Run("writes through unless held", func(t *testing.T) {
		var b recordBatch
		c := &writeLog{}
		for _, s := range []string{"a", "bc"} {
			if n, err := b.write(c, []byte(s)); n != len(s) || err != nil {
				t.Fatalf("write %q: %d, %v", s, n, err)
			}
		}
		if len(c.writes) != 2 {
			t.Fatalf("%d writes, want 2 (nothing held)", len(c.writes))
		}
	})
	t.Run("a held write's records leave as one, in order", func(t *testing.T) {
		var b recordBatch
		c := &writeLog{}
		b.hold()
		for _, s := range []string{"one", "two", "three"} {
			if n, err := b.write(c, []byte(s)); n != len(s) || err != nil {
				t.Fatalf("write %q: %d, %v", s, n, err)
			}
		}
		if len(c.writes) != 0 {
			t.Fatalf("%d writes while held", len(c.writes))
		}
		if err := b.release(c); err != nil {
			t.Fatal(err)
		}
		if len(c.writes) != 1 || string(c.writes[0]) != "onetwothree" {
			t.Fatalf("writes %q, want one of \"onetwothree\"", c.writes)
		}
		// After the release a write goes straight through again.
		_, _ = b.write(c, []byte("four"))
		if len(c.writes) != 2 || string(c.writes[1]) != "four" {
			t.Fatalf("writes %q after the release", c.writes)
		}
	})
	t.Run("a hold past its bound writes what it has and goes on", func(t *testing.T) {
		var b recordBatch
		c := &writeLog{}
		rec := bytes.Repeat([]byte{'r'}, 16<<10+22)
		b.hold()
		for range 6 {
			_, _ = b.write(c, rec)
		}
		if len(c.writes) != 1 || len(c.writes[0]) < recordBatchMax || len(c.writes[0]) > recordBatchMax+len(rec) {
			t.Fatalf("writes while held past the bound: %d", len(c.writes))
		}
		_ = b.release(c)
		total := 0
		for _, w := range c.writes {
			total += len(w)
		}
		if len(c.writes) != 2 || total != 6*len(rec) {
			t.Fatalf("%d writes of %d bytes, want 2 of %d", len(c.writes), total, 6*len(rec))
		}
	})
	t.Run("the release reports the write's failure", func(t *testing.T) {
		var b recordBatch
		boom := errors.New("connection reset")
		c := &writeLog{err: boom}
		b.hold()
		if _, err := b.write(c, []byte("x")); err != nil {
			t.Fatalf("held write failed: %v", err)
		}
		if err := b.release(c); !errors.Is(err, boom) {
			t.Fatalf("release: %v, want %v", err, boom)
		}
	})
}

// TestH2RecordsBatched downloads through the pipeline over HTTP/2 and counts
// the write calls on the client's connection: each DATA frame (16393 bytes
// with its header, two TLS records) is one write, where unbatched it was
// two. The bodies arrive whole; HTTP/1.1 (not batched) is already at one write per
// record.
func TestH2RecordsBatched(t *testing.T) {
	h := newHarness(t, nil)
	origin := h.origin(nil, "origin.test")
	var writes, written atomic.Int64
	front := h.frontWrapped(origin, func(c net.Conn) net.Conn {
		return &countingConn{TCPConn: c.(*net.TCPConn), writes: &writes, written: &written}
	})
	const size = 8 << 20
	for _, h2 := range []bool{true, false} {
		tr := h.client(origin, h2).Transport.(*http.Transport)
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", front)
		}
		client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		w0, b0 := writes.Load(), written.Load()
		resp, err := client.Get(fmt.Sprintf("https://origin.test/bytes/%d", size))
		if err != nil {
			t.Fatal(err)
		}
		// A record written out of order or twice would fail the client's
		// TLS (sequence numbers are in every record's seal).
		n, err := io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("h2=%v: body %d bytes (%v), want %d", h2, n, err, size)
		}
		if h2 != (resp.ProtoMajor == 2) {
			t.Fatalf("h2=%v: served over %s", h2, resp.Proto)
		}
		nw, nb := writes.Load()-w0, written.Load()-b0
		perFull := float64(nw) / (float64(size) / 16384)
		t.Logf("%s: %d writes for %d bytes, %.2f per 16 KiB", resp.Proto, nw, nb, perFull)
		// One write per frame, with room for HEADERS, SETTINGS, PINGs and
		// WINDOW_UPDATE acknowledgements; unbatched it is 2.0.
		if perFull > 1.3 {
			t.Fatalf("%s: %.2f writes per 16 KiB, want at most 1.3", resp.Proto, perFull)
		}
		tr.CloseIdleConnections()
	}
}

// countingConn counts the writes on a client connection as the pipeline
// makes them.
type countingConn struct {
	*net.TCPConn
	writes, written *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	c.written.Add(int64(len(p)))
	return c.TCPConn.Write(p)
}
