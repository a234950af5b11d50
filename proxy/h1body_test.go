package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
	"github.com/portcullis-gw/portcullis/internal/lab/rawhttp"
)

// smuggledBody is a body made of complete requests for /smuggled: if the
// loop ever lost count of a body's bytes, it would read them as the
// connection's next requests, and the origin would see them.
func smuggledBody(n int) []byte {
	one := "GET /smuggled HTTP/1.1\r\nHost: origin.test\r\n\r\n"
	return []byte(strings.Repeat(one, n/len(one)+1)[:n])
}

func postHead(target string, n int) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: origin.test\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", target, n)
}

// Requests with a Content-Length body are served by the loop: the body
// reaches the origin exactly, the next request on the connection is read
// where the body ends (pipelined in the same write too), and no body byte
// is ever read as a request, whether the pipeline read the body, left it
// unread (a blocked request), or the client stalled or left mid-body.
func TestH1LoopRequestBodies(t *testing.T) {
	blocked := RequestDeciderFunc(func(_ *ConnInfo, r *http.Request) RequestDecision {
		if strings.HasPrefix(r.URL.Path, "/blocked") {
			return RequestDecision{Block: true, Reason: "test", Message: "blocked"}
		}
		return RequestDecision{}
	})
	h := newHarness(t, func(c *Config) {
		c.Request = blocked
		c.BodyReadTimeout = 400 * time.Millisecond
	})
	o := h.rawTLSOrigin("origin.test", rawhttp.OK)
	front := h.limitedFront(o.Addr)
	st := &h.srv.Stats
	noSmuggling := func(t *testing.T) {
		t.Helper()
		for _, r := range o.Requests() {
			if r.Target == "/smuggled" {
				t.Fatal("the origin got a request made of a body's bytes")
			}
		}
	}

	t.Run("read by the origin, pipelined", func(t *testing.T) {
		plain0, handed0 := st.H1Plain.Load(), st.H1HandedOver.Load()
		o.Reset()
		body := smuggledBody(70_000) // many reads of the 4 KiB buffer
		c := h.dialTLS1(front, "", "origin.test")
		_ = c.Send(postHead("/up", len(body)) + string(body) + "GET /next HTTP/1.1\r\nHost: origin.test\r\n\r\n")
		for _, m := range []string{"POST", "GET"} {
			if resp, err := c.ReadResponse(m, 5*time.Second); err != nil || resp.Status != 200 || !resp.Complete {
				t.Fatalf("%s: %+v, %v", m, resp, err)
			}
		}
		reqs := o.Requests()
		if len(reqs) != 2 || reqs[0].Target != "/up" || !bytes.Equal(reqs[0].Body, body) || reqs[1].Target != "/next" {
			t.Fatalf("origin got %d requests (first body %d bytes), want POST /up with the %d-byte body, then GET /next", len(reqs), len(reqs[0].Body), len(body))
		}
		if p, hd := st.H1Plain.Load()-plain0, st.H1HandedOver.Load()-handed0; p != 2 || hd != 0 {
			t.Fatalf("loop served %d, handed over %d; want 2 and 0", p, hd)
		}
		noSmuggling(t)
	})

	t.Run("left unread, drained", func(t *testing.T) {
		o.Reset()
		req0 := st.Requests.Load()
		body := smuggledBody(100 << 10) // within maxBodyDrain
		c := h.dialTLS1(front, "", "origin.test")
		_ = c.Send(postHead("/blocked", len(body)) + string(body))
		resp, err := c.ReadResponse("POST", 5*time.Second)
		if err != nil || resp.Status != http.StatusForbidden || resp.Header.Get("Connection") == "close" {
			t.Fatalf("blocked POST: %+v, %v", resp, err)
		}
		_ = c.Send("GET /after HTTP/1.1\r\nHost: origin.test\r\n\r\n")
		if resp, err := c.ReadResponse("GET", 5*time.Second); err != nil || resp.Status != 200 {
			t.Fatalf("GET after the drained body: %+v, %v", resp, err)
		}
		if n := st.Requests.Load() - req0; n != 2 {
			t.Fatalf("the pipeline saw %d requests, want 2", n)
		}
		if reqs := o.Requests(); len(reqs) != 1 || reqs[0].Target != "/after" {
			t.Fatalf("origin got %d requests, want only GET /after", len(reqs))
		}
		noSmuggling(t)
	})

	t.Run("left unread, too long to drain", func(t *testing.T) {
		o.Reset()
		req0 := st.Requests.Load()
		body := smuggledBody(1 << 20)
		c := h.dialTLS1(front, "", "origin.test")
		go func() { _ = c.Send(postHead("/blocked", len(body)) + string(body)) }()
		resp, err := c.ReadResponse("POST", 5*time.Second)
		if err != nil || resp.Status != http.StatusForbidden || resp.Header.Get("Connection") != "close" {
			t.Fatalf("blocked POST: %+v, %v; want 403 with Connection: close", resp, err)
		}
		if !c.Closed(3 * time.Second) {
			t.Fatal("connection still open after a body too long to drain")
		}
		if n := st.Requests.Load() - req0; n != 1 {
			t.Fatalf("the pipeline saw %d requests, want 1", n)
		}
		if n := len(o.Requests()); n != 0 {
			t.Fatalf("origin got %d requests, want none", n)
		}
	})

	t.Run("stalled mid-body", func(t *testing.T) {
		o.Reset()
		timeouts0 := h.srv.limits.stats.ClientBodyTimeouts.Load()
		c := h.dialTLS1(front, "", "origin.test")
		_ = c.Send(postHead("/stall", 100) + "only part")
		start := time.Now()
		resp, err := c.ReadResponse("POST", 5*time.Second)
		if err != nil || resp.Status != http.StatusRequestTimeout {
			t.Fatalf("stalled body: %+v, %v; want 408", resp, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("stalled body answered after %v", d)
		}
		if n := h.srv.limits.stats.ClientBodyTimeouts.Load() - timeouts0; n != 1 {
			t.Fatalf("%d body timeouts counted, want 1", n)
		}
		if !c.Closed(3 * time.Second) {
			t.Fatal("connection still open after a stalled body")
		}
		for _, r := range o.Requests() {
			if r.Target == "/stall" && len(r.Body) == 100 {
				t.Fatal("origin got a complete request from a stalled body")
			}
		}
	})

	t.Run("client gone mid-body", func(t *testing.T) {
		o.Reset()
		c := h.dialTLS1(front, "", "origin.test")
		_ = c.Send(postHead("/gone", 100) + "partial")
		_ = c.Conn.Close()
		// Other clients go on being served meanwhile.
		c2 := h.dialTLS1(front, "", "origin.test")
		_ = c2.Send("GET /other HTTP/1.1\r\nHost: origin.test\r\n\r\n")
		if resp, err := c2.ReadResponse("GET", 5*time.Second); err != nil || resp.Status != 200 {
			t.Fatalf("another client: %+v, %v", resp, err)
		}
		time.Sleep(200 * time.Millisecond)
		for _, r := range o.Requests() {
			if r.Target == "/gone" && len(r.Body) == 100 {
				t.Fatal("origin got a complete request from a client that left mid-body")
			}
		}
	})

	// The upload's client is watched once its body is in (the watch reads
	// the connection): a request the client sends meanwhile stays in the
	// buffer and is served after the upload's slow answer.
	t.Run("slow answer, next request sent while waiting", func(t *testing.T) {
		slow := h.rawTLSOrigin("origin.test", func(c net.Conn, req *rawhttp.Request) bool {
			if req.Target == "/slow" {
				time.Sleep(400 * time.Millisecond) // well past clientWatchDelay
			}
			return rawhttp.OK(c, req)
		})
		front := h.limitedFront(slow.Addr)
		for _, n := range []int{1000, 64 << 10} {
			slow.Reset()
			body := smuggledBody(n)
			c := h.dialTLS1(front, "", "origin.test")
			_ = c.Send(postHead("/slow", n) + string(body))
			time.Sleep(200 * time.Millisecond) // the body is in; the watch is reading
			_ = c.Send("GET /next HTTP/1.1\r\nHost: origin.test\r\n\r\n")
			for _, m := range []string{"POST", "GET"} {
				if resp, err := c.ReadResponse(m, 5*time.Second); err != nil || resp.Status != 200 || !resp.Complete {
					t.Fatalf("%d bytes: %s: %+v, %v", n, m, resp, err)
				}
			}
			reqs := slow.Requests()
			if len(reqs) != 2 || reqs[0].Target != "/slow" || !bytes.Equal(reqs[0].Body, body) || reqs[1].Target != "/next" {
				t.Fatalf("%d bytes: origin got %d requests, want POST /slow with its body, then GET /next", n, len(reqs))
			}
			// And the connection serves on.
			_ = c.Send("GET /last HTTP/1.1\r\nHost: origin.test\r\n\r\n")
			if resp, err := c.ReadResponse("GET", 5*time.Second); err != nil || resp.Status != 200 {
				t.Fatalf("%d bytes: last GET: %+v, %v", n, resp, err)
			}
		}
		noSmuggling(t)
	})

	t.Run("origin answers before reading", func(t *testing.T) {
		early := earlyOrigin(t, h)
		front := h.limitedFront(early)
		req0 := st.Requests.Load()
		body := smuggledBody(2 << 20)
		c := h.dialTLS1(front, "", "origin.test")
		go func() { _ = c.Send(postHead("/early", len(body)) + string(body)) }()
		resp, err := c.ReadResponse("POST", 10*time.Second)
		if err != nil || resp.Status != 200 || string(resp.Body) != "early" {
			t.Fatalf("early answer: %+v, %v", resp, err)
		}
		// What is left of the body is not read as requests: the
		// connection ends (where the transport stopped reading is not
		// known), or, had the whole body been read, it serves the next.
		_ = c.Send("GET /after HTTP/1.1\r\nHost: origin.test\r\n\r\n")
		if resp, err := c.ReadResponse("GET", 5*time.Second); err == nil && resp.Status != 200 {
			t.Fatalf("after the early answer: %+v", resp)
		}
		if n := st.Requests.Load() - req0; n > 2 {
			t.Fatalf("the pipeline saw %d requests, want at most 2", n)
		}
	})
}

// earlyOrigin is a TLS origin that answers every request at once without
// reading its body (and so, net/http's server being what it is, closes a
// connection with much of a body left).
func earlyOrigin(t *testing.T, h *harness) netip.AddrPort {
	t.Helper()
	cert, err := h.labCA.Leaf(lab.LeafOptions{Names: []string{"origin.test"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "early")
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return addrPortOf(ln.Addr())
}

// An h1Body yields exactly its length, whatever its reader asks for, and
// leaves the rest for the next request; a body cut short is an error, and
// nothing is read after Close.
func TestH1BodyReadsExactly(t *testing.T) {
	body := smuggledBody(10_000)
	hc := &h1conn{br: bufio.NewReaderSize(bytes.NewReader(append(append([]byte{}, body...), "NEXT"...)), h1Buffer)}
	b := &h1Body{hc: hc, left: int64(len(body))}
	got, err := io.ReadAll(b) // asks for 512 bytes and more at a time
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, %v; want the %d of the body", len(got), err, len(body))
	}
	if rest, _ := io.ReadAll(hc.br); string(rest) != "NEXT" {
		t.Fatalf("left %q for the next request, want NEXT", rest)
	}

	hc.br = bufio.NewReaderSize(strings.NewReader("short"), h1Buffer)
	b = &h1Body{hc: hc, left: 10}
	if got, err := io.ReadAll(b); string(got) != "short" || err != io.ErrUnexpectedEOF {
		t.Fatalf("a short body: %q, %v; want its 5 bytes and io.ErrUnexpectedEOF", got, err)
	}

	hc.br = bufio.NewReaderSize(strings.NewReader("0123456789"), h1Buffer)
	b = &h1Body{hc: hc, left: 10}
	_ = b.Close()
	if n, err := b.Read(make([]byte, 10)); n != 0 || err != http.ErrBodyReadAfterClose {
		t.Fatalf("read after Close: %d, %v", n, err)
	}
	if hc.br.Buffered() != 0 {
		t.Fatal("a closed body read the connection")
	}
}

// A small body (up to maxLeanBody) goes to the origin over the lean
// upstream with its head, on the connection the GETs use; a larger one
// over the Transport. Both arrive exactly, with one Content-Length.
func TestLeanForwardsSmallBodies(t *testing.T) {
	h := newHarness(t, nil)
	o := h.rawTLSOrigin("origin.test", rawhttp.OK)
	front := h.limitedFront(o.Addr)
	c := h.dialTLS1(front, "", "origin.test")
	small, large := smuggledBody(1000), smuggledBody(maxLeanBody+1)
	send := func(method, target string, body []byte) {
		t.Helper()
		head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: origin.test\r\n", method, target)
		if body != nil {
			head += fmt.Sprintf("Content-Length: %d\r\n", len(body))
		}
		_ = c.Send(head + "\r\n" + string(body))
		if resp, err := c.ReadResponse(method, 5*time.Second); err != nil || resp.Status != 200 {
			t.Fatalf("%s %s: %+v, %v", method, target, resp, err)
		}
	}
	send("GET", "/first", nil)
	send("POST", "/small", small)
	send("PUT", "/exact", smuggledBody(maxLeanBody))
	if n := o.Conns(); n != 1 {
		t.Fatalf("origin connections after a GET and two small bodies: %d, want 1 (the lean upstream's)", n)
	}
	send("POST", "/large", large)
	if n := o.Conns(); n != 2 {
		t.Fatalf("origin connections after a large body: %d, want 2 (the Transport's too)", n)
	}
	want := map[string][]byte{"/first": nil, "/small": small, "/exact": smuggledBody(maxLeanBody), "/large": large}
	reqs := o.Requests()
	if len(reqs) != len(want) {
		t.Fatalf("origin got %d requests, want %d", len(reqs), len(want))
	}
	for _, r := range reqs {
		if !bytes.Equal(r.Body, want[r.Target]) {
			t.Errorf("%s: origin got a %d-byte body, want %d", r.Target, len(r.Body), len(want[r.Target]))
		}
		if cl := r.Get("Content-Length"); want[r.Target] != nil && (len(cl) != 1 || cl[0] != fmt.Sprint(len(want[r.Target]))) {
			t.Errorf("%s: Content-Length %q", r.Target, cl)
		}
	}
}

// Random pipelines of GETs and bodies (0 to 40 KB of request-like bytes,
// both sides of maxLeanBody and of the read buffer), written in random
// pieces: the origin gets exactly the requests sent, in order, with their
// bodies, and the client one response per request. Seeded, so a failure
// repeats.
func TestH1LoopRandomPipelines(t *testing.T) {
	h := newHarness(t, nil)
	o := h.rawTLSOrigin("origin.test", rawhttp.OK)
	front := h.limitedFront(o.Addr)
	for seed := int64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewSource(seed))
		o.Reset()
		type sent struct {
			method, target string
			body           []byte
		}
		var want []sent
		var stream []byte
		for i := range 12 {
			s := sent{method: "GET", target: fmt.Sprintf("/s%d/r%d", seed, i)}
			head := ""
			switch rng.Intn(3) {
			case 1:
				s.method, s.body = "POST", smuggledBody(rng.Intn(2000)+1)
			case 2:
				s.method, s.body = "PUT", smuggledBody(rng.Intn(40_000)+1)
			}
			if s.body != nil {
				head = fmt.Sprintf("Content-Length: %d\r\n", len(s.body))
			}
			stream = append(stream, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: origin.test\r\n%s\r\n", s.method, s.target, head)...)
			stream = append(stream, s.body...)
			want = append(want, s)
		}
		c := h.dialTLS1(front, "", "origin.test")
		go func() {
			for rest := stream; len(rest) > 0; {
				n := min(len(rest), rng.Intn(9000)+1)
				if c.Send(string(rest[:n])) != nil {
					return
				}
				rest = rest[n:]
			}
		}()
		for i, s := range want {
			if resp, err := c.ReadResponse(s.method, 10*time.Second); err != nil || resp.Status != 200 {
				t.Fatalf("seed %d, request %d (%s %s): %+v, %v", seed, i, s.method, s.target, resp, err)
			}
		}
		got := o.Requests()
		if len(got) != len(want) {
			t.Fatalf("seed %d: origin got %d requests, want %d", seed, len(got), len(want))
		}
		for i, r := range got {
			if r.Method != want[i].method || r.Target != want[i].target || !bytes.Equal(r.Body, want[i].body) {
				t.Fatalf("seed %d, request %d: origin got %s %s with %d body bytes, want %s %s with %d", seed, i, r.Method, r.Target, len(r.Body), want[i].method, want[i].target, len(want[i].body))
			}
		}
	}
}
