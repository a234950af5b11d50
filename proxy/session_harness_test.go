package proxy

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/lab"
	"github.com/portcullis-gw/portcullis/policy"
)

const testCard = "4111 1111 1111 1111"

// sessionOrigin is a TLS origin for the catalog's lab apps (origin.lab,
// wiki.lab, chat.lab, and app.test for suffix mode): it serves the files a
// test puts in it and records every request with the SHA-256 of its body,
// so a test can assert what reached the app — or that nothing did.
type sessionOrigin struct {
	mu    sync.Mutex
	files map[string]originFile
	seen  []seenRequest
}

type originFile struct {
	ct, disp string
	body     []byte
}

type seenRequest struct {
	method, path, sha string
	n                 int
}

func (o *sessionOrigin) put(path, ct, disp string, body []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.files[path] = originFile{ct, disp, body}
}

func (o *sessionOrigin) requests(method, path string) []seenRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []seenRequest
	for _, s := range o.seen {
		if s.method == method && s.path == path {
			out = append(out, s)
		}
	}
	return out
}

func (o *sessionOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sum := sha256.New()
	n, _ := io.Copy(sum, r.Body)
	o.mu.Lock()
	o.seen = append(o.seen, seenRequest{r.Method, r.URL.Path, hex.EncodeToString(sum.Sum(nil)), int(n)})
	f, ok := o.files[r.URL.Path]
	o.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/gen/"):
		// A generated text body of ?n= bytes, never held in memory.
		size, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Disposition", `attachment; filename="`+r.URL.Query().Get("name")+`"`)
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		line := []byte(strings.Repeat("nothing to see here, move along ", 2047) + "\n")
		for size > 0 {
			k := min(int64(len(line)), size)
			if _, err := w.Write(line[:k]); err != nil {
				return
			}
			size -= k
		}
	case ok && r.Method == http.MethodGet:
		if f.ct != "" {
			w.Header().Set("Content-Type", f.ct)
		}
		if f.disp != "" {
			w.Header().Set("Content-Disposition", f.disp)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(f.body)))
		_, _ = w.Write(f.body)
	case r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><html><body>page</body></html>")
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"sha":%q,"n":%d}`, hex.EncodeToString(sum.Sum(nil)), n)
	}
}

// captureRecorder keeps every record; as a DurableRecorder it notes what a
// record said at the moment the response's last byte was held for it.
type captureRecorder struct {
	mu   sync.Mutex
	recs []Record
}

func (c *captureRecorder) Admit() error { return nil }
func (c *captureRecorder) Record(r Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r)
	return nil
}
func (c *captureRecorder) RecordDurable(r Record) (func() error, error) {
	return func() error { return nil }, c.Record(r)
}

// find returns the last record of a request path.
func (c *captureRecorder) find(t testing.TB, method, path string) Record {
	t.Helper()
	var out Record
	found := false
	waitFor(t.(*testing.T), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, r := range c.recs {
			if r.Method == method && r.Path == path {
				out, found = r, true
			}
		}
		return found
	})
	return out
}

type sessionHarness struct {
	*harness
	origin *sessionOrigin
	dest   netip.AddrPort
	recs   *captureRecorder
	engine atomic.Pointer[policy.Engine]
	suffix *suffixHarness
}

func compilePolicies(t testing.TB, src string) *policy.Engine {
	t.Helper()
	set, err := policy.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	e, err := policy.Compile(set)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return e
}

func (o *sessionOrigin) start(t testing.TB, labCA *lab.TestCA) netip.AddrPort {
	cert, err := labCA.Leaf(lab.LeafOptions{Names: []string{"origin.lab", "wiki.lab", "chat.lab", "app.test"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: o, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return addrPortOf(ln.Addr())
}

// newSessionHarness runs the transparent pipeline with session enforcement
// of the given policies in front of a sessionOrigin; with suffix, the
// suffix pipeline too (app.test is the origin-lab app there).
func newSessionHarness(t testing.TB, policies string, suffix bool, mutate func(*SessionConfig)) *sessionHarness {
	t.Helper()
	sh := &sessionHarness{origin: &sessionOrigin{files: map[string]originFile{}}, recs: &captureRecorder{}}
	sh.engine.Store(compilePolicies(t, "custom_domains: [{app: origin-lab, domains: [app.test]}]\n"+policies))
	cfgMut := func(c *Config) {
		sc := &SessionConfig{Engine: sh.engine.Load, SpoolDir: t.TempDir()}
		if mutate != nil {
			mutate(sc)
		}
		c.Session = sc
		c.Recorder = sh.recs
		c.HoldForRecord = true
	}
	if suffix {
		sh.suffix = newSuffixHarnessConfig(t, nil, cfgMut)
		sh.harness = sh.suffix.harness
		sh.dest = sh.origin.start(t, sh.labCA)
		sh.srv.cfg.Hosts["app.test"] = []string{sh.dest.String()}
	} else {
		sh.harness = newHarness(t, cfgMut)
		sh.dest = sh.origin.start(t, sh.labCA)
	}
	return sh
}

// do sends a request through the transparent pipeline (or the suffix one,
// where host app.test is reached as app.test.gw.test).
func (sh *sessionHarness) do(t testing.TB, h2 bool, method, url string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var c *http.Client
	if sh.suffix != nil {
		c = sh.suffix.client(h2, false)
		url = strings.Replace(url, "://origin.lab/", "://app.test.gw.test/", 1)
	} else {
		c = sh.client(sh.dest, h2)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp, b
}

// docx builds a minimal Word document with text and, optionally, a
// sensitivity label (as policy/filetype's tests do).
func docx(t testing.TB, text string, label string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name, body string) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(body))
	}
	add("[Content_Types].xml", `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`)
	add("word/document.xml", `<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>`+text+`</w:t></w:r></w:p></w:body></w:document>`)
	if label != "" {
		const guid = "defa4170-0d19-0005-0004-bc88714345d2"
		add("docProps/custom.xml", `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">
<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="MSIP_Label_`+guid+`_Enabled"><vt:lpwstr>true</vt:lpwstr></property>
<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="3" name="MSIP_Label_`+guid+`_Name"><vt:lpwstr>`+label+`</vt:lpwstr></property>
</Properties>`)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zipBombDocx is a docx whose header part inflates 64 MiB of zeros.
func zipBombDocx(t testing.TB) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	_, _ = zw.Create("[Content_Types].xml")
	_, _ = zw.Create("word/document.xml")
	w, _ := zw.Create("word/header1.xml")
	zero := make([]byte, 1<<20)
	for range 64 {
		_, _ = w.Write(zero)
	}
	_ = zw.Close()
	return buf.Bytes()
}

// pdfWithText is a minimal PDF with one FlateDecode content stream.
func pdfWithText(text string) []byte {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	fmt.Fprintf(zw, "BT /F1 12 Tf 72 720 Td (%s) Tj ET", text)
	_ = zw.Close()
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n")
	fmt.Fprintf(&b, "4 0 obj << /Length %d /Filter /FlateDecode >> stream\n", z.Len())
	b.Write(z.Bytes())
	b.WriteString("\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
	return b.Bytes()
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// multipartBody builds a form with text fields and files (name → bytes).
func multipartBody(fields map[string]string, files ...any) (string, []byte) {
	var b bytes.Buffer
	const boundary = "----portcullistestboundary"
	for k, v := range fields {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", boundary, k, v)
	}
	for i := 0; i+2 < len(files)+1; i += 3 {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=%q\r\nContent-Type: %s\r\n\r\n", boundary, files[i].(string), files[i+1].(string))
		b.Write(files[i+2].([]byte))
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return "multipart/form-data; boundary=" + boundary, b.Bytes()
}

func tlsClient(conn net.Conn, tr *http.Transport) *tls.Conn {
	cfg := tr.TLSClientConfig.Clone()
	cfg.ServerName = "origin.lab"
	cfg.NextProtos = []string{"http/1.1"}
	return tls.Client(conn, cfg)
}
