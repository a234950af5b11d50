package scan

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeICAP is a scripted ICAP server on loopback for the answers c-icap
// does not give: every connection's request head is read, OPTIONS is
// answered with options, anything else is handed to handle.
type fakeICAP struct {
	t       *testing.T
	url     string
	options string
	handle  func(req *fakeRequest)
	optsN   atomic.Int32
}

type fakeRequest struct {
	method string
	head   map[string]string // lowercased names
	conn   net.Conn
	br     *bufio.Reader
}

const fakeOptions = "ICAP/1.0 200 OK\r\nMethods: RESPMOD, REQMOD\r\nISTag: \"fake-1\"\r\nPreview: 1024\r\nAllow: 204\r\nOptions-TTL: 60\r\nEncapsulated: null-body=0\r\n\r\n"

func startFake(t *testing.T, options string, handle func(*fakeRequest)) *fakeICAP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeICAP{t: t, url: "icap://" + l.Addr().String() + "/svc", options: options, handle: handle}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return f
}

func (f *fakeICAP) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req := &fakeRequest{head: map[string]string{}, conn: c, br: br}
	for i := 0; ; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if i == 0 {
			req.method, _, _ = strings.Cut(line, " ")
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		req.head[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	if req.method == "OPTIONS" {
		f.optsN.Add(1)
		io.WriteString(c, f.options)
		return
	}
	f.handle(req)
}

// readHTTPHeaders reads the encapsulated HTTP headers, up to the body.
func (r *fakeRequest) readHTTPHeaders() string {
	enc := r.head["encapsulated"]
	i := strings.LastIndex(enc, "=")
	n, _ := strconv.Atoi(enc[i+1:])
	b := make([]byte, n)
	io.ReadFull(r.br, b)
	return string(b)
}

// readBody reads chunks up to the terminating chunk and reports whether it
// carried ieof.
func (r *fakeRequest) readBody() ([]byte, bool) {
	var body []byte
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			return body, false
		}
		size, ext, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, _ := strconv.ParseInt(size, 16, 64)
		if n == 0 {
			r.br.ReadString('\n')
			return body, strings.TrimSpace(ext) == "ieof"
		}
		chunk := make([]byte, n+2)
		io.ReadFull(r.br, chunk)
		body = append(body, chunk[:n]...)
	}
}

func (r *fakeRequest) reply(s string) { io.WriteString(r.conn, s) }

// encapsulate builds a 200 that carries httpHead and body back.
func encapsulate(extra, httpHead string, body []byte, bodyName string) string {
	var b strings.Builder
	b.WriteString("ICAP/1.0 200 OK\r\nISTag: \"fake-1\"\r\n" + extra)
	b.WriteString("Encapsulated: " + strings.SplitN(bodyName, "-", 2)[0] + "-hdr=0, " + bodyName + "=" + strconv.Itoa(len(httpHead)) + "\r\n\r\n")
	b.WriteString(httpHead)
	if len(body) > 0 {
		b.WriteString(strconv.FormatInt(int64(len(body)), 16) + "\r\n" + string(body) + "\r\n")
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

func fakeScan(t *testing.T, f *fakeICAP, cfg ICAPConfig, data []byte) (Verdict, error) {
	t.Helper()
	cfg.URL = f.url
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	return newICAP(t, cfg).Scan(background, bytes.NewReader(data), int64(len(data)), "f.bin")
}

func TestICAPAnswers(t *testing.T) {
	blockPage := "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\n\r\n"
	for _, tc := range []struct {
		name   string
		mode   string
		answer func(r *fakeRequest) string
		want   Verdict
		err    error
	}{
		{"violations", "", func(r *fakeRequest) string {
			r.readHTTPHeaders()
			r.readBody()
			return encapsulate("X-Violations-Found: 1\r\n\tf.bin\r\n\tWorm.Fake-42\r\n\t7\r\n\t2\r\n", blockPage, []byte("blocked"), "res-body")
		}, Verdict{Infected: true, Signature: "Worm.Fake-42", Scanner: "icap"}, nil},
		{"virus id", "", func(r *fakeRequest) string {
			r.readHTTPHeaders()
			r.readBody()
			return "ICAP/1.0 200 OK\r\nX-Virus-ID: Trojan.Fake\r\nEncapsulated: res-hdr=0, null-body=" + strconv.Itoa(len(blockPage)) + "\r\n\r\n" + blockPage
		}, Verdict{Infected: true, Signature: "Trojan.Fake", Scanner: "icap"}, nil},
		{"infection without threat", "", func(r *fakeRequest) string {
			r.readHTTPHeaders()
			r.readBody()
			return "ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2\r\nEncapsulated: null-body=0\r\n\r\n"
		}, Verdict{Infected: true, Signature: UnnamedThreat, Scanner: "icap"}, nil},
		{"block page without headers", "", func(r *fakeRequest) string {
			r.readHTTPHeaders()
			r.readBody()
			return encapsulate("", blockPage, []byte("<h1>no</h1>"), "res-body")
		}, Verdict{Infected: true, Signature: UnnamedThreat, Scanner: "icap"}, nil},
		{"same status other body", "", func(r *fakeRequest) string {
			r.readHTTPHeaders()
			body, _ := r.readBody()
			body[0] ^= 1
			return encapsulate("", "HTTP/1.1 200 OK\r\n\r\n", body, "res-body")
		}, Verdict{Infected: true, Signature: UnnamedThreat, Scanner: "icap"}, nil},
		{"longer body", "", func(r *fakeRequest) string {
			r.readHTTPHeaders()
			body, _ := r.readBody()
			return encapsulate("", "HTTP/1.1 200 OK\r\n\r\n", append(body, 'x'), "res-body")
		}, Verdict{Infected: true, Signature: UnnamedThreat, Scanner: "icap"}, nil},
		{"echo", "", func(r *fakeRequest) string {
			r.readHTTPHeaders()
			body, _ := r.readBody()
			return encapsulate("", "HTTP/1.1 200 OK\r\nVia: fake\r\n\r\n", body, "res-body")
		}, Verdict{Scanner: "icap"}, nil},
		{"reqmod echo", "reqmod", func(r *fakeRequest) string {
			r.readHTTPHeaders()
			body, _ := r.readBody()
			return encapsulate("", "POST /f.bin HTTP/1.1\r\nHost: x\r\n\r\n", body, "req-body")
		}, Verdict{Scanner: "icap"}, nil},
		{"reqmod answered with a response", "reqmod", func(r *fakeRequest) string {
			r.readHTTPHeaders()
			r.readBody()
			return encapsulate("", blockPage, []byte("no"), "res-body")
		}, Verdict{Infected: true, Signature: UnnamedThreat, Scanner: "icap"}, nil},
		{"server error", "", func(r *fakeRequest) string {
			r.readHTTPHeaders()
			r.readBody()
			return "ICAP/1.0 500 Server error\r\nConnection: close\r\n\r\n"
		}, Verdict{}, ErrScanner},
		{"garbage", "", func(r *fakeRequest) string { return "HTTP/1.1 200 OK\r\n\r\n" }, Verdict{}, ErrProtocol},
		{"huge header", "", func(r *fakeRequest) string {
			return "ICAP/1.0 204 No Content\r\nX-Pad: " + strings.Repeat("a", 10000) + "\r\n\r\n"
		}, Verdict{}, ErrProtocol},
		{"endless headers", "", func(r *fakeRequest) string {
			return "ICAP/1.0 204 No Content\r\n" + strings.Repeat("X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 2000) + "\r\n"
		}, Verdict{}, ErrProtocol},
		{"bad encapsulated", "", func(r *fakeRequest) string {
			return "ICAP/1.0 200 OK\r\nEncapsulated: res-body=0, res-hdr=5\r\n\r\n"
		}, Verdict{}, ErrProtocol},
		{"closed", "", func(r *fakeRequest) string { return "" }, Verdict{}, ErrProtocol},
		{"unexpected continue", "", func(r *fakeRequest) string {
			return "ICAP/1.0 100 Continue\r\n\r\n"
		}, Verdict{}, ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, fakeOptions, func(r *fakeRequest) { r.reply(tc.answer(r)) })
			v, err := fakeScan(t, f, ICAPConfig{Mode: tc.mode, Preview: -1}, []byte("file content"))
			if tc.err != nil {
				wantErr(t, err, tc.err)
				return
			}
			if err != nil || v != tc.want {
				t.Fatalf("%+v, %v; want %+v", v, err, tc.want)
			}
		})
	}
}

// TestICAPPreview: with a preview the rest of the file is sent only after
// 100 Continue, ieof marks a file that fit, and a 204 after the preview
// ends the exchange without the rest.
func TestICAPPreview(t *testing.T) {
	big := bytes.Repeat([]byte{'z'}, 1<<20)
	t.Run("204 after preview", func(t *testing.T) {
		got := make(chan int, 1)
		f := startFake(t, fakeOptions, func(r *fakeRequest) {
			r.readHTTPHeaders()
			body, ieof := r.readBody()
			if r.head["preview"] != "1024" || ieof {
				t.Errorf("Preview %q, ieof %v", r.head["preview"], ieof)
			}
			got <- len(body)
			r.reply("ICAP/1.0 204 No Content\r\n\r\n")
		})
		v, err := fakeScan(t, f, ICAPConfig{}, big)
		if err != nil || v.Infected {
			t.Fatalf("%+v, %v", v, err)
		}
		if n := <-got; n != 1024 {
			t.Fatalf("server got %d bytes before answering, want the 1024 of the preview", n)
		}
	})
	t.Run("continue", func(t *testing.T) {
		f := startFake(t, fakeOptions, func(r *fakeRequest) {
			r.readHTTPHeaders()
			preview, _ := r.readBody()
			r.reply("ICAP/1.0 100 Continue\r\n\r\n")
			rest, _ := r.readBody()
			r.reply(encapsulate("", "HTTP/1.1 200 OK\r\n\r\n", append(preview, rest...), "res-body"))
		})
		for _, p := range []int{0, 1, 100} {
			v, err := fakeScan(t, f, ICAPConfig{Preview: p}, big)
			if err != nil || v.Infected {
				t.Fatalf("preview %d: %+v, %v", p, v, err)
			}
		}
	})
	t.Run("ieof", func(t *testing.T) {
		f := startFake(t, fakeOptions, func(r *fakeRequest) {
			r.readHTTPHeaders()
			body, ieof := r.readBody()
			if !ieof {
				t.Errorf("%d-byte file in a 1024-byte preview without ieof", len(body))
			}
			r.reply(encapsulate("", "HTTP/1.1 200 OK\r\n\r\n", body, "res-body"))
		})
		for _, data := range [][]byte{nil, []byte("x"), big[:1024]} {
			v, err := fakeScan(t, f, ICAPConfig{}, data)
			if err != nil || v.Infected {
				t.Fatalf("%d bytes: %+v, %v", len(data), v, err)
			}
			v, err = newICAP(t, ICAPConfig{URL: f.url}).Scan(background, unknownSize{bytes.NewReader(data)}, -1, "f")
			if err != nil || v.Infected {
				t.Fatalf("%d bytes, size unknown: %+v, %v", len(data), v, err)
			}
		}
	})
	t.Run("200 after preview", func(t *testing.T) {
		// An answer built from the preview alone is not the file.
		f := startFake(t, fakeOptions, func(r *fakeRequest) {
			r.readHTTPHeaders()
			preview, _ := r.readBody()
			r.reply(encapsulate("", "HTTP/1.1 200 OK\r\n\r\n", preview, "res-body"))
		})
		v, err := fakeScan(t, f, ICAPConfig{}, big)
		if err != nil || !v.Infected || v.Signature != UnnamedThreat {
			t.Fatalf("%+v, %v", v, err)
		}
	})
}

// TestICAPEarlyAnswer: a service that answers before reading the file and
// then stops reading ends the scan at once, not at the timeout.
func TestICAPEarlyAnswer(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	f := startFake(t, fakeOptions, func(r *fakeRequest) {
		r.reply("ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Early.Bird;\r\nEncapsulated: null-body=0\r\n\r\n")
		<-hold
	})
	big := bytes.Repeat([]byte{'q'}, 32<<20)
	var v Verdict
	err := within(t, 2*time.Second, func() error {
		var err error
		v, err = fakeScan(t, f, ICAPConfig{Preview: -1, Timeout: 20 * time.Second}, big)
		return err
	})
	if err != nil || v.Signature != "Early.Bird" {
		t.Fatalf("%+v, %v", v, err)
	}
}

func TestICAPOptionsUse(t *testing.T) {
	echo := func(r *fakeRequest) {
		r.readHTTPHeaders()
		body, _ := r.readBody()
		r.reply(encapsulate("", "HTTP/1.1 200 OK\r\n\r\n", body, "res-body"))
	}
	t.Run("kept for Options-TTL", func(t *testing.T) {
		f := startFake(t, fakeOptions, echo)
		c := newICAP(t, ICAPConfig{URL: f.url})
		for range 3 {
			if _, err := c.Scan(background, strings.NewReader("abc"), 3, "f"); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.optsN.Load(); n != 1 {
			t.Fatalf("%d OPTIONS requests for 3 scans, want 1", n)
		}
	})
	t.Run("method not offered", func(t *testing.T) {
		f := startFake(t, strings.Replace(fakeOptions, "RESPMOD, REQMOD", "RESPMOD", 1), echo)
		_, err := fakeScan(t, f, ICAPConfig{Mode: "reqmod"}, []byte("abc"))
		wantErr(t, err, ErrUnsupported)
	})
	t.Run("no methods", func(t *testing.T) {
		f := startFake(t, "ICAP/1.0 200 OK\r\nISTag: x\r\n\r\n", echo)
		_, err := fakeScan(t, f, ICAPConfig{}, []byte("abc"))
		wantErr(t, err, ErrProtocol)
	})
	t.Run("preview and 204 as offered", func(t *testing.T) {
		heads := make(chan map[string]string, 1)
		f := startFake(t, strings.Replace(strings.Replace(fakeOptions, "Preview: 1024\r\n", "", 1), "Allow: 204\r\n", "", 1), func(r *fakeRequest) {
			heads <- r.head
			echo(r)
		})
		if _, err := fakeScan(t, f, ICAPConfig{Allow204: true}, []byte("abc")); err != nil {
			t.Fatal(err)
		}
		h := <-heads
		if _, ok := h["preview"]; ok {
			t.Error("Preview sent to a service that takes none")
		}
		if _, ok := h["allow"]; ok {
			t.Error("Allow: 204 sent to a service that does not offer it")
		}
	})
}

type slowFailReader struct{ sent bool }

func (r *slowFailReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, bytes.Repeat([]byte{'a'}, 2000)), nil
	}
	return 0, errors.New("upload interrupted")
}

// TestICAPSourceError: a file that cannot be read ends the scan with that
// error, at once, while the service is still waiting for the rest.
func TestICAPSourceError(t *testing.T) {
	f := startFake(t, fakeOptions, func(r *fakeRequest) {
		r.readHTTPHeaders()
		r.readBody()
		r.reply("ICAP/1.0 100 Continue\r\n\r\n")
		r.readBody()
	})
	err := within(t, 2*time.Second, func() error {
		_, err := newICAP(t, ICAPConfig{URL: f.url, Timeout: 20 * time.Second}).Scan(background, &slowFailReader{}, -1, "f")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "upload interrupted") {
		t.Fatalf("error %v, want the reader's", err)
	}
}

func TestICAPConfigValidate(t *testing.T) {
	for _, cfg := range []ICAPConfig{
		{},
		{URL: "http://127.0.0.1/avscan"},
		{URL: "icap://127.0.0.1"},
		{URL: "icap://127.0.0.1/"},
		{URL: "icap://user@127.0.0.1/avscan"},
		{URL: "icap://127.0.0.1:99999/avscan"},
		{URL: "icap://127.0.0.1/avscan", Mode: "options"},
		{URL: "icap://127.0.0.1/avscan", Preview: -2},
		{URL: "icap://127.0.0.1/avscan", Timeout: -1},
	} {
		if _, err := NewICAP(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	c, err := NewICAP(ICAPConfig{URL: "icap://scanner.example/avscan?mode=simple"})
	if err != nil || c.target.hostport != "scanner.example:1344" || c.target.uri != "icap://scanner.example:1344/avscan?mode=simple" {
		t.Fatalf("%+v, %v", c, err)
	}
}
