package appliance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// BenchmarkLabKeepAlive is the keep-alive part of BenchmarkLab at 16 and 50
// connections, on its own: wrk (small responses) from the client namespace
// to origin.lab directly (the gateway a plain router) and through the real
// appliance binary with the default configuration and its datapath
// attached, alternating three times so each ratio has its baseline from the same
// minutes. It reports the ratios, the appliance's CPU per request against
// the origin's, and the appliance's RSS at start and after the runs, and writes
// bench/results/lab-keepalive-<stamp>.{md,json}. Run with -benchtime=1x;
// with PORTCULLIS_BENCH_CPUPROFILE=file it also writes a CPU profile of the
// appliance over 4 s of the first 50-connection run, and with
// PORTCULLIS_BENCH_HEAPPROFILE=file a heap profile after the last round
// (PORTCULLIS_BENCH_PROBE=command: run as "command pid round moment" where
// the RSS is read, to look at the appliance's memory then; internal/lab/cmd/
// memprobe records its smaps and the executable's resident pages).
func BenchmarkLabKeepAlive(b *testing.B) {
	lab.RequireRoot(b)
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Fatal("wrk not installed (scripts/deps.sh installs it)")
	}
	l := newE2ELab(b, "")
	profile := os.Getenv("PORTCULLIS_BENCH_CPUPROFILE")
	heapProfile := os.Getenv("PORTCULLIS_BENCH_HEAPPROFILE")
	if profile != "" || heapProfile != "" {
		l.enablePProf(b)
	}
	r := newLabReport()
	conns := []int{16, 50}
	for round := range 3 {
		for _, c := range conns {
			r.add(fmt.Sprintf("rps_keepalive_direct_c%d", c), l.wrkConns(b, c).rps)
		}
		l.start()
		// The memory before any request. Package initialisation maps most
		// of the binary's text and read-only data (each page it touches with
		// the pages around it); the appliance unmaps them once it serves
		// (textpages.go), so the file pages here are what it touched since.
		anon0, file0 := rssParts(b, l.proc.Process.Pid)
		probe(b, l.proc.Process.Pid, round, "start")
		r.add("rss_anon_at_start_bytes", float64(anon0))
		r.add("rss_file_at_start_bytes", float64(file0))
		for _, c := range conns {
			logged0 := markAccessLog(b, l)
			cpuApp0, cpuOrigin0 := procCPU(b, l.proc.Process.Pid), procCPU(b, os.Getpid())
			rd0, wr0 := procSyscalls(b, l.proc.Process.Pid)
			var profiled chan struct{}
			if profile != "" && round == 0 && c == 50 {
				profiled = l.cpuProfile(b, profile, 4*time.Second)
			}
			ka := l.wrkConns(b, c)
			// The memory at the end of the load, before the idle releaser
			// gives anything back: the file pages are the request path's.
			anonLoad, fileLoad := rssParts(b, l.proc.Process.Pid)
			r.add(fmt.Sprintf("rss_anon_end_of_load_c%d_bytes", c), float64(anonLoad))
			r.add(fmt.Sprintf("rss_file_end_of_load_c%d_bytes", c), float64(fileLoad))
			if profiled != nil {
				<-profiled
			}
			cpuApp1, cpuOrigin1 := procCPU(b, l.proc.Process.Pid), procCPU(b, os.Getpid())
			rd1, wr1 := procSyscalls(b, l.proc.Process.Pid)
			// Kernel networking is most of the appliance's CPU (perf: the
			// write path, with the receiver's softirq work it carries), so
			// the read and write system calls per request are reported.
			r.add(fmt.Sprintf("read_syscalls_per_request_c%d", c), (rd1-rd0)/ka.requests)
			r.add(fmt.Sprintf("write_syscalls_per_request_c%d", c), (wr1-wr0)/ka.requests)
			r.add(fmt.Sprintf("rps_keepalive_intercepted_c%d", c), ka.rps)
			r.add(fmt.Sprintf("cpu_per_request_ratio_c%d", c), (cpuApp1-cpuApp0)/(cpuOrigin1-cpuOrigin0))
			r.add(fmt.Sprintf("cpu_per_request_appliance_us_c%d", c), (cpuApp1-cpuApp0)/ka.requests*1e6)
			r.add(fmt.Sprintf("cpu_per_request_origin_us_c%d", c), (cpuOrigin1-cpuOrigin0)/ka.requests*1e6)
			// Every request wrk made went through the pipeline: the access
			// log has a line for each (it is flushed within 200 ms).
			time.Sleep(500 * time.Millisecond)
			if n := accessRequestsSince(b, l, logged0); float64(n) < ka.requests {
				b.Fatalf("%d connections: wrk made %.0f requests, the access log has %d: not intercepted", c, ka.requests, n)
			}
		}
		r.add("rss_after_keepalive_bytes", float64(rss(b, l.proc.Process.Pid)))
		probe(b, l.proc.Process.Pid, round, "after")
		if heapProfile != "" && round == 2 {
			// What the Go heap holds after the runs (go tool pprof -sample_index=inuse_space).
			if err := os.WriteFile(heapProfile, []byte(l.get("http://127.0.0.1:9780/debug/pprof/heap")), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		// What of the anonymous memory is Go's (heap in use, heap held
		// from the OS, stacks, the runtime's own structures; the rest is
		// SQLite's C heap, the page cache among it) and how many goroutines
		// hold stacks.
		metrics := l.get("http://127.0.0.1:9780/metrics")
		for _, m := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_sys_bytes", "go_memstats_heap_released_bytes",
			"go_memstats_stack_inuse_bytes", "go_memstats_mspan_inuse_bytes", "go_memstats_gc_sys_bytes", "go_memstats_other_sys_bytes",
			"go_memstats_sys_bytes", "go_goroutines", "portcullis_memory_idle_releases_total"} {
			if v, ok := promValue(metrics, m); ok {
				r.add(m, v)
			}
		}
		// The store's group size over the round: events per commit (fsync).
		written, ok1 := promValue(metrics, `portcullis_activity_events_total{outcome="written"}`)
		commits, ok2 := promValue(metrics, "portcullis_activity_commits_total")
		if ok1 && ok2 && commits > 0 {
			r.add("activity_events_per_commit", written/commits)
		}
		// What the resident memory is: anonymous (Go heap, stacks, SQLite's
		// page cache) or file pages (the binary's text touched).
		anon, file := rssParts(b, l.proc.Process.Pid)
		r.add("rss_anon_after_keepalive_bytes", float64(anon))
		r.add("rss_file_after_keepalive_bytes", float64(file))
		l.stop(syscall.SIGTERM)
		// The datapath is kept on stop (fail closed): the direct runs need
		// the gateway a plain router again.
		if err := l.GW.DaemonCommand(context.Background(), portcullisBinary(b), "datapath", "detach", "-config", l.cfgPath).Run(); err != nil {
			b.Fatalf("datapath detach: %v", err)
		}
	}
	for _, c := range conns {
		r.ratio(fmt.Sprintf("intercepted keep-alive requests/s vs direct, %d connections", c),
			fmt.Sprintf("rps_keepalive_intercepted_c%d", c), fmt.Sprintf("rps_keepalive_direct_c%d", c), map[int]float64{16: 0.35, 50: 0.50}[c])
	}
	for _, c := range conns {
		r.limit(fmt.Sprintf("appliance CPU per request / origin CPU per request, %d connections", c), r.value(fmt.Sprintf("cpu_per_request_ratio_c%d", c)), 2.0)
	}
	r.limit("appliance RSS after the keep-alive runs, MiB", r.value("rss_after_keepalive_bytes")/(1<<20), 32)
	for _, t := range r.Targets {
		b.ReportMetric(t.Value, strings.ReplaceAll(t.Name, " ", "_"))
	}
	r.writeAs(b, "lab-keepalive-"+time.Now().UTC().Format("20060102-150405")+".md", "Lab keep-alive benchmark", "",
		"medians of the repetitions are used; rates per second")
}

// wrkConns is wrk against https://origin.lab/ with c keep-alive connections
// for 6 s (one thread, as BenchmarkLab).
func (l *e2eLab) wrkConns(b testing.TB, c int) wrkResult {
	b.Helper()
	return l.wrkRun(b, c)
}

// wrkRun is wrkConns with more of wrk's arguments (a script: -s file).
func (l *e2eLab) wrkRun(b testing.TB, c int, extra ...string) wrkResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"-t1", "-c" + strconv.Itoa(c), "-d6s"}, extra...)
	out, err := l.Client.Exec(ctx, "wrk", append(args, "https://origin.lab/")...)
	m, n := wrkRPS.FindSubmatch(out), wrkReqs.FindSubmatch(out)
	if err != nil || m == nil || n == nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "Non-2xx") || strings.Contains(string(out), "Socket errors") {
		b.Fatalf("wrk reported errors:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	reqs, _ := strconv.ParseFloat(string(n[1]), 64)
	return wrkResult{rps: rps, requests: reqs}
}

// probe runs PORTCULLIS_BENCH_PROBE, if set, with the appliance's pid, the
// round and the moment ("start", "after"): a look at its memory (smaps,
// pagemap) at the moments the benchmark reads its RSS.
func probe(b testing.TB, pid, round int, moment string) {
	cmd := os.Getenv("PORTCULLIS_BENCH_PROBE")
	if cmd == "" {
		return
	}
	if out, err := exec.Command(cmd, strconv.Itoa(pid), strconv.Itoa(round), moment).CombinedOutput(); err != nil {
		b.Fatalf("PORTCULLIS_BENCH_PROBE %s: %v\n%s", cmd, err, out)
	}
}

// rssParts is a process's RssAnon and RssFile in bytes.
func rssParts(b testing.TB, pid int) (anon, file int64) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "RssAnon:":
			anon = kb << 10
		case "RssFile:":
			file = kb << 10
		}
	}
	return anon, file
}

var accessRequestLine = regexp.MustCompile(`"msg":"request"`)

// accessMark is a place in the lab appliance's access log: the current
// file (by inode, which rotation keeps) and its size then.
type accessMark struct {
	ino  uint64
	size int64
}

// markAccessLog marks the end of the access log, for accessRequestsSince.
func markAccessLog(b testing.TB, l *e2eLab) accessMark {
	b.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(l.dir, "access.log"), &st); err != nil {
		b.Fatalf("access log: %v", err)
	}
	return accessMark{ino: st.Ino, size: st.Size}
}

// accessRequestsSince counts the request lines written to the access log
// after m: those of the files rotated since (access.log, .1, .2, ... back
// to the one that was current at m) and, in that file, the ones past m's
// size. A benchmark's runs write several files' worth (log.access_max_mib),
// and the oldest file is removed on rotation, so counting every file
// before and after a run undercounts; a run that rotated m's file away
// altogether is reported as such.
func accessRequestsSince(b testing.TB, l *e2eLab, m accessMark) int {
	b.Helper()
	n := 0
	base := filepath.Join(l.dir, "access.log")
	for i := 0; ; i++ {
		path := base
		if i > 0 {
			path = base + "." + strconv.Itoa(i)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			b.Fatalf("access log: the file current when the run began was rotated away (%v): raise log.access_files for this run", err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatalf("access log: %v", err)
		}
		if st.Ino == m.ino {
			if int64(len(data)) < m.size {
				b.Fatalf("access log %s shrank from %d to %d bytes", path, m.size, len(data))
			}
			return n + len(accessRequestLine.FindAllIndex(data[m.size:], -1))
		}
		n += len(accessRequestLine.FindAllIndex(data, -1))
	}
}

// promValue is the value of an unlabelled metric in a Prometheus text
// exposition.
func promValue(text, name string) (float64, bool) {
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}
