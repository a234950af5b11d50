package proxy

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The framer finds the end of every message however the bytes are split.
func TestFramerFindsMessageEnds(t *testing.T) {
	responses := []string{
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Long: " + strings.Repeat("x", 2000) + "\r\n\r\n5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: v\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", // to a HEAD request
		"HTTP/1.1 200 OK\r\ncontent-length:0\r\n\r\n",
	}
	heads := []bool{false, false, false, false, false, true, false}
	stream := strings.Join(responses, "")
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		var ends []int
		pos := 0
		var f framer
		i := 0
		f.onHead = func(f *framer) {
			if heads[i] || f.status == 204 || f.status == 304 || f.status >= 100 && f.status < 200 {
				f.chunked, f.length = false, 0
			}
		}
		f.onEnd = func(*framer) { i++ }
		b := []byte(stream)
		for len(b) > 0 {
			k := 1 + r.IntN(min(len(b), 64))
			for k > 0 {
				n := f.feedUntilEnd(b[:k])
				if n < k || (n == k && len(ends) < i) {
					ends = append(ends, pos+n)
				}
				pos += n
				b, k = b[n:], k-n
			}
		}
		if i != len(responses) {
			t.Fatalf("seed %d: %d message ends, want %d (ends %v)", seed, i, len(responses), ends)
		}
	}
	// The end positions match the messages (a whole-stream feed).
	var f framer
	i := 0
	f.onHead = func(f *framer) {
		if heads[i] || f.status == 204 || f.status == 304 || f.status >= 100 && f.status < 200 {
			f.chunked, f.length = false, 0
		}
	}
	f.onEnd = func(*framer) { i++ }
	b := []byte(stream)
	for j, want := range responses {
		n := f.feedUntilEnd(b)
		if n != len(want) {
			t.Fatalf("message %d: ended after %d bytes, want %d", j, n, len(want))
		}
		b = b[n:]
	}
	// A close-delimited body stops the framing.
	var g framer
	g.feed([]byte("HTTP/1.1 200 OK\r\n\r\nanything at all"))
	if !g.untilClose {
		t.Error("a response without length or chunking is not close-delimited")
	}
	var h framer
	h.feed([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"))
	if !h.tunnel {
		t.Error("a 101 does not switch to a tunnel")
	}
}
