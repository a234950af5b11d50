package appliance

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestTransparentGatewayEndToEnd runs the real appliance binary on the
// gateway of a fresh lab and drives real clients through the eBPF datapath.
func TestTransparentGatewayEndToEnd(t *testing.T) {
	l := newE2ELab(t, "")
	l.start()
	ca := l.applianceCA()
	trustAppliance := pool(ca)
	trustOrigin := pool(l.labCA.Cert)
	good := netip.AddrPortFrom(originGood, 443)

	t.Run("curl sees the appliance leaf over HTTP/2 and HTTP/1.1", func(t *testing.T) {
		for _, flag := range []string{"--http2", "--http1.1"} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			out, err := l.Client.Exec(ctx, "curl", "-sS", "-v", flag, "--cacert", l.dir+"/appliance-ca.pem", "https://origin.lab/")
			cancel()
			if err != nil {
				t.Fatalf("curl %s: %v\n%s", flag, err, out)
			}
			s := string(out)
			if !strings.Contains(s, "issuer: CN="+ca.Subject.CommonName) && !strings.Contains(s, "issuer: O=Portcullis; CN="+ca.Subject.CommonName) {
				t.Errorf("curl %s: leaf not issued by the appliance CA:\n%s", flag, s)
			}
			if !strings.Contains(s, "hello from lab origin") {
				t.Errorf("curl %s: no origin body:\n%s", flag, s)
			}
			// The client side speaks what curl asked for; the upstream side
			// negotiates with the origin on its own.
			want := map[string]string{"--http2": "using HTTP/2", "--http1.1": "using HTTP/1.1"}[flag]
			if !strings.Contains(s, want) {
				t.Errorf("curl %s: client side not %q:\n%s", flag, want, s)
			}
		}
		line := l.waitAccessLog(t, func(m map[string]any) bool { return m["msg"] == "request" && m["sni"] == "origin.lab" })
		for _, k := range []string{"client", "method", "path", "status", "bytes_out", "decision", "ja4"} {
			if line[k] == nil || line[k] == "" {
				t.Errorf("access-log line lacks %s: %v", k, line)
			}
		}
		if !strings.HasPrefix(line["client"].(string), "198.18.1.2:") || line["dest"] != "198.18.2.2:443" {
			t.Errorf("access log client/dest = %v / %v", line["client"], line["dest"])
		}
	})

	t.Run("Go client over IPv4 and IPv6", func(t *testing.T) {
		for _, dest := range []netip.AddrPort{good, netip.AddrPortFrom(originGood6, 443)} {
			for _, h2 := range []bool{true, false} {
				resp, body := fetch(t, l.client(dest, trustAppliance, h2), "https://origin.lab/")
				if resp.TLS.PeerCertificates[0].Issuer.CommonName != ca.Subject.CommonName || !strings.Contains(body, "hello from lab origin") {
					t.Errorf("%s h2=%v: issuer %q body %q", dest, h2, resp.TLS.PeerCertificates[0].Issuer.CommonName, body)
				}
			}
		}
	})

	t.Run("bypass prefix is kernel-forwarded with the origin's certificate", func(t *testing.T) {
		resp, body := fetch(t, l.client(netip.AddrPortFrom(originBypassNet, 443), trustOrigin, true), "https://origin.lab/")
		if iss := resp.TLS.PeerCertificates[0].Issuer.CommonName; iss != "lab origin CA" || !strings.Contains(body, "hello") {
			t.Errorf("issuer %q body %q", iss, body)
		}
	})

	t.Run("bypass SNI is spliced with the origin's certificate", func(t *testing.T) {
		c := l.client(good, trustOrigin, true)
		resp, _ := fetch(t, c, "https://bypass.lab/")
		// A spliced connection is logged when it ends, with its byte counts.
		c.CloseIdleConnections()
		if iss := resp.TLS.PeerCertificates[0].Issuer.CommonName; iss != "lab origin CA" {
			t.Errorf("issuer %q, want the origin's own", iss)
		}
		l.waitAccessLog(t, func(m map[string]any) bool { return m["decision"] == "bypass" && m["sni"] == "bypass.lab" })
	})

	t.Run("blocked SNI gets a TLS alert", func(t *testing.T) {
		_, err := l.client(good, trustAppliance, true).Get("https://blocked.lab/")
		if err == nil || !strings.Contains(err.Error(), "access denied") {
			t.Fatalf("err = %v, want access denied alert", err)
		}
	})

	t.Run("origins with bad certificates are never served", func(t *testing.T) {
		for addr, reason := range map[netip.Addr]string{originExpired: "expired", originWrongHost: "not valid for origin.lab", originUntrusted: "unknown authority"} {
			resp, body := fetch(t, l.client(netip.AddrPortFrom(addr, 443), trustAppliance, true), "https://origin.lab/")
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, reason) || strings.Contains(body, "hello from") {
				t.Errorf("%s: status %d body %q, want 502 naming %q", addr, resp.StatusCode, body, reason)
			}
		}
	})

	t.Run("plain HTTP on port 80 goes through the proxy", func(t *testing.T) {
		c := l.client(netip.AddrPortFrom(originGood, 80), nil, false)
		_, body := fetch(t, c, "http://origin.lab/")
		if !strings.Contains(body, "hello from lab origin") {
			t.Fatalf("body %q", body)
		}
		l.waitAccessLog(t, func(m map[string]any) bool { return m["msg"] == "request" && m["dest"] == "198.18.2.2:80" })
		// A host refused over HTTPS is refused over plain HTTP too, by its
		// Host header: the origin never sees the request.
		resp, body := fetch(t, c, "http://blocked.lab/")
		if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "hello from lab origin") || !strings.Contains(body, "not allowed") {
			t.Fatalf("plain HTTP to a blocked host: status %d body %q", resp.StatusCode, body)
		}
		l.waitAccessLog(t, func(m map[string]any) bool { return m["host"] == "blocked.lab" && m["decision"] == "block" })
	})

	t.Run("explicit proxy CONNECT feeds the same pipeline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := l.Client.Exec(ctx, "curl", "-sS", "-v", "--proxy", "http://198.18.1.1:3128", "--cacert", l.dir+"/appliance-ca.pem", "https://origin.lab/")
		if err != nil || !strings.Contains(string(out), "hello from lab origin") || !strings.Contains(string(out), ca.Subject.CommonName) {
			t.Fatalf("curl via explicit proxy: %v\n%s", err, out)
		}
	})

	t.Run("large download streams with bounded appliance memory", func(t *testing.T) {
		const size = 256 << 20
		resp, err := l.client(good, trustAppliance, true).Get("https://origin.lab/bytes/" + strconv.Itoa(size))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("downloaded %d bytes, err %v", n, err)
		}
		hwm := peakRSS(t, l.proc.Process.Pid)
		t.Logf("appliance peak RSS after a %d MiB download: %d MiB", size>>20, hwm>>20)
		if hwm > 96<<20 {
			t.Errorf("appliance peak RSS %d MiB: the body was buffered, not streamed", hwm>>20)
		}
	})

	t.Run("metrics expose datapath and proxy counters", func(t *testing.T) {
		m := l.get("http://127.0.0.1:9780/metrics")
		for _, want := range []string{`portcullis_proxy_request_duration_seconds_bucket{le="0.005"}`, `portcullis_datapath_packets_total{result="steered"}`, `portcullis_proxy_access_decisions_total{verdict="intercept"}`, `portcullis_proxy_upstream_failures_total{reason="certificate"} 3`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if v := metricValue(m, `portcullis_datapath_packets_total{result="steered"}`); v < 5 {
			t.Errorf("steered = %v, want the test's connections counted", v)
		}
		// The checks of `promtool check metrics`.
		problems, err := promlint.New(strings.NewReader(m)).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("metric %s: %s", p.Metric, p.Text)
		}
		if !strings.Contains(m, `portcullis_activity_events_total{outcome="written"}`) {
			t.Error("metrics lack the activity store's counters")
		}
		if d := l.get("http://127.0.0.1:9780/grafana-dashboard.json"); !strings.Contains(d, `"uid": "portcullis"`) {
			t.Error("the management address does not serve the Grafana dashboard")
		}
		// Every metric the shipped Grafana dashboard queries exists.
		for _, name := range dashboardMetrics(t) {
			if !strings.Contains(m, "\n"+name) {
				t.Errorf("the dashboard queries %s, which /metrics does not serve", name)
			}
		}
	})
}

// TestDatapathFailModesWhileDaemonIsDown kills the daemon and checks that the
// pinned datapath refuses steered traffic (fail-closed) or forwards it
// unsteered (fail-open), and that a restart takes over again.
func TestDatapathFailModesWhileDaemonIsDown(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		t.Run("fail_open="+strconv.FormatBool(failOpen), func(t *testing.T) {
			l := newE2ELab(t, "")
			if failOpen {
				b, _ := os.ReadFile(l.cfgPath)
				b = []byte(strings.Replace(string(b), "  pin_dir:", "  fail_open: true\n  pin_dir:", 1))
				if err := os.WriteFile(l.cfgPath, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			l.start()
			ca := l.applianceCA()
			good := netip.AddrPortFrom(originGood, 443)
			resp, _ := fetch(t, l.client(good, pool(ca), false), "https://origin.lab/")
			if resp.TLS.PeerCertificates[0].Issuer.CommonName != ca.Subject.CommonName {
				t.Fatal("not intercepted before the kill")
			}
			l.stop(syscall.SIGKILL)

			// Trusting the origin's CA: served only if the traffic went
			// through unsteered.
			_, st, err := l.getOnce(good, pool(l.labCA.Cert), 3*time.Second)
			if failOpen {
				if err != nil {
					t.Fatalf("fail-open: %v", err)
				}
				if iss := st.PeerCertificates[0].Issuer.CommonName; iss != "lab origin CA" {
					t.Fatalf("fail-open: issuer %q, want the origin's own (unsteered)", iss)
				}
			} else if err == nil {
				t.Fatal("fail-closed: the connection went through while no proxy listened")
			} else if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
				// Route steering drops an IPv4 SYN it has no listener for
				// (the client retries until the proxy is back).
				t.Fatalf("fail-closed: %v, want the SYN dropped (a dial timeout)", err)
			}

			l.start()
			resp, _ = fetch(t, l.client(good, pool(ca), false), "https://origin.lab/")
			if resp.TLS.PeerCertificates[0].Issuer.CommonName != ca.Subject.CommonName {
				t.Fatal("not intercepted after the restart")
			}
		})
	}
}

// TestDetachRemovesEverything stops an appliance configured to detach and
// checks nothing of the datapath is left: no pins, no TCX program, no rules.
func TestDetachRemovesEverything(t *testing.T) {
	l := newE2ELab(t, "")
	b, _ := os.ReadFile(l.cfgPath)
	b = []byte(strings.Replace(string(b), "  pin_dir:", "  on_stop: detach\n  pin_dir:", 1))
	if err := os.WriteFile(l.cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l.start()
	if out := l.GW.IP("rule", "show"); !strings.Contains(out, "fwmark") {
		t.Fatalf("no fwmark rule while running:\n%s", out)
	}
	l.stop(syscall.SIGTERM)
	if entries, err := os.ReadDir(l.pinDir); err == nil && len(entries) > 0 {
		t.Errorf("pins left in %s: %v", l.pinDir, entries)
	}
	for _, fam := range []string{"-4", "-6"} {
		if out := l.GW.IP(fam, "rule", "show"); strings.Contains(out, "fwmark") {
			t.Errorf("ip %s rule left behind:\n%s", fam, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := l.GW.Exec(ctx, "bpftool", "net", "show", "dev", "lan0")
	if err != nil {
		t.Fatalf("bpftool net show: %v: %s", err, out)
	}
	if strings.Contains(string(out), "steer") {
		t.Errorf("program still attached:\n%s", out)
	}
	// With the datapath gone the gateway is a plain router again.
	resp, _ := fetch(t, l.client(netip.AddrPortFrom(originGood, 443), pool(l.labCA.Cert), false), "https://origin.lab/")
	if iss := resp.TLS.PeerCertificates[0].Issuer.CommonName; iss != "lab origin CA" {
		t.Errorf("after detach: issuer %q, want the origin's own", iss)
	}
}

func fetch(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, string(b)
}

// peakRSS reads VmHWM (peak resident set) of a process, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			return v
		}
	}
	return -1
}

// dashboardMetrics lists the portcullis_* metric names the shipped Grafana
// dashboard's queries use.
func dashboardMetrics(t *testing.T) []string {
	b, err := os.ReadFile("assets/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	seen := map[string]bool{}
	var names []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Error("a dashboard panel has no query")
		}
		for _, tg := range p.Targets {
			for _, n := range metricNameRE.FindAllString(tg.Expr, -1) {
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
	}
	if len(names) < 8 {
		t.Fatalf("dashboard queries only %v", names)
	}
	return names
}

var metricNameRE = regexp.MustCompile(`portcullis_[a-z_]+`)
