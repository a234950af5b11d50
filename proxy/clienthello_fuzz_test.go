package proxy

import (
	"bytes"
	"errors"
	"testing"
	"testing/iotest"
)

// FuzzParseClientHello feeds ClientHello bodies (the bytes after the
// handshake header) to the parser, and the same body framed in records of an
// input-dependent size to ReadClientHello. Neither may panic, every error is
// ErrMalformedClientHello, a parsed hello has a well-formed JA4, and both
// paths agree. Seeds: testdata/fuzz/FuzzParseClientHello (Go clients with
// several configurations, one truncated) and the FoxIO vectors.
func FuzzParseClientHello(f *testing.F) {
	for _, name := range []string{"chrome-slack", "firefox", "tls10-no-alpn", "non-ascii-alpn"} {
		f.Add(helloBody(f, readHexVector(f, name)))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := ParseClientHello(body)
		if err != nil && !errors.Is(err, ErrMalformedClientHello) {
			t.Fatalf("error not ErrMalformedClientHello: %v", err)
		}
		var ja4 string
		if err == nil {
			ja4 = h.JA4()
			if !ja4Pattern.MatchString(ja4) {
				t.Fatalf("malformed JA4 %q", ja4)
			}
			if raw := h.JA4Raw(); raw[:10] != ja4[:10] {
				t.Fatalf("JA4Raw %q disagrees with JA4 %q", raw, ja4)
			}
			if h.ServerName != "" {
				if again, err := normalizeHostname(h.ServerName); err != nil || again != h.ServerName {
					t.Fatalf("ServerName %q not normalized: %q, %v", h.ServerName, again, err)
				}
			}
		}

		recLen := 1 + len(body)%1500
		wire := frameHello(body, recLen)
		h2, consumed, err2 := ReadClientHello(iotest.HalfReader(bytes.NewReader(wire)))
		if len(wire) > maxClientHelloWire {
			if err2 == nil {
				t.Fatalf("accepted %d bytes of records", len(wire))
			}
			return
		}
		if !bytes.Equal(consumed, wire) {
			t.Fatalf("consumed %d of %d bytes", len(consumed), len(wire))
		}
		if (err == nil) != (err2 == nil) {
			t.Fatalf("ParseClientHello: %v; ReadClientHello in %d-byte records: %v", err, recLen, err2)
		}
		if err == nil && h2.JA4() != ja4 {
			t.Fatalf("JA4 %s from records, %s from the body", h2.JA4(), ja4)
		}
	})
}
