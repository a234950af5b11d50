package clienttest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
	"github.com/portcullis-gw/portcullis/proxy"
)

// hostName is what every client connects to. A name rather than 127.0.0.1:
// clients leave SNI out for IP literals, which changes JA4_a ("i" and one
// extension less) and would record fingerprints real traffic never has.
const hostName = "localhost"

// capture is one connection the server saw: the ClientHello as the proxy
// peeks it and, when the client completed the handshake, its first request.
type capture struct {
	Remote    string
	JA4       string
	JA4Raw    string
	ALPN      []string
	SNI       string
	UserAgent string
	Requested bool // a request arrived on the connection
}

// server is a loopback HTTPS server (HTTP/1.1 and h2) whose certificate is
// issued by a throwaway CA the clients are told to trust. Every connection's
// ClientHello is read with proxy.ReadClientHello, exactly as the appliance
// does, and replayed into TLS termination.
type server struct {
	CA     *lab.TestCA
	CAFile string
	Port   int

	mu    sync.Mutex
	conns map[string]*capture // by remote address
	order []string
}

func startServer(t *testing.T) *server {
	t.Helper()
	ca, err := lab.NewTestCA("classify capture CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(lab.LeafOptions{Names: []string{hostName, "127.0.0.1", "::1"}})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{CA: ca, CAFile: filepath.Join(t.TempDir(), "ca.pem"), conns: map[string]*capture{}}
	if err := os.WriteFile(s.CAFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}

	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l4.Addr().(*net.TCPAddr).Port
	listeners := []net.Listener{l4}
	// "localhost" may resolve to ::1 first; serve it too where the host has
	// IPv6 loopback, so no client spends its time budget on a refused dial.
	if l6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(s.Port))); err == nil {
		listeners = append(listeners, l6)
	}

	hs := &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{leaf}, NextProtos: []string{"h2", "http/1.1"}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	for _, l := range listeners {
		go func() { _ = hs.ServeTLS(&peekListener{Listener: l, s: s}, "", "") }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = hs.Close()
	})
	return s
}

// URL is the server's address as clients are given it.
func (s *server) URL(path string) string {
	return "https://" + net.JoinHostPort(hostName, strconv.Itoa(s.Port)) + path
}

// IPURL is the server's address as an IPv4 literal.
func (s *server) IPURL(path string) string {
	return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) + path
}

func (s *server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if c := s.conns[r.RemoteAddr]; c != nil && !c.Requested {
		c.Requested, c.UserAgent = true, r.UserAgent()
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte("<!doctype html><title>classify</title><p>captured</p>\n"))
}

func (s *server) recordHello(remote string, h *proxy.ClientHello) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.conns[remote]; !dup {
		s.order = append(s.order, remote)
	}
	s.conns[remote] = &capture{Remote: remote, JA4: h.JA4(), JA4Raw: h.JA4Raw(), ALPN: slices.Clone(h.ALPN), SNI: h.ServerName}
}

// Captures returns what every connection so far sent, in arrival order.
func (s *server) Captures() []capture {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]capture, 0, len(s.order))
	for _, r := range s.order {
		out = append(out, *s.conns[r])
	}
	return out
}

// waitFor polls until cond holds for the captures or d passes.
func (s *server) waitFor(d time.Duration, cond func([]capture) bool) []capture {
	deadline := time.Now().Add(d)
	for {
		cs := s.Captures()
		if cond(cs) || time.Now().After(deadline) {
			return cs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type peekListener struct {
	net.Listener
	s *server
}

func (l *peekListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &peekConn{Conn: c, s: l.s}, nil
}

// peekConn reads the ClientHello on its first Read (in the connection's own
// goroutine, during the TLS handshake, not in Accept) and then replays the
// consumed bytes to crypto/tls.
type peekConn struct {
	net.Conn
	s      *server
	peeked bool
	replay []byte
}

var errNotTLS = errors.New("capture: not a TLS ClientHello")

func (c *peekConn) Read(p []byte) (int, error) {
	if !c.peeked {
		c.peeked = true
		_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		h, wire, err := proxy.ReadClientHello(c.Conn)
		_ = c.Conn.SetReadDeadline(time.Time{})
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errNotTLS, err)
		}
		c.s.recordHello(c.RemoteAddr().String(), h)
		c.replay = wire
	}
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
