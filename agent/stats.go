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
// the sysctl). Divide the two for the mean cost per packet.
func (a *Agent) ProgramStats() (runTime time.Duration, runCount uint64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return 0, 0, ErrClosed
	}
	stats, err := a.objs.Steer.Stats()
	if err != nil {
		return 0, 0, fmt.Errorf("program stats: %w", err)
	}
	return stats.Runtime, stats.RunCount, nil
}
