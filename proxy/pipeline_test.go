package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp, string(b)
}

func TestInterceptMintsLeafAndProxiesBothHTTPVersions(t *testing.T) {
	h := newHarness(t, nil)
	dest := h.origin(nil, "origin.test")
	for _, tc := range []struct {
		h2    bool
		proto string
	}{{false, "HTTP/1.1"}, {true, "HTTP/2.0"}} {
		t.Run(tc.proto, func(t *testing.T) {
			resp, body := get(t, h.client(dest, tc.h2), "https://origin.test/")
			if resp.StatusCode != 200 || !strings.Contains(body, "hello from origin") {
				t.Fatalf("status %d body %q", resp.StatusCode, body)
			}
			if resp.Proto != tc.proto {
				t.Errorf("client-side protocol %s, want %s", resp.Proto, tc.proto)
			}
			leaf := resp.TLS.PeerCertificates[0]
			if leaf.Issuer.CommonName != h.ca.Certificate().Subject.CommonName {
				t.Errorf("leaf issued by %q, want the appliance CA %q", leaf.Issuer.CommonName, h.ca.Certificate().Subject.CommonName)
			}
			if err := leaf.VerifyHostname("origin.test"); err != nil {
				t.Error(err)
			}
		})
	}
	if got := h.srv.Stats.Intercepted.Load(); got != 2 {
		t.Errorf("intercepted = %d, want 2", got)
	}
}

func TestAccessLogLinePerRequest(t *testing.T) {
	h := newHarness(t, nil)
	dest := h.origin(nil, "origin.test")
	get(t, h.client(dest, false), "https://origin.test/bytes/1000?q=1")
	var line map[string]any
	for _, l := range h.log.lines(t) {
		if l["msg"] == "request" {
			line = l
		}
	}
	if line == nil {
		t.Fatalf("no request line in %v", h.log.lines(t))
	}
	for k, want := range map[string]any{
		"sni": "origin.test", "host": "origin.test", "method": "GET", "path": "/bytes/1000",
		"status": float64(200), "bytes_out": float64(1000), "decision": "allow", "mode": "transparent",
		"dest": dest.String(),
	} {
		if line[k] != want {
			t.Errorf("access log %s = %v, want %v", k, line[k], want)
		}
	}
	if ja4, _ := line["ja4"].(string); !strings.HasPrefix(ja4, "t13d") {
		t.Errorf("ja4 = %q, want a TLS 1.3 TCP fingerprint with SNI", ja4)
	}
	if c, _ := line["client"].(string); !strings.HasPrefix(c, "127.0.0.1:") {
		t.Errorf("client = %q", c)
	}
}

func TestBypassSplicesToOriginCertificate(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Conn = ConnDeciderFunc(func(ci *ConnInfo) ConnDecision {
			return ConnDecision{Verdict: VerdictBypass, Reason: "test bypass"}
		})
	})
	dest := h.origin(nil, "origin.test")
	roots := x509.NewCertPool()
	roots.AddCert(h.labCA.Cert)
	c := h.client(dest, true)
	c.Transport.(*http.Transport).TLSClientConfig.RootCAs = roots
	resp, body := get(t, c, "https://origin.test/")
	if !strings.Contains(body, "hello from origin") {
		t.Fatalf("body %q", body)
	}
	if iss := resp.TLS.PeerCertificates[0].Issuer.CommonName; iss != "origin test CA" {
		t.Errorf("bypassed connection shows a leaf from %q, want the origin's own", iss)
	}
	if h.srv.Stats.Bypassed.Load() != 1 || h.srv.Stats.Intercepted.Load() != 0 {
		t.Errorf("stats bypassed=%d intercepted=%d", h.srv.Stats.Bypassed.Load(), h.srv.Stats.Intercepted.Load())
	}
}

func TestBlockSendsAccessDeniedAlert(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Conn = ConnDeciderFunc(func(ci *ConnInfo) ConnDecision {
			return ConnDecision{Verdict: VerdictBlock, Reason: "test block"}
		})
	})
	front := h.front(netip.MustParseAddrPort("127.0.0.1:9"))
	conn, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: "blocked.test", InsecureSkipVerify: true}) //nolint:gosec // the alert is what is tested
	err = tc.Handshake()
	if err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("handshake error = %v, want an access denied alert", err)
	}
	waitFor(t, func() bool {
		for _, l := range h.log.lines(t) {
			if l["decision"] == "block" && l["reason"] == "test block" && l["sni"] == "blocked.test" {
				return true
			}
		}
		return false
	})
}

func TestUpstreamCertificateFailuresAreBlocked(t *testing.T) {
	h := newHarness(t, nil)
	expired, err := h.labCA.Leaf(lab.LeafOptions{Names: []string{"origin.test"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	wrongHost, _ := h.labCA.Leaf(lab.LeafOptions{Names: []string{"other.test"}})
	strangerCA, _ := lab.NewTestCA("stranger CA")
	untrusted, _ := strangerCA.Leaf(lab.LeafOptions{Names: []string{"origin.test"}})
	for name, tc := range map[string]struct {
		cert   tls.Certificate
		reason string
	}{
		"expired":    {expired, "expired"},
		"wrong host": {wrongHost, "not valid for origin.test"},
		"untrusted":  {untrusted, "unknown authority"},
	} {
		t.Run(name, func(t *testing.T) {
			dest := h.origin(&tc.cert)
			resp, body := get(t, h.client(dest, false), "https://origin.test/")
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, tc.reason) {
				t.Fatalf("status %d body %q, want 502 naming %q", resp.StatusCode, body, tc.reason)
			}
			if strings.Contains(body, "hello from origin") {
				t.Fatal("an unverified origin was served")
			}
		})
	}
	if got := h.srv.Stats.UpstreamUnverified.Load(); got != 3 {
		t.Errorf("upstream unverified = %d, want 3", got)
	}
}

func TestMisdirectedHostRefused(t *testing.T) {
	h := newHarness(t, nil)
	dest := h.origin(nil, "origin.test", "other.test")
	c := h.client(dest, false)
	req, _ := http.NewRequest("GET", "https://origin.test/", nil)
	req.Host = "other.test"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("status %d, want 421", resp.StatusCode)
	}
}

func TestNotTLSOnTLSPortIsClosedAndCounted(t *testing.T) {
	h := newHarness(t, nil)
	front := h.front(netip.MustParseAddrPort("127.0.0.1:443"))
	conn, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(make([]byte, 64))
	if n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("read %d, %v: want the connection closed without an answer", n, err)
	}
	waitFor(t, func() bool { return h.srv.Stats.ConnsNotTLS.Load() == 1 })
}

func TestGarbageHelloIsClosedAndCounted(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	front := h.front(netip.MustParseAddrPort("127.0.0.1:443"))
	for name, garbage := range map[string][]byte{
		"not a ClientHello": {22, 3, 1, 0, 8, 2, 0, 0, 4, 3, 3, 0, 0},
		// Claims more handshake bytes than ever arrive: cut off by the deadline.
		"truncated": {22, 3, 1, 0, 8, 1, 0, 0, 200, 3, 3, 0, 0},
	} {
		conn, err := net.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(garbage)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err = conn.Read(make([]byte, 64)); err == nil {
			t.Errorf("%s: garbage ClientHello got an answer", name)
		}
		conn.Close()
	}
	waitFor(t, func() bool { return h.srv.Stats.HelloMalformed.Load() == 1 && h.srv.Stats.HelloIncomplete.Load() == 1 })
}

func TestPlainHTTPProxiedThroughHooks(t *testing.T) {
	var seen string
	h := newHarness(t, func(c *Config) {
		c.Request = RequestDeciderFunc(func(ci *ConnInfo, r *http.Request) RequestDecision {
			seen = r.Host + r.URL.Path
			if r.URL.Path == "/forbidden" {
				return RequestDecision{Block: true, Reason: "test rule", Message: "not here"}
			}
			return RequestDecision{}
		})
	})
	dest := h.plainOrigin()
	c := h.client(dest, false)
	resp, body := get(t, c, "http://origin.test/")
	if resp.StatusCode != 200 || !strings.Contains(body, "hello from plain") || seen != "origin.test/" {
		t.Fatalf("status %d body %q hook saw %q", resp.StatusCode, body, seen)
	}
	resp, body = get(t, c, "http://origin.test/forbidden")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not here") {
		t.Fatalf("blocked request: status %d body %q", resp.StatusCode, body)
	}
}

func TestExplicitConnectFeedsSamePipeline(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Hosts = map[string][]string{} })
	dest := h.origin(nil, "origin.test")
	h.srv.cfg.Hosts["origin.test"] = []string{dest.Addr().String()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.srv.ServeExplicit(ln) }()
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.Certificate())
	proxyURL, _ := http.NewRequest("GET", "http://"+ln.Addr().String(), nil)
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL.URL), TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	port := dest.Port()
	resp, body := get(t, c, "https://origin.test:"+itoa(port)+"/")
	if !strings.Contains(body, "hello from origin") || resp.TLS.PeerCertificates[0].Issuer.CommonName != h.ca.Certificate().Subject.CommonName {
		t.Fatalf("body %q issuer %q", body, resp.TLS.PeerCertificates[0].Issuer.CommonName)
	}
	// Absolute-form plain HTTP goes through the same request hooks.
	plain := h.plainOrigin()
	h.srv.cfg.Hosts["plain.test"] = []string{plain.Addr().String()}
	_, body = get(t, c, "http://plain.test:"+itoa(plain.Port())+"/")
	if !strings.Contains(body, "hello from plain") {
		t.Fatalf("absolute-form body %q", body)
	}
	// The explicit proxy never dials loopback for real clients.
	h.srv.allowLoopbackDest = false
	resp, err = c.Get("http://plain.test:" + itoa(plain.Port()) + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("loopback destination: status %d, want 502", resp.StatusCode)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// An upstream session verified at one address is never resumed at another,
// even when that server holds the same ticket keys: resumption skips the
// certificate, so it would serve an origin whose certificate is bad.
func TestUpstreamResumptionScopedToDestination(t *testing.T) {
	h := newHarness(t, nil)
	good, _ := h.labCA.Leaf(lab.LeafOptions{Names: []string{"origin.test"}})
	expired, _ := h.labCA.Leaf(lab.LeafOptions{Names: []string{"origin.test"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	// Two origins sharing one session ticket key, as one server behind two
	// addresses would.
	var ticketKey [32]byte
	origin := func(cert tls.Certificate) netip.AddrPort {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conf := &tls.Config{Certificates: []tls.Certificate{cert}}
		conf.SetSessionTicketKeys([][32]byte{ticketKey})
		srv := &http.Server{Handler: lab.OriginHandler("origin"), TLSConfig: conf}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		t.Cleanup(func() { _ = srv.Close() })
		return addrPortOf(ln.Addr())
	}
	goodAddr, badAddr := origin(good), origin(expired)
	get(t, h.client(goodAddr, false), "https://origin.test/")
	resp, body := get(t, h.client(badAddr, false), "https://origin.test/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "expired") {
		t.Fatalf("status %d body %q: a session from another address was resumed", resp.StatusCode, body)
	}
}

// Client connections to the same origin share upstream connections, and the
// upstream speaks the client's HTTP version.
func TestUpstreamConnectionsSharedPerOriginAndProtocol(t *testing.T) {
	h := newHarness(t, nil)
	cert, _ := h.labCA.Leaf(lab.LeafOptions{Names: []string{"origin.test"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var newConns atomic.Int32
	srv := &http.Server{Handler: lab.OriginHandler("origin"), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				newConns.Add(1)
			}
		}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	dest := addrPortOf(ln.Addr())
	for range 5 {
		c := h.client(dest, false) // a new client connection each time
		_, body := get(t, c, "https://origin.test/")
		if !strings.Contains(body, "(HTTP/1.1 origin.test)") {
			t.Fatalf("HTTP/1.1 client: origin saw %q", body)
		}
		c.CloseIdleConnections()
	}
	if n := newConns.Load(); n != 1 {
		t.Errorf("5 sequential client connections opened %d upstream connections, want 1", n)
	}
	_, body := get(t, h.client(dest, true), "https://origin.test/")
	if !strings.Contains(body, "(HTTP/2.0 origin.test)") {
		t.Fatalf("HTTP/2 client: origin saw %q", body)
	}
}

// TLS 1.2 is the floor on both sides: an old client is refused at the
// handshake, and an origin that offers only TLS 1.1 is never served.
func TestTLSBelow12RefusedOnBothSides(t *testing.T) {
	h := newHarness(t, nil)
	dest := h.origin(nil, "origin.test")
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.Certificate())
	conn, err := net.Dial("tcp", h.front(dest))
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: "origin.test", RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err := tc.Handshake(); err == nil {
		t.Fatal("a TLS 1.1 client completed a handshake")
	}
	tc.Close()

	cert, _ := h.labCA.Leaf(lab.LeafOptions{Names: []string{"origin.test"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	old := &http.Server{Handler: lab.OriginHandler("old"), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}
	go func() { _ = old.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = old.Close() })
	// The old origin does speak TLS 1.1 to a client that allows it, so the
	// refusal below is the appliance's floor, not a broken origin.
	labRoots := x509.NewCertPool()
	labRoots.AddCert(h.labCA.Cert)
	oc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "origin.test", RootCAs: labRoots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err != nil {
		t.Fatalf("TLS 1.1 origin unreachable even for a TLS 1.1 client: %v", err)
	}
	oc.Close()
	resp, body := get(t, h.client(addrPortOf(ln.Addr()), false), "https://origin.test/")
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(body, "hello from old") {
		t.Fatalf("TLS 1.1 origin: status %d body %q", resp.StatusCode, body)
	}
}

// refusingRecorder is an activity log that cannot accept anything.
type refusingRecorder struct{ records atomic.Int32 }

func (r *refusingRecorder) Admit() error            { return errors.New("store full") }
func (r *refusingRecorder) Record(rec Record) error { r.records.Add(1); return nil }

// When the activity log cannot record, no session is served: the connection
// is refused, and the refusal itself is recorded.
func TestUnrecordableSessionsAreRefused(t *testing.T) {
	rr := &refusingRecorder{}
	h := newHarness(t, func(c *Config) { c.Recorder = rr })
	dest := h.origin(nil, "origin.test")
	if _, err := h.client(dest, false).Get("https://origin.test/"); err == nil {
		t.Fatal("a session was served while the activity log refused")
	}
	waitFor(t, func() bool { return h.srv.Stats.RefusedUnrecorded.Load() == 1 && rr.records.Load() == 1 })
}

// Closing the server lets a spliced connection run on during the grace
// period; once its client ends it, Close returns (without cutting
// anything) with its record written.
func TestCloseEndsSplicedConnections(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Conn = ConnDeciderFunc(func(*ConnInfo) ConnDecision { return ConnDecision{Verdict: VerdictBypass, Reason: "test"} })
	})
	dest := h.origin(nil, "origin.test")
	roots := x509.NewCertPool()
	roots.AddCert(h.labCA.Cert)
	c := h.client(dest, false)
	c.Transport.(*http.Transport).TLSClientConfig.RootCAs = roots
	get(t, c, "https://origin.test/") // the connection stays open, idle
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- h.srv.Close(ctx) }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a spliced connection was open: %v", time.Since(start), err)
	default:
	}
	c.CloseIdleConnections()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v once the spliced connection ended", d)
	}
	found := false
	for _, l := range h.log.lines(t) {
		found = found || l["decision"] == "bypass" && l["reason"] == "test"
	}
	if !found || h.srv.Stats.TunnelsCut.Load() != 0 {
		t.Fatalf("spliced connection logged: %v, cut %d; want logged, not cut", found, h.srv.Stats.TunnelsCut.Load())
	}
}
