package proxy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/portcullis-gw/portcullis/internal/lab/rawhttp"
)

// smuggleCase is one request a desync attack would send. Either the
// pipeline refuses it (a 4xx/501 and nothing reaches the origin) or it
// normalises it, and the origin's strict parser reads exactly one request
// with the framing in want.
type smuggleCase struct {
	name string
	raw  string // the bytes the client sends; "{next}" is a plain GET appended in the same write
	// refuse: the client gets an error status and the origin no byte.
	refuse bool
	// Normalised: the one request the origin must read.
	wantCL      int64 // -1: no Content-Length
	wantChunked bool
	wantBody    string
	wantHost    string
	wantTarget  string
	wantHeader  [2]string // a field the origin must get exactly once, with this value
	// wantClose: the connection ends after the response (every chunked
	// request ends it); otherwise a next request is served on it.
	wantClose bool
}

const nextReq = "GET /next HTTP/1.1\r\nHost: origin.test\r\n\r\n"

func TestHostileSmugglingHTTP1(t *testing.T) {
	h := newHarness(t, nil)
	cases := []smuggleCase{
		{name: "CL+TE", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGPOST / HTTP/1.1\r\n\r\n",
			wantCL: -1, wantChunked: true, wantClose: true, wantBody: ""},
		{name: "TE.CL", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n",
			wantCL: -1, wantChunked: true, wantClose: true, wantBody: "GPOST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\n\r\nx=1"},
		{name: "duplicate equal Content-Length", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello{next}",
			wantCL: 5, wantBody: "hello"},
		{name: "conflicting Content-Length", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", refuse: true},
		{name: "Content-Length list", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 5, 6\r\n\r\nhello!", refuse: true},
		{name: "signed Content-Length", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nContent-Length: +5\r\n\r\nhello", refuse: true},
		{name: "huge Content-Length", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 99999999999999999999\r\n\r\nhello", refuse: true},
		{name: "TE chunked, identity", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", refuse: true},
		{name: "TE xchunked", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello", refuse: true},
		{name: "TE tab before value", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			wantCL: -1, wantChunked: true, wantClose: true, wantBody: "hello"},
		{name: "TE upper case", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			wantCL: -1, wantChunked: true, wantClose: true, wantBody: "hello"},
		{name: "TE space before colon", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello", refuse: true},
		{name: "TE vertical tab", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n\r\nhello", refuse: true},
		{name: "TE chunked twice", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", refuse: true},
		{name: "TE folded (obs-fold)", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: x\r\n chunked\r\nContent-Length: 5\r\n\r\nhello", refuse: true},
		{name: "obs-fold in a plain header", raw: "GET / HTTP/1.1\r\nHost: origin.test\r\nX-A: a\r\n b\r\n\r\n",
			wantCL: -1, wantHeader: [2]string{"X-A", "a b"}},
		{name: "bare LF header lines", raw: "POST / HTTP/1.1\nHost: origin.test\nContent-Length: 5\n\nhello{next}",
			wantCL: 5, wantBody: "hello"},
		{name: "bare LF in chunk lines", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", refuse: true},
		{name: "bare CR in header", raw: "GET / HTTP/1.1\r\nHost: origin.test\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n", refuse: true},
		{name: "chunk extension", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=\"x\"\r\nhello\r\n0\r\n\r\n",
			wantCL: -1, wantChunked: true, wantClose: true, wantBody: "hello"},
		{name: "chunk extension abuse", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("1;"+strings.Repeat("e", 4000)+"\r\nx\r\n", 64) + "0\r\n\r\n", refuse: true},
		{name: "oversize chunk size", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n", refuse: true},
		{name: "negative chunk size", raw: "POST / HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", refuse: true},
		{name: "header name with space", raw: "GET / HTTP/1.1\r\nHost: origin.test\r\nX A: b\r\n\r\n", refuse: true},
		{name: "header name with NUL", raw: "GET / HTTP/1.1\r\nHost: origin.test\r\nX\x00A: b\r\n\r\n", refuse: true},
		{name: "header value with NUL", raw: "GET / HTTP/1.1\r\nHost: origin.test\r\nX-A: b\x00c\r\n\r\n", refuse: true},
		{name: "duplicate Host", raw: "GET / HTTP/1.1\r\nHost: origin.test\r\nHost: other.test\r\n\r\n", refuse: true},
		{name: "absolute form, other Host", raw: "GET http://origin.test/abs HTTP/1.1\r\nHost: other.test\r\n\r\n{next}",
			wantCL: -1, wantHost: "origin.test", wantTarget: "/abs"},
		{name: "request line double space", raw: "GET  / HTTP/1.1\r\nHost: origin.test\r\n\r\n", refuse: true},
		// net/http ignores Transfer-Encoding on HTTP/1.0 (its body is
		// empty) and closes the connection after it: the chunk bytes are
		// never read.
		{name: "HTTP/1.0 chunked", raw: "POST / HTTP/1.0\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			wantCL: 0, wantBody: "", wantClose: true},
		{name: "HTTP/1.0 keep-alive chunked", raw: "POST / HTTP/1.0\r\nHost: origin.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			wantCL: 0, wantBody: "", wantClose: true},
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
			raw, pipelined := strings.CutSuffix(tc.raw, "{next}")
			if pipelined {
				raw += nextReq
			}
			if err := c.Send(raw); err != nil {
				t.Fatal(err)
			}
			resp, err := c.ReadResponse("POST", 5*time.Second)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			if tc.refuse {
				if resp.Status < 400 || resp.Status == 502 {
					t.Fatalf("status %d, want a refusal (4xx/501)", resp.Status)
				}
				if !c.Closed(2 * time.Second) {
					t.Error("connection left open after a refused request")
				}
				// A body found malformed part-way has had its head streamed
				// upstream: the origin must then see an incomplete request
				// and a closed connection, never a complete or ambiguous one.
				if n := len(o.Requests()); n != 0 {
					t.Errorf("origin read %d request(s) for a refused one: %q", n, o.Received())
				}
				for _, err := range o.Errors() {
					if errors.Is(err, rawhttp.ErrAmbiguous) {
						t.Errorf("origin got ambiguous bytes: %v", err)
					}
				}
				if got := h.logLines("id", ""); len(got) == 0 {
					t.Error("no access-log line")
				}
				return
			}
			if resp.Status != 200 || string(resp.Body) != "ok" {
				t.Fatalf("status %d body %q, want 200 from the origin", resp.Status, resp.Body)
			}
			if errs := o.Errors(); len(errs) != 0 {
				t.Fatalf("origin read an ambiguous request: %v (bytes %q)", errs, o.Received())
			}
			reqs := o.Requests()
			if len(reqs) == 0 {
				t.Fatal("origin got no request")
			}
			r := reqs[0]
			if cl := r.Get("Content-Length"); tc.wantCL >= 0 && (len(cl) != 1 || cl[0] != strconvFormat(tc.wantCL)) || tc.wantCL < 0 && len(cl) != 0 && !(len(cl) == 1 && cl[0] == "0") {
				t.Errorf("origin Content-Length %q, want %d", cl, tc.wantCL)
			}
			if r.Chunked != tc.wantChunked {
				t.Errorf("origin chunked = %v, want %v (raw %q)", r.Chunked, tc.wantChunked, r.Raw)
			}
			if string(r.Body) != tc.wantBody {
				t.Errorf("origin body %q, want %q", r.Body, tc.wantBody)
			}
			if tc.wantHost != "" && (len(r.Get("Host")) != 1 || r.Get("Host")[0] != tc.wantHost) {
				t.Errorf("origin Host %q, want %q", r.Get("Host"), tc.wantHost)
			}
			if tc.wantTarget != "" && r.Target != tc.wantTarget {
				t.Errorf("origin target %q, want %q", r.Target, tc.wantTarget)
			}
			if tc.wantHeader[0] != "" {
				if v := r.Get(tc.wantHeader[0]); len(v) != 1 || v[0] != tc.wantHeader[1] {
					t.Errorf("origin %s fields %q, want exactly %q", tc.wantHeader[0], v, tc.wantHeader[1])
				}
			}
			// The connection either ended (a chunked request always ends
			// it: bytes behind it are never read as a request) or serves
			// the next request, and only that one, unaffected.
			want := 1
			switch {
			case tc.wantClose:
				if !c.Closed(2 * time.Second) {
					t.Error("the connection stayed open")
				}
			case pipelined:
				want = 2
				resp, err := c.ReadResponse("GET", 5*time.Second)
				if err != nil || resp.Status != 200 {
					t.Fatalf("pipelined request: %v %+v", err, resp)
				}
			default:
				want = 2
				if err := c.Send(nextReq); err != nil {
					t.Fatal(err)
				}
				resp, err := c.ReadResponse("GET", 5*time.Second)
				if err != nil || resp.Status != 200 {
					t.Fatalf("next request: %v %+v", err, resp)
				}
			}
			reqs = o.Requests()
			if len(reqs) != want {
				t.Fatalf("origin read %d requests, want %d: %q", len(reqs), want, o.Received())
			}
			if want == 2 && reqs[1].Target != "/next" {
				t.Errorf("second request at the origin is %s %s, want GET /next (raw %q)", reqs[1].Method, reqs[1].Target, reqs[1].Raw)
			}
			if errs := o.Errors(); len(errs) != 0 {
				t.Fatalf("origin read an ambiguous request: %v", errs)
			}
		})
	}
}

// h2Case is one malformed HTTP/2 request. Either its stream (or the
// connection) is reset and nothing reaches the origin, or the origin gets
// exactly one normalised request.
type h2Case struct {
	name   string
	fields []hpack.HeaderField
	data   []string // DATA frames; the last ends the stream
	// refuse: RST_STREAM or GOAWAY, and no complete request at the origin.
	refuse     bool
	wantHost   string
	wantTarget string
}

func TestHostileSmugglingHTTP2(t *testing.T) {
	h := newHarness(t, nil)
	req := rawhttp.Request2
	hf := func(kv ...string) []hpack.HeaderField {
		var out []hpack.HeaderField
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	cases := []h2Case{
		{name: "content-length 5, 10 bytes of DATA", fields: req("POST", "origin.test", "/", "content-length", "5"), data: []string{"0123456789"}, refuse: true},
		{name: "content-length 5, DATA in two frames over it", fields: req("POST", "origin.test", "/", "content-length", "5"), data: []string{"012", "3456789"}, refuse: true},
		{name: "content-length 10, 5 bytes of DATA", fields: req("POST", "origin.test", "/", "content-length", "10"), data: []string{"01234"}, refuse: true},
		{name: "CR LF in a value", fields: req("GET", "origin.test", "/", "x-a", "a\r\nx-b: c"), refuse: true},
		{name: "LF in a value", fields: req("GET", "origin.test", "/", "x-a", "a\nTransfer-Encoding: chunked"), refuse: true},
		{name: "NUL in a value", fields: req("GET", "origin.test", "/", "x-a", "a\x00b"), refuse: true},
		{name: "CR LF in :path", fields: req("GET", "origin.test", "/ HTTP/1.1\r\nHost: x\r\n\r\nGET /"), refuse: true},
		{name: "space in :path", fields: req("GET", "origin.test", "/a b"), wantHost: "origin.test", wantTarget: "/a%20b"},
		{name: "duplicate :path", fields: append(req("GET", "origin.test", "/"), hf(":path", "/admin")...), refuse: true},
		{name: "duplicate :method", fields: append(hf(":method", "GET", ":method", "POST"), hf(":scheme", "https", ":authority", "origin.test", ":path", "/")...), refuse: true},
		{name: "pseudo-header after a regular one", fields: append(hf(":method", "GET", ":scheme", "https", "x-a", "b", ":authority", "origin.test"), hf(":path", "/")...), refuse: true},
		{name: "missing :path", fields: hf(":method", "GET", ":scheme", "https", ":authority", "origin.test"), refuse: true},
		{name: "unknown pseudo-header", fields: append(req("GET", "origin.test", "/"), hf(":x", "y")...), refuse: true},
		{name: "connection header", fields: req("GET", "origin.test", "/", "connection", "keep-alive"), refuse: true},
		{name: "transfer-encoding header", fields: req("POST", "origin.test", "/", "transfer-encoding", "chunked"), data: []string{"0\r\n\r\n"}, refuse: true},
		{name: "keep-alive header", fields: req("GET", "origin.test", "/", "keep-alive", "timeout=5"), refuse: true},
		{name: "proxy-connection header", fields: req("GET", "origin.test", "/", "proxy-connection", "keep-alive"), refuse: true},
		{name: "upgrade header", fields: req("GET", "origin.test", "/", "upgrade", "websocket"), refuse: true},
		{name: "te other than trailers", fields: req("GET", "origin.test", "/", "te", "gzip"), refuse: true},
		{name: "upper-case field name", fields: req("GET", "origin.test", "/", "X-Upper", "a"), refuse: true},
		{name: "field name with space", fields: req("GET", "origin.test", "/", "x a", "b"), refuse: true},
		{name: ":authority and host differ", fields: req("GET", "origin.test", "/", "host", "other.test"), refuse: true},
		{name: ":authority and host agree", fields: req("GET", "origin.test", "/", "host", "origin.test"), wantHost: "origin.test"},
		{name: "host only", fields: hf(":method", "GET", ":scheme", "https", ":path", "/", "host", "origin.test"), wantHost: "origin.test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := h.rawTLSOrigin("origin.test", nil)
			front := h.limitedFront(o.Addr)
			c := h.dialH2(front, "origin.test")
			if err := c.Headers(1, len(tc.data) == 0, tc.fields...); err != nil {
				t.Fatal(err)
			}
			for i, d := range tc.data {
				if err := c.Framer.WriteData(1, i == len(tc.data)-1, []byte(d)); err != nil {
					t.Fatal(err)
				}
			}
			res := c.Await(1, 5*time.Second)
			if res.Err != nil {
				t.Fatalf("stream 1: connection failed: %v", res.Err)
			}
			if tc.refuse {
				refused := res.Reset || res.GoAway || res.Status >= 400 && res.Status != 502
				if !refused {
					t.Fatalf("stream 1 not refused: %+v", res)
				}
				if n := len(o.Requests()); n != 0 {
					t.Errorf("origin read %d complete request(s) for a refused stream: %q", n, o.Received())
				}
			} else {
				if res.Status != 200 || string(res.Body) != "ok" || !res.EndStream {
					t.Fatalf("stream 1: %+v, want 200 ok", res)
				}
				reqs := o.Requests()
				if len(reqs) != 1 {
					t.Fatalf("origin read %d requests, want 1", len(reqs))
				}
				if hosts := reqs[0].Get("Host"); len(hosts) != 1 || hosts[0] != tc.wantHost {
					t.Errorf("origin Host fields %q, want exactly %q", hosts, tc.wantHost)
				}
				if tc.wantTarget != "" && reqs[0].Target != tc.wantTarget {
					t.Errorf("origin target %q, want %q", reqs[0].Target, tc.wantTarget)
				}
			}
			if res.GoAway {
				return // the connection is gone; nothing more to affect
			}
			// The next stream on the same connection is unaffected.
			before := len(o.Requests())
			if err := c.Headers(3, true, req("GET", "origin.test", "/next")...); err != nil {
				t.Fatal(err)
			}
			res = c.Await(3, 5*time.Second)
			if res.Status != 200 || string(res.Body) != "ok" || !res.EndStream {
				t.Fatalf("next stream: %+v", res)
			}
			reqs := o.Requests()
			if len(reqs) != before+1 || reqs[len(reqs)-1].Target != "/next" {
				t.Fatalf("origin requests after the next stream: %d (want %d), last %q", len(reqs), before+1, reqs[len(reqs)-1].Raw)
			}
			if errs := o.Errors(); len(errs) != 0 && !tc.refuse {
				t.Errorf("origin parse errors: %v", errs)
			}
		})
	}
	_ = http2.ErrCodeProtocol
}
