package browser

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

const labPage = `<!doctype html>
<html><head><title>lab page</title><link rel="stylesheet" href="/style.css"></head>
<body><h1>hello</h1><div id="out">pending</div><div id="ws">pending</div>
<script>
fetch('/api/data').then(r => r.text()).then(t => { document.getElementById('out').textContent = t; });
const ws = new WebSocket('wss://' + location.host + '/ws');
ws.onopen = () => ws.send('ping');
ws.onmessage = e => { document.getElementById('ws').textContent = e.data; ws.close(); };
</script></body></html>`

// labSite serves the test page, its stylesheet, a fetch() target, a
// WebSocket echo and a redirect to the page.
func labSite() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, labPage)
	})
	mux.HandleFunc("GET /old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/", http.StatusFound)
	})
	mux.HandleFunc("GET /style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, "h1 { color: teal; }\n")
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/data", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "data-ok")
	})
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		typ, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		_ = c.WriteMessage(typ, append([]byte("pong:"), msg...))
		_, _, _ = c.ReadMessage() // until the page closes
	})
	return mux
}

// TestBrowserInNamespace loads a TLS page from another namespace in
// Chromium, with the lab CA trusted, and checks the browser's own network
// log; a site whose CA the browser was not given must fail.
func TestBrowserInNamespace(t *testing.T) {
	lab.RequireRoot(t)
	client, origin := lab.NewNS(t, "bc"), lab.NewNS(t, "bo")
	lab.Veth(t, client, "eth0", origin, "eth0")
	client.IP("addr", "add", "198.18.5.1/24", "dev", "eth0", "nodad")
	origin.IP("addr", "add", "198.18.5.2/24", "dev", "eth0", "nodad")
	originAddr := netip.MustParseAddr("198.18.5.2")

	trusted, err := lab.NewTestCA("browser test CA")
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := lab.NewTestCA("a CA the browser does not know")
	if err != nil {
		t.Fatal(err)
	}
	siteLeaf, err := trusted.Leaf(lab.LeafOptions{Names: []string{"site.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	evilLeaf, err := untrusted.Leaf(lab.LeafOptions{Names: []string{"evil.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	helloes := map[string]int{}
	ln, err := origin.Listen("tcp", "198.18.5.2:443")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: labSite(),
		TLSConfig: &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			mu.Lock()
			helloes[h.ServerName]++
			mu.Unlock()
			if h.ServerName == "evil.lab" {
				return &evilLeaf, nil
			}
			return &siteLeaf, nil
		}},
		ReadHeaderTimeout: 10 * time.Second,
		// The untrusted case ends in a handshake error on purpose.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })

	// site.lab resolves through --host-resolver-rules, evil.lab through the
	// namespace's hosts file: both paths are exercised.
	client.SetHosts(map[string]netip.Addr{"evil.lab": originAddr})
	lab.WaitReachable(t, client, originAddr)

	start := time.Now()
	b := Start(t, Options{
		NS:        client,
		TrustPEM:  [][]byte{trusted.PEM},
		HostRules: map[string]string{"site.lab": originAddr.String()},
	})
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))

	t.Run("trusted", func(t *testing.T) {
		tab, netlog := b.NewTab(t)
		ctx, cancel := context.WithTimeout(tab, 20*time.Second)
		defer cancel()
		loadStart := time.Now()
		if err := chromedp.Do(ctx, chromedp.Navigate("https://site.lab/old")); err != nil {
			t.Fatalf("load https://site.lab/old: %v\n%s", err, dump(netlog.Entries()))
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('out').textContent === 'data-ok' &&
			document.getElementById('ws').textContent === 'pong:ping'`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("page script (fetch, WebSocket) did not finish: %v\n%s", err, dump(netlog.Entries()))
		}
		t.Logf("page, redirect, subresource, fetch and WebSocket done in %v", time.Since(loadStart).Round(time.Millisecond))
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil || loc != "https://site.lab/" {
			t.Errorf("location after the redirect = %q, %v; want https://site.lab/", loc, err)
		}

		want := []NetEntry{
			{URL: "https://site.lab/old", ResourceType: "Document", Status: 302, RedirectedTo: "https://site.lab/"},
			{URL: "https://site.lab/", ResourceType: "Document", Status: 200},
			{URL: "https://site.lab/style.css", ResourceType: "Stylesheet", Status: 200},
			{URL: "https://site.lab/api/data", ResourceType: "Fetch", Status: 200},
			{URL: "wss://site.lab/ws", ResourceType: "WebSocket", Status: 101},
		}
		entries := netlog.Entries()
		for _, w := range want {
			found := false
			for _, e := range entries {
				if e.URL == w.URL && e.ResourceType == w.ResourceType && e.Status == w.Status && e.RedirectedTo == w.RedirectedTo {
					found = true
				}
			}
			if !found {
				t.Errorf("netlog lacks %s %s status %d (redirect to %q); has:\n%s", w.ResourceType, w.URL, w.Status, w.RedirectedTo, dump(entries))
			}
		}
		netlog.AssertAllHostsUnder(t, "lab")
		netlog.AssertNoFailures(t)
	})

	t.Run("untrusted CA fails", func(t *testing.T) {
		tab, netlog := b.NewTab(t)
		ctx, cancel := context.WithTimeout(tab, 20*time.Second)
		defer cancel()
		err := chromedp.Do(ctx, chromedp.Navigate("https://evil.lab/"))
		var le *chromedp.LoadError
		if !errors.As(err, &le) || !strings.Contains(le.ErrorText, "ERR_CERT_AUTHORITY_INVALID") {
			t.Errorf("navigate to a site of an unknown CA: err = %v, want a load error net::ERR_CERT_AUTHORITY_INVALID", err)
		}
		mu.Lock()
		n := helloes["evil.lab"]
		mu.Unlock()
		if n == 0 {
			t.Error("the server never saw a ClientHello for evil.lab: the failure was not the certificate check")
		}
		var failed bool
		for _, e := range netlog.Entries() {
			failed = failed || (e.URL == "https://evil.lab/" && strings.Contains(e.Failure, "ERR_CERT_AUTHORITY_INVALID"))
		}
		if !failed {
			t.Errorf("netlog does not record the certificate failure:\n%s", dump(netlog.Entries()))
		}
		// The assertion itself must see it.
		rec := &recorder{TB: t}
		netlog.AssertNoFailures(rec)
		if len(rec.errs) == 0 {
			t.Error("AssertNoFailures passed a log with a failed load")
		}
	})
}

func dump(entries []NetEntry) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "  %s %s %s status=%d redirect=%q failure=%q canceled=%v\n",
			e.ResourceType, e.Method, e.URL, e.Status, e.RedirectedTo, e.Failure, e.Canceled)
	}
	return b.String()
}

// recorder is a testing.TB that keeps errors instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
