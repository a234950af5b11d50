package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// Close leaves the datapath running; the next Start takes it over, reusing
// compatible maps and replacing incompatible ones; Remove clears it all.
func TestLifecycleTakeoverAndRemove(t *testing.T) {
	ns := quietNS(t)
	cfg := Config{Interface: "if0", PinDir: testPinDir(t)}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	first := startIn(t, ns, cfg)
	if err := first.objs.Counters.Update(uint32(steerCounterCOUNTER_STEERED), perCPU(t, 41), ebpf.UpdateAny); err != nil {
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
	waitTCXPrograms(t, ns, "if0", 1) // still attached, by its pin
	if rules, routes := routingLeft(t, ns, cfg); len(rules) != 2 || len(routes) != 2 {
		t.Errorf("routing after Close: %d rules %d routes, want 2 and 2", len(rules), len(routes))
	}

	// Takeover with compatible maps: state carries over, one program stays.
	second := startIn(t, ns, cfg)
	waitTCXPrograms(t, ns, "if0", 1)
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
	other, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Pin(old); err != nil {
		t.Fatal(err)
	}
	third := startIn(t, ns, cfg)
	waitTCXPrograms(t, ns, "if0", 1)
	if c, err := third.Counters(); err != nil || c.Steered != 0 {
		t.Errorf("counters after upgrade: %+v, %v; want fresh", c, err)
	}
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}

	if err := ns.Do(func() error { return Remove(Config{PinDir: cfg.PinDir}) }); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	requireNothingLeft(t, ns, "if0", cfg)
	if err := ns.Do(func() error { return Remove(Config{PinDir: cfg.PinDir}) }); err != nil {
		t.Errorf("Remove with nothing left: %v", err)
	}
}

// A Start that fails half way leaves nothing of its own behind.
func TestStartUndoesPartialWork(t *testing.T) {
	ns := quietNS(t)
	// Not on bpffs: everything up to pinning succeeds, then pinning fails.
	cfg := Config{Interface: "if0", PinDir: filepath.Join(t.TempDir(), "pins")}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	err := ns.Do(func() error {
		a, err := Start(cfg)
		if err == nil {
			_ = a.Detach()
			return errors.New("Start succeeded with a pin directory off bpffs")
		}
		t.Logf("Start failed as intended: %v", err)
		return nil
	})
	if err != nil {
		t.Fatal(err)
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

// perCPU returns a per-CPU value with n on the first CPU.
func perCPU(t testing.TB, n uint64) []uint64 {
	t.Helper()
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	v := make([]uint64, cpus)
	v[0] = n
	return v
}
