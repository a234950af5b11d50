package idp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// labNet is one loopback TLS server that answers for every lab host name,
// routed by Host, plus clients whose dialer sends those names to it.
type labNet struct {
	t     *testing.T
	ca    *lab.TestCA
	srv   *httptest.Server
	roots *x509.CertPool

	mu    sync.Mutex
	hosts map[string]http.Handler
}

var labHosts = []string{"idp.lab", "sp.lab", "op.lab", "rp.lab"}

func newLabNet(t *testing.T) *labNet {
	t.Helper()
	ca, err := lab.NewTestCA("idp test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(lab.LeafOptions{Names: labHosts})
	if err != nil {
		t.Fatal(err)
	}
	n := &labNet{t: t, ca: ca, roots: x509.NewCertPool(), hosts: map[string]http.Handler{}}
	n.roots.AddCert(ca.Cert)
	n.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		n.mu.Lock()
		h := n.hosts[host]
		n.mu.Unlock()
		if h == nil {
			http.Error(w, "no lab host "+host, http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	}))
	n.srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}
	n.srv.StartTLS()
	t.Cleanup(n.srv.Close)
	return n
}

func (n *labNet) serve(host string, h http.Handler) {
	n.mu.Lock()
	n.hosts[host] = h
	n.mu.Unlock()
}

// transport dials every name to the test server and trusts only the lab CA.
func (n *labNet) transport() *http.Transport {
	addr := n.srv.Listener.Addr().String()
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: n.roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 5 * time.Second,
	}
}

// serverClient is for server-to-server calls: no cookies.
func (n *labNet) serverClient() *http.Client {
	tr := n.transport()
	n.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// browser is a cookie-keeping client that follows redirects, except to URLs
// for which stop returns true.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T, tr http.RoundTripper, stop func(*url.URL) bool) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr, Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			if stop != nil && stop(req.URL) {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	return &browser{t: t, client: c}
}

type page struct {
	url    *url.URL
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		b.t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return page{url: resp.Request.URL, status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// submit posts the first form of p with its fields, overridden by set, as a
// browser would (Origin of the page that held the form).
func (b *browser) submit(p page, set map[string]string) page {
	b.t.Helper()
	action, fields := parseFirstForm(b.t, p.body)
	target, err := p.url.Parse(action)
	if err != nil {
		b.t.Fatalf("form action %q: %v", action, err)
	}
	for k, v := range set {
		fields.Set(k, v)
	}
	req, err := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(fields.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", p.url.Scheme+"://"+p.url.Host)
	return b.do(req)
}

// parseFirstForm returns the action and the named input values of the
// first <form> in body.
func parseFirstForm(t *testing.T, body string) (string, url.Values) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	var form *html.Node
	var find func(*html.Node)
	find = func(n *html.Node) {
		if form != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "form" {
			form = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if form == nil {
		t.Fatalf("no <form> in page:\n%s", body)
	}
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	vals := url.Values{}
	var inputs func(*html.Node)
	inputs = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") != "" {
			vals.Set(attr(n, "name"), attr(n, "value"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			inputs(c)
		}
	}
	inputs(form)
	return attr(form, "action"), vals
}
