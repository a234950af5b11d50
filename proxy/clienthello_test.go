package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// captureGoHello returns the bytes a crypto/tls client writes for its first
// flight, as the appliance reads them off a TCP connection.
func captureGoHello(tb testing.TB, cfg *tls.Config) []byte {
	tb.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(client, cfg).Handshake() // fails once server closes
	}()
	_, wire, err := ReadClientHello(server)
	_ = server.Close()
	_ = client.Close()
	<-done
	if err != nil {
		tb.Fatalf("read Go ClientHello: %v", err)
	}
	return wire
}

// goParsedHello replays wire into a crypto/tls server and returns what its
// own parser made of the hello: the reference the appliance parser must
// agree with.
func goParsedHello(t *testing.T, wire []byte) *tls.ClientHelloInfo {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		_, _ = client.Write(wire)
		_, _ = io.Copy(io.Discard, client) // the server's alert
	}()
	var got *tls.ClientHelloInfo
	stop := errors.New("captured")
	srv := tls.Server(server, &tls.Config{GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		got = chi
		return nil, stop
	}})
	if err := srv.Handshake(); !errors.Is(err, stop) {
		t.Fatalf("Go server handshake: %v", err)
	}
	_ = server.Close()
	_ = client.Close()
	return got
}

// frameHello wraps a ClientHello body in its handshake header and splits the
// message into handshake records of at most recLen bytes.
func frameHello(body []byte, recLen int) []byte {
	msg := append([]byte{handshakeClientHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	var wire []byte
	for len(msg) > 0 {
		n := min(recLen, len(msg))
		wire = append(wire, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		wire = append(wire, msg[:n]...)
		msg = msg[n:]
	}
	return wire
}

// helloBody is the ClientHello body inside single-record wire bytes.
func helloBody(tb testing.TB, wire []byte) []byte {
	tb.Helper()
	if int(binary.BigEndian.Uint16(wire[3:])) != len(wire)-recordHeaderLen {
		tb.Fatal("hello is not a single record")
	}
	return wire[recordHeaderLen+handshakeHeaderLen:]
}

type testExt struct {
	typ  uint16
	data []byte
}

// buildHello assembles a ClientHello body: legacy version 0x0303, zero
// random, empty session id, null compression.
func buildHello(ciphers []uint16, exts ...testExt) []byte {
	b := []byte{3, 3}
	b = append(b, make([]byte, 32)...)
	b = append(b, 0)
	b = append16(b, u16Bytes(ciphers))
	b = append(b, 1, 0)
	var e []byte
	for _, x := range exts {
		e = binary.BigEndian.AppendUint16(e, x.typ)
		e = append16(e, x.data)
	}
	return append16(b, e)
}

func append16(b, v []byte) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(v))), v...)
}

func u16Bytes(vs []uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

func sniExt(name string) testExt {
	entry := append([]byte{0}, append16(nil, []byte(name))...)
	return testExt{extServerName, append16(nil, entry)}
}

func alpnExt(protos ...string) testExt {
	var list []byte
	for _, p := range protos {
		list = append(list, byte(len(p)))
		list = append(list, p...)
	}
	return testExt{extALPN, append16(nil, list)}
}

func u16ListExt(typ uint16, vs ...uint16) testExt {
	return testExt{typ, append16(nil, u16Bytes(vs))}
}

func versionsExt(vs ...uint16) testExt {
	return testExt{extSupportedVersions, append([]byte{byte(2 * len(vs))}, u16Bytes(vs)...)}
}

func TestReadClientHelloGoClient(t *testing.T) {
	configs := map[string]*tls.Config{
		"default": {ServerName: "Example.COM", NextProtos: []string{"h2", "http/1.1"}},
		"ip":      {ServerName: "192.0.2.1"},
		"tls12":   {ServerName: "tls12.example", MaxVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		"tls13":   {ServerName: "a.b.example", MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519}},
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			wire := captureGoHello(t, cfg)
			h, consumed, err := ReadClientHello(bytes.NewReader(wire))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(consumed, wire) {
				t.Fatal("consumed bytes differ from the hello on the wire")
			}
			want := goParsedHello(t, wire)
			wantSNI := strings.ToLower(cfg.ServerName)
			if net.ParseIP(wantSNI) != nil {
				wantSNI = "" // Go sends no SNI for an IP literal
			}
			if h.ServerName != wantSNI || strings.ToLower(want.ServerName) != wantSNI {
				t.Errorf("ServerName = %q, Go parsed %q, want %q", h.ServerName, want.ServerName, wantSNI)
			}
			sigs := make([]uint16, len(want.SignatureSchemes))
			for i, s := range want.SignatureSchemes {
				sigs[i] = uint16(s)
			}
			groups := make([]uint16, len(want.SupportedCurves))
			for i, g := range want.SupportedCurves {
				groups[i] = uint16(g)
			}
			for _, c := range []struct {
				field     string
				got, want []uint16
			}{
				{"CipherSuites", h.CipherSuites, want.CipherSuites},
				{"Extensions", h.Extensions, want.Extensions},
				{"SupportedVersions", h.SupportedVersions, want.SupportedVersions},
				{"SignatureAlgorithms", h.SignatureAlgorithms, sigs},
				{"SupportedGroups", h.SupportedGroups, groups},
			} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s = %04x, Go parsed %04x", c.field, c.got, c.want)
				}
			}
			if !slices.Equal(h.ALPN, want.SupportedProtos) {
				t.Errorf("ALPN = %q, Go parsed %q", h.ALPN, want.SupportedProtos)
			}
			if got, ref := h.JA4(), referenceJA4(want); got != ref {
				t.Errorf("JA4 = %s, from Go's parse %s", got, ref)
			}
		})
	}
}

func TestReadClientHelloSplitRecords(t *testing.T) {
	wire := captureGoHello(t, &tls.Config{ServerName: "split.example", NextProtos: []string{"h2"}})
	want, _, err := ReadClientHello(bytes.NewReader(wire))
	if err != nil {
		t.Fatal(err)
	}
	body := helloBody(t, wire)
	// 2-byte records split even the handshake header across records.
	for _, recLen := range []int{2, 37, 512} {
		split := frameHello(body, recLen)
		extra := []byte("next flight")
		r := bytes.NewReader(append(slices.Clip(split), extra...))
		h, consumed, err := ReadClientHello(iotest.OneByteReader(r))
		if err != nil {
			t.Fatalf("records of %d: %v", recLen, err)
		}
		if !bytes.Equal(consumed, split) {
			t.Errorf("records of %d: consumed %d bytes, want %d", recLen, len(consumed), len(split))
		}
		if rest, _ := io.ReadAll(r); !bytes.Equal(rest, extra) {
			t.Errorf("records of %d: read past the hello, left %q", recLen, rest)
		}
		if h.JA4() != want.JA4() || h.ServerName != want.ServerName {
			t.Errorf("records of %d: parsed differently", recLen)
		}
	}
}

func TestReadClientHelloNotTLSImmediately(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go func() { _, _ = client.Write([]byte("G")) }() // and then nothing: a slow plain-HTTP client
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, consumed, err := ReadClientHello(server)
	if !errors.Is(err, ErrNotTLS) || string(consumed) != "G" {
		t.Fatalf("got %q, %v; want \"G\", ErrNotTLS", consumed, err)
	}

	r := strings.NewReader("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	_, consumed, err = ReadClientHello(r)
	if !errors.Is(err, ErrNotTLS) || string(consumed) != "GET /" {
		t.Fatalf("got %q, %v; want \"GET /\", ErrNotTLS", consumed, err)
	}
}

func TestReadClientHelloEOF(t *testing.T) {
	_, consumed, err := ReadClientHello(bytes.NewReader(nil))
	if err != io.EOF || consumed != nil {
		t.Fatalf("empty connection: got %q, %v; want no bytes, io.EOF", consumed, err)
	}
	wire := frameHello(buildHello([]uint16{0x1301}), 1000)
	_, consumed, err = ReadClientHello(bytes.NewReader(wire[:20]))
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(consumed) != 20 {
		t.Fatalf("truncated hello: got %d bytes, %v; want 20, io.ErrUnexpectedEOF", len(consumed), err)
	}
}

func TestReadClientHelloBounds(t *testing.T) {
	big := buildHello([]uint16{0x1301}, testExt{0x0015, make([]byte, 60000)}) // padding
	if _, _, err := ReadClientHello(bytes.NewReader(frameHello(big, 16384))); err != nil {
		t.Fatalf("60 kB hello in full records: %v", err)
	}
	// Same hello in 40-byte records: more than 64 KiB with the headers.
	if _, _, err := ReadClientHello(bytes.NewReader(frameHello(big, 40))); !errors.Is(err, ErrMalformedClientHello) {
		t.Fatalf("hello over 64 KiB of records: %v", err)
	}

	// A header announcing a 70 000-byte hello is refused before its body is read.
	first := []byte{0x16, 3, 1, 0, 4, 1, 0x01, 0x11, 0x70}
	r := bytes.NewReader(append(slices.Clip(first), make([]byte, 70000)...))
	_, consumed, err := ReadClientHello(r)
	if !errors.Is(err, ErrMalformedClientHello) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized hello: %v", err)
	}
	if !bytes.Equal(consumed, first) {
		t.Fatalf("oversized hello: consumed %d bytes, want the first record only", len(consumed))
	}
}

func TestReadClientHelloBadFraming(t *testing.T) {
	body := buildHello([]uint16{0x1301})
	two := frameHello(body, 20)
	alert := slices.Clone(two)
	alert[25] = 0x15 // second record is an alert
	notHello := frameHello(body, 1000)
	notHello[5] = 2 // server_hello
	zero := []byte{0x16, 3, 1, 0, 0}
	for name, wire := range map[string][]byte{
		"second record not handshake": alert,
		"handshake type":              notHello,
		"empty record":                zero,
		"record version":              {0x16, 2, 0, 0, 1, 1},
		"record too long":             {0x16, 3, 1, 0xff, 0xff},
	} {
		_, _, err := ReadClientHello(bytes.NewReader(wire))
		if !errors.Is(err, ErrMalformedClientHello) {
			t.Errorf("%s: got %v, want ErrMalformedClientHello", name, err)
		}
	}
}

func TestParseClientHelloMalformed(t *testing.T) {
	ciphers := []uint16{0x1301}
	alpnShort := buildHello(ciphers, testExt{extALPN, []byte{0, 7, 2, 'h', '2'}})
	// Rewrite the ALPN extension's length from 5 to 9 with 4 bytes following
	// it: the extension block's own length stays truthful.
	alpnLen := bytes.Index(alpnShort, []byte{0, 0x10, 0, 5}) + 2
	truncated := slices.Clone(alpnShort[:len(alpnShort)-1])
	truncated[alpnLen+1] = 9
	binary.BigEndian.PutUint16(truncated[alpnLen-4:], uint16(len(truncated)-(alpnLen-2)))

	for _, c := range []struct {
		name, body, want string
	}{
		{"ext exceeds", string(truncated), "extension 0x0010 length 9 exceeds remaining 4 at offset 43"},
		{"empty", "", "legacy_version needs 2 bytes"},
		{"session id", string(append([]byte{3, 3}, append(make([]byte, 32), 33)...)) + strings.Repeat("x", 40), "legacy_session_id length 33 exceeds 32"},
		{"odd ciphers", string(buildHello(ciphers)[:35]) + "\x00\x03\x13\x01\x00\x01\x00", "cipher_suites list of 3 bytes"},
		{"no compression", string(buildHello(ciphers)[:39]) + "\x00", "empty legacy_compression_methods"},
		{"trailing", string(buildHello(ciphers, sniExt("a.example"))) + "x", "1 trailing bytes"},
		{"duplicate", string(buildHello(ciphers, sniExt("a.example"), sniExt("b.example"))), "duplicate extension 0x0000"},
		{"sni space", string(buildHello(ciphers, sniExt("a b.example"))), "byte 0x20 at 1"},
		{"sni utf8", string(buildHello(ciphers, sniExt("bücher.example"))), "not allowed in a host name"},
		{"sni ipv6", string(buildHello(ciphers, sniExt("::1"))), "byte 0x3a"},
		{"sni empty label", string(buildHello(ciphers, sniExt("a..example"))), "empty label"},
		{"sni empty", string(buildHello(ciphers, sniExt(""))), "empty host name"},
		{"sni long label", string(buildHello(ciphers, sniExt(strings.Repeat("a", 64)+".example"))), "longer than 63"},
		{"empty alpn", string(buildHello(ciphers, alpnExt("h2", ""))), "empty ALPN protocol"},
		{"versions odd", string(buildHello(ciphers, testExt{extSupportedVersions, []byte{3, 3, 4, 3}})), "supported_versions list of 3 bytes"},
		{"versions overrun", string(buildHello(ciphers, testExt{extSupportedVersions, []byte{4, 3, 4}})), "supported_versions length 4 exceeds remaining 2"},
		{"sigalgs extra", string(buildHello(ciphers, testExt{extSignatureAlgorithms, []byte{0, 2, 4, 3, 0}})), "1 bytes after signature_algorithms"},
	} {
		_, err := ParseClientHello([]byte(c.body))
		if !errors.Is(err, ErrMalformedClientHello) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrMalformedClientHello containing %q", c.name, err, c.want)
		}
	}
}

func TestParseClientHelloServerName(t *testing.T) {
	for in, want := range map[string]string{
		"WWW.Example.COM.":   "www.example.com",
		"a_b-c.example":      "a_b-c.example",
		"192.0.2.1":          "192.0.2.1", // forbidden by RFC 6066, sent by some clients: certified as an IP
		"xn--bcher-kva.test": "xn--bcher-kva.test",
	} {
		h, err := ParseClientHello(buildHello([]uint16{0x1301}, sniExt(in)))
		if err != nil || h.ServerName != want {
			t.Errorf("SNI %q: got %q, %v; want %q", in, h.ServerName, err, want)
		}
	}
	// No extensions at all is a valid (old) hello.
	h, err := ParseClientHello(buildHello([]uint16{0x002f})[:41])
	if err != nil || h.Extensions != nil || h.ServerName != "" {
		t.Fatalf("hello without extensions: %+v, %v", h, err)
	}
}
