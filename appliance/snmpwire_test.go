package appliance

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/agent"
	"github.com/portcullis-gw/portcullis/appliance/snmp"
	"github.com/portcullis-gw/portcullis/internal/lab"
	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy"
)

// usageFixture is the real recorder chain the proxy gets: usageRecorder in
// front of an activity store, with apps resolved by a compiled policy
// engine holding the built-in catalog.
func usageFixture(t *testing.T) (*usageRecorder, *activityRecorder) {
	t.Helper()
	act, err := openActivity(&Config{StateDir: t.TempDir(), Activity: ActivityConfig{Mode: "best-effort"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = act.Close() })
	e, err := policy.Compile(&policy.PolicySet{})
	if err != nil {
		t.Fatal(err)
	}
	pe := &policyEnforcer{}
	pe.engine.Store(e)
	return &usageRecorder{next: act, usage: newUsageCounters(), appOf: appOfPolicies(pe)}, act
}

func record(mode proxy.Mode, host, decision string, up, down int64) proxy.Record {
	return proxy.Record{Time: time.Now(), Mode: mode, Client: netip.MustParseAddrPort("198.18.0.2:40000"),
		Host: host, Method: "GET", Path: "/", Decision: decision, BytesIn: up, BytesOut: down, RequestID: "r"}
}

// feedUsage drives a known mix through the recorder: slack 3 requests (one
// blocked, one monitored), sharepoint 1, an unknown host 1, and one
// connection record that must not count as a request.
func feedUsage(t *testing.T, r *usageRecorder) {
	t.Helper()
	for _, rec := range []proxy.Record{
		record(proxy.ModeTransparent, "app.slack.com", "allow", 100, 1000),
		record(proxy.ModeTransparent, "files.slack.com", "block", 50, 0),
		record(proxy.ModeExplicit, "slack.com", "monitor", 10, 20),
		record(proxy.ModeExplicit, "contoso.sharepoint.com", "allow", 7, 70000),
		record(proxy.ModeTransparent, "unknown.example", "allow", 1, 1),
		{Time: time.Now(), Mode: proxy.ModeTransparent, Host: "app.slack.com", Decision: "block", RequestID: "c1"},
	} {
		if err := r.Record(rec); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUsageCounters(t *testing.T) {
	r, _ := usageFixture(t)
	feedUsage(t, r)
	u := r.usage
	apps := u.apps()
	if len(apps) != 2 || apps[0].id != "slack" || apps[1].id != "sharepoint" {
		t.Fatalf("apps %+v", apps)
	}
	s := apps[0]
	if s.requests.Load() != 3 || s.blocked.Load() != 1 || s.monitored.Load() != 1 || s.bytesUp.Load() != 160 || s.bytesDown.Load() != 1020 {
		t.Errorf("slack counters: req %d blk %d mon %d up %d down %d", s.requests.Load(), s.blocked.Load(), s.monitored.Load(), s.bytesUp.Load(), s.bytesDown.Load())
	}
	tr, ex := &u.modes[0], &u.modes[1]
	if tr.allowed.Load() != 2 || tr.blocked.Load() != 1 || ex.allowed.Load() != 1 || ex.monitored.Load() != 1 {
		t.Errorf("mode counters: transparent %d/%d/%d explicit %d/%d/%d",
			tr.allowed.Load(), tr.monitored.Load(), tr.blocked.Load(), ex.allowed.Load(), ex.monitored.Load(), ex.blocked.Load())
	}
}

// TestSnapshotDeclared checks that every instance the provider serves is an
// instance of an object declared in snmp.Objects (which the snmp package's
// TestMIBMatchesCode checks against the MIB), of the right kind, and that
// the snapshot is in OID order with no duplicates.
func TestSnapshotDeclared(t *testing.T) {
	r, act := usageFixture(t)
	feedUsage(t, r)
	src := &snmpSources{version: "test", started: time.Now(), proxy: &proxy.Stats{}, activity: act.store, usage: r.usage}
	declared := map[string]snmp.Kind{}
	for _, o := range snmp.Objects {
		declared[o.OID.String()] = o.Kind
	}
	vs := src.snapshot()
	for i, v := range vs {
		if i > 0 && vs[i-1].OID.Compare(v.OID) >= 0 {
			t.Errorf("snapshot out of order at %v after %v", v.OID, vs[i-1].OID)
		}
		obj, last := v.OID[:len(v.OID)-1], v.OID[len(v.OID)-1]
		switch kind, ok := declared[obj.String()]; {
		case !ok:
			t.Errorf("%v served but not declared", v.OID)
		case kind == snmp.KindScalar && last != 0:
			t.Errorf("%v: scalar instance must end in .0", v.OID)
		case kind != snmp.KindScalar && kind != snmp.KindColumn:
			t.Errorf("%v: kind %d is not served", v.OID, kind)
		}
	}
	if len(vs) < 40 {
		t.Errorf("only %d instances served", len(vs))
	}
}

func TestRateLimited(t *testing.T) {
	type sent struct {
		reason string
		n      uint64
		at     time.Time
	}
	var mu sync.Mutex
	var got []sent
	connected := false
	r := &rateLimited{interval: 300 * time.Millisecond, send: func(reason string, n uint64) error {
		mu.Lock()
		defer mu.Unlock()
		if !connected {
			connected = true // the first attempt finds snmpd away
			return snmp.ErrNotConnected
		}
		got = append(got, sent{reason, n, time.Now()})
		return nil
	}}
	defer r.close()
	start := time.Now()
	r.add("a", 1) // attempted at once, fails, requeued
	r.add("b", 2)
	r.add("c", 4)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond) // nothing more may come
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].n != 7 || got[0].reason != "c" {
		t.Fatalf("sent %+v, want one notification with count 7 (reason c)", got)
	}
	if d := got[0].at.Sub(start); d < 250*time.Millisecond {
		t.Errorf("second notification after %v, want >= the 300ms interval", d)
	}
}

// TestSNMPWalkAppliance runs the appliance's SNMP service against a real
// snmpd: a walk over SNMPv3 authPriv sees the real counters and the per-app
// rows, and fail-open notifications arrive at snmptrapd rate-limited, the
// burst summed into the second one.
func TestSNMPWalkAppliance(t *testing.T) {
	lab.RequireRoot(t)
	trapAddr, trapLog := startTestTrapd(t)
	sock, addr := startTestSnmpd(t, trapAddr)

	r, act := usageFixture(t)
	feedUsage(t, r)
	stats := &proxy.Stats{}
	stats.ConnsAccepted.Add(12)
	stats.Requests.Add(5)
	stats.RequestsBlocked.Add(1)
	src := &snmpSources{version: "v9.9.9-test", started: time.Now().Add(-time.Minute), proxy: stats, activity: act.store, usage: r.usage, failOpen: true}
	svc := newSNMPService(SNMPConfig{AgentXSocket: sock, Reconnect: 200 * time.Millisecond, NotifyInterval: 2 * time.Second}, src,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	registered := make(chan struct{}, 1)
	svc.sub.OnRegistered = func() {
		select {
		case registered <- struct{}{}:
		default:
		}
	}
	svc.start()
	t.Cleanup(svc.stop)
	select {
	case <-registered:
	case <-time.After(10 * time.Second):
		t.Fatal("subagent did not register with snmpd")
	}

	out := snmpwalk(t, addr, snmp.EnterpriseRoot.String())
	oid := func(o snmp.OID, suffix string) string { return "." + o.String() + suffix + " " }
	for _, want := range []string{
		oid(snmp.ObjVersion, ".0") + `"v9.9.9-test"`,
		oid(snmp.ObjFailMode, ".0") + "2",
		oid(snmp.ObjDatapathAttached, ".0") + "2", // no datapath in this test
		oid(snmp.ObjProxyConnections, ".0") + "12",
		oid(snmp.ObjProxyRequestsBlocked, ".0") + "1",
		oid(snmp.ColModeName, ".2") + `"explicit"`,
		oid(snmp.ColModeAllowed, ".1") + "2",
		oid(snmp.ColAppID, ".1") + `"slack"`,
		oid(snmp.ColAppID, ".2") + `"sharepoint"`,
		oid(snmp.ColAppRequests, ".1") + "3",
		oid(snmp.ColAppBlocked, ".1") + "1",
		oid(snmp.ColAppBytesDown, ".2") + "70000",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("walk lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("walk:\n%s", out)
	}

	a := &Appliance{snmp: svc}
	a.notifyFailOpen("test: no listener", 1)
	a.notifyFailOpen("test: no listener", 2)
	a.notifyFailOpen("test: no listener", 3)
	a.notifyAlert("block-downloads", policy.SeverityHigh, "alice", "slack", "download blocked")
	count := "." + snmp.ObjFailOpenCount.String() + ".0 = Gauge32: "
	waitForFile(t, trapLog, 15*time.Second, []string{
		count + "1\n",
		count + "5\n",
		"." + snmp.ObjAlertApp.String() + `.0 = STRING: "slack"`,
	})
	b, _ := os.ReadFile(trapLog)
	if n := strings.Count(string(b), "= OID: ."+snmp.TrapFailOpen.String()); n != 2 {
		t.Errorf("%d fail-open notifications, want 2 (rate-limited):\n%s", n, b)
	}
}

// TestSNMPApplianceEndToEnd runs the real appliance binary on the lab
// gateway with snmp.agentx_socket set: traffic through the datapath and the
// proxy shows up in a walk (datapath attached and steering, the origin-lab
// app row with its blocked download), and stopping the appliance removes
// the subtree from snmpd.
func TestSNMPApplianceEndToEnd(t *testing.T) {
	lab.RequireRoot(t)
	sock, addr := startTestSnmpd(t, "")
	polDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(polDir, "lab.yaml"), []byte(blockDownloadsPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newE2ELab(t, "policy:\n  dir: "+polDir+"\nsnmp:\n  agentx_socket: "+sock+"\n  reconnect: 200ms\n")
	l.start()
	c := l.client(netip.AddrPortFrom(originGood, 443), pool(l.applianceCA()), false)
	if resp, _ := fetch(t, c, "https://origin.lab/files/report.pdf"); resp.StatusCode != 403 {
		t.Fatalf("download: status %d, want 403 from the policy", resp.StatusCode)
	}
	if resp, _ := fetch(t, c, "https://origin.lab/"); resp.StatusCode != 200 {
		t.Fatalf("page: status %d", resp.StatusCode)
	}
	oid := func(o snmp.OID, suffix string) string { return "." + o.String() + suffix + " " }
	wants := []string{
		oid(snmp.ColAppID, ".1") + `"origin-lab"`,
		oid(snmp.ColAppRequests, ".1") + "2",
		oid(snmp.ColAppBlocked, ".1") + "1",
		oid(snmp.ColModeBlocked, ".1") + "1",
		oid(snmp.ObjDatapathAttached, ".0") + "1",
		oid(snmp.ObjFailMode, ".0") + "1",
	}
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for {
		out = snmpwalk(t, addr, snmp.EnterpriseRoot.String())
		missing := ""
		for _, w := range wants {
			if !strings.Contains(out, w+"\n") {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("walk lacks %q after 20s:\n%s\nappliance log:\n%s", missing, out, l.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	var steered uint64
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, oid(snmp.ObjDpSteered, ".0")); ok {
			_, _ = fmt.Sscan(v, &steered)
		}
	}
	if steered == 0 {
		t.Errorf("pcDpSteered is 0 after steered connections:\n%s", out)
	}

	l.stop(syscall.SIGTERM)
	if out = snmpwalk(t, addr, snmp.EnterpriseRoot.String()); strings.Contains(out, "."+snmp.EnterpriseRoot.String()+".") {
		t.Errorf("subtree still served after the appliance stopped:\n%s", out)
	}
}

// TestSNMPFailOpenWhileDownEndToEnd kills a fail-open appliance, sends
// traffic the pinned datapath forwards uninspected, restarts it, and expects
// portcullisFailOpen at snmptrapd saying so, with the packet count.
func TestSNMPFailOpenWhileDownEndToEnd(t *testing.T) {
	lab.RequireRoot(t)
	trapAddr, trapLog := startTestTrapd(t)
	sock, _ := startTestSnmpd(t, trapAddr)
	l := newE2ELab(t, "snmp:\n  agentx_socket: "+sock+"\n  reconnect: 200ms\n  notify_interval: 1s\n")
	b, _ := os.ReadFile(l.cfgPath)
	b = []byte(strings.Replace(string(b), "  pin_dir:", "  fail_open: true\n  pin_dir:", 1))
	if err := os.WriteFile(l.cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l.start()
	seen := filepath.Join(l.dir, "state", "snmp-failopen-seen")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(seen); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written:\n%s", seen, l.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.stop(syscall.SIGKILL)

	good := netip.AddrPortFrom(originGood, 443)
	c := l.client(good, pool(l.labCA.Cert), false)
	c.Timeout = 3 * time.Second
	resp, err := c.Get("https://origin.lab/")
	if err != nil {
		t.Fatalf("fail-open: %v", err)
	}
	resp.Body.Close()
	if iss := resp.TLS.PeerCertificates[0].Issuer.CommonName; iss != "lab origin CA" {
		t.Fatalf("fail-open: issuer %q, want the origin's own (unsteered)", iss)
	}
	c.CloseIdleConnections()

	l.start()
	reason := "." + snmp.ObjFailOpenReason.String() + `.0 = STRING: "` + reasonFailOpenDown + `"`
	waitForFile(t, trapLog, 15*time.Second, []string{reason})
	tl, _ := os.ReadFile(trapLog)
	var count uint64
	for _, line := range strings.Split(string(tl), "\n") {
		if !strings.Contains(line, reason) {
			continue
		}
		_, v, _ := strings.Cut(line, "."+snmp.ObjFailOpenCount.String()+".0 = Gauge32: ")
		_, _ = fmt.Sscan(v, &count)
	}
	// The TLS session alone is several packets: SYN, handshake, data, FIN.
	if count < 5 {
		t.Errorf("pcFailOpenCount %d, want the forwarded packets (>= 5):\n%s", count, tl)
	}
	t.Logf("portcullisFailOpen count after one uninspected HTTPS request: %d", count)
}

const (
	testSnmpUser = "portcullis-test"
	testSnmpAuth = "auth-pass-3141"
	testSnmpPriv = "priv-pass-3141"
)

func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// startDaemon runs a net-snmp daemon in the foreground with only the given
// configuration and waits until ready() is true.
func startDaemon(t *testing.T, tool, cfg string, args []string, ready func(dir string) bool) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: apt-get install snmpd snmptrapd", tool)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, tool+".conf")
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	persist := filepath.Join(dir, "persist")
	if err := os.Mkdir(persist, 0o700); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "log")
	cmd := exec.Command(p, append([]string{"-f", "-C", "-c", conf, "-Lf", logFile, "-p", filepath.Join(dir, "pid"), "-M", dir, "-m", ""}, args...)...)
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+persist, "SNMPCONFPATH="+dir, "MIBS=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("%s log:\n%s", tool, b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !ready(dir) {
		select {
		case <-exited:
			b, _ := os.ReadFile(logFile)
			t.Fatalf("%s exited at startup:\n%s", tool, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 10s", tool)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return dir
}

// startTestSnmpd: AgentX master on a temp socket, SNMPv3 authPriv only, and
// informs to the trap receiver if trapAddr is set.
func startTestSnmpd(t *testing.T, trapAddr string) (sock, addr string) {
	addr = freeUDP(t)
	sockDir := t.TempDir()
	sock = filepath.Join(sockDir, "master")
	cfg := fmt.Sprintf(`master agentx
agentXSocket %s
agentaddress udp:%s
createUser %s SHA-256 "%s" AES "%s"
rouser %s priv
`, sock, addr, testSnmpUser, testSnmpAuth, testSnmpPriv, testSnmpUser)
	if trapAddr != "" {
		cfg += fmt.Sprintf("trapsess -v3 -Ci -l authPriv -u %s -a SHA-256 -A \"%s\" -x AES -X \"%s\" udp:%s\n",
			testSnmpUser, testSnmpAuth, testSnmpPriv, trapAddr)
	}
	startDaemon(t, "snmpd", cfg, nil, func(string) bool { _, err := os.Stat(sock); return err == nil })
	return sock, addr
}

func startTestTrapd(t *testing.T) (addr, logFile string) {
	addr = freeUDP(t)
	cfg := fmt.Sprintf("createUser %s SHA-256 \"%s\" AES \"%s\"\nauthUser log %s priv\n", testSnmpUser, testSnmpAuth, testSnmpPriv, testSnmpUser)
	dir := startDaemon(t, "snmptrapd", cfg, []string{"-On", "udp:" + addr}, func(dir string) bool {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		return strings.Contains(string(b), "NET-SNMP version")
	})
	return addr, filepath.Join(dir, "log")
}

func snmpwalk(t *testing.T, addr, root string) string {
	t.Helper()
	out, err := snmpV3(t, "snmpwalk", addr, testSnmpUser, "SHA-256", testSnmpAuth, testSnmpPriv, root)
	if err != nil {
		t.Fatalf("snmpwalk: %v\n%s", err, out)
	}
	return out + "\n"
}

func waitForFile(t *testing.T, path string, d time.Duration, wants []string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(path)
		missing := ""
		for _, w := range wants {
			if !strings.Contains(string(b), w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s lacks %q after %v:\n%s", path, missing, d, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFailOpenWatcher drives the watcher with datapath counter readings:
// packets forwarded uninspected while the appliance was down are reported
// at the first look (from the persisted count), increases while running
// after that, and recreated maps (counters below the stored count) are not
// mistaken for events.
func TestFailOpenWatcher(t *testing.T) {
	seen := filepath.Join(t.TempDir(), "seen")
	if err := os.WriteFile(seen, []byte("10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var counters agent.Counters
	type event struct {
		reason string
		n      uint64
	}
	events := make(chan event, 10)
	svc := &snmpService{log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		src: &snmpSources{datapath: func() (agent.Counters, error) { return counters, nil }}}
	svc.failOpen = &rateLimited{interval: time.Millisecond, send: func(r string, n uint64) error {
		events <- event{r, n}
		return nil
	}}
	defer svc.failOpen.close()
	expect := func(want event) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("notified %+v, want %+v", got, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("no notification, want %+v", want)
		}
	}
	quiet := func() {
		t.Helper()
		select {
		case got := <-events:
			t.Fatalf("unexpected notification %+v", got)
		case <-time.After(100 * time.Millisecond):
		}
	}

	counters.NoListenerPassed, counters.OrphanPassed = 15, 2
	w := &watcher{svc: svc, seenFile: seen}
	w.step()
	expect(event{reasonFailOpenDown, 7})
	w.step()
	quiet()
	counters.OrphanPassed += 3
	w.step()
	expect(event{reasonFailOpenRunning, 3})
	if n, ok := readSeen(seen); !ok || n != 20 {
		t.Fatalf("persisted %d %v, want 20", n, ok)
	}

	// Restart with recreated maps: counters start again below the stored count.
	counters = agent.Counters{NoListenerPassed: 5}
	w = &watcher{svc: svc, seenFile: seen}
	w.step()
	quiet()
	if n, _ := readSeen(seen); n != 5 {
		t.Fatalf("persisted %d after a counter reset, want 5", n)
	}
}

// BenchmarkUsageObserve is the cost the per-app counters add to every
// request record (app lookup by the policy engine included); the baseline
// is the same loop without the counting.
func BenchmarkUsageObserve(b *testing.B) {
	e, err := policy.Compile(&policy.PolicySet{})
	if err != nil {
		b.Fatal(err)
	}
	pe := &policyEnforcer{}
	pe.engine.Store(e)
	appOf := appOfPolicies(pe)
	u := newUsageCounters()
	rec := record(proxy.ModeTransparent, "app.slack.com", "allow", 100, 1000)
	b.Run("baseline-appOf", func(b *testing.B) {
		for b.Loop() {
			_ = appOf(rec.Host)
		}
	})
	b.Run("appOf+observe", func(b *testing.B) {
		for b.Loop() {
			u.observe(&rec, appOf(rec.Host))
		}
	})
}

// BenchmarkSnapshot is the provider's cost per AgentX request PDU with 50
// app rows.
func BenchmarkSnapshot(b *testing.B) {
	u := newUsageCounters()
	for i := range 50 {
		u.app(fmt.Sprintf("app-%02d", i)).requests.Add(1)
	}
	src := &snmpSources{version: "bench", started: time.Now(), proxy: &proxy.Stats{}, usage: u}
	for b.Loop() {
		_ = src.snapshot()
	}
}
