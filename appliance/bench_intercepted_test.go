package appliance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// benchClientsPerCPU × GOMAXPROCS is the number of concurrent keep-alive
// clients of BenchmarkInterceptedRequestRecorded: at least 32.
func benchClients() int { return max(32, 16*runtime.GOMAXPROCS(0)) }

// BenchmarkInterceptedRequestRecorded is one small keep-alive HTTPS/1.1
// request through the appliance as it runs by default: the embedded default
// configuration (audit-strict activity store in a temp dir, the default
// hold_responses: activities rule, the hand-written access log into a file),
// built by New, with real TLS on both sides and at least 32 concurrent
// clients (b.RunParallel). The appliance's transparent listener is stood in
// for by a loopback listener whose sockets report the origin as their local
// address, which is what socket assignment gives in the lab.
//
// The same clients fetch the same origin directly in the same run, so the
// benchmark reports:
//
//   - speed_vs_direct: direct time per request / intercepted time per request;
//   - appliance_allocs/op: heap allocations per request beyond the direct
//     request's (the client's and the origin's are in both and cancel out):
//     what the appliance allocates per intercepted request;
//   - allocs/op (-benchmem): everything in the process, client and origin
//     included.
func BenchmarkInterceptedRequestRecorded(b *testing.B) {
	env := newRecordedBench(b)
	clients := benchClients()
	// The baseline: as many direct requests, by as many clients.
	n := min(max(b.N, 2000), 50000)
	directNs, directAllocs := env.parallel(b, env.direct, env.directURL, clients, n)
	env.parallel(b, env.intercepted, env.interceptedURL, clients, clients*4) // its connections open

	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			env.get(b, env.intercepted, env.interceptedURL)
		}
	})
	b.StopTimer()
	runtime.ReadMemStats(&after)
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	allocs := float64(after.Mallocs-before.Mallocs) / float64(b.N)
	b.ReportMetric(directNs/perOp, "speed_vs_direct")
	b.ReportMetric(allocs-directAllocs, "appliance_allocs/op")
	b.ReportMetric(directAllocs, "direct_allocs/op")
	if got := env.app.activity.store.Stats().Queued; got < uint64(b.N) {
		b.Fatalf("activity store queued %d events for %d intercepted requests", got, b.N)
	}
}

// recordedBench is an appliance built by New from the default config, an
// origin, and HTTP/1.1 keep-alive clients to each.
type recordedBench struct {
	app            *Appliance
	direct         *http.Client
	intercepted    *http.Client
	directURL      string
	interceptedURL string
}

func newRecordedBench(b *testing.B) *recordedBench {
	b.Helper()
	dir := b.TempDir()
	labCA, err := lab.NewTestCA("bench origin CA")
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := labCA.Leaf(lab.LeafOptions{Names: []string{"origin.test"}})
	if err != nil {
		b.Fatal(err)
	}
	originLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	origin := &http.Server{Handler: lab.OriginHandler("origin"), ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf}, NextProtos: []string{"http/1.1"}},
		ErrorLog:  log.New(io.Discard, "", 0)}
	go func() { _ = origin.ServeTLS(originLn, "", "") }()
	b.Cleanup(func() { _ = origin.Close() })

	caFile := filepath.Join(dir, "origin-ca.pem")
	if err := os.WriteFile(caFile, labCA.PEM, 0o644); err != nil {
		b.Fatal(err)
	}
	mgmt, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	mgmtAddr := mgmt.Addr().String()
	mgmt.Close()
	cfgPath := filepath.Join(dir, "portcullis.yaml")
	// Only what a host without the datapath needs differs from the default.
	cfgText := fmt.Sprintf(`state_dir: %s/state
management: {listen: %q}
log: {access: %s/access.log, level: warn}
transparent: {enabled: false}
datapath: {enabled: false}
upstream: {extra_roots: [%s]}
`, dir, mgmtAddr, dir, caFile)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	if cfg.Activity.Mode != "audit-strict" || cfg.Activity.Hold != HoldActivities {
		b.Fatalf("default activity config is %s / %s, the benchmark measures audit-strict / activities", cfg.Activity.Mode, cfg.Activity.Hold)
	}
	app, err := New(cfg, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })

	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = app.proxy.Serve(destListener{Listener: front, dest: originLn.Addr()}) }()

	direct := benchHTTPClient(labCA.Cert, originLn.Addr().String())
	appRoots := app.ca.Certificate()
	intercepted := benchHTTPClient(appRoots, front.Addr().String())
	b.Cleanup(func() {
		direct.CloseIdleConnections()
		intercepted.CloseIdleConnections()
	})
	env := &recordedBench{app: app, direct: direct, intercepted: intercepted,
		directURL: "https://origin.test/", interceptedURL: "https://origin.test/"}
	// Both paths work before anything is timed, and the intercepted one is
	// really intercepted (the appliance's certificate, not the origin's).
	env.get(b, direct, env.directURL)
	resp, err := intercepted.Get(env.interceptedURL)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.PeerCertificates[len(resp.TLS.PeerCertificates)-1].Issuer.CommonName != appRoots.Subject.CommonName {
		b.Fatal("the intercepted client did not get the appliance's certificate")
	}
	return env
}

// benchHTTPClient is an HTTP/1.1 keep-alive client for origin.test trusting
// root; every connection dials addr.
func benchHTTPClient(root *x509.Certificate, addr string) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(root)
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: "origin.test"},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConnsPerHost: 256,
		MaxIdleConns:        256,
	}
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// get fetches url with c, drains the body and checks the status.
func (e *recordedBench) get(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("%s: %s", url, resp.Status)
	}
}

// parallel makes n requests for url with c from clients goroutines (after
// opening every client's connection) and returns the wall time and heap
// allocations per request.
func (e *recordedBench) parallel(b *testing.B, c *http.Client, url string, clients, n int) (nsPerOp, allocsPerOp float64) {
	var left atomic.Int64
	run := func(n int) {
		left.Store(int64(n))
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					e.get(b, c, url)
				}
			})
		}
		wg.Wait()
	}
	run(clients * 4) // every client's connection open
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	run(n)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	return float64(elapsed.Nanoseconds()) / float64(n), float64(after.Mallocs-before.Mallocs) / float64(n)
}

// destListener hands out its connections with dest as their local address:
// the original destination, as the transparent listener's sockets have it.
type destListener struct {
	net.Listener
	dest net.Addr
}

func (l destListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return destConn{Conn: c, dest: l.dest}, nil
}

type destConn struct {
	net.Conn
	dest net.Addr
}

func (c destConn) LocalAddr() net.Addr { return c.dest }
