package appliance

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-gw/portcullis/agent"
	"github.com/portcullis-gw/portcullis/internal/lab"
)

// Start-up on the hosts users have: every step after the CA may fail and
// must leave nothing behind, and listener setup serves the address families
// the host has.

// startNS is a namespace with an interface "if0" for the datapath, as the
// appliance's LAN interface.
func startNS(t *testing.T) *lab.NS {
	t.Helper()
	ns := lab.NewNS(t, "s")
	ns.IP("link", "add", "if0", "type", "veth", "peer", "name", "if1")
	ns.IP("link", "set", "if0", "up")
	return ns
}

func sysctlIn(t *testing.T, ns *lab.NS, settings ...string) {
	t.Helper()
	for _, s := range settings {
		if out, err := ns.Exec(t.Context(), "sysctl", "-qw", s); err != nil {
			t.Fatalf("sysctl %s: %v: %s", s, err, out)
		}
	}
}

var noIPv6 = []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.lo.disable_ipv6=1"}

// startPinDir is a unique pin directory on the host's bpffs (startConfig's
// cleanup removes it).
func startPinDir() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return filepath.Join("/sys/fs/bpf", "portcullis-apptest-"+hex.EncodeToString(b[:]))
}

// freePort returns a TCP port nothing in ns listens on.
func freePort(t *testing.T, ns *lab.NS) int {
	t.Helper()
	ln, err := ns.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startConfig is the default configuration with its state, ports and pins
// made the test's own; the datapath attaches to if0 and detaches on stop.
func startConfig(t *testing.T, ns *lab.NS) *Config {
	t.Helper()
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir = t.TempDir()
	cfg.Log.Access = filepath.Join(cfg.StateDir, "access.log")
	tp := strconv.Itoa(freePort(t, ns))
	cfg.Transparent.ListenV4 = "127.0.0.1:" + tp
	cfg.Transparent.ListenV6 = "[::1]:" + tp
	cfg.Management.Listen = "127.0.0.1:" + strconv.Itoa(freePort(t, ns))
	cfg.Datapath.Interface = "if0"
	cfg.Datapath.PinDir = startPinDir()
	cfg.Datapath.OnStop = "detach"
	t.Cleanup(func() { _ = ns.Do(func() error { return agent.Remove(agentConfig(cfg.Datapath)) }) })
	return cfg
}

// syncBuffer is a log destination for the appliance's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newIn runs New in ns, where its listeners and datapath then live.
func newIn(t *testing.T, ns *lab.NS, cfg *Config) (*Appliance, string, error) {
	t.Helper()
	var log syncBuffer
	var a *Appliance
	err := ns.Do(func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("New panicked: %v", r)
				t.Errorf("%v", err)
			}
		}()
		a, err = New(cfg, &log)
		return err
	})
	return a, log.String(), err
}

// stopIn releases a started appliance as Run's shutdown does.
func stopIn(t *testing.T, ns *lab.NS, a *Appliance) {
	t.Helper()
	if err := ns.Do(func() error { a.undoStart(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// requireStartLeftNothing checks that a failed New released its listeners
// (their addresses, but the one the test occupied, can be bound again) and
// left no datapath: no pins, no policy routing, no clsact qdisc.
func requireStartLeftNothing(t *testing.T, ns *lab.NS, cfg *Config, occupied string) {
	t.Helper()
	for _, addr := range []string{cfg.Transparent.ListenV4, cfg.Transparent.ListenV6, cfg.Management.Listen, cfg.Explicit.Listen} {
		if addr == occupied {
			continue
		}
		ln, err := ns.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken after the failed start: %v", addr, err)
			continue
		}
		ln.Close()
	}
	if _, err := os.Stat(cfg.Datapath.PinDir); !os.IsNotExist(err) {
		t.Errorf("pins left at %s (%v)", cfg.Datapath.PinDir, err)
	}
	if out := ns.IP("rule", "show"); strings.Contains(out, "fwmark") {
		t.Errorf("policy routing left:\n%s", out)
	}
	if out, _ := ns.Exec(t.Context(), "tc", "qdisc", "show", "dev", "if0"); strings.Contains(string(out), "clsact") {
		t.Errorf("clsact qdisc left:\n%s", out)
	}
}

// Every start-up step after the CA can fail; each failure is returned with
// its cause (never a panic) and undoes everything done before it.
func TestStartFailureUndoesEverything(t *testing.T) {
	ns := startNS(t)
	// Each case breaks one step; it returns the address it occupied, if any.
	cases := []struct {
		name string
		fail func(t *testing.T, cfg *Config) (occupied string)
		want string
	}{
		{"upstream roots unreadable", func(t *testing.T, cfg *Config) string {
			cfg.Upstream.ExtraRoots = []string{filepath.Join(t.TempDir(), "missing.pem")}
			return ""
		}, "upstream.extra_roots"},
		{"policy directory missing", func(t *testing.T, cfg *Config) string {
			cfg.Policy.Dir = filepath.Join(t.TempDir(), "no-policies")
			return ""
		}, "policy.dir"},
		{"activity store cannot be created", func(t *testing.T, cfg *Config) string {
			f := filepath.Join(t.TempDir(), "a-file")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg.Activity.Path = filepath.Join(f, "activity.db")
			return ""
		}, "activity"},
		{"access log cannot be opened", func(t *testing.T, cfg *Config) string {
			cfg.Log.Access = filepath.Join(t.TempDir(), "missing-dir", "access.log")
			return ""
		}, "log.access"},
		{"transparent port in use", func(t *testing.T, cfg *Config) string {
			return occupy(t, ns, cfg.Transparent.ListenV6)
		}, "transparent.listen_v6"},
		{"explicit port in use", func(t *testing.T, cfg *Config) string {
			cfg.Explicit.Enabled = true
			cfg.Explicit.Listen = "127.0.0.1:" + strconv.Itoa(freePort(t, ns))
			return occupy(t, ns, cfg.Explicit.Listen)
		}, "explicit listener"},
		{"management port in use", func(t *testing.T, cfg *Config) string {
			return occupy(t, ns, cfg.Management.Listen)
		}, "management listener"},
		{"datapath interface missing", func(t *testing.T, cfg *Config) string {
			cfg.Datapath.Interface = "nosuch0"
			return ""
		}, "datapath: interface nosuch0"},
		{"datapath tc slot taken", func(t *testing.T, cfg *Config) string {
			cfg.Datapath.Attach = "tc"
			if out, err := ns.Exec(t.Context(), "tc", "qdisc", "add", "dev", "if0", "clsact"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			// Another tool's (classic BPF) filter in the datapath's slot.
			if out, err := ns.Exec(t.Context(), "tc", "filter", "add", "dev", "if0", "ingress", "pref", "124", "handle", "0x7c",
				"bpf", "bytecode", "1,6 0 0 4294967295,", "classid", "1:1"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			return ""
		}, "not Portcullis's"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := startConfig(t, ns)
			occupied := c.fail(t, cfg)
			a, log, err := newIn(t, ns, cfg)
			if err == nil {
				stopIn(t, ns, a)
				t.Fatal("New succeeded")
			}
			if a != nil {
				t.Error("New returned an appliance with its error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: %v, want the cause naming %q", err, c.want)
			}
			t.Logf("New failed as intended: %v", err)
			if strings.Contains(c.name, "tc slot") {
				// The foreign filter and its qdisc are not ours to remove.
				if out, _ := ns.Exec(t.Context(), "tc", "filter", "show", "dev", "if0", "ingress"); !strings.Contains(string(out), "bytecode") {
					t.Errorf("the foreign filter was removed:\n%s\n%s", out, log)
				}
				_, _ = ns.Exec(t.Context(), "tc", "qdisc", "del", "dev", "if0", "clsact")
			}
			requireStartLeftNothing(t, ns, cfg, occupied)
		})
	}
}

// occupy keeps addr bound in ns until the test ends, and returns it.
func occupy(t *testing.T, ns *lab.NS, addr string) string {
	t.Helper()
	ln, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return addr
}

// A failed start leaves a datapath it found pinned (a previous run's) as it
// was: it is attached last, so an earlier failure never reaches it.
func TestStartFailureKeepsPreviousDatapath(t *testing.T) {
	ns := startNS(t)
	cfg := startConfig(t, ns)
	var prev *agent.Agent
	if err := ns.Do(func() (err error) { prev, err = agent.Start(agentConfig(cfg.Datapath)); return }); err != nil {
		t.Fatal(err)
	}
	if err := prev.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.Readlink(filepath.Join(cfg.Datapath.PinDir, "attach"))
	if err != nil {
		t.Fatal(err)
	}
	occupy(t, ns, cfg.Management.Listen)
	if _, _, err := newIn(t, ns, cfg); err == nil || !strings.Contains(err.Error(), "management listener") {
		t.Fatalf("New: %v, want the management listener's failure", err)
	}
	if after, err := os.Readlink(filepath.Join(cfg.Datapath.PinDir, "attach")); err != nil || after != before {
		t.Errorf("previous datapath's pins changed: %q (%v), want %q", after, err, before)
	}
}

// Listener setup serves what the host has: without IPv6 (disabled in the
// namespace) the transparent proxy serves IPv4 and the datapath routes IPv4
// only; without an IPv4 address on loopback it serves IPv6 and the
// management endpoint moves to [::1]; with neither it refuses to start,
// saying why. Each runs with the datapath as the default chooses (route
// steering) and with tc steering forced.
func TestListenersServeTheFamiliesTheHostHas(t *testing.T) {
	for _, mode := range []string{"auto", "tc"} {
		t.Run("no IPv6/attach "+mode, func(t *testing.T) {
			ns := startNS(t)
			sysctlIn(t, ns, noIPv6...)
			cfg := startConfig(t, ns)
			cfg.Datapath.Attach = mode
			a, log, err := newIn(t, ns, cfg)
			if err != nil {
				t.Fatalf("New: %v\n%s", err, log)
			}
			defer stopIn(t, ns, a)
			requireServed(t, a, log, "127.0.0.1", `transparent proxy serves IPv4"`, "does not serve IPv6")
			requireAttached(t, a, log, mode, false)
		})
		t.Run("no IPv4 on loopback/attach "+mode, func(t *testing.T) {
			ns := startNS(t)
			ns.IP("addr", "del", "127.0.0.1/8", "dev", "lo")
			cfg := startConfig(t, ns)
			cfg.Datapath.Attach = mode
			a, log, err := newIn(t, ns, cfg)
			if err != nil {
				t.Fatalf("New: %v\n%s", err, log)
			}
			defer stopIn(t, ns, a)
			requireServed(t, a, log, "::1", `transparent proxy serves IPv6"`, "does not serve IPv4")
			if addr := a.ManagementAddr(); !strings.HasPrefix(addr, "[::1]:") || !strings.Contains(log, "management.listen listens on [::1]") {
				t.Errorf("management on %s, want [::1] and the move logged:\n%s", addr, log)
			}
			requireAttached(t, a, log, mode, true)
		})
	}
	t.Run("config names no IPv4", func(t *testing.T) {
		ns := startNS(t)
		ns.IP("addr", "del", "127.0.0.1/8", "dev", "lo")
		cfg := startConfig(t, ns)
		cfg.Transparent.ListenV4 = ""
		cfg.Management.Listen = "[::1]:" + strconv.Itoa(freePort(t, ns))
		a, log, err := newIn(t, ns, cfg)
		if err != nil {
			t.Fatalf("New: %v\n%s", err, log)
		}
		defer stopIn(t, ns, a)
		requireServed(t, a, log, "::1", `transparent proxy serves IPv6"`, "")
	})
	t.Run("neither family", func(t *testing.T) {
		ns := startNS(t)
		sysctlIn(t, ns, noIPv6...)
		ns.IP("addr", "del", "127.0.0.1/8", "dev", "lo")
		cfg := startConfig(t, ns)
		_, log, err := newIn(t, ns, cfg)
		if err == nil || !strings.Contains(err.Error(), "no address family can be served") ||
			!strings.Contains(err.Error(), "transparent.listen_v4") || !strings.Contains(err.Error(), "transparent.listen_v6") {
			t.Fatalf("New: %v, want a refusal naming both listeners\n%s", err, log)
		}
		if _, err := os.Stat(cfg.Datapath.PinDir); !os.IsNotExist(err) {
			t.Errorf("pins left at %s (%v)", cfg.Datapath.PinDir, err)
		}
	})
}

// requireServed checks the appliance has one transparent listener, on host,
// and logged which family it serves and which it skipped.
func requireServed(t *testing.T, a *Appliance, log, host, served, skipped string) {
	t.Helper()
	if len(a.transparent) != 1 {
		t.Fatalf("transparent listeners %v, want one", a.transparent)
	}
	if h, _, _ := net.SplitHostPort(a.transparent[0].Addr().String()); h != host {
		t.Errorf("transparent listener on %s, want %s", a.transparent[0].Addr(), host)
	}
	if !strings.Contains(log, served) || (skipped != "" && !strings.Contains(log, skipped)) {
		t.Errorf("log does not say %q and %q:\n%s", served, skipped, log)
	}
}

// requireAttached checks the datapath is attached in the mode asked for (auto
// is TCX on the kernels tests run on), that start-up logged it, and that
// /metrics exports it.
func requireAttached(t *testing.T, a *Appliance, log, mode string, ipv6 bool) {
	t.Helper()
	// auto on a fail-closed configuration (the default) is route steering:
	// the sk_lookup program; a forced hook is tc steering on it.
	want := agent.AttachTC
	switch mode {
	case "auto":
		want = agent.AttachSkLookup
	case "tcx":
		want = agent.AttachTCX
	}
	if a.datapath == nil {
		t.Fatal("no datapath")
	}
	at := a.datapath.Attachment()
	if at.Mode != want || at.IPv6 != ipv6 {
		t.Errorf("attachment %+v, want %s with IPv6 routing %v", at, want, ipv6)
	}
	if !strings.Contains(log, "datapath attached") || !strings.Contains(log, "mode="+string(want)) {
		t.Errorf("start-up log does not report the attach mode:\n%s", log)
	}
	mfs, err := a.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		if mf.GetName() != "portcullis_datapath_attach_mode" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				got = append(got, fmt.Sprintf("%s=%s %v", l.GetName(), l.GetValue(), m.GetGauge().GetValue()))
			}
		}
	}
	if len(got) != 1 || got[0] != "mode="+string(want)+" 1" {
		t.Errorf("portcullis_datapath_attach_mode: %v, want mode=%s 1", got, want)
	}
}

func TestOtherLoopback(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9780": "[::1]:9780",
		"[::1]:3128":     "127.0.0.1:3128",
		"127.0.0.2:1":    "[::1]:1",
		"198.18.1.1:80":  "",
		"[::]:443":       "",
		"nonsense":       "",
	} {
		got, ok := otherLoopback(in)
		if got != want || ok != (want != "") {
			t.Errorf("otherLoopback(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestDatapathAttachSetting(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Datapath.Attach != "auto" || agentConfig(cfg.Datapath).Attach != agent.AttachAuto {
		t.Errorf("default datapath.attach %q, want auto", cfg.Datapath.Attach)
	}
	for _, v := range []string{"tcx", "tc"} {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte("datapath:\n  attach: "+v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(p)
		if err != nil || agentConfig(cfg.Datapath).Attach != agent.AttachMode(v) {
			t.Errorf("attach %s: %v", v, err)
		}
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("datapath:\n  attach: xdp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), `datapath.attach: "xdp" is not one of auto, tcx, tc`) {
		t.Errorf("attach xdp: %v", err)
	}
}
