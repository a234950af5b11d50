package appliance

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// Origin addresses in the lab. Each serves a different certificate so one
// origin namespace covers every upstream case.
var (
	originGood      = netip.MustParseAddr("198.18.2.2")
	originBypassNet = netip.MustParseAddr("198.18.3.2") // in datapath.bypass_prefixes
	originExpired   = netip.MustParseAddr("198.18.2.10")
	originWrongHost = netip.MustParseAddr("198.18.2.11")
	originUntrusted = netip.MustParseAddr("198.18.2.12")
	originGood6     = netip.MustParseAddr("fd00:7c:2::2")
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// portcullisBinary builds cmd/portcullis once per test run, the way the
// package builds it (scripts/build-portcullis.sh): no cgo, position
// independent, no build paths. The tests and the lab benchmarks then run the binary that
// ships, and what they measure is its: a cgo build maps libc and starts
// its threads through it, a non-PIE build keeps its type data in file pages
// where the PIE's relocated copy is anonymous memory (~4 MiB here).
func portcullisBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portcullis-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "portcullis")
		out, err := exec.Command("../scripts/build-portcullis.sh", binPath).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("scripts/build-portcullis.sh: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// e2eLab is the three-host lab with origins started and an appliance config
// written; start runs the real binary on the gateway.
type e2eLab struct {
	*lab.Gateway
	t       testing.TB
	dir     string
	labCA   *lab.TestCA
	pinDir  string
	cfgPath string
	proc    *exec.Cmd
	exited  chan struct{} // closed when proc has exited; procErr is then set
	procErr error
}

func newE2ELab(t testing.TB, extraConfig string) *e2eLab {
	t.Helper()
	lab.RequireRoot(t)
	g := lab.NewGateway(t)
	l := &e2eLab{Gateway: g, t: t, dir: t.TempDir()}
	for _, a := range []string{"198.18.2.10/24", "198.18.2.11/24", "198.18.2.12/24"} {
		g.Origin.IP("addr", "add", a, "dev", "eth0")
	}
	g.Origin.IP("addr", "add", "198.18.3.2/24", "dev", "eth0")
	g.GW.IP("route", "add", "198.18.3.0/24", "via", "198.18.2.2")
	g.Client.SetHosts(map[string]netip.Addr{"origin.lab": originGood})

	var err error
	if l.labCA, err = lab.NewTestCA("lab origin CA"); err != nil {
		t.Fatal(err)
	}
	l.startOrigins()
	var b [4]byte
	_, _ = rand.Read(b[:])
	l.pinDir = "/sys/fs/bpf/pc-e2e-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { _ = os.RemoveAll(l.pinDir) })
	caFile := filepath.Join(l.dir, "lab-ca.pem")
	if err := os.WriteFile(caFile, l.labCA.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`state_dir: %s/state
management:
  listen: 127.0.0.1:9780
log:
  access: %s/access.log
  level: debug
explicit:
  enabled: true
  listen: 198.18.1.1:3128
datapath:
  interface: lan0
  bypass_prefixes: [198.18.3.0/24]
  pin_dir: %s
upstream:
  extra_roots: [%s]
access:
  bypass_hosts: [bypass.lab]
  block_hosts: [blocked.lab]
hosts:
  origin.lab: [198.18.2.2]
%s`, l.dir, l.dir, l.pinDir, caFile, extraConfig)
	l.cfgPath = filepath.Join(l.dir, "portcullis.yaml")
	if err := os.WriteFile(l.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.stop(syscall.SIGKILL)
		// Whatever the test did, leave no datapath behind.
		_ = g.GW.DaemonCommand(context.Background(), portcullisBinary(t), "datapath", "detach", "-config", l.cfgPath).Run()
	})
	return l
}

// startOrigins serves HTTPS on :443 and HTTP on :80 in the origin namespace;
// the certificate depends on which local address the client reached.
func (l *e2eLab) startOrigins() {
	t := l.t
	good, _ := l.labCA.Leaf(lab.LeafOptions{Names: []string{"origin.lab", "bypass.lab", "blocked.lab", "chat.lab", "198.18.2.2", "198.18.3.2", "fd00:7c:2::2"}})
	expired, _ := l.labCA.Leaf(lab.LeafOptions{Names: []string{"origin.lab"}, NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	wrong, _ := l.labCA.Leaf(lab.LeafOptions{Names: []string{"someone-else.lab"}})
	stranger, _ := lab.NewTestCA("stranger CA")
	untrusted, _ := stranger.Leaf(lab.LeafOptions{Names: []string{"origin.lab"}})
	byAddr := map[netip.Addr]*tls.Certificate{originExpired: &expired, originWrongHost: &wrong, originUntrusted: &untrusted}
	tlsConf := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		local := h.Conn.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		if c, ok := byAddr[local]; ok {
			return c, nil
		}
		return &good, nil
	}, NextProtos: []string{"h2", "http/1.1"}}
	h := lab.OriginHandler("lab origin")
	// :8443 is not an intercepted port: it measures the datapath's cost on
	// traffic it only looks at.
	for _, addr := range []string{":443", ":80", ":8443"} {
		ln, err := l.Origin.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
		if addr != ":80" {
			srv.TLSConfig = tlsConf
			go func() { _ = srv.ServeTLS(ln, "", "") }()
		} else {
			go func() { _ = srv.Serve(ln) }()
		}
		t.Cleanup(func() { _ = srv.Close() })
	}
}

// start runs the appliance binary on the gateway and waits for /healthz.
func (l *e2eLab) start() {
	t := l.t
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(l.dir, "portcullis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	l.proc = l.GW.DaemonCommand(context.Background(), portcullisBinary(t), "run", "-config", l.cfgPath)
	l.proc.Stdout, l.proc.Stderr = logf, logf
	if err := l.proc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	l.exited = exited
	go func() { l.procErr = l.proc.Wait(); logf.Close(); close(exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if l.get("http://127.0.0.1:9780/healthz") == "ok\n" {
			return
		}
		select {
		case <-l.exited:
			t.Fatalf("appliance exited: %v\n%s", l.procErr, l.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("appliance not healthy within 15s\n%s", l.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop signals the appliance and waits (bounded) for it to exit.
func (l *e2eLab) stop(sig syscall.Signal) {
	if l.proc == nil || l.proc.Process == nil {
		return
	}
	_ = l.proc.Process.Signal(sig)
	select {
	case <-l.exited:
	case <-time.After(15 * time.Second):
		_ = l.proc.Process.Kill()
		<-l.exited
	}
	l.proc = nil
}

func (l *e2eLab) log() string {
	b, _ := os.ReadFile(filepath.Join(l.dir, "portcullis.log"))
	return string(b)
}

// get fetches a management URL from inside the gateway namespace.
func (l *e2eLab) get(url string) string {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return l.GW.Dial(ctx, network, addr)
		},
	}}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (l *e2eLab) applianceCA() *x509.Certificate {
	out, err := exec.Command(portcullisBinary(l.t), "ca", "cert", "-config", l.cfgPath).Output()
	if err != nil {
		l.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(out) {
		l.t.Fatalf("ca cert printed no certificate: %q", out)
	}
	p := filepath.Join(l.dir, "appliance-ca.pem")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		l.t.Fatal(err)
	}
	blk, _ := pem.Decode(out)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		l.t.Fatal(err)
	}
	return cert
}

// client is a Go HTTP client in the client namespace. Every connection goes
// to dest (name resolution is the test's); roots verify what it is shown.
func (l *e2eLab) client(dest netip.AddrPort, roots *x509.CertPool, h2 bool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return l.Client.Dial(ctx, "tcp", dest.String())
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: h2,
		DisableKeepAlives: false,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	l.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// getOnce is one HTTPS GET of https://origin.lab/ on a connection of its
// own to dest, from the client namespace, all of it (the dial included)
// bounded by timeout, and nothing left behind when it returns. A probe of a
// fail mode must use it rather than an http.Client with a Timeout: the
// Transport lets a timed-out request's dial go on in the background, and a
// SYN it retransmits once the appliance is back gets intercepted with a
// client that does not trust the appliance CA -- which the proxy learns as
// a certificate-pinning client and splices from then on.
func (l *e2eLab) getOnce(dest netip.AddrPort, roots *x509.CertPool, timeout time.Duration) (*http.Response, tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raw, err := l.Client.Dial(ctx, "tcp", dest.String())
	if err != nil {
		return nil, tls.ConnectionState{}, err
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(timeout))
	c := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "origin.lab", NextProtos: []string{"http/1.1"}})
	if err := c.HandshakeContext(ctx); err != nil {
		return nil, tls.ConnectionState{}, err
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: origin.lab\r\nConnection: close\r\n\r\n"); err != nil {
		return nil, c.ConnectionState(), err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, c.ConnectionState(), err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, c.ConnectionState(), err
}

func (l *e2eLab) accessLog() []map[string]any {
	f, err := os.Open(filepath.Join(l.dir, "access.log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitAccessLog waits for an access-log line for which match is true.
func (l *e2eLab) waitAccessLog(t testing.TB, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range l.accessLog() {
			if match(m) {
				return m
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no matching access-log line; log:\n%v", l.accessLog())
	return nil
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
