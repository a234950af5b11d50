package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/portcullis-gw/portcullis/proxy/identity"
)

// BenchmarkSuffixRequest is one keep-alive HTTPS/1.1 request through the
// suffix listener against the same request sent to the origin directly,
// interleaved in the same run (benchInterleaved):
//
//   - echo: headers mapped, body passed through (not a rewritten type);
//   - page: a small HTML page rewritten;
//   - page20k: a 20 KiB HTML page with a Content-Length, rewritten;
//   - page20k-gzip: the same page gzipped (decoded, rewritten, re-encoded).
func BenchmarkSuffixRequest(b *testing.B) {
	for _, path := range []string{"/echo", "/page", "/page20k", "/page20k.gz"} {
		name := strings.ReplaceAll(strings.TrimPrefix(path, "/"), ".gz", "-gzip")
		b.Run(name, func(b *testing.B) {
			sh := newSuffixHarness(b, nil)
			direct, proxied := suffixBenchClients(b, sh)
			directURL := "https://" + sh.srv.cfg.Hosts["app.test"][0] + path
			benchInterleaved(b, func() { benchGet(b, direct, directURL) },
				func() { benchGet(b, proxied, "https://app.test.gw.test"+path) })
		})
	}
	b.Run("echo-signed-in", benchSuffixSignedIn)
}

// suffixBenchClients are HTTP/1.1 clients without compression: one to the
// origin directly (trusting the lab CA), one through the suffix proxy.
func suffixBenchClients(b *testing.B, sh *suffixHarness) (direct, proxied *http.Client) {
	roots := x509.NewCertPool()
	roots.AddCert(sh.labCA.Cert)
	directTr := &http.Transport{
		TLSClientConfig:    &tls.Config{RootCAs: roots, ServerName: "app.test"},
		TLSNextProto:       map[string]func(string, *tls.Conn) http.RoundTripper{},
		DisableCompression: true,
	}
	b.Cleanup(directTr.CloseIdleConnections)
	proxied = sh.client(false, false)
	proxied.Transport.(*http.Transport).DisableCompression = true
	return &http.Client{Transport: directTr}, proxied
}

// benchSuffixSignedIn is BenchmarkSuffixRequest's echo for a signed-in
// browser's fetch: the proxy's session cookie among the app's cookies,
// Origin and Referer of the suffixed host, and the fields a browser sends
// with every request. The direct request carries what the origin gets
// (the app's cookies, the origin's Origin and Referer).
func benchSuffixSignedIn(b *testing.B) {
	sessions, err := identity.NewSessions([][]byte{bytes.Repeat([]byte{7}, 32)}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	sh := newSuffixHarness(b, func(sc *SuffixConfig) { sc.Sessions = sessions })
	rec := httptest.NewRecorder()
	if err := sessions.Set(rec, "app.test.gw.test", identity.Identity{User: "alice@example.com", Groups: []string{"staff", "finance"}, Source: "saml"}); err != nil {
		b.Fatal(err)
	}
	session := rec.Result().Cookies()[0]
	direct, proxied := suffixBenchClients(b, sh)
	browser := func(c *http.Client, url, host, cookie string) func() {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Host = host
		req.Header = http.Header{
			"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
			"Accept":          {"application/json, text/plain, */*"},
			"Accept-Language": {"en-GB,en;q=0.9"},
			"Origin":          {"https://" + host},
			"Referer":         {"https://" + host + "/projects/42?tab=overview"},
			"Sec-Fetch-Site":  {"same-origin"},
			"Sec-Fetch-Mode":  {"cors"},
			"Sec-Fetch-Dest":  {"empty"},
			"Cookie":          {cookie},
		}
		return func() {
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"origin":"https://app.test"`)) ||
				!bytes.Contains(body, []byte(`"cookie":"sid=s1; theme=dark"`)) {
				b.Fatalf("%s: %s %s", url, resp.Status, body)
			}
		}
	}
	appCookies := "sid=s1; theme=dark"
	benchInterleaved(b,
		browser(direct, "https://"+sh.srv.cfg.Hosts["app.test"][0]+"/echo", "app.test", appCookies),
		browser(proxied, "https://app.test.gw.test/echo", "app.test.gw.test", "sid=s1; "+session.Name+"="+session.Value+"; theme=dark"))
}

// benchInterleaved times proxied while measuring direct in slices between
// its iterations (every 32 proxied calls, 32 direct ones with the timer
// stopped), so both see the same neighbours on a shared machine. It
// reports speed_vs_direct (direct time per call over proxied time per
// call) and direct_ns/op; allocs/op are the proxied calls' (client and
// origin included, as for direct).
func benchInterleaved(b *testing.B, direct, proxied func()) {
	const slice = 32
	direct()
	proxied()
	var directTime time.Duration
	directN := 0
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		proxied()
		if i++; i%slice == 0 {
			b.StopTimer()
			start := time.Now()
			for range slice {
				direct()
			}
			directTime += time.Since(start)
			directN += slice
			b.StartTimer()
		}
	}
	b.StopTimer()
	if directN == 0 {
		start := time.Now()
		direct()
		directTime, directN = time.Since(start), 1
	}
	directPerOp := float64(directTime.Nanoseconds()) / float64(directN)
	b.ReportMetric(directPerOp, "direct_ns/op")
	b.ReportMetric(directPerOp/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "speed_vs_direct")
}

// page20K is a realistic 20 KiB HTML page (head with stylesheets and inline
// script, body of cards with mapped, unmapped and relative links), plain
// and gzipped.
var page20K = sync.OnceValues(func() ([]byte, []byte) {
	var b bytes.Buffer
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Dashboard</title>
<link rel="stylesheet" href="https://app.test/css/app.4f9a.css" crossorigin="anonymous">
<link rel="preconnect" href="https://cdn.other.example">
<style>.hero{background:url("https://app.test/img/hero.jpg") center/cover}</style>
<script>window.__CONFIG__={"api":"https:\/\/app.test\/api\/v2","login":"https://login.test/oauth2/authorize"};</script>
<script src="https://cdn.other.example/js/vendor.js" defer></script>
</head>
<body><nav><ul>
`)
	for i := 0; b.Len() < 20<<10-200; i++ {
		fmt.Fprintf(&b, `<li><a href="https://app.test/projects/%d?tab=overview&amp;sort=desc">Project %d</a></li>
<div class="card" data-id="%d"><img src="https://cdn.other.example/thumbs/%d.webp" alt="Thumbnail %d" loading="lazy">
<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit. See <a href="/docs/%d">the docs</a> or <a href="https://login.test/help">help</a>.</p>
<form method="post" action="https://app.test/projects/%d/star"><input type="hidden" name="csrf" value="k%dq"><button>Star</button></form></div>
`, i, i, i, i, i, i, i, i)
	}
	b.WriteString("</ul></nav></body></html>\n")
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, 6)
	_, _ = zw.Write(b.Bytes())
	_ = zw.Close()
	return b.Bytes(), z.Bytes()
})

// servePage20K serves page20K at /page20k and, gzip-encoded, at
// /page20k.gz, each with its Content-Length.
func servePage20K(mux *http.ServeMux) {
	serve := func(body []byte, enc string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if enc != "" {
				w.Header().Set("Content-Encoding", enc)
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body)
		}
	}
	plain, gz := page20K()
	mux.HandleFunc("/page20k", serve(plain, ""))
	mux.HandleFunc("/page20k.gz", serve(gz, "gzip"))
	// Over the bound of a body rewritten whole: streamed.
	mux.HandleFunc("/page300k", serve(bytes.Repeat(plain, 15), ""))
	// No length from the origin: streamed, whatever its size.
	mux.HandleFunc("/page20k.chunked", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(plain[:1000])
		w.(http.Flusher).Flush()
		_, _ = w.Write(plain[1000:])
	})
}
