package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Errors of the ClientHello peek that callers match with errors.Is.
var (
	// ErrNotTLS means the first byte on the connection is not a TLS handshake
	// record. ReadClientHello returns it as soon as that byte arrives, with the
	// bytes read so far, so plain HTTP on a TLS port can be detected and
	// answered or replayed.
	ErrNotTLS = errors.New("not a TLS handshake")
	// ErrMalformedClientHello wraps every framing or syntax error in a
	// ClientHello, with what was wrong and at which offset. Close such a
	// connection rather than splice it: a hello the appliance reads one way
	// and the origin another is how policies get evaded.
	ErrMalformedClientHello = errors.New("malformed ClientHello")
)

const (
	recordHeaderLen      = 5
	recordTypeHandshake  = 0x16
	handshakeHeaderLen   = 4
	handshakeClientHello = 1
	maxClientHelloWire   = 64 << 10 // every record of the hello, headers included
	// maxHandshakeRecordLen is crypto/tls's bound before a version is agreed
	// (2^14 + 2048): the peek must not refuse what TLS termination accepts.
	maxHandshakeRecordLen = 16384 + 2048

	extServerName          = 0x0000
	extSupportedGroups     = 0x000a
	extSignatureAlgorithms = 0x000d
	extALPN                = 0x0010
	extSupportedVersions   = 0x002b
)

// ClientHello is what the appliance needs from a TLS ClientHello. List fields
// hold wire values in wire order, GREASE included; JA4 drops GREASE itself.
// The extensions decoded here are checked as strictly as crypto/tls checks
// them, so a hello is never read differently by the peek and by termination.
type ClientHello struct {
	LegacyVersion uint16
	CipherSuites  []uint16
	// Extensions are the extension types in wire order.
	Extensions []uint16
	// ServerName is the SNI host name, lowercased and without a trailing dot;
	// "" when the client sent none.
	ServerName          string
	ALPN                []string
	SupportedVersions   []uint16
	SignatureAlgorithms []uint16
	SupportedGroups     []uint16
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedClientHello}, args...)...)
}

// ReadClientHello reads from a raw client connection exactly the TLS records
// that carry the first handshake message, which must be a ClientHello, and
// parses it. It returns every byte it consumed, also on error, so the caller
// can replay them to TLS termination or to the origin. It never reads past the
// record that completes the hello, and refuses hellos needing more than
// 64 KiB of records. A connection closed before any byte gives io.EOF and no
// bytes.
func ReadClientHello(r io.Reader) (*ClientHello, []byte, error) {
	hdr := make([]byte, recordHeaderLen)
	n, err := readSome(r, hdr)
	if n == 0 {
		return nil, nil, err
	}
	if hdr[0] != recordTypeHandshake {
		return nil, hdr[:n], ErrNotTLS
	}
	if got, err := io.ReadFull(r, hdr[n:]); err != nil {
		return nil, hdr[:n+got], fmt.Errorf("read client hello record header: %w", noEOF(err))
	}

	wire := make([]byte, recordHeaderLen, recordHeaderLen+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(wire, hdr)
	var msg []byte // the handshake message gathered from the records' payloads
	msgOwned := false
	msgLen := -1 // header included, once the 4-byte handshake header is in
	for {
		start := len(wire) - recordHeaderLen
		h := wire[start:]
		recLen := int(binary.BigEndian.Uint16(h[3:]))
		switch {
		case h[0] != recordTypeHandshake:
			return nil, wire, malformed("record type 0x%02x, want handshake, at offset %d", h[0], start)
		case h[1] != 3:
			return nil, wire, malformed("record version 0x%02x%02x at offset %d", h[1], h[2], start)
		case recLen == 0:
			return nil, wire, malformed("empty handshake record at offset %d", start)
		case recLen > maxHandshakeRecordLen:
			return nil, wire, malformed("record length %d exceeds %d at offset %d", recLen, maxHandshakeRecordLen, start)
		case len(wire)+recLen > maxClientHelloWire:
			return nil, wire, malformed("records exceed %d bytes at offset %d", maxClientHelloWire, start)
		}
		wire = slices.Grow(wire, recLen)
		payload := wire[len(wire) : len(wire)+recLen]
		got, err := io.ReadFull(r, payload)
		wire = wire[:len(wire)+got]
		if err != nil {
			return nil, wire, fmt.Errorf("read client hello record: %w", noEOF(err))
		}
		switch {
		case msg == nil:
			msg = payload // the common single-record hello is parsed in place
		case !msgOwned:
			msg = append(slices.Clip(msg), payload...) // copy out of wire, once
			msgOwned = true
		default:
			msg = append(msg, payload...)
		}

		if msgLen < 0 && len(msg) >= handshakeHeaderLen {
			if msg[0] != handshakeClientHello {
				return nil, wire, malformed("handshake type %d, want client_hello (1)", msg[0])
			}
			msgLen = handshakeHeaderLen + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			// Refuse an oversized hello now rather than after reading it.
			if len(wire)+msgLen-len(msg) > maxClientHelloWire {
				return nil, wire, malformed("hello of %d bytes exceeds %d", msgLen, maxClientHelloWire)
			}
		}
		if msgLen >= 0 && len(msg) >= msgLen {
			break
		}

		if len(wire)+recordHeaderLen > maxClientHelloWire {
			return nil, wire, malformed("records exceed %d bytes", maxClientHelloWire)
		}
		wire = slices.Grow(wire, recordHeaderLen)
		got, err = io.ReadFull(r, wire[len(wire):len(wire)+recordHeaderLen])
		wire = wire[:len(wire)+got]
		if err != nil {
			return nil, wire, fmt.Errorf("read client hello record header: %w", noEOF(err))
		}
	}

	hello, err := ParseClientHello(msg[handshakeHeaderLen:msgLen])
	if err != nil {
		return nil, wire, err
	}
	return hello, wire, nil
}

// readSome makes one successful Read: waiting for a full record header would
// leave a client that speaks first with a short line (or not at all) hanging
// until the timeout instead of being recognised as not TLS.
func readSome(r io.Reader, p []byte) (int, error) {
	for range 100 { // as bufio does, give up on a reader that never progresses
		n, err := r.Read(p)
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// noEOF reports a connection that closed mid-hello as truncated rather than
// as a clean end of stream.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ParseClientHello parses the body of a ClientHello handshake message: the
// bytes after the 4-byte handshake header, starting at legacy_version.
// Duplicate extensions, trailing bytes and an invalid server name are errors.
func ParseClientHello(body []byte) (*ClientHello, error) {
	c := cursor{b: body}
	h := &ClientHello{}
	var err error
	if h.LegacyVersion, err = c.u16("legacy_version"); err != nil {
		return nil, err
	}
	if err := c.skip("random", 32); err != nil {
		return nil, err
	}
	sid, err := c.vec8("legacy_session_id")
	if err != nil {
		return nil, err
	}
	if len(sid.b) > 32 {
		return nil, malformed("legacy_session_id length %d exceeds 32 at offset %d", len(sid.b), sid.off-1)
	}
	suites, err := c.vec16("cipher_suites")
	if err != nil {
		return nil, err
	}
	if h.CipherSuites, err = suites.u16s("cipher_suites"); err != nil {
		return nil, err
	}
	comp, err := c.vec8("legacy_compression_methods")
	if err != nil {
		return nil, err
	}
	if comp.empty() {
		return nil, malformed("empty legacy_compression_methods at offset %d", comp.off-1)
	}
	if c.empty() {
		return h, nil // a hello without extensions (pre-TLS 1.2 clients)
	}
	exts, err := c.vec16("extensions")
	if err != nil {
		return nil, err
	}
	if !c.empty() {
		return nil, malformed("%d trailing bytes at offset %d", len(c.b), c.off)
	}
	if err := h.parseExtensions(exts); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *ClientHello) parseExtensions(c cursor) error {
	h.Extensions = make([]uint16, 0, 24)
	for !c.empty() {
		at := c.off
		typ, err := c.u16("extension type")
		if err != nil {
			return err
		}
		n, err := c.u16("extension length")
		if err != nil {
			return err
		}
		if int(n) > len(c.b) {
			return malformed("extension 0x%04x length %d exceeds remaining %d at offset %d", typ, n, len(c.b), at)
		}
		if slices.Contains(h.Extensions, typ) {
			return malformed("duplicate extension 0x%04x at offset %d", typ, at)
		}
		h.Extensions = append(h.Extensions, typ)
		data := cursor{b: c.b[:n], off: c.off}
		c.b, c.off = c.b[n:], c.off+int(n)
		if err := h.parseExtension(typ, data); err != nil {
			return err
		}
	}
	return nil
}

// parseExtension decodes the extensions the appliance uses; the body of any
// other extension is left unread, as a server that does not know it would.
func (h *ClientHello) parseExtension(typ uint16, c cursor) error {
	var err error
	switch typ {
	case extServerName:
		err = h.parseServerName(c)
	case extALPN:
		err = h.parseALPN(c)
	case extSupportedVersions:
		var list cursor
		if list, err = c.whole8("supported_versions"); err == nil {
			h.SupportedVersions, err = list.u16s("supported_versions")
		}
	case extSignatureAlgorithms:
		var list cursor
		if list, err = c.whole16("signature_algorithms"); err == nil {
			h.SignatureAlgorithms, err = list.u16s("signature_algorithms")
		}
	case extSupportedGroups:
		var list cursor
		if list, err = c.whole16("supported_groups"); err == nil {
			h.SupportedGroups, err = list.u16s("supported_groups")
		}
	}
	return err
}

func (h *ClientHello) parseServerName(c cursor) error {
	list, err := c.whole16("server_name_list")
	if err != nil {
		return err
	}
	if list.empty() {
		return malformed("empty server_name_list at offset %d", list.off-2)
	}
	for !list.empty() {
		at := list.off
		typ, err := list.u8("server name type")
		if err != nil {
			return err
		}
		name, err := list.vec16("server name")
		if err != nil {
			return err
		}
		if typ != 0 {
			continue // not host_name: none other is defined; skip it as a server would
		}
		if h.ServerName != "" {
			return malformed("second host_name in server_name at offset %d", at)
		}
		if h.ServerName, err = normalizeHostname(name.b); err != nil {
			return malformed("server name at offset %d: %v", name.off, err)
		}
	}
	return nil
}

func (h *ClientHello) parseALPN(c cursor) error {
	list, err := c.whole16("protocol_name_list")
	if err != nil {
		return err
	}
	if list.empty() {
		return malformed("empty protocol_name_list at offset %d", list.off-2)
	}
	for !list.empty() {
		proto, err := list.vec8("ALPN protocol")
		if err != nil {
			return err
		}
		if proto.empty() {
			return malformed("empty ALPN protocol at offset %d", proto.off-1)
		}
		h.ALPN = append(h.ALPN, string(proto.b))
	}
	return nil
}

// normalizeHostname accepts an ASCII DNS name (letters, digits, '-', '_';
// labels of 1–63 bytes; 253 bytes at most) and returns it lowercased without
// its trailing dot, so "Example.COM." and "example.com" hit the same policy
// and the same certificate. An already-normal string is returned without
// copying. IP literals are not host names: the dot-decimal form passes here,
// and callers that care check for it first.
func normalizeHostname[T string | []byte](name T) (string, error) {
	if len(name) > 0 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	if len(name) == 0 {
		return "", errors.New("empty host name")
	}
	if len(name) > 253 {
		return "", fmt.Errorf("host name of %d bytes exceeds 253", len(name))
	}
	label, upper := 0, false
	for i := range len(name) {
		switch ch := name[i]; {
		case ch == '.':
			if label == 0 {
				return "", fmt.Errorf("empty label at byte %d", i)
			}
			label = 0
			continue
		case ch >= 'A' && ch <= 'Z':
			upper = true
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9', ch == '-', ch == '_':
		default:
			return "", fmt.Errorf("byte 0x%02x at %d not allowed in a host name", ch, i)
		}
		if label++; label > 63 {
			return "", fmt.Errorf("label longer than 63 bytes at byte %d", i)
		}
	}
	if label == 0 {
		return "", errors.New("empty last label")
	}
	if !upper {
		return string(name), nil
	}
	out := make([]byte, len(name))
	copy(out, name)
	for i, ch := range out {
		if ch >= 'A' && ch <= 'Z' {
			out[i] = ch + 'a' - 'A'
		}
	}
	return string(out), nil
}

// cursor reads big-endian TLS fields and vectors, keeping its offset in the
// hello body so every error says where it happened.
type cursor struct {
	b   []byte
	off int
}

func (c *cursor) empty() bool { return len(c.b) == 0 }

func (c *cursor) skip(what string, n int) error {
	if len(c.b) < n {
		return malformed("%s needs %d bytes, %d remain at offset %d", what, n, len(c.b), c.off)
	}
	c.b, c.off = c.b[n:], c.off+n
	return nil
}

func (c *cursor) u8(what string) (uint8, error) {
	if len(c.b) < 1 {
		return 0, c.skip(what, 1)
	}
	v := c.b[0]
	c.b, c.off = c.b[1:], c.off+1
	return v, nil
}

func (c *cursor) u16(what string) (uint16, error) {
	if len(c.b) < 2 {
		return 0, c.skip(what, 2)
	}
	v := binary.BigEndian.Uint16(c.b)
	c.b, c.off = c.b[2:], c.off+2
	return v, nil
}

// vec reads a vector with an lenBytes-byte length prefix.
func (c *cursor) vec(what string, lenBytes int) (cursor, error) {
	at := c.off
	if len(c.b) < lenBytes {
		return cursor{}, malformed("%s length needs %d bytes, %d remain at offset %d", what, lenBytes, len(c.b), at)
	}
	n := int(c.b[0])
	if lenBytes == 2 {
		n = int(binary.BigEndian.Uint16(c.b))
	}
	rest := c.b[lenBytes:]
	if n > len(rest) {
		return cursor{}, malformed("%s length %d exceeds remaining %d at offset %d", what, n, len(rest), at)
	}
	v := cursor{b: rest[:n], off: at + lenBytes}
	c.b, c.off = rest[n:], at+lenBytes+n
	return v, nil
}

func (c *cursor) vec8(what string) (cursor, error)  { return c.vec(what, 1) }
func (c *cursor) vec16(what string) (cursor, error) { return c.vec(what, 2) }

// whole8 and whole16 read a vector that must fill the rest of c, as the one
// list inside an extension does.
func (c *cursor) whole8(what string) (cursor, error)  { return c.whole(what, 1) }
func (c *cursor) whole16(what string) (cursor, error) { return c.whole(what, 2) }

func (c *cursor) whole(what string, lenBytes int) (cursor, error) {
	v, err := c.vec(what, lenBytes)
	if err == nil && !c.empty() {
		err = malformed("%d bytes after %s at offset %d", len(c.b), what, c.off)
	}
	return v, err
}

// u16s decodes the whole cursor as a non-empty list of 16-bit values.
func (c cursor) u16s(what string) ([]uint16, error) {
	if len(c.b) == 0 || len(c.b)%2 != 0 {
		return nil, malformed("%s list of %d bytes at offset %d", what, len(c.b), c.off)
	}
	out := make([]uint16, len(c.b)/2)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(c.b[2*i:])
	}
	return out, nil
}
