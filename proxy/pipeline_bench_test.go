package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
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
	get := func(c *http.Client, url string) {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	directURL := "https://" + dest.String() + "/"
	get(direct, directURL)
	get(proxied, "https://origin.test/")

	const baselineN = 2000
	start := time.Now()
	for range baselineN {
		get(direct, directURL)
	}
	directPerOp := float64(time.Since(start).Nanoseconds()) / baselineN

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		get(proxied, "https://origin.test/")
	}
	b.StopTimer()
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(directPerOp/perOp, "speed_vs_direct")
}
