package appliance

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// The benchmark's peer: squid (Debian's squid-openssl) with ssl-bump, on the
// gateway beside the appliance, on a port of its own. Clients reach both the
// same way, as an explicit proxy (CONNECT, then TLS with the proxy's leaf),
// so the rows comparing them load the same client code through the same
// hops; the transparent rows stay as they are.
var (
	squidListen    = netip.AddrPortFrom(netip.MustParseAddr("198.18.1.1"), 3129)
	explicitListen = netip.AddrPortFrom(netip.MustParseAddr("198.18.1.1"), 3128) // newE2ELab's explicit.listen
)

// labSquid is a running squid and the CA its bumped leaves chain to.
type labSquid struct {
	dir    string
	caFile string
	roots  *x509.CertPool
}

// squidConfig bumps every CONNECT after peeking at the client's hello and
// staring at the origin's certificate, so the leaf mimics a certificate
// squid has verified (the system roots plus the lab origin's CA, as the
// appliance is configured; sslproxy_cert_error deny all refuses any error). Nothing is cached; the access log is written
// as the appliance writes its own. One worker, as Debian ships it.
const squidConfig = `http_port %[2]s ssl-bump tls-cert=%[1]s/ca.pem tls-key=%[1]s/ca.key generate-host-certificates=on dynamic_cert_mem_cache_size=16MB
sslcrtd_program /usr/lib/squid/security_file_certgen -s %[1]s/ssl_db -M 16MB
sslcrtd_children 4 startup=1 idle=1
acl step1 at_step SslBump1
acl step2 at_step SslBump2
ssl_bump peek step1
ssl_bump stare step2
ssl_bump bump all
sslproxy_cert_error deny all
tls_outgoing_options cafile=%[1]s/lab-ca.pem
acl lab_clients src 198.18.1.0/24
acl tls_port port 443
http_access deny CONNECT !tls_port
http_access allow lab_clients
http_access deny all
cache deny all
cache_mem 8 MB
access_log stdio:%[1]s/access.log
cache_log %[1]s/cache.log
pid_filename %[1]s/squid.pid
coredump_dir %[1]s
cache_effective_user proxy
hosts_file %[1]s/hosts
dns_nameservers 127.0.0.1
netdb_filename none
pinger_enable off
shutdown_lifetime 1 second
max_filedescriptors 16384
workers 1
`

// startSquid runs squid in the gateway namespace (its own files in a
// directory of its own, a CA made for this run) and waits until a bumped
// request through it succeeds.
func startSquid(b testing.TB, l *e2eLab) *labSquid {
	b.Helper()
	bin, err := exec.LookPath("squid")
	if err != nil {
		b.Fatal("squid not installed (scripts/deps.sh bench installs squid-openssl)")
	}
	// squid drops to the proxy user: its files cannot live under the
	// test's 0700 temporary directory.
	dir, err := os.MkdirTemp("", "pc-squid-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	ca, err := lab.NewTestCA("squid bench CA")
	if err != nil {
		b.Fatal(err)
	}
	key, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		b.Fatal(err)
	}
	files := map[string][]byte{
		"ca.pem":     ca.PEM,
		"ca.key":     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: key}),
		"lab-ca.pem": l.labCA.PEM,
		// untrusted.lab is the lab origin address whose certificate
		// chains to a stranger CA: squid must refuse it.
		"hosts":      []byte("198.18.2.2 origin.lab\n198.18.2.12 untrusted.lab\n"),
		"squid.conf": []byte(fmt.Sprintf(squidConfig, dir, squidListen)),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o640); err != nil {
			b.Fatal(err)
		}
	}
	if out, err := exec.Command("/usr/lib/squid/security_file_certgen", "-c", "-s", filepath.Join(dir, "ssl_db"), "-M", "16MB").CombinedOutput(); err != nil {
		b.Fatalf("security_file_certgen: %v: %s", err, out)
	}
	if out, err := exec.Command("chown", "-R", "proxy:proxy", dir).CombinedOutput(); err != nil {
		b.Fatalf("chown: %v: %s", err, out)
	}
	conf := filepath.Join(dir, "squid.conf")
	if out, err := exec.Command(bin, "-k", "parse", "-f", conf).CombinedOutput(); err != nil {
		b.Fatalf("squid -k parse: %v: %s", err, out)
	}
	logf, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := l.GW.DaemonCommand(context.Background(), bin, "-N", "-f", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	s := &labSquid{dir: dir, caFile: filepath.Join(dir, "ca.pem"), roots: pool(ca.Cert)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := l.proxiedGet(squidListen, s.roots, "origin.lab")
		if err == nil {
			if err := l.proxiedGet(squidListen, s.roots, "untrusted.lab"); err == nil || !strings.Contains(err.Error(), "ERR_SECURE_CONNECT_FAIL") {
				b.Fatalf("squid did not refuse an origin whose certificate does not verify (%v): the peer would not be doing the appliance's work", err)
			}
			return s
		}
		select {
		case <-exited:
			b.Fatalf("squid exited: %s\n%s", s.log("stderr.log"), s.log("cache.log"))
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("no bumped response through squid within 30s: %v\n%s", err, s.log("cache.log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *labSquid) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, name))
	return string(b)
}

// proxiedGet makes one request for https://host/ through an explicit
// proxy, trusting only roots, and checks the lab origin answered.
func (l *e2eLab) proxiedGet(proxy netip.AddrPort, roots *x509.CertPool, host string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := l.dialHost(ctx, proxy, roots, host)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "hello from lab origin") {
		return fmt.Errorf("status %d, body %q, err %v", resp.StatusCode, body, err)
	}
	return nil
}

// dialOrigin opens a TLS connection to origin.lab from the client
// namespace: straight to the origin when proxy is the zero value, else
// through a CONNECT tunnel. The leaf must verify against roots (the proxy's
// CA, or the origin's when direct), so a proxy that spliced instead of
// intercepting fails here.
func (l *e2eLab) dialOrigin(ctx context.Context, proxy netip.AddrPort, roots *x509.CertPool) (*tls.Conn, error) {
	return l.dialHost(ctx, proxy, roots, "origin.lab")
}

func (l *e2eLab) dialHost(ctx context.Context, proxy netip.AddrPort, roots *x509.CertPool, host string) (*tls.Conn, error) {
	target := netip.AddrPortFrom(originGood, 443)
	if proxy.IsValid() {
		target = proxy
	}
	raw, err := l.Client.Dial(ctx, "tcp", target.String())
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	if proxy.IsValid() {
		if _, err := io.WriteString(raw, "CONNECT "+host+":443 HTTP/1.1\r\nHost: "+host+":443\r\n\r\n"); err != nil {
			raw.Close()
			return nil, err
		}
		br := bufio.NewReader(raw)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("CONNECT: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || br.Buffered() > 0 {
			raw.Close()
			return nil, fmt.Errorf("CONNECT: %s (%d bytes after it)", resp.Status, br.Buffered())
		}
	}
	c := tls.Client(raw, &tls.Config{ServerName: host, RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS via %v: %w", target, err)
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// loadOrigin is the explicit-proxy rows' load generator (wrk cannot speak
// CONNECT): conns workers in the client namespace request https://origin.lab/
// for d, on keep-alive connections or, with newConns, one TLS connection
// (and tunnel) per request. Keep-alive connections are opened before the
// clock starts (a request rate, not a connect rate: a single-threaded squid
// on a loaded machine can take longer than the window to accept 50). The
// direct baseline is the same code without the proxy. It fails the
// benchmark if more than 1% of attempts fail.
func (l *e2eLab) loadOrigin(b testing.TB, proxy netip.AddrPort, roots *x509.CertPool, conns int, newConns bool, d time.Duration) wrkResult {
	b.Helper()
	req := "GET / HTTP/1.1\r\nHost: origin.lab\r\n\r\n"
	if newConns {
		req = "GET / HTTP/1.1\r\nHost: origin.lab\r\nConnection: close\r\n\r\n"
	}
	var (
		ok, failed atomic.Int64
		firstErr   error
		errOnce    sync.Once
		wg         sync.WaitGroup
	)
	var (
		opened sync.WaitGroup
		begin  = make(chan struct{})
		end    time.Time
	)
	for range conns {
		wg.Add(1)
		opened.Add(1)
		go func() {
			defer wg.Done()
			var c *tls.Conn
			var br *bufio.Reader
			if !newConns {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var err error
				if c, err = l.dialOrigin(ctx, proxy, roots); err == nil {
					br = bufio.NewReaderSize(c, 4096)
				} else {
					c = nil
				}
				cancel()
			}
			opened.Done()
			<-begin
			fail := func(err error) {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
				if c != nil {
					c.Close()
					c = nil
				}
			}
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for time.Now().Before(end) {
				if c == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					var err error
					c, err = l.dialOrigin(ctx, proxy, roots)
					cancel()
					if err != nil {
						fail(err)
						continue
					}
					br = bufio.NewReaderSize(c, 4096)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, req); err != nil {
					fail(err)
					continue
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(err)
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = errors.New(resp.Status)
				}
				if err != nil {
					fail(err)
					continue
				}
				if time.Now().Before(end) {
					ok.Add(1)
				}
				if newConns || resp.Close {
					c.Close()
					c = nil
				}
			}
		}()
	}
	opened.Wait()
	end = time.Now().Add(d)
	close(begin)
	wg.Wait()
	n, f := ok.Load(), failed.Load()
	if n == 0 || f*100 > n {
		b.Fatalf("load via %v (%d connections, new=%v): %d ok, %d failed, first error: %v", proxy, conns, newConns, n, f, firstErr)
	}
	return wrkResult{rps: float64(n) / d.Seconds(), requests: float64(n)}
}

// downloadVia fetches size bytes of https://origin.lab/bytes/ with curl
// through an explicit proxy and returns bytes per second.
func (l *e2eLab) downloadVia(b testing.TB, proxy netip.AddrPort, caFile string, size int) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	url := fmt.Sprintf("https://origin.lab/bytes/%d", size)
	out, err := l.Client.Exec(ctx, "curl", "-sS", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}",
		"--cacert", caFile, "-x", "http://"+proxy.String(), url)
	if err != nil {
		b.Fatalf("curl %s via %v: %v: %s", url, proxy, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[1] != strconv.Itoa(size) {
		b.Fatalf("curl %s via %v: %q", url, proxy, out)
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// benchExplicitPeers measures the appliance's explicit listener and squid
// side by side (same client code, same hops, both intercepting with a leaf
// the client verifies, both verifying the origin), with direct routing by
// the same client code as the baseline, in rounds whose order rotates so
// neither peer always runs first. Call it with the datapath detached.
func benchExplicitPeers(b *testing.B, l *e2eLab, r *labReport, reps, bulk int) {
	squid := startSquid(b, l)
	const d = 6 * time.Second
	l.withConfig(b, "transparent:\n  enabled: false\n", func() {
		ours := pool(l.applianceCA())
		direct := pool(l.labCA.Cert)
		type peer struct {
			name  string
			proxy netip.AddrPort
			roots *x509.CertPool
			ca    string
		}
		peers := []peer{
			{"direct", netip.AddrPort{}, direct, l.dir + "/lab-ca.pem"},
			{"explicit", explicitListen, ours, l.dir + "/appliance-ca.pem"},
			{"squid", squidListen, squid.roots, squid.caFile},
		}
		if err := l.proxiedGet(explicitListen, ours, "origin.lab"); err != nil {
			b.Fatalf("appliance explicit listener: %v", err)
		}
		for i := range reps {
			for k := range peers {
				p := peers[(i+k)%len(peers)]
				r.add("goload_keepalive16_"+p.name, l.loadOrigin(b, p.proxy, p.roots, 16, false, d).rps)
				r.add("goload_keepalive50_"+p.name, l.loadOrigin(b, p.proxy, p.roots, 50, false, d).rps)
				r.add("goload_newconns16_"+p.name, l.loadOrigin(b, p.proxy, p.roots, 16, true, d).rps)
				if p.proxy.IsValid() {
					r.add("download_"+p.name, l.downloadVia(b, p.proxy, p.ca, bulk))
				} else {
					r.add("download_direct_peers", l.download(b, "origin.lab", originGood, 443, bulk, p.ca))
				}
			}
		}
	})
	for _, m := range []struct{ name, key, direct string }{
		{"keep-alive requests/s, 16 connections", "goload_keepalive16_", "goload_keepalive16_direct"},
		{"keep-alive requests/s, 50 connections", "goload_keepalive50_", "goload_keepalive50_direct"},
		{"new connections/s (16 clients)", "goload_newconns16_", "goload_newconns16_direct"},
		{"bulk download", "download_", "download_direct_peers"},
	} {
		r.ratio("explicit proxy, ours / squid: "+m.name, m.key+"explicit", m.key+"squid", 1.0)
		r.info("explicit proxy, ours vs direct: "+m.name, m.key+"explicit", m.direct)
		r.info("explicit proxy, squid vs direct: "+m.name, m.key+"squid", m.direct)
	}
	r.Machine["squid"] = squidVersion()
}

// squidVersion is the first line of squid -v.
func squidVersion() string {
	out, _ := exec.Command("squid", "-v").Output()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
