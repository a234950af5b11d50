package appliance

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// BenchmarkLabForwarding is the kernel-forwarded part of BenchmarkLab with
// its baselines alternated rather than measured in a phase of their own:
// each of three rounds downloads direct (the gateway a plain router), then
// with the appliance running and its datapath attached (a bypassed prefix on
// 443, a port not intercepted, 8443), then with the appliance stopped and
// its datapath kept (fail closed: the rules and programs alone, no process).
// Shared machines drift between phases; alternating keeps each ratio's
// baseline in the same minutes. Run with -benchtime=1x; it writes
// bench/results/lab-forwarding-<stamp>.{md,json}.
func BenchmarkLabForwarding(b *testing.B) {
	lab.RequireRoot(b)
	if _, err := exec.LookPath("curl"); err != nil {
		b.Fatal("curl not installed (scripts/deps.sh installs it)")
	}
	l := newE2ELab(b, "")
	r := newLabReport()
	const bulk = 512 << 20
	ca := l.dir + "/lab-ca.pem"
	for range 3 {
		r.add("download_direct", l.download(b, "origin.lab", originGood, 443, bulk, ca))
		r.add("download_direct_8443", l.download(b, "origin.lab", originGood, 8443, bulk, ca))
		l.start()
		r.add("download_bypass_prefix", l.download(b, "origin.lab", originBypassNet, 443, bulk, ca))
		cpu0, t0 := procCPU(b, l.proc.Process.Pid), time.Now()
		r.add("download_program_attached_8443", l.download(b, "origin.lab", originGood, 8443, bulk, ca))
		// What the appliance's process spends meanwhile (it forwards none of it).
		r.add("appliance_cpu_share_during_8443", (procCPU(b, l.proc.Process.Pid)-cpu0)/time.Since(t0).Seconds())
		l.stop(syscall.SIGTERM)
		r.add("download_datapath_only_8443", l.download(b, "origin.lab", originGood, 8443, bulk, ca))
		if err := l.GW.DaemonCommand(context.Background(), portcullisBinary(b), "datapath", "detach", "-config", l.cfgPath).Run(); err != nil {
			b.Fatalf("datapath detach: %v", err)
		}
	}
	r.ratio("bypass prefix (kernel-forwarded) download vs direct", "download_bypass_prefix", "download_direct", 0.97)
	r.ratio("throughput with steering program attached vs not (port 8443)", "download_program_attached_8443", "download_direct_8443", 0.98)
	r.info("port 8443 with the datapath kept and the appliance stopped vs not attached", "download_datapath_only_8443", "download_direct_8443")
	for _, t := range r.Targets {
		b.ReportMetric(t.Value, strings.ReplaceAll(t.Name, " ", "_"))
	}
	r.writeAs(b, "lab-forwarding-"+time.Now().UTC().Format("20060102-150405")+".md", "Lab forwarding benchmark", "",
		"medians of the repetitions are used; bytes per second")
}
