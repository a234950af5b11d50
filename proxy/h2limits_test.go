package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestH2UploadWindows: the receive windows the appliance grants an HTTP/2
// client are the configured ones (the defaults, and set values): the
// SETTINGS initial window is the per-stream bound, and the connection's
// window is opened to the per-connection bound and no further.
func TestH2UploadWindows(t *testing.T) {
	for _, c := range []struct {
		name         string
		stream, conn int32
	}{
		{"defaults", 0, 0},
		{"configured", 128 << 10, 512 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, func(cfg *Config) {
				cfg.H2MaxUploadBufferPerStream = c.stream
				cfg.H2MaxUploadBufferPerConnection = c.conn
			})
			wantStream, wantConn := c.stream, c.conn
			if wantStream == 0 {
				wantStream, wantConn = DefaultH2MaxUploadBufferPerStream, DefaultH2MaxUploadBufferPerConnection
			}
			dest := h.origin(nil, "origin.test")
			roots := x509.NewCertPool()
			roots.AddCert(h.ca.Certificate())
			tc, err := tls.Dial("tcp", h.front(dest), &tls.Config{RootCAs: roots, ServerName: "origin.test", NextProtos: []string{"h2"}})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
				t.Fatalf("negotiated %q", p)
			}
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := tc.Write([]byte(http2.ClientPreface)); err != nil {
				t.Fatal(err)
			}
			fr := http2.NewFramer(tc, tc)
			if err := fr.WriteSettings(); err != nil {
				t.Fatal(err)
			}
			var gotStream, gotConnIncr int64 = -1, -1
			for gotStream < 0 || gotConnIncr < 0 {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("reading the server's frames: %v (stream window %d, connection increment %d)", err, gotStream, gotConnIncr)
				}
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if f.IsAck() {
						continue
					}
					v, ok := f.Value(http2.SettingInitialWindowSize)
					if !ok {
						v = 65535
					}
					gotStream = int64(v)
					_ = fr.WriteSettingsAck()
				case *http2.WindowUpdateFrame:
					if f.StreamID == 0 {
						gotConnIncr = int64(f.Increment)
					}
				}
			}
			if gotStream != int64(wantStream) {
				t.Errorf("per-stream window %d, want %d", gotStream, wantStream)
			}
			if gotConnIncr+65535 != int64(wantConn) {
				t.Errorf("connection window %d, want %d", gotConnIncr+65535, wantConn)
			}
		})
	}
}
