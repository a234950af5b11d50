package proxy

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab/rawhttp"
)

// A request body that breaks is the client's error: 400 (408 when it
// stalled), logged as decision "error" with a reason naming the client
// body — never a 502 blamed on the origin. Nothing complete reaches the
// origin.
func TestHostileMalformedBodyIsClientError(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BodyReadTimeout = 300 * time.Millisecond })
	head := "POST /up HTTP/1.1\r\nHost: origin.test\r\n"
	cases := []struct {
		name     string
		raw      string
		halfOpen bool // close the write side after sending
		want     int
		reason   string
	}{
		{"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nhello\r\n0\r\n\r\n", false, 400, "client body: "},
		{"chunk extension abuse", head + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;"+strings.Repeat("x", 8000)+"\r\na\r\n", 40) + "0\r\n\r\n", false, 400, "client body: "},
		{"chunk data longer than its size", head + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", false, 400, "client body: "},
		{"shorter than its Content-Length", head + "Content-Length: 100\r\n\r\nonly this", true, 400, "client body: "},
		{"final chunk missing", head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", true, 400, "client body: "},
		{"stalled mid-body", head + "Content-Length: 100\r\n\r\nten bytes.", false, 408, "client body: no progress for 300ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := h.rawOrigin(nil)
			front := h.limitedFront(o.Addr)
			c, err := rawhttp.Dial(front, "")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Send(tc.raw); err != nil {
				t.Fatal(err)
			}
			if tc.halfOpen {
				_ = c.Conn.(*net.TCPConn).CloseWrite()
			}
			resp, err := c.ReadResponse("POST", 5*time.Second)
			if err != nil {
				t.Fatalf("no response: %v; log %v", err, h.log.lines(t))
			}
			if resp.Status != tc.want {
				t.Fatalf("status %d, want %d (body %q)", resp.Status, tc.want, resp.Body)
			}
			if n := len(o.Requests()); n != 0 {
				t.Errorf("origin read %d complete request(s)", n)
			}
			if !waitFor2(2*time.Second, func() bool { return len(h.logLines("reason", tc.reason)) > 0 }) {
				t.Fatalf("no access-log line with reason %q: %v", tc.reason, h.log.lines(t))
			}
			for _, l := range h.logLines("reason", tc.reason) {
				if l["decision"] != "error" || l["status"] != float64(tc.want) {
					t.Errorf("logged %v/%v, want error/%d", l["decision"], l["status"], tc.want)
				}
			}
		})
	}
	if h.srv.Stats.UpstreamErrors.Load() != 0 {
		t.Errorf("%d client-body failures counted as upstream errors", h.srv.Stats.UpstreamErrors.Load())
	}
}

// The body timeout is per read and rearmed by progress: an upload that
// keeps moving, however long it takes in total, is never cut.
func TestHostileSlowUploadThatMovesIsNotCut(t *testing.T) {
	const timeout = 400 * time.Millisecond
	h := newHarness(t, func(c *Config) { c.BodyReadTimeout = timeout })
	o := h.rawOrigin(nil)
	c, err := rawhttp.Dial(h.limitedFront(o.Addr), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const pieces = 12 // 12 × 150ms = 1.8s, 4.5 timeouts in total
	if err := c.Send("POST /up HTTP/1.1\r\nHost: origin.test\r\nContent-Length: " + strconvFormat(pieces) + "\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for range pieces {
		time.Sleep(timeout * 3 / 8)
		if err := c.Send("x"); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.ReadResponse("POST", 5*time.Second)
	if err != nil || resp.Status != 200 {
		t.Fatalf("slow upload: %v %+v", err, resp)
	}
	if reqs := o.Requests(); len(reqs) != 1 || string(reqs[0].Body) != strings.Repeat("x", pieces) {
		t.Fatalf("origin got %d requests", len(reqs))
	}
	// The deadline does not outlive the body: the connection stays usable
	// past the timeout.
	time.Sleep(2 * timeout)
	if err := c.Send(nextReq); err != nil {
		t.Fatal(err)
	}
	if resp, err := c.ReadResponse("GET", 5*time.Second); err != nil || resp.Status != 200 {
		t.Fatalf("next request after the upload: %v %+v", err, resp)
	}
}

func waitFor2(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}
