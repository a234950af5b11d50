package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// syncBuffer is run's stdout, read while run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeLoopbackPort reserves a port for run's -listen, which must be known
// before run starts so that -resolve can point the OIDC app at it.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func writePKI(t *testing.T, dir string) (*x509.CertPool, []string) {
	t.Helper()
	ca, err := lab.NewTestCA("lab-idp test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(lab.LeafOptions{Names: []string{"idp.lab", "sp.lab", "op.lab", "rp.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	var chain bytes.Buffer
	for _, der := range leaf.Certificate {
		_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"cert.pem": chain.Bytes(),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"ca.pem":   ca.PEM,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return roots, []string{"-cert", filepath.Join(dir, "cert.pem"), "-key", filepath.Join(dir, "key.pem"), "-ca", filepath.Join(dir, "ca.pem")}
}

func TestRunServesSAMLLogin(t *testing.T) {
	dir := t.TempDir()
	roots, pkiArgs := writePKI(t, dir)
	addr := freeLoopbackPort(t)
	args := append(pkiArgs, "-listen", addr, "-suffix", "gw.lab", "-proxy-client-secret", "s3cret",
		"-resolve", "op.lab="+addr, "-rp-discovery-timeout", "20")

	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not return within 10s of cancel")
		}
	})
	waitFor(t, out, done, "listening on")

	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}
	t.Cleanup(tr.CloseIdleConnections)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: tr, Jar: jar, Timeout: 15 * time.Second}

	// sp.lab → POST binding form → idp.lab login form → POST binding to the
	// ACS → the app.
	p := fetch(t, c, http.MethodGet, "https://sp.lab/", nil)
	p = post(t, c, p, nil)
	if !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("want the IdP login form, got %s:\n%s", p.url, p.body)
	}
	p = post(t, c, p, url.Values{"user": {"alice"}, "password": {"alice-pw"}})
	p = post(t, c, p, nil)
	if p.url.String() != "https://sp.lab/" || !strings.Contains(p.body, "Hello alice@lab.example") {
		t.Fatalf("after the SAML login: %s\n%s", p.url, p.body)
	}

	// The OIDC app discovered the OP through the listener.
	waitFor(t, out, done, "OIDC app ready")
	p = fetch(t, c, http.MethodGet, "https://rp.lab/", nil)
	if p.url.Host != "op.lab" || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("want the OP login form, got %s:\n%s", p.url, p.body)
	}
	p = post(t, c, p, url.Values{"username": {"bob"}, "password": {"bob-pw"}})
	if !strings.Contains(p.body, "Hello bob") {
		t.Fatalf("after the OIDC login: %s\n%s", p.url, p.body)
	}

	// The proxy's client is registered with the wildcard callback.
	noFollow := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {"portcullis"}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {"https://sp.lab.gw.lab/.portcullis/oidc/callback"}}
	resp, err := noFollow.Get("https://op.lab/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/login?") {
		t.Fatalf("proxy client authorize: %d Location %q", resp.StatusCode, loc)
	}
}

func TestRunFlagErrors(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{},
		{"-cert", "x", "-key", "y", "-ca", "z"},
		{"stray"},
	} {
		if err := run(ctx, args, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

func waitFor(t *testing.T, out *syncBuffer, done <-chan error, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), what) {
		select {
		case err := <-done:
			t.Fatalf("run returned before %q: %v\n%s", what, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 20s; output:\n%s", what, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type page struct {
	url  *url.URL
	body string
}

func fetch(t *testing.T, c *http.Client, method, u string, form url.Values) page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return page{url: resp.Request.URL, body: string(b)}
}

var (
	formAction = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	inputTag   = regexp.MustCompile(`<input[^>]*>`)
	attrRE     = regexp.MustCompile(`(name|value)="([^"]*)"`)
)

// post submits the first form of p with its inputs, overridden by set.
func post(t *testing.T, c *http.Client, p page, set url.Values) page {
	t.Helper()
	m := formAction.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no form at %s:\n%s", p.url, p.body)
	}
	action, err := p.url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	vals := url.Values{}
	for _, tag := range inputTag.FindAllString(p.body, -1) {
		var name, value string
		for _, a := range attrRE.FindAllStringSubmatch(tag, -1) {
			if a[1] == "name" {
				name = a[2]
			} else {
				value = html.UnescapeString(a[2])
			}
		}
		if name != "" {
			vals.Set(name, value)
		}
	}
	for k, v := range set {
		vals[k] = v
	}
	return fetch(t, c, http.MethodPost, action.String(), vals)
}
