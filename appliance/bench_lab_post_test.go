package appliance

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// wrkMixScript makes every other request of a connection a POST of a
// 1 KiB form, the rest GETs: the traffic of an app that saves as it goes.
const wrkMixScript = `
local body = string.rep("field=value&", 85) .. "end=1"
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("POST", "/", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
  end
  return wrk.format("GET", "/")
end
`

// BenchmarkLabPostMix is BenchmarkLabKeepAlive's method for a mix of GETs
// and 1 KiB POSTs on 50 keep-alive connections (wrkMixScript): direct and
// through the real appliance with the default configuration, alternated
// three times. It reports the throughput against direct, the appliance's
// CPU per request against the origin's, and how many requests the
// pipeline's own HTTP/1.1 loop served, and writes
// bench/results/lab-postmix-<stamp>.{md,json}. Run with -benchtime=1x;
// PORTCULLIS_BENCH_CPUPROFILE=file profiles the appliance over 4 s of the
// first round.
func BenchmarkLabPostMix(b *testing.B) {
	lab.RequireRoot(b)
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Fatal("wrk not installed (scripts/deps.sh installs it)")
	}
	script := filepath.Join(b.TempDir(), "mix.lua")
	if err := os.WriteFile(script, []byte(wrkMixScript), 0o644); err != nil {
		b.Fatal(err)
	}
	l := newE2ELab(b, "")
	profile := os.Getenv("PORTCULLIS_BENCH_CPUPROFILE")
	if profile != "" {
		l.enablePProf(b)
	}
	r := newLabReport()
	const c = 50
	for round := range 3 {
		r.add("rps_mix_direct_c50", l.wrkRun(b, c, "-s", script).rps)
		l.start()
		logged0 := markAccessLog(b, l)
		plain0 := l.metric(b, "portcullis_proxy_http1_plain_requests_total")
		cpuApp0, cpuOrigin0 := procCPU(b, l.proc.Process.Pid), procCPU(b, os.Getpid())
		var profiled chan struct{}
		if profile != "" && round == 0 {
			profiled = l.cpuProfile(b, profile, 4*time.Second)
		}
		mix := l.wrkRun(b, c, "-s", script)
		if profiled != nil {
			<-profiled
		}
		cpuApp1, cpuOrigin1 := procCPU(b, l.proc.Process.Pid), procCPU(b, os.Getpid())
		r.add("rps_mix_intercepted_c50", mix.rps)
		r.add("cpu_per_request_ratio_mix_c50", (cpuApp1-cpuApp0)/(cpuOrigin1-cpuOrigin0))
		r.add("cpu_per_request_appliance_us_mix_c50", (cpuApp1-cpuApp0)/mix.requests*1e6)
		r.add("loop_share_mix_c50", (l.metric(b, "portcullis_proxy_http1_plain_requests_total")-plain0)/mix.requests)
		time.Sleep(500 * time.Millisecond)
		if n := accessRequestsSince(b, l, logged0); float64(n) < mix.requests {
			b.Fatalf("wrk made %.0f requests, the access log has %d: not intercepted", mix.requests, n)
		}
		l.stop(syscall.SIGTERM)
		if err := l.GW.DaemonCommand(context.Background(), portcullisBinary(b), "datapath", "detach", "-config", l.cfgPath).Run(); err != nil {
			b.Fatalf("datapath detach: %v", err)
		}
	}
	r.ratio("intercepted GET+POST keep-alive requests/s vs direct, 50 connections", "rps_mix_intercepted_c50", "rps_mix_direct_c50", 0.50)
	r.limit("appliance CPU per request / origin CPU per request, GET+POST, 50 connections", r.value("cpu_per_request_ratio_mix_c50"), 2.0)
	for _, t := range r.Targets {
		b.ReportMetric(t.Value, strings.ReplaceAll(t.Name, " ", "_"))
	}
	b.ReportMetric(r.value("loop_share_mix_c50"), "share_served_by_the_loop")
	r.writeAs(b, "lab-postmix-"+time.Now().UTC().Format("20060102-150405")+".md", "Lab GET+POST keep-alive benchmark", "",
		"medians of the repetitions are used; rates per second; loop_share is the share of requests the pipeline's HTTP/1.1 loop served")
}

// metric is one value of the appliance's Prometheus metrics.
func (l *e2eLab) metric(b testing.TB, name string) float64 {
	b.Helper()
	v, ok := promValue(l.get("http://127.0.0.1:9780/metrics"), name)
	if !ok {
		b.Fatalf("metric %s not served", name)
	}
	return v
}
