package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// harness runs the pipeline on loopback: a "transparent" listener whose
// accepted sockets are handed to the pipeline with Dest set to the origin the
// test chose, which is what the datapath's socket assignment gives in the lab.
type harness struct {
	t     testing.TB
	srv   *Server
	ca    *CA
	labCA *lab.TestCA
	log   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the access-log lines written so far, decoded.
func (s *syncBuffer) lines(t testing.TB) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(s.b.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("access log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func newHarness(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	ca, err := LoadOrCreateCA(t.TempDir() + "/ca")
	if err != nil {
		t.Fatal(err)
	}
	labCA, err := lab.NewTestCA("origin test CA")
	if err != nil {
		t.Fatal(err)
	}
	certs := NewCertStore(ca, CertStoreOptions{})
	t.Cleanup(certs.Close)
	roots := x509.NewCertPool()
	roots.AddCert(labCA.Cert)
	h := &harness{t: t, ca: ca, labCA: labCA, log: &syncBuffer{}}
	cfg := Config{
		Certs:         certs,
		UpstreamRoots: roots,
		AccessLog:     slog.New(slog.NewJSONHandler(h.log, nil)),
		TLSPorts:      []uint16{443},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h.srv, err = NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.allowLoopbackDest = true
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.srv.Close(ctx)
	})
	return h
}

// origin starts a TLS origin on loopback with a leaf from the lab CA (or the
// given certificate) and returns its address.
func (h *harness) origin(cert *tls.Certificate, names ...string) netip.AddrPort {
	h.t.Helper()
	if cert == nil {
		c, err := h.labCA.Leaf(lab.LeafOptions{Names: names})
		if err != nil {
			h.t.Fatal(err)
		}
		cert = &c
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	srv := &http.Server{Handler: lab.OriginHandler("origin"), TLSConfig: &tls.Config{Certificates: []tls.Certificate{*cert}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	h.t.Cleanup(func() { _ = srv.Close() })
	return addrPortOf(ln.Addr())
}

// plainOrigin starts a plain-HTTP origin on loopback.
func (h *harness) plainOrigin() netip.AddrPort {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	srv := &http.Server{Handler: lab.OriginHandler("plain")}
	go func() { _ = srv.Serve(ln) }()
	h.t.Cleanup(func() { _ = srv.Close() })
	return addrPortOf(ln.Addr())
}

// front opens a loopback listener whose connections reach the pipeline as
// transparent connections to dest — what socket assignment gives in the lab.
func (h *harness) front(dest netip.AddrPort) string {
	h.t.Helper()
	return h.frontWrapped(dest, nil)
}

// frontWrapped is front with each accepted connection passed through wrap
// (when set) before the pipeline gets it.
func (h *harness) frontWrapped(dest netip.AddrPort, wrap func(net.Conn) net.Conn) string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if wrap != nil {
				c = wrap(c)
			}
			ci := h.srv.newConnInfo(ModeTransparent, c)
			ci.Dest = dest
			h.srv.goHandle(c, ci)
		}
	}()
	return ln.Addr().String()
}

// client returns an HTTP client whose every connection reaches the pipeline
// as a transparent connection to dest.
func (h *harness) client(dest netip.AddrPort, h2 bool) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.Certificate())
	front := h.front(dest)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", front)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	h.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}
