package appliance

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// BenchmarkLabDownload measures the intercepted bulk download against direct
// routing, alternated three times in one run (curl in the client namespace,
// 256 MiB from the lab origin), over HTTP/2 (curl's default, as a browser's)
// and HTTP/1.1, with the appliance's CPU and system calls per MiB beside the
// origin's. It writes bench/results/lab-download-<stamp>;
// PORTCULLIS_BENCH_CPUPROFILE=file profiles the appliance over 2 s of the
// first intercepted HTTP/2 download.
func BenchmarkLabDownload(b *testing.B) {
	lab.RequireRoot(b)
	if _, err := exec.LookPath("curl"); err != nil {
		b.Fatal("curl not installed (scripts/deps.sh installs it)")
	}
	l := newE2ELab(b, "")
	profile := os.Getenv("PORTCULLIS_BENCH_CPUPROFILE")
	if profile != "" {
		l.enablePProf(b)
	}
	r := newLabReport()
	const size = 256 << 20
	const mib = float64(size) / (1 << 20)
	protos := []struct {
		name  string
		extra []string
	}{{"h2", nil}, {"h1", []string{"--http1.1"}}}
	for round := range 3 {
		for _, p := range protos {
			r.add("download_direct_"+p.name, l.download(b, "origin.lab", originGood, 443, size, l.dir+"/lab-ca.pem", p.extra...))
		}
		l.start()
		l.applianceCA()
		for _, p := range protos {
			cpuApp0, cpuOrigin0 := procCPU(b, l.proc.Process.Pid), procCPU(b, os.Getpid())
			rd0, wr0 := procSyscalls(b, l.proc.Process.Pid)
			var profiled chan struct{}
			if profile != "" && round == 0 && p.name == "h2" {
				profiled = l.cpuProfile(b, profile, 2*time.Second)
			}
			r.add("download_intercepted_"+p.name, l.download(b, "origin.lab", originGood, 443, size, l.dir+"/appliance-ca.pem", p.extra...))
			if profiled != nil {
				<-profiled
			}
			cpuApp1, cpuOrigin1 := procCPU(b, l.proc.Process.Pid), procCPU(b, os.Getpid())
			rd1, wr1 := procSyscalls(b, l.proc.Process.Pid)
			r.add("appliance_cpu_ms_per_mib_"+p.name, (cpuApp1-cpuApp0)/mib*1e3)
			r.add("origin_cpu_ms_per_mib_"+p.name, (cpuOrigin1-cpuOrigin0)/mib*1e3)
			r.add("read_syscalls_per_mib_"+p.name, (rd1-rd0)/mib)
			r.add("write_syscalls_per_mib_"+p.name, (wr1-wr0)/mib)
		}
		l.stop(syscall.SIGTERM)
		if err := l.GW.DaemonCommand(context.Background(), portcullisBinary(b), "datapath", "detach", "-config", l.cfgPath).Run(); err != nil {
			b.Fatalf("datapath detach: %v", err)
		}
	}
	r.ratio("intercepted download vs direct, HTTP/2", "download_intercepted_h2", "download_direct_h2", 0.85)
	r.ratio("intercepted download vs direct, HTTP/1.1", "download_intercepted_h1", "download_direct_h1", 0.85)
	r.info("appliance CPU per MiB / origin CPU per MiB, HTTP/2", "appliance_cpu_ms_per_mib_h2", "origin_cpu_ms_per_mib_h2")
	r.info("appliance CPU per MiB / origin CPU per MiB, HTTP/1.1", "appliance_cpu_ms_per_mib_h1", "origin_cpu_ms_per_mib_h1")
	for _, t := range r.Targets {
		b.ReportMetric(t.Value, strings.ReplaceAll(t.Name, " ", "_"))
	}
	r.writeAs(b, "lab-download-"+time.Now().UTC().Format("20060102-150405")+".md", "Lab bulk download benchmark", "",
		"medians of the repetitions are used; downloads in bytes/s")
}
