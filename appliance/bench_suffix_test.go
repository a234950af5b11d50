package appliance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// BenchmarkSuffixRequestRecorded is BenchmarkInterceptedRequestRecorded for
// the suffix listener: one small keep-alive HTTPS/1.1 request for
// https://origin.lab.gw.test/ (the lab's page: text/plain, so its headers
// are mapped and its body passes as it is) through the appliance built by
// New from the default configuration plus a suffix domain, with at least 32
// concurrent clients, against the same clients fetching the origin directly
// in the same run.
// It reports speed_vs_direct, appliance_allocs/op and direct_allocs/op as
// that benchmark does, and, steadier than wall time on a shared machine,
// the process's CPU time per request (client and origin in both runs):
//
//   - cpu_vs_direct: direct CPU per request / suffix CPU per request;
//   - appliance_cpu_ns/op: the difference, what the appliance spends.
func BenchmarkSuffixRequestRecorded(b *testing.B) {
	env := newSuffixBench(b)
	clients := benchClients()
	n := min(max(b.N, 2000), 50000)
	cpu0 := processCPU(b)
	directNs, directAllocs := env.parallel(b, env.direct, env.directURL, clients, n)
	directCPU := float64(processCPU(b)-cpu0) / float64(n+clients*4)
	env.parallel(b, env.intercepted, env.interceptedURL, clients, clients*4)

	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 = processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			env.get(b, env.intercepted, env.interceptedURL)
		}
	})
	b.StopTimer()
	suffixCPU := float64(processCPU(b)-cpu0) / float64(b.N)
	runtime.ReadMemStats(&after)
	b.ReportMetric(directCPU/suffixCPU, "cpu_vs_direct")
	b.ReportMetric(suffixCPU-directCPU, "appliance_cpu_ns/op")
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	allocs := float64(after.Mallocs-before.Mallocs) / float64(b.N)
	b.ReportMetric(directNs/perOp, "speed_vs_direct")
	b.ReportMetric(allocs-directAllocs, "appliance_allocs/op")
	b.ReportMetric(directAllocs, "direct_allocs/op")
	if got := env.app.activity.store.Stats().Queued; got < uint64(b.N) {
		b.Fatalf("activity store queued %d events for %d suffix requests", got, b.N)
	}
}

// newSuffixBench is newRecordedBench with the suffix listener on loopback
// in place of the transparent one: origin.lab (an app of the built-in
// catalog) is served at origin.lab.gw.test, and its configured address is
// the loopback origin (allowed as a private address for it alone).
func newSuffixBench(b *testing.B) *recordedBench {
	b.Helper()
	dir := b.TempDir()
	labCA, err := lab.NewTestCA("bench origin CA")
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := labCA.Leaf(lab.LeafOptions{Names: []string{"origin.lab"}})
	if err != nil {
		b.Fatal(err)
	}
	originLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	origin := &http.Server{Handler: lab.OriginHandler("origin"), ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf}, NextProtos: []string{"http/1.1"}},
		ErrorLog:  log.New(io.Discard, "", 0)}
	go func() { _ = origin.ServeTLS(originLn, "", "") }()
	b.Cleanup(func() { _ = origin.Close() })

	caFile := filepath.Join(dir, "origin-ca.pem")
	if err := os.WriteFile(caFile, labCA.PEM, 0o644); err != nil {
		b.Fatal(err)
	}
	mgmtAddr, suffixAddr := freeLoopbackAddr(b), freeLoopbackAddr(b)
	cfgPath := filepath.Join(dir, "portcullis.yaml")
	cfgText := fmt.Sprintf(`state_dir: %s/state
management: {listen: %q}
log: {access: %s/access.log, level: warn}
transparent: {enabled: false}
datapath: {enabled: false}
upstream: {extra_roots: [%s]}
hosts: {origin.lab: [%q]}
suffix: {domain: gw.test, listen: %q, allow_private: [origin.lab]}
`, dir, mgmtAddr, dir, caFile, originLn.Addr().String(), suffixAddr)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	if cfg.Activity.Mode != "audit-strict" || cfg.Activity.Hold != HoldActivities {
		b.Fatalf("default activity config is %s / %s, the benchmark measures audit-strict / activities", cfg.Activity.Mode, cfg.Activity.Hold)
	}
	app, err := New(cfg, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })

	direct := benchClientFor(labCA.Cert, "origin.lab", originLn.Addr().String())
	appRoots := app.ca.Certificate()
	suffixed := benchClientFor(appRoots, "origin.lab.gw.test", app.suffixLn.Addr().String())
	b.Cleanup(func() {
		direct.CloseIdleConnections()
		suffixed.CloseIdleConnections()
	})
	env := &recordedBench{app: app, direct: direct, intercepted: suffixed,
		directURL: "https://origin.lab/", interceptedURL: "https://origin.lab.gw.test/"}
	// Both paths work before anything is timed, and the suffixed one is
	// served by the appliance for the origin (its certificate, the origin's
	// page naming the origin host).
	env.get(b, direct, env.directURL)
	resp, err := suffixed.Get(env.interceptedURL)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.PeerCertificates[len(resp.TLS.PeerCertificates)-1].Issuer.CommonName != appRoots.Subject.CommonName {
		b.Fatal("the suffix client did not get the appliance's certificate")
	}
	if resp.StatusCode != http.StatusOK || string(body) != "hello from origin (HTTP/1.1 origin.lab)\n" {
		b.Fatalf("suffixed page: %s %q", resp.Status, body)
	}
	return env
}

// processCPU is the CPU time (user and system) the process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freeLoopbackAddr is a loopback address with a port free a moment ago.
func freeLoopbackAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// benchClientFor is an HTTP/1.1 keep-alive client for name trusting root;
// every connection dials addr.
func benchClientFor(root *x509.Certificate, name, addr string) *http.Client {
	c := benchHTTPClient(root, addr)
	c.Transport.(*http.Transport).TLSClientConfig.ServerName = name
	return c
}

// BenchmarkLabSuffixKeepAlive is the suffix part of BenchmarkLab on its own:
// wrk (one thread, 16 keep-alive connections, 6 s, the lab's small page)
// from the client namespace to origin.lab directly, then through the real
// appliance binary's suffix listener (https://origin.lab.gw.test/, the
// default configuration with the suffix domain on and the transparent
// listener off), alternating three times so the ratio has its baseline from
// the same minutes. It reports the ratio of the medians (target 0.40, as
// BenchmarkLab's), the appliance's CPU and read and write system calls per
// suffix request (medians). Run with -benchtime=1x; with
// PORTCULLIS_BENCH_CPUPROFILE=file it also writes a CPU profile of the
// appliance over 4 s of the first suffix run.
func BenchmarkLabSuffixKeepAlive(b *testing.B) {
	lab.RequireRoot(b)
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Fatal("wrk not installed (scripts/deps.sh installs it)")
	}
	l := newE2ELab(b, suffixLabConfig)
	l.Client.SetHosts(map[string]netip.Addr{"origin.lab": originGood, "origin.lab.gw.test": suffixListen.Addr()})
	profile := os.Getenv("PORTCULLIS_BENCH_CPUPROFILE")
	if profile != "" {
		l.enablePProf(b)
	}
	r := newLabReport()
	for i := range 3 {
		r.add("rps_keepalive_direct", l.wrk(b, false).rps)
		l.start()
		var profiled chan struct{}
		if profile != "" && i == 0 {
			profiled = l.cpuProfile(b, profile, 4*time.Second)
		}
		cpu0 := procCPU(b, l.proc.Process.Pid)
		rd0, wr0 := procSyscalls(b, l.proc.Process.Pid)
		ka := l.wrkURL(b, false, "https://origin.lab.gw.test/")
		cpu1 := procCPU(b, l.proc.Process.Pid)
		rd1, wr1 := procSyscalls(b, l.proc.Process.Pid)
		r.add("read_syscalls_per_request", (rd1-rd0)/ka.requests)
		r.add("write_syscalls_per_request", (wr1-wr0)/ka.requests)
		if profiled != nil {
			<-profiled
		}
		r.add("rps_keepalive_suffix", ka.rps)
		r.add("cpu_per_request_appliance_us", (cpu1-cpu0)/ka.requests*1e6)
		l.stop(syscall.SIGTERM)
	}
	r.ratio("suffix-proxied keep-alive requests/s vs direct", "rps_keepalive_suffix", "rps_keepalive_direct", 0.40)
	for _, t := range r.Targets {
		b.ReportMetric(t.Value, strings.ReplaceAll(t.Name, " ", "_"))
	}
	b.ReportMetric(r.value("cpu_per_request_appliance_us"), "appliance_cpu_us/request")
	b.ReportMetric(r.value("read_syscalls_per_request"), "reads/request")
	b.ReportMetric(r.value("write_syscalls_per_request"), "writes/request")
	b.Logf("raw: %v", r.Raw)
}

// enablePProf turns on the management listener's /debug/pprof endpoints in
// the lab appliance's configuration.
func (l *e2eLab) enablePProf(b *testing.B) {
	cfg, err := os.ReadFile(l.cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	const mgmt = "management:\n  listen: 127.0.0.1:9780\n"
	if !strings.Contains(string(cfg), mgmt) {
		b.Fatalf("lab config has no %q", mgmt)
	}
	text := strings.Replace(string(cfg), mgmt, mgmt+"  pprof: true\n", 1)
	if err := os.WriteFile(l.cfgPath, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
}

// cpuProfile fetches a CPU profile of the running lab appliance over d,
// starting half a second from now (wrk's connections open first), into
// path; the channel is closed when it is written. PORTCULLIS_BENCH_CPUPROFILE
// asks BenchmarkLabSuffixKeepAlive for one (its first suffix run): the
// profiled run's figures include the profiler's own cost.
func (l *e2eLab) cpuProfile(b *testing.B, path string, d time.Duration) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(500 * time.Millisecond)
		c := &http.Client{Timeout: d + 10*time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return l.GW.Dial(ctx, network, addr)
			},
		}}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:9780/debug/pprof/profile?seconds=%d", int(d.Seconds())))
		if err != nil {
			b.Errorf("cpu profile: %v", err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, data)
		}
		if err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			b.Errorf("cpu profile: %v", err)
		}
	}()
	return done
}
