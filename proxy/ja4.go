package proxy

import (
	"crypto/sha256"
	"slices"
)

// JA4 returns the FoxIO JA4 TLS client fingerprint of the hello, as specified
// in github.com/FoxIO-LLC/ja4 technical_details/JA4.md, for TLS over TCP:
//
//	t13d1516h2_8daaf6152771_e5627efa2ab1
//
// GREASE values are ignored everywhere. The extension count includes SNI and
// ALPN; the extension hash excludes them and appends the signature algorithms
// in wire order.
func (h *ClientHello) JA4() string {
	var out [36]byte
	b := h.ja4a(out[:0])
	b = append(b, '_')
	b = appendHash12(b, h.sortedCiphers(), nil)
	b = append(b, '_')
	b = appendHash12(b, h.sortedExtensions(), h.signatureAlgorithms())
	return string(b)
}

// JA4Raw returns the fingerprint with the b and c parts unhashed (the spec's
// JA4_r), so an analyst can see which cipher or extension made two
// fingerprints differ.
func (h *ClientHello) JA4Raw() string {
	b := h.ja4a(make([]byte, 0, 256))
	b = append(b, '_')
	b = appendHexList(b, h.sortedCiphers())
	b = append(b, '_')
	b = appendExtensionsAndSigs(b, h.sortedExtensions(), h.signatureAlgorithms())
	return string(b)
}

// ja4a appends the unhashed first part, e.g. "t13d1516h2".
func (h *ClientHello) ja4a(b []byte) []byte {
	b = append(b, 't')
	b = append(b, ja4Version(h.tlsVersion())...)
	if slices.Contains(h.Extensions, extServerName) {
		b = append(b, 'd')
	} else {
		b = append(b, 'i')
	}
	b = appendCount(b, countNonGREASE(h.CipherSuites))
	b = appendCount(b, countNonGREASE(h.Extensions))
	return appendALPNMark(b, h.ALPN)
}

// tlsVersion is the highest non-GREASE supported_versions entry, else the
// legacy version (the record layer version is never used).
func (h *ClientHello) tlsVersion() uint16 {
	var v uint16
	for _, sv := range h.SupportedVersions {
		if !isGREASE(sv) && sv > v {
			v = sv
		}
	}
	if v == 0 {
		return h.LegacyVersion
	}
	return v
}

func ja4Version(v uint16) string {
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

// appendALPNMark appends the first and last characters of the first ALPN
// value, or, when either is not an ASCII letter or digit, the first and last
// characters of the value's hex encoding; "00" without ALPN.
func appendALPNMark(b []byte, alpn []string) []byte {
	if len(alpn) == 0 || alpn[0] == "" {
		return append(b, '0', '0')
	}
	first, last := alpn[0][0], alpn[0][len(alpn[0])-1]
	if isAlnum(first) && isAlnum(last) {
		return append(b, first, last)
	}
	return append(b, hexDigits[first>>4], hexDigits[last&0xf])
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// isGREASE reports the RFC 8701 reserved values 0x0a0a, 0x1a1a … 0xfafa,
// which clients send at random to keep servers tolerant of unknown values.
func isGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}

func countNonGREASE(vs []uint16) int {
	n := 0
	for _, v := range vs {
		if !isGREASE(v) {
			n++
		}
	}
	return n
}

func appendCount(b []byte, n int) []byte {
	n = min(n, 99)
	return append(b, byte('0'+n/10), byte('0'+n%10))
}

func (h *ClientHello) sortedCiphers() []uint16 {
	return sortedWithout(h.CipherSuites, isGREASE)
}

func (h *ClientHello) sortedExtensions() []uint16 {
	return sortedWithout(h.Extensions, func(v uint16) bool {
		return isGREASE(v) || v == extServerName || v == extALPN
	})
}

func (h *ClientHello) signatureAlgorithms() []uint16 {
	if !slices.ContainsFunc(h.SignatureAlgorithms, isGREASE) {
		return h.SignatureAlgorithms
	}
	return slices.DeleteFunc(slices.Clone(h.SignatureAlgorithms), isGREASE)
}

func sortedWithout(vs []uint16, drop func(uint16) bool) []uint16 {
	out := make([]uint16, 0, len(vs))
	for _, v := range vs {
		if !drop(v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

const hexDigits = "0123456789abcdef"

func appendHexList(b []byte, vs []uint16) []byte {
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
	}
	return b
}

// appendExtensionsAndSigs builds the c part's input: the sorted extensions,
// then "_" and the signature algorithms only when there are any.
func appendExtensionsAndSigs(b []byte, exts, sigs []uint16) []byte {
	b = appendHexList(b, exts)
	if len(sigs) > 0 {
		b = append(b, '_')
		b = appendHexList(b, sigs)
	}
	return b
}

// appendHash12 appends the first 12 hex digits of the SHA-256 of the list
// text, or twelve zeros for an empty first list: the spec prefers an obvious
// "nothing here" to the hash of an empty string.
func appendHash12(b []byte, list, sigs []uint16) []byte {
	if len(list) == 0 {
		return append(b, "000000000000"...)
	}
	var buf [1024]byte // enough for every real hello; larger ones spill to the heap
	sum := sha256.Sum256(appendExtensionsAndSigs(buf[:0], list, sigs))
	for _, x := range sum[:6] {
		b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
	}
	return b
}
