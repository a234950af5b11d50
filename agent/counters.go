package agent

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Counters are the program's per-packet results since its maps were
// created (they survive restarts that reuse the pinned maps), summed over
// CPUs. Every packet the program sees is counted in exactly one field but
// AssignErrors.
type Counters struct {
	Steered           uint64 // SYNs assigned to the listener: new steered flows
	Established       uint64 // packets of a flow a local socket owns (a steered flow), marked for local delivery
	Bypassed          uint64 // destination in the bypass set: forwarded untouched
	NoListenerRefused uint64 // SYNs refused (reset) because no listener is present, fail-closed
	NoListenerPassed  uint64 // SYNs forwarded unsteered because no listener is present, fail-open
	OrphanRefused     uint64 // non-SYN segments no socket owns, refused (reset), fail-closed
	OrphanPassed      uint64 // non-SYN segments no socket owns, forwarded untouched, fail-open
	QUICDropped       uint64 // UDP to an intercepted port, dropped
	FragmentDropped   uint64 // first fragments to an intercepted port: cannot be steered
	NotIntercepted    uint64 // not from a client, not to an intercepted port, or not TCP/UDP
	Malformed         uint64 // truncated or inconsistent headers, left to the kernel
	// AssignErrors counts failed bpf_sk_assign calls; those packets are
	// also counted under the fail mode's result. Non-zero in production
	// means the listener lives in another network namespace.
	AssignErrors uint64
}

// counterFields maps the program's counter indices to Counters fields and
// the result label they are exported under.
var counterFields = []struct {
	index steerCounter
	label string
	field func(*Counters) *uint64
}{
	{steerCounterCOUNTER_STEERED, "steered", func(c *Counters) *uint64 { return &c.Steered }},
	{steerCounterCOUNTER_ESTABLISHED, "established", func(c *Counters) *uint64 { return &c.Established }},
	{steerCounterCOUNTER_BYPASSED, "bypassed", func(c *Counters) *uint64 { return &c.Bypassed }},
	{steerCounterCOUNTER_NO_LISTENER_REFUSED, "no_listener_refused", func(c *Counters) *uint64 { return &c.NoListenerRefused }},
	{steerCounterCOUNTER_NO_LISTENER_PASSED, "no_listener_passed", func(c *Counters) *uint64 { return &c.NoListenerPassed }},
	{steerCounterCOUNTER_ORPHAN_REFUSED, "orphan_refused", func(c *Counters) *uint64 { return &c.OrphanRefused }},
	{steerCounterCOUNTER_ORPHAN_PASSED, "orphan_passed", func(c *Counters) *uint64 { return &c.OrphanPassed }},
	{steerCounterCOUNTER_QUIC_DROPPED, "quic_dropped", func(c *Counters) *uint64 { return &c.QUICDropped }},
	{steerCounterCOUNTER_FRAGMENT_DROPPED, "fragment_dropped", func(c *Counters) *uint64 { return &c.FragmentDropped }},
	{steerCounterCOUNTER_NOT_INTERCEPTED, "not_intercepted", func(c *Counters) *uint64 { return &c.NotIntercepted }},
	{steerCounterCOUNTER_MALFORMED, "malformed", func(c *Counters) *uint64 { return &c.Malformed }},
	{steerCounterCOUNTER_ASSIGN_ERRORS, "", func(c *Counters) *uint64 { return &c.AssignErrors }},
}

// The counters map holds a region of counterStride words per possible CPU,
// the counters at counterOffset in it (bpf/steer.c, enum per_cpu_layout).
const (
	counterStride = uint32(steerPerCpuLayoutCOUNTER_STRIDE)
	counterOffset = uint32(steerPerCpuLayoutCOUNTER_OFFSET)
)

// counterKey is the counters map's key of counter c of a CPU.
func counterKey(cpu uint32, c steerCounter) uint32 {
	return cpu*counterStride + counterOffset + uint32(c)
}

// readCounters sums each counter of the per-CPU counters map over CPUs.
func readCounters(m *ebpf.Map) (Counters, error) {
	var (
		c Counters
		n uint64
	)
	for cpu := range m.MaxEntries() / counterStride {
		for _, f := range counterFields {
			if err := m.Lookup(counterKey(cpu, f.index), &n); err != nil {
				return Counters{}, fmt.Errorf("read counter %d of CPU %d: %w", f.index, cpu, err)
			}
			*f.field(&c) += n
		}
	}
	return c, nil
}

// Counters reads the program's counters now.
func (a *Agent) Counters() (Counters, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return Counters{}, ErrClosed
	}
	return readCounters(a.objs.Counters)
}

// listenersPresent reports which listeners are in the sockmap.
func (a *Agent) listenersPresent() (ipv4, ipv6 bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false, false, ErrClosed
	}
	present := func(key uint32) (bool, error) {
		var cookie uint64
		err := a.objs.Listeners.Lookup(key, &cookie)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return false, nil
		}
		return false, fmt.Errorf("read listener %d: %w", key, err)
	}
	if ipv4, err = present(listenerIPv4); err != nil {
		return false, false, err
	}
	ipv6, err = present(listenerIPv6)
	return ipv4, ipv6, err
}
