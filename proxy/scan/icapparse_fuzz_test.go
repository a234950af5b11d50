package scan

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"testing"
)

// FuzzICAPResponse feeds arbitrary bytes to the ICAP response parser as a
// scan reads them: status and headers, options and threat headers, the
// encapsulated HTTP headers and the chunked body. It must never panic, read
// past its bounds or accept a malformed head.
func FuzzICAPResponse(f *testing.F) {
	for _, seed := range []string{
		"ICAP/1.0 204 No Content\r\nISTag: \"x\"\r\n\r\n",
		"ICAP/1.0 100 Continue\r\n\r\n",
		fakeOptions,
		encapsulate("", "HTTP/1.1 200 OK\r\nVia: x\r\n\r\n", []byte("hello"), "res-body"),
		encapsulate("", "POST / HTTP/1.1\r\nHost: x\r\n\r\n", []byte("hello"), "req-body"),
		encapsulate("X-Infection-Found: Type=0; Resolution=2; Threat=Eicar;\r\nX-Violations-Found: 1\r\n\t-\r\n\tEicar\r\n\t0\r\n\t0\r\n",
			"HTTP/1.0 403 Forbidden\r\n\r\n", []byte("<html>blocked</html>"), "res-body"),
		"ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, res-hdr=20, res-body=40\r\n\r\nGET / HTTP/1.1\r\n\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\r\n5; ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
		"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
		"ICAP/1.0 500 Server error\r\nConnection: close\r\n\r\n",
		"ICAP/1.0 200 OK\r\nEncapsulated: res-body=0, res-hdr=5\r\n\r\n",
		"ICAP/1.0 200\r\n \tfolded\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), icapBufSize)
		h, err := readICAPHead(br)
		if err != nil {
			return
		}
		if h.status < 100 || h.status > 999 {
			t.Fatalf("status %d accepted", h.status)
		}
		if len(h.fields) > maxICAPHeaderLines {
			t.Fatalf("%d headers accepted", len(h.fields))
		}
		parseOptions(h)
		if name, found := threat(h); found && (name == "" || len(name) > maxThreatName) {
			t.Fatalf("threat name %q", name)
		}
		m, err := readEncapsulated(br, h)
		if err != nil || !m.body {
			return
		}
		const limit = 1 << 16
		n, err := readChunked(br, limit, sha256.New())
		if n > limit {
			t.Fatalf("read %d body bytes past the limit %d (err %v)", n, limit, err)
		}
	})
}
