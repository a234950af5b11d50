package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// wsFrame builds one frame; masked frames get a fixed-seed random key.
func wsFrame(fin bool, op byte, payload []byte, masked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	var mbit byte
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		f = append(f, mbit|byte(n))
	case n < 1<<16:
		f = append(f, mbit|126, byte(n>>8), byte(n))
	default:
		f = append(f, mbit|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	if !masked {
		return append(f, payload...)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

func wsClosePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// readWSFrame reads one frame and unmasks it.
func readWSFrame(r io.Reader) (op byte, masked bool, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	op, masked = h[0]&0x0f, h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var key [4]byte
	if masked {
		if _, err = io.ReadFull(r, key[:]); err != nil {
			return
		}
	}
	if n > 1<<24 {
		return op, masked, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return
}

// feedAll runs frames through a framer in pieces of the given sizes and
// returns what it forwarded and the violation.
func feedAll(f *wsFramer, data []byte, piece int) ([]byte, *wsViolation) {
	var out bytes.Buffer
	for i := 0; i < len(data); i += piece {
		v, err := f.feed(&out, data[i:min(i+piece, len(data))])
		if err != nil {
			panic(err)
		}
		if v != nil {
			return out.Bytes(), v
		}
	}
	return out.Bytes(), nil
}

// TestWSFramer: valid traffic passes byte for byte however it is cut; each
// refused frame is named with its close code, and nothing of it (nor
// anything after it) is forwarded.
func TestWSFramer(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	valid := bytes.Join([][]byte{
		wsFrame(true, 1, []byte("hello"), true),
		wsFrame(false, 2, big[:300], true),
		wsFrame(true, 9, []byte("ping"), true), // control frames may interleave a message
		wsFrame(true, 0, big[:70000], true),
		wsFrame(true, 2, nil, true),
		wsFrame(true, 8, wsClosePayload(1000, "bye"), true),
	}, nil)
	for _, piece := range []int{1, 2, 3, 7, 13, 1000, len(valid)} {
		f := &wsFramer{fromClient: true, maxFrame: 1 << 20, maxMessage: 1 << 20}
		out, v := feedAll(f, valid, piece)
		if v != nil || !bytes.Equal(out, valid) {
			t.Fatalf("pieces of %d: violation %v, forwarded %d of %d bytes", piece, v, len(out), len(valid))
		}
		if !f.atBoundary() {
			t.Fatalf("pieces of %d: not at a frame boundary after whole frames", piece)
		}
	}
	prefix := wsFrame(true, 1, []byte("ok"), true)
	long16 := []byte{0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4, 1, 2, 3, 4, 5}
	long64 := append([]byte{0x82, 0x80 | 127}, binary.BigEndian.AppendUint64(nil, 300)...)
	huge := append([]byte{0x82, 0x80 | 127}, binary.BigEndian.AppendUint64(nil, 1<<63)...)
	cases := []struct {
		name       string
		fromClient bool
		rsv1       bool
		frame      []byte
		code       uint16
	}{
		{"client frame unmasked", true, false, wsFrame(true, 1, []byte("a"), false), wsCloseProtocol},
		{"origin frame masked", false, false, wsFrame(true, 1, []byte("a"), true), wsCloseProtocol},
		{"frame over the limit", true, false, wsFrame(true, 2, make([]byte, 1025), true), wsCloseTooBig},
		{"2^63 length", true, false, huge, wsCloseProtocol},
		{"message over the limit", true, false, append(wsFrame(false, 2, make([]byte, 1000), true), wsFrame(true, 0, make([]byte, 1000), true)...), wsCloseTooBig},
		{"reserved opcode", true, false, wsFrame(true, 3, nil, true), wsCloseProtocol},
		{"reserved control opcode", false, false, wsFrame(true, 11, nil, false), wsCloseProtocol},
		{"rsv1 without extension", true, false, append([]byte{0xc1}, wsFrame(true, 1, []byte("a"), true)[1:]...), wsCloseProtocol},
		{"rsv2 with deflate", true, true, append([]byte{0xa1}, wsFrame(true, 1, []byte("a"), true)[1:]...), wsCloseProtocol},
		{"rsv1 on a control frame", true, true, append([]byte{0xc9}, wsFrame(true, 9, nil, true)[1:]...), wsCloseProtocol},
		{"control frame over 125", true, false, wsFrame(true, 9, make([]byte, 126), true), wsCloseProtocol},
		{"fragmented control frame", true, false, wsFrame(false, 10, nil, true), wsCloseProtocol},
		{"continuation outside a message", true, false, wsFrame(true, 0, []byte("a"), true), wsCloseProtocol},
		{"message inside a message", true, false, append(wsFrame(false, 1, []byte("a"), true), wsFrame(true, 1, []byte("b"), true)...), wsCloseProtocol},
		{"16-bit length not shortest", true, false, long16, wsCloseProtocol},
		{"64-bit length not shortest", true, false, long64, wsCloseProtocol},
		{"close of one byte", true, false, wsFrame(true, 8, []byte{3}, true), wsCloseProtocol},
	}
	for _, c := range cases {
		for _, piece := range []int{1, 5, 4096} {
			f := &wsFramer{fromClient: c.fromClient, maxFrame: 1024, maxMessage: 1500, rsv1: c.rsv1}
			first := prefix
			if !c.fromClient {
				first = wsFrame(true, 1, []byte("ok"), false)
			}
			in := append(append(append([]byte{}, first...), c.frame...), wsFrame(true, 1, []byte("after"), c.fromClient)...)
			out, v := feedAll(f, in, piece)
			if v == nil || v.code != c.code {
				t.Fatalf("%s (pieces of %d): violation %v, want close %d", c.name, piece, v, c.code)
			}
			// Whole frames before the refused one pass; for a message
			// refused at its second fragment, the first went too.
			if !bytes.HasPrefix(out, first) || bytes.Contains(out, []byte("after")) {
				t.Fatalf("%s (pieces of %d): forwarded %x", c.name, piece, out)
			}
			if rest := out[len(first):]; len(rest) > 0 && !bytes.HasPrefix(c.frame, rest) {
				t.Fatalf("%s (pieces of %d): forwarded bytes of the refused frame: %x", c.name, piece, rest)
			}
		}
	}
	// permessage-deflate marks the first frame of a message with RSV1.
	f := &wsFramer{fromClient: true, maxFrame: 1024, maxMessage: 1500, rsv1: true}
	compressed := append([]byte{0xc1}, wsFrame(true, 1, []byte("zz"), true)[1:]...)
	if out, v := feedAll(f, compressed, 3); v != nil || !bytes.Equal(out, compressed) {
		t.Fatalf("RSV1 with permessage-deflate refused: %v", v)
	}
}

// rawWSOrigin is a TLS WebSocket origin on loopback that completes the
// handshake, sends its script, and records every byte it receives after
// the handshake until the connection ends (or until it has want bytes).
type rawWSOrigin struct {
	addr netip.AddrPort
	got  chan []byte
}

func startRawWSOrigin(t *testing.T, labCA *lab.TestCA, send []byte, want int) *rawWSOrigin {
	t.Helper()
	cert, err := labCA.Leaf(lab.LeafOptions{Names: []string{"origin.test", "app.test", "x.wild.test"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	o := &rawWSOrigin{addr: addrPortOf(ln.Addr()), got: make(chan []byte, 1)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
			o.got <- nil
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]))
		wrote := make(chan struct{})
		go func() { _, _ = c.Write(send); close(wrote) }()
		// The connection closes only after the script went out whole.
		defer func() {
			select {
			case <-wrote:
			case <-time.After(5 * time.Second):
			}
		}()
		var got bytes.Buffer
		buf := make([]byte, 4096)
		for want <= 0 || got.Len() < want {
			n, err := br.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		o.got <- got.Bytes()
	}()
	return o
}

// wsThrough is one mode's way to reach a WebSocket origin through the
// proxy: a TLS connection the proxy terminates, and the Host to ask for.
type wsThrough struct {
	name  string
	h     *harness
	dial  func() (*tls.Conn, error)
	host  string
	limit func() *LimitStats
}

// wsModes builds the proxy in transparent and in suffix mode, with limits
// mutated by lim, in front of an origin started by startOrigin.
func wsModes(t *testing.T, lim func(*Config), startOrigin func(labCA *lab.TestCA) netip.AddrPort) []wsThrough {
	var modes []wsThrough
	h := newHarness(t, lim)
	dest := startOrigin(h.labCA)
	front := h.front(dest)
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.Certificate())
	modes = append(modes, wsThrough{name: "transparent", h: h, host: "origin.test", limit: h.srv.Limits, dial: func() (*tls.Conn, error) {
		return tls.Dial("tcp", front, &tls.Config{RootCAs: roots, ServerName: "origin.test", NextProtos: []string{"http/1.1"}})
	}})
	sh := newSuffixHarnessConfig(t, nil, lim)
	sdest := startOrigin(sh.labCA)
	sh.srv.cfg.Hosts["x.wild.test"] = []string{sdest.String()}
	sroots := x509.NewCertPool()
	sroots.AddCert(sh.ca.Certificate())
	modes = append(modes, wsThrough{name: "suffix", h: sh.harness, host: "x.wild.test.gw.test", limit: sh.srv.Limits, dial: func() (*tls.Conn, error) {
		return tls.Dial("tcp", sh.addr, &tls.Config{RootCAs: sroots, ServerName: "x.wild.test.gw.test", NextProtos: []string{"http/1.1"}})
	}})
	return modes
}

// upgrade opens a WebSocket through the proxy and returns the connection
// and its reader (positioned after the 101).
func (m wsThrough) upgrade(t *testing.T) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	c, err := m.dial()
	if err != nil {
		t.Fatalf("%s: dial: %v", m.name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://%s\r\n\r\n", m.host, m.host)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("%s: upgrade: %v %v", m.name, resp, err)
	}
	return c, br
}

// logReason waits for the access-log line of the WebSocket request and
// returns its reason.
func (m wsThrough) logReason(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range m.h.log.lines(t) {
			if p, _ := l["path"].(string); p == "/ws" {
				r, _ := l["reason"].(string)
				return r
			}
		}
	}
	t.Fatalf("%s: no access-log line for /ws", m.name)
	return ""
}

// TestWebSocketTunnelPassesTrafficExactly: frames of every kind (fragmented,
// 16- and 64-bit lengths, control frames between fragments), cut into odd
// pieces by the client, reach the origin byte for byte, and the origin's
// reach the client byte for byte, in both modes.
func TestWebSocketTunnelPassesTrafficExactly(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	payload := make([]byte, 70000)
	for i := range payload {
		payload[i] = byte(rnd.UintN(256))
	}
	fromClient := bytes.Join([][]byte{
		wsFrame(true, 1, []byte("hello"), true),
		wsFrame(false, 2, payload[:3000], true),
		wsFrame(true, 9, []byte("ping"), true),
		wsFrame(true, 0, payload[3000:], true),
		wsFrame(true, 8, wsClosePayload(1000, "done"), true),
	}, nil)
	fromOrigin := bytes.Join([][]byte{
		wsFrame(true, 1, []byte("hi"), false),
		wsFrame(true, 10, []byte("ping"), false),
		wsFrame(true, 2, payload, false),
		wsFrame(true, 8, wsClosePayload(1000, "done"), false),
	}, nil)
	var origins []*rawWSOrigin
	modes := wsModes(t, nil, func(labCA *lab.TestCA) netip.AddrPort {
		o := startRawWSOrigin(t, labCA, fromOrigin, len(fromClient))
		origins = append(origins, o)
		return o.addr
	})
	for i, m := range modes {
		c, br := m.upgrade(t)
		// The first frames byte by byte (each its own TLS record, so the
		// proxy sees headers cut anywhere), the rest in one go.
		for _, b := range fromClient[:40] {
			if _, err := c.Write([]byte{b}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Write(fromClient[40:]); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(fromOrigin))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("%s: reading the origin's frames: %v", m.name, err)
		}
		if !bytes.Equal(got, fromOrigin) {
			t.Errorf("%s: the client got different bytes from the origin's", m.name)
		}
		select {
		case og := <-origins[i].got:
			if !bytes.Equal(og, fromClient) {
				t.Errorf("%s: the origin got %d bytes differing from the client's %d", m.name, len(og), len(fromClient))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: origin got nothing", m.name)
		}
		_ = c.Close()
		if r := m.logReason(t); strings.Contains(r, "websocket") {
			t.Errorf("%s: clean tunnel logged as %q", m.name, r)
		}
	}
}

// expectClose reads frames until a close frame and checks its code; the
// connection must then end.
func expectClose(t *testing.T, who string, r io.Reader, wantMasked bool, code uint16) {
	t.Helper()
	for range 10 {
		op, masked, p, err := readWSFrame(r)
		if err != nil {
			t.Fatalf("%s: no close frame: %v", who, err)
		}
		if op != 8 {
			continue
		}
		if masked != wantMasked || len(p) < 2 || binary.BigEndian.Uint16(p) != code {
			t.Fatalf("%s: close frame masked=%v %x, want code %d masked=%v", who, masked, p, code, wantMasked)
		}
		return
	}
	t.Fatalf("%s: no close frame in 10 frames", who)
}

// TestWebSocketTunnelLimits: an oversize client frame, an unmasked client
// frame and an oversize origin frame each close both sides with the right
// code (the frames before pass; the refused one never does), an idle tunnel
// is closed with 1001; each is counted and its request's record says why.
func TestWebSocketTunnelLimits(t *testing.T) {
	lim := func(c *Config) {
		c.WebSocketMaxFrame = 1024
		c.WebSocketMaxMessage = 4096
		c.TunnelIdleTimeout = 400 * time.Millisecond
	}
	okFrame := wsFrame(true, 1, []byte("ok"), true)
	cases := []struct {
		name       string
		client     []byte // sent after the upgrade
		origin     []byte // the origin's script
		code       uint16
		reason     string
		stat       func(*LimitStats) uint64
		clientSees []byte // what the client gets before the close frame
	}{
		{"oversize client frame", append(append([]byte{}, okFrame...), wsFrame(true, 2, make([]byte, 2000), true)...), nil,
			wsCloseTooBig, "client frame of 2000 bytes over the limit of 1024", func(s *LimitStats) uint64 { return s.WebSocketOversize.Load() }, nil},
		{"oversize client message", append(append(append([]byte{}, okFrame...), wsFrame(false, 2, make([]byte, 1000), true)...), bytes.Repeat(wsFrame(false, 0, make([]byte, 1000), true), 4)...), nil,
			wsCloseTooBig, "client message over the limit of 4096 bytes", func(s *LimitStats) uint64 { return s.WebSocketOversize.Load() }, nil},
		{"unmasked client frame", append(append([]byte{}, okFrame...), wsFrame(true, 1, []byte("plain"), false)...), nil,
			wsCloseProtocol, "client frame not masked", func(s *LimitStats) uint64 { return s.WebSocketProtocol.Load() }, nil},
		{"oversize origin frame", nil, append(wsFrame(true, 1, []byte("hi"), false), wsFrame(true, 2, make([]byte, 5000), false)...),
			wsCloseTooBig, "origin frame of 5000 bytes over the limit of 1024", func(s *LimitStats) uint64 { return s.WebSocketOversize.Load() }, wsFrame(true, 1, []byte("hi"), false)},
		{"idle tunnel", nil, nil, wsCloseGoingAway, "idle for 400ms", func(s *LimitStats) uint64 { return s.TunnelsIdle.Load() }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var origins []*rawWSOrigin
			modes := wsModes(t, lim, func(labCA *lab.TestCA) netip.AddrPort {
				o := startRawWSOrigin(t, labCA, tc.origin, 0)
				origins = append(origins, o)
				return o.addr
			})
			for i, m := range modes {
				c, br := m.upgrade(t)
				start := time.Now()
				if len(tc.client) > 0 {
					if _, err := c.Write(tc.client); err != nil {
						t.Fatal(err)
					}
				}
				if len(tc.clientSees) > 0 {
					got := make([]byte, len(tc.clientSees))
					if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, tc.clientSees) {
						t.Fatalf("%s: before the close the client got %x (%v), want %x", m.name, got, err, tc.clientSees)
					}
				}
				expectClose(t, m.name+" client", br, false, tc.code)
				if _, err := br.ReadByte(); err == nil {
					t.Fatalf("%s: the client's connection stayed open after the close frame", m.name)
				}
				if tc.code == wsCloseGoingAway && time.Since(start) < 300*time.Millisecond {
					t.Fatalf("%s: idle tunnel closed after %s, before its timeout", m.name, time.Since(start))
				}
				var og []byte
				select {
				case og = <-origins[i].got:
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: the origin's connection was not closed", m.name)
				}
				or := bytes.NewReader(og)
				if len(tc.client) > 0 {
					first := make([]byte, len(okFrame))
					if _, err := io.ReadFull(or, first); err != nil || !bytes.Equal(first, okFrame) {
						t.Fatalf("%s: the origin did not get the frame before the refused one: %x", m.name, first)
					}
				}
				for {
					// Whole frames of a refused message may have passed
					// (its fragments before the one over the bound).
					op, masked, p, err := readWSFrame(or)
					if err != nil {
						t.Fatalf("%s: the origin got no close frame (%d bytes in all): %v", m.name, len(og), err)
					}
					if op == 8 {
						if !masked || binary.BigEndian.Uint16(p) != tc.code {
							t.Fatalf("%s: the origin's close frame masked=%v %x, want %d", m.name, masked, p, tc.code)
						}
						break
					}
				}
				if or.Len() != 0 {
					t.Fatalf("%s: the origin got %d bytes after the close frame", m.name, or.Len())
				}
				if n := tc.stat(m.limit()); n != 1 {
					t.Errorf("%s: counter %d, want 1", m.name, n)
				}
				if r := m.logReason(t); !strings.Contains(r, tc.reason) || !strings.Contains(r, fmt.Sprintf("close %d", tc.code)) {
					t.Errorf("%s: logged reason %q, want %q and its code", m.name, r, tc.reason)
				}
			}
		})
	}
}

// TestWebSocketTunnelRealEndpoints: a real Go WebSocket server and client
// (gorilla) through the suffix proxy: messages echo, and a message over the
// frame bound ends with the client seeing close status 1009.
func TestWebSocketTunnelRealEndpoints(t *testing.T) {
	sh := newSuffixHarnessConfig(t, nil, func(c *Config) { c.WebSocketMaxFrame = 64 << 10 })
	roots := x509.NewCertPool()
	roots.AddCert(sh.ca.Certificate())
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", sh.addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}
	c, resp, err := d.Dial("wss://app.test.gw.test/ws", http.Header{"Origin": {"https://app.test.gw.test"}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, n := range []int{1, 1000, 60 << 10} {
		msg := bytes.Repeat([]byte("m"), n)
		if err := c.WriteMessage(2, msg); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, append([]byte("echo:"), msg...)) {
			t.Fatalf("echo of %d bytes: %d bytes, %v", n, len(got), err)
		}
	}
	if err := c.WriteMessage(2, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("oversize message: %v, want close 1009", err)
	}
	if n := sh.srv.Limits().WebSocketOversize.Load(); n != 1 {
		t.Fatalf("oversize counted %d times, want 1", n)
	}
}
