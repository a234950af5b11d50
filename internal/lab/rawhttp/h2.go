package rawhttp

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// H2 is a raw HTTP/2 client connection: frames are written as the test
// builds them (header fields are encoded as given, valid or not) and read
// back one by one.
type H2 struct {
	Conn   net.Conn
	Framer *http2.Framer
	enc    *hpack.Encoder
	hbuf   bytes.Buffer
	dec    *hpack.Decoder
	// Settings is the server's first SETTINGS frame.
	Settings map[http2.SettingID]uint32
}

// DialH2 opens a TLS connection to addr offering only h2, with serverName
// as SNI, and exchanges the preface and SETTINGS.
func DialH2(addr, local, serverName string, conf *tls.Config) (*H2, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	conf = conf.Clone()
	conf.ServerName, conf.NextProtos = serverName, []string{"h2"}
	tc, err := tls.DialWithDialer(&d, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		_ = tc.Close()
		return nil, fmt.Errorf("negotiated %q, not h2", p)
	}
	h := &H2{Conn: tc, Settings: map[http2.SettingID]uint32{}}
	h.Framer = http2.NewFramer(tc, tc)
	h.Framer.SetMaxReadFrameSize(1 << 20)
	h.enc = hpack.NewEncoder(&h.hbuf)
	h.dec = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(tc, http2.ClientPreface); err != nil {
		return nil, err
	}
	if err := h.Framer.WriteSettings(); err != nil {
		return nil, err
	}
	_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer func() { _ = tc.SetReadDeadline(time.Time{}) }()
	for {
		f, err := h.Framer.ReadFrame()
		if err != nil {
			return nil, fmt.Errorf("waiting for SETTINGS: %w", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			_ = sf.ForeachSetting(func(s http2.Setting) error { h.Settings[s.ID] = s.Val; return nil })
			return h, h.Framer.WriteSettingsAck()
		}
	}
}

// Close closes the connection.
func (h *H2) Close() error { return h.Conn.Close() }

// Encode hpack-encodes fields as given, in order, without validating them.
func (h *H2) Encode(fields ...hpack.HeaderField) []byte {
	h.hbuf.Reset()
	for _, f := range fields {
		_ = h.enc.WriteField(f)
	}
	return append([]byte(nil), h.hbuf.Bytes()...)
}

// Headers writes a HEADERS frame carrying fields.
func (h *H2) Headers(stream uint32, endStream bool, fields ...hpack.HeaderField) error {
	return h.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: h.Encode(fields...), EndStream: endStream, EndHeaders: true})
}

// Request builds the fields of a request: pseudo-headers then extra ones,
// given as name, value pairs.
func Request2(method, authority, path string, extra ...string) []hpack.HeaderField {
	fs := []hpack.HeaderField{{Name: ":method", Value: method}, {Name: ":scheme", Value: "https"}, {Name: ":authority", Value: authority}, {Name: ":path", Value: path}}
	for i := 0; i+1 < len(extra); i += 2 {
		fs = append(fs, hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return fs
}

// StreamResult is how one stream ended, as the client saw it.
type StreamResult struct {
	Status    int
	Header    []hpack.HeaderField
	Body      []byte
	EndStream bool          // the server ended the stream cleanly
	Reset     bool          // the server sent RST_STREAM
	Code      http2.ErrCode // of the RST_STREAM or GOAWAY
	GoAway    bool          // the server sent GOAWAY covering the stream
	Err       error         // the connection failed
}

// Await reads frames until stream ends (END_STREAM, RST_STREAM, GOAWAY that
// does not cover it, or the connection failing), answering PINGs and
// SETTINGS on the way and returning WINDOW_UPDATEs for data read.
func (h *H2) Await(stream uint32, timeout time.Duration) StreamResult {
	var res StreamResult
	_ = h.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = h.Conn.SetReadDeadline(time.Time{}) }()
	for {
		f, err := h.Framer.ReadFrame()
		if err != nil {
			res.Err = err
			return res
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.Framer.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = h.Framer.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			if f.LastStreamID < stream || f.ErrCode != http2.ErrCodeNo {
				res.GoAway, res.Code = true, f.ErrCode
				return res
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == stream {
				res.Reset, res.Code = true, f.ErrCode
				return res
			}
		case *http2.HeadersFrame:
			if f.StreamID != stream {
				continue
			}
			fields, err := h.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				res.Err = err
				return res
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					res.Status, _ = strconv.Atoi(hf.Value)
				}
			}
			res.Header = append(res.Header, fields...)
			if f.StreamEnded() {
				res.EndStream = true
				return res
			}
		case *http2.DataFrame:
			if f.StreamID != stream {
				continue
			}
			res.Body = append(res.Body, f.Data()...)
			if n := uint32(len(f.Data())); n > 0 {
				_ = h.Framer.WriteWindowUpdate(0, n)
				_ = h.Framer.WriteWindowUpdate(stream, n)
			}
			if f.StreamEnded() {
				res.EndStream = true
				return res
			}
		}
	}
}

// ErrStillOpen is returned by WaitClosed when the connection is still up.
var ErrStillOpen = errors.New("connection still open")

// WaitClosed reads and discards frames until the server closes the
// connection; it returns the GOAWAY code seen, if any.
func (h *H2) WaitClosed(timeout time.Duration) (goAway http2.ErrCode, sawGoAway bool, err error) {
	_ = h.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = h.Conn.SetReadDeadline(time.Time{}) }()
	for {
		f, err := h.Framer.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return goAway, sawGoAway, ErrStillOpen
			}
			return goAway, sawGoAway, nil
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goAway, sawGoAway = g.ErrCode, true
		}
	}
}
