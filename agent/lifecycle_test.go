package agent

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// Close leaves the datapath running; the next Start takes it over, reusing
// compatible maps and replacing incompatible ones; Remove clears it all.
func TestLifecycleTakeoverAndRemove(t *testing.T) {
	for _, mode := range steeringModes {
		t.Run(string(mode), func(t *testing.T) { testLifecycleTakeoverAndRemove(t, mode) })
	}
}

func testLifecycleTakeoverAndRemove(t *testing.T, mode AttachMode) {
	ns := quietNS(t)
	cfg := withMode(Config{Interface: "if0", PinDir: testPinDir(t)}, mode)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	first := startIn(t, ns, cfg)
	if err := first.objs.Counters.Update(counterKey(0, steerCounterCOUNTER_STEERED), uint64(41), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := first.Counters(); !errors.Is(err, ErrClosed) {
		t.Errorf("Counters after Close: %v, want ErrClosed", err)
	}
	waitSteering(t, ns, "if0", mode, 1) // still attached: by its pin (TCX, sk_lookup) or its filter (tc)
	if rules, routes := routingLeft(t, ns, cfg); len(rules) != tableRules(mode) || len(routes) != 2 {
		t.Errorf("routing after Close: %d rules %d routes, want %d and 2", len(rules), len(routes), tableRules(mode))
	}

	// Takeover with compatible maps: state carries over, one program stays.
	second := startIn(t, ns, cfg)
	waitSteering(t, ns, "if0", mode, 1)
	if c, err := second.Counters(); err != nil || c.Steered != 41 {
		t.Errorf("counters after takeover: %+v, %v; want Steered 41 carried over", c, err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}

	// An upgrade that changed a map: the pinned one is incompatible, so the
	// new datapath starts with fresh maps.
	old := filepath.Join(cfg.PinDir, steerMapCounters)
	if err := os.Remove(old); err != nil {
		t.Fatal(err)
	}
	other, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Pin(old); err != nil {
		t.Fatal(err)
	}
	third := startIn(t, ns, cfg)
	waitSteering(t, ns, "if0", mode, 1)
	if c, err := third.Counters(); err != nil || c.Steered != 0 {
		t.Errorf("counters after upgrade: %+v, %v; want fresh", c, err)
	}
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}

	if rec, ok, err := readRecord(cfg.PinDir); err != nil || !ok || rec.mode != mode {
		t.Errorf("attach record %+v, %v, %v: want mode %s", rec, ok, err, mode)
	}
	// Without the interface: the attach record says where the tc filter is.
	if err := ns.Do(func() error { return Remove(Config{PinDir: cfg.PinDir}) }); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	requireNothingLeft(t, ns, "if0", cfg)
	if err := ns.Do(func() error { return Remove(Config{PinDir: cfg.PinDir}) }); err != nil {
		t.Errorf("Remove with nothing left: %v", err)
	}
}

// A Start that fails once the program is attached leaves nothing of its own
// behind: on a first start nothing at all, and a datapath it was taking over
// (of either mode) exactly as it was.
func TestStartUndoesPartialWork(t *testing.T) {
	failAfterAttach(t)
	for _, mode := range steeringModes {
		t.Run(string(mode)+"/first start", func(t *testing.T) {
			ns := quietNS(t)
			cfg := withMode(Config{Interface: "if0", PinDir: testPinDir(t)}, mode)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			expectStartFails(t, ns, cfg)
			requireNothingLeft(t, ns, "if0", cfg)
		})
		for _, prevMode := range steeringModes {
			t.Run(string(mode)+"/taking over "+string(prevMode), func(t *testing.T) {
				ns := quietNS(t)
				cfg := withMode(Config{Interface: "if0", PinDir: testPinDir(t)}, prevMode)
				if err := cfg.Validate(); err != nil {
					t.Fatal(err)
				}
				hookMu.Lock()
				failing = false
				hookMu.Unlock()
				prev := startIn(t, ns, cfg)
				if err := prev.Close(); err != nil {
					t.Fatal(err)
				}
				before := attachedProgramIDs(t, ns, "if0")
				pinsBefore := pinNames(t, cfg.PinDir)
				rec, _, _ := readRecord(cfg.PinDir)
				hookMu.Lock()
				failing = true
				hookMu.Unlock()

				next := withMode(cfg, mode)
				expectStartFails(t, ns, next)
				waitSteering(t, ns, "if0", prevMode, 1)
				if after := attachedProgramIDs(t, ns, "if0"); !slices.Equal(after, before) {
					t.Errorf("programs attached %v, want the previous generation's %v", after, before)
				}
				if after := pinNames(t, cfg.PinDir); !slices.Equal(after, pinsBefore) {
					t.Errorf("pins %v, want %v", after, pinsBefore)
				}
				if after, _, _ := readRecord(cfg.PinDir); after != rec {
					t.Errorf("attach record %v, want %v", after, rec)
				}
				if tc := tcOf(t, ns, "if0"); tc.clsact != (prevMode == AttachTC) {
					t.Errorf("clsact qdisc present: %v, want %v", tc.clsact, prevMode == AttachTC)
				}
				if rules, routes := routingLeft(t, ns, cfg); len(rules) != tableRules(prevMode) || len(routes) != 2 {
					t.Errorf("routing: %d rules %d routes, want the previous %d and 2", len(rules), len(routes), tableRules(prevMode))
				}
				if err := ns.Do(func() error { return Remove(cfg) }); err != nil {
					t.Fatal(err)
				}
				requireNothingLeft(t, ns, "if0", cfg)
			})
		}
	}
}

var (
	hookMu  sync.Mutex
	failing bool
)

// failAfterAttach makes Start fail right after attaching, while failing is
// set, until the test ends.
func failAfterAttach(t *testing.T) {
	hookMu.Lock()
	failing = true
	hookMu.Unlock()
	testHookAfterAttach = func(AttachMode) error {
		hookMu.Lock()
		defer hookMu.Unlock()
		if failing {
			return errors.New("injected failure after attach")
		}
		return nil
	}
	t.Cleanup(func() { testHookAfterAttach = nil })
}

func expectStartFails(t *testing.T, ns *lab.NS, cfg Config) {
	t.Helper()
	err := ns.Do(func() error {
		a, err := Start(cfg)
		if err == nil {
			_ = a.Detach()
			return errors.New("Start succeeded despite the injected failure")
		}
		t.Logf("Start failed as intended: %v", err)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func pinNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A pin directory off bpffs is refused before anything is attached, with
// the way to fix it.
func TestStartRefusesPinDirOffBPFFS(t *testing.T) {
	ns := quietNS(t)
	cfg := Config{Interface: "if0", PinDir: filepath.Join(t.TempDir(), "pins")}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	err := ns.Do(func() error { _, err := Start(cfg); return err })
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "mount -t bpf") {
		t.Errorf("Start: %v, want ErrInvalidConfig saying how to mount bpffs", err)
	}
	requireNothingLeft(t, ns, "if0", cfg)
}

func TestStartRejectsBadConfig(t *testing.T) {
	lab.RequireRoot(t)
	cases := map[string]Config{
		"no interface":     {},
		"port 0":           {Interface: "lan0", InterceptPorts: []uint16{443, 0}},
		"reserved table":   {Interface: "lan0", Table: 254},
		"relative pin dir": {Interface: "lan0", PinDir: "pins"},
		"rule priority":    {Interface: "lan0", RulePriority: 40000},
		"route fail-open":  {Interface: "lan0", Steering: SteeringRoute, FailOpen: true},
		"route with tcx":   {Interface: "lan0", Steering: SteeringRoute, Attach: AttachTCX},
		"route too many rules": {Interface: "lan0", Steering: SteeringRoute,
			InterceptPorts: []uint16{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63, 65}},
		"steering":   {Interface: "lan0", Steering: "packets"},
		"drop table": {Interface: "lan0", DropTable: 7400},
	}
	for name, cfg := range cases {
		if _, err := Start(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Start error %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := Start(Config{Interface: "nosuchif0", PinDir: testPinDir(t)}); err == nil {
		t.Error("Start on a missing interface succeeded")
	}
}
