package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

const testSuffix = "gw.test"

// suffixHarness runs the suffix listener on loopback in front of a TLS
// origin (app.test, login.test, *.wild.test) that echoes what it received
// and serves pages full of absolute links.
type suffixHarness struct {
	*harness
	addr  string // the suffix listener
	dials atomic.Int64
	seen  chan *http.Request
}

func onboardedTestHost(h string) bool {
	return h == "app.test" || h == "login.test" || strings.HasSuffix(h, ".wild.test") || h == "internal.test"
}

func newSuffixHarness(t testing.TB, mutate func(*SuffixConfig)) *suffixHarness {
	t.Helper()
	return newSuffixHarnessConfig(t, mutate, nil)
}

// newSuffixHarnessConfig is newSuffixHarness with the rest of the pipeline
// configuration open to the test too.
func newSuffixHarnessConfig(t testing.TB, mutate func(*SuffixConfig), mutateCfg func(*Config)) *suffixHarness {
	t.Helper()
	sh := &suffixHarness{seen: make(chan *http.Request, 64)}
	mapper, err := NewSuffixMapper(testSuffix, onboardedTestHost)
	if err != nil {
		t.Fatal(err)
	}
	var originAddr string
	sh.harness = newHarness(t, func(c *Config) {
		sc := &SuffixConfig{Mapper: mapper, SuffixDiscovered: true,
			AllowPrivate: func(h string) bool { return h != "internal.test" }}
		if mutate != nil {
			mutate(sc)
		}
		c.Suffix = sc
		c.Hosts = map[string][]string{}
		if mutateCfg != nil {
			mutateCfg(c)
		}
	})
	origin := sh.startOrigin(t)
	originAddr = origin
	for _, h := range []string{"app.test", "login.test", "x.wild.test"} {
		sh.srv.cfg.Hosts[h] = []string{originAddr}
	}
	// internal.test is onboarded but resolves to the metadata address and is
	// not allowed private addresses: it must never be dialled.
	sh.srv.cfg.Hosts["internal.test"] = []string{"169.254.169.254"}
	sh.srv.dialHook = func(string) { sh.dials.Add(1) }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sh.addr = ln.Addr().String()
	go func() { _ = sh.srv.ServeSuffix(ln) }()
	return sh
}

func (sh *suffixHarness) startOrigin(t testing.TB) string {
	cert, err := sh.labCA.Leaf(lab.LeafOptions{Names: []string{"app.test", "login.test", "x.wild.test"}})
	if err != nil {
		t.Fatal(err)
	}
	up := websocket.Upgrader{CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "https://app.test" }}
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		select {
		case sh.seen <- r:
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "s1", Domain: "app.test", Path: "/", Secure: true, HttpOnly: true})
		fmt.Fprint(w, `<!doctype html><html><head><title>t</title></head><body>`+
			`<a href="https://app.test/next?x=1">next</a> <a href="https://login.test/sso">login</a> `+
			`<img src="https://cdn.other.example/logo.png"> <a href="/relative">rel</a></body></html>`)
	})
	servePage20K(mux)
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://login.test/sso?return="+url.QueryEscape("https://app.test/after"), http.StatusFound)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		// Not a rewritten type: the test must see what the origin saw.
		w.Header().Set("Content-Type", "application/octet-stream")
		fmt.Fprintf(w, `{"host":%q,"origin":%q,"referer":%q,"return":%q,"form_next":%q,"cookie":%q,"proto":%q}`,
			r.Host, r.Header.Get("Origin"), r.Header.Get("Referer"), r.URL.Query().Get("return"), r.PostForm.Get("next"), r.Header.Get("Cookie"), r.Proto)
	})
	mux.HandleFunc("/relay", func(w http.ResponseWriter, r *http.Request) {
		select {
		case sh.seen <- r:
		default:
		}
		// Hop-by-hop fields (one named in Connection), a URL header, a
		// streamed body and a trailer, for what the relay must do to them.
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		w.Header().Set("Location", "https://app.test/next")
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "part one;")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "part two")
		w.Header().Set("X-Sum", "abc")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			_ = c.WriteMessage(mt, append([]byte("echo:"), msg...))
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// client reaches every name through the suffix listener, trusting only the
// appliance CA. insecure is for the refusal corpus, whose names get the
// suffix's own certificate.
func (sh *suffixHarness) client(h2, insecure bool) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(sh.ca.Certificate())
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", sh.addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots, InsecureSkipVerify: insecure},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	sh.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSuffixRewritesPageHeadersAndCookies(t *testing.T) {
	sh := newSuffixHarness(t, nil)
	for _, h2 := range []bool{false, true} {
		resp, err := sh.client(h2, false).Get("https://app.test.gw.test/page")
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (resp.ProtoMajor == 2) != h2 {
			t.Fatalf("h2=%v: status %d proto %s", h2, resp.StatusCode, resp.Proto)
		}
		for _, want := range []string{`href="https://app.test.gw.test/next?x=1"`, `href="https://login.test.gw.test/sso"`,
			`src="https://cdn.other.example.gw.test/logo.png"`, `href="/relative"`} {
			if !strings.Contains(body, want) {
				t.Errorf("h2=%v: page lacks %s:\n%s", h2, want, body)
			}
		}
		if strings.Contains(body, `"https://app.test/`) {
			t.Errorf("an unsuffixed link survived:\n%s", body)
		}
		for _, c := range resp.Header.Values("Set-Cookie") {
			lc := strings.ToLower(c)
			if strings.Contains(lc, "domain=app.test;") || strings.Contains(lc, "domain=gw.test") || strings.Contains(lc, "domain=.gw.test") || strings.HasSuffix(lc, "domain=app.test") {
				t.Errorf("cookie domain not confined to the suffixed host: %s", c)
			}
		}
		select {
		case r := <-sh.seen:
			if r.Host != "app.test" {
				t.Errorf("origin saw Host %q", r.Host)
			}
		default:
			t.Error("origin saw no request")
		}
	}
	var found bool
	for _, d := range sh.srv.DiscoveredDomains() {
		found = found || d.Host == "cdn.other.example" && d.Via == "app.test"
	}
	if !found {
		t.Errorf("cdn.other.example not recorded as discovered: %+v", sh.srv.DiscoveredDomains())
	}
}

func TestSuffixMapsRequestBack(t *testing.T) {
	sh := newSuffixHarness(t, nil)
	c := sh.client(false, false)
	form := url.Values{"next": {"https://app.test.gw.test/after"}}
	req, _ := http.NewRequest("POST", "https://app.test.gw.test/echo?return="+url.QueryEscape("https://app.test.gw.test/x"), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://app.test.gw.test")
	req.Header.Set("Referer", "https://app.test.gw.test/page")
	req.AddCookie(&http.Cookie{Name: "sid", Value: "s1"})
	req.AddCookie(&http.Cookie{Name: "__Host-portcullis", Value: "secret-session"})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"host":"app.test"`, `"origin":"https://app.test"`, `"referer":"https://app.test/page"`,
		`"return":"https://app.test/x"`, `"form_next":"https://app.test/after"`, `"cookie":"sid=s1"`} {
		if !strings.Contains(body, want) {
			t.Errorf("origin did not see %s: %s", want, body)
		}
	}

	resp, err = c.Get("https://app.test.gw.test/redirect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	want := "https://login.test.gw.test/sso?return=" + url.QueryEscape("https://app.test/after")
	if resp.StatusCode != http.StatusFound || loc != want {
		t.Errorf("redirect: %d Location %q, want %q", resp.StatusCode, loc, want)
	}
}

// TestSuffixRefusesWithoutDialling is the SSRF corpus: every host here gets
// a clear 4xx page and no upstream connection is attempted.
func TestSuffixRefusesWithoutDialling(t *testing.T) {
	sh := newSuffixHarness(t, nil)
	corpus := []struct {
		host string
		code int
	}{
		{"127.0.0.1.gw.test", 400},
		{"169.254.169.254.gw.test", 400},
		{"2130706433.gw.test", 400},
		{"0x7f.1.gw.test", 400},
		{"evil.com.app.test.gw.test", 404},
		{"evil.com.gw.test", 404},
		{"app.test.gw.test.gw.test", 404},
		{"gw.test", 421},
		{"other.example", 421},
		{"internal.test.gw.test", 403}, // onboarded, but resolves to the metadata address
	}
	for _, c := range corpus {
		cl := sh.client(false, true)
		tr := cl.Transport.(*http.Transport)
		tr.TLSClientConfig.ServerName = c.host
		resp, err := cl.Get("https://" + c.host + "/latest/meta-data/")
		if err != nil {
			t.Errorf("%s: %v", c.host, err)
			continue
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s: status %d, want %d: %s", c.host, resp.StatusCode, c.code, body)
		}
	}
	// Mixed case, a trailing dot and a port are the same onboarded host.
	for _, h := range []string{"APP.Test.GW.test", "app.test.gw.test.", "app.test.gw.test:443"} {
		req, _ := http.NewRequest("GET", "https://app.test.gw.test/echo", nil)
		req.Host = h
		resp, err := sh.client(false, false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(body, `"host":"app.test"`) {
			t.Errorf("Host %q: %d %s", h, resp.StatusCode, body)
		}
	}
	dialsBefore := sh.dials.Load()
	// An absolute URI naming another host than the connection's.
	conn, err := tls.Dial("tcp", sh.addr, &tls.Config{ServerName: "app.test.gw.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET https://169.254.169.254.gw.test/ HTTP/1.1\r\nHost: app.test.gw.test\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode > 499 {
		t.Errorf("absolute-URI mismatch: status %d", resp.StatusCode)
	}
	if n := sh.dials.Load() - dialsBefore; n != 0 {
		t.Errorf("%d upstream dials for refused requests", n)
	}
	// The successful requests above dialled; the refused ones did not: the
	// corpus ran first with the counter at zero.
	if sh.srv.Stats.SuffixRefused.Load() < uint64(len(corpus)-1) || sh.srv.Stats.SuffixForbidden.Load() != 1 {
		t.Errorf("refused %d forbidden %d", sh.srv.Stats.SuffixRefused.Load(), sh.srv.Stats.SuffixForbidden.Load())
	}
}

func TestSuffixWebSocketAndH2CRefusal(t *testing.T) {
	sh := newSuffixHarness(t, nil)
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
		t.Fatalf("websocket through the suffix proxy: %v (%v)", err, resp)
	}
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil || string(msg) != "echo:hi" {
		t.Fatalf("websocket echo: %q %v", msg, err)
	}

	req, _ := http.NewRequest("GET", "https://app.test.gw.test/echo", nil)
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAAQAAP__")
	r2, err := sh.client(false, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusBadRequest {
		t.Errorf("h2c upgrade: status %d, want 400", r2.StatusCode)
	}
}
