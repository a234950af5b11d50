package agent

import (
	"fmt"
	"io"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// EnableProgramStats turns on the kernel's accounting of BPF program run
// time (kernel.bpf_stats_enabled) until the returned Closer is closed. The
// accounting costs a little per packet, so it is for benchmarks, not for
// normal operation.
func EnableProgramStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enable bpf stats: %w", err)
	}
	return c, nil
}

// ProgramStats returns the steering program's total run time and run count
// as accounted by the kernel while stats were enabled (EnableProgramStats or
// the sysctl): steer's (it runs on every packet of the LAN ingress) with tc
// steering, steer_lookup's (it runs on listener lookups: SYNs) with route
// steering. Divide the run time by the packets the datapath carried for the
// mean cost per packet; with tc steering the run count is that number.
func (a *Agent) ProgramStats() (runTime time.Duration, runCount uint64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return 0, 0, ErrClosed
	}
	prog := a.objs.Steer
	if a.steering == SteeringRoute {
		prog = a.objs.SteerLookup
	}
	stats, err := prog.Stats()
	if err != nil {
		return 0, 0, fmt.Errorf("program stats: %w", err)
	}
	return stats.Runtime, stats.RunCount, nil
}
