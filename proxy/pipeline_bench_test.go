package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkInterceptedRequest measures one small keep-alive HTTPS/1.1
// request through the intercepting pipeline on loopback, and reports it as a
// ratio against the same request sent to the origin directly in the same run.
func BenchmarkInterceptedRequest(b *testing.B) {
	h := newHarness(b, nil)
	dest := h.origin(nil, "origin.test")
	roots := x509.NewCertPool()
	roots.AddCert(h.labCA.Cert)
	directTr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "origin.test"},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	b.Cleanup(directTr.CloseIdleConnections)
	direct := &http.Client{Transport: directTr}
	proxied := h.client(dest, false)
	directURL := "https://" + dest.String() + "/"
	benchVsDirect(b, func() { benchGet(b, direct, directURL) }, func() { benchGet(b, proxied, "https://origin.test/") })
}

// benchGet fetches url and drains the body.
func benchGet(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// benchVsDirect times proxied against a baseline of direct measured in the
// same run (after one warm-up call each) and reports speed_vs_direct.
func benchVsDirect(b *testing.B, direct, proxied func()) {
	direct()
	proxied()
	const baselineN = 2000
	start := time.Now()
	for range baselineN {
		direct()
	}
	directPerOp := float64(time.Since(start).Nanoseconds()) / baselineN
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		proxied()
	}
	b.StopTimer()
	b.ReportMetric(directPerOp/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "speed_vs_direct")
}

// BenchmarkInterceptedPost is BenchmarkInterceptedRequest for a keep-alive
// POST of a 1 KiB body (an API call, a form), against the same POST sent
// to the origin directly in the same run.
func BenchmarkInterceptedPost(b *testing.B) {
	h := newHarness(b, nil)
	dest := h.origin(nil, "origin.test")
	roots := x509.NewCertPool()
	roots.AddCert(h.labCA.Cert)
	directTr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "origin.test"},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	b.Cleanup(directTr.CloseIdleConnections)
	direct := &http.Client{Transport: directTr}
	proxied := h.client(dest, false)
	directURL := "https://" + dest.String() + "/echo"
	body := strings.Repeat("k=v&", 256)
	post := func(c *http.Client, url string) {
		resp, err := c.Post(url, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("POST: %d", resp.StatusCode)
		}
	}
	benchVsDirect(b, func() { post(direct, directURL) }, func() { post(proxied, "https://origin.test/echo") })
	b.ReportMetric(float64(h.srv.Stats.H1HandedOver.Load()), "handovers")
	b.ReportMetric(float64(h.srv.Stats.ConnsAccepted.Load()), "conns")
}
