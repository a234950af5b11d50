package agent

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Counters are the program's per-packet results since its maps were
// created (they survive restarts that reuse the pinned maps), summed over
// CPUs. With tc steering every packet the program sees is counted in
// exactly one field but AssignErrors.
//
// Route steering runs no program on packets, only on listener lookups, so
// it counts connections, not packets, and only in Steered (lookups assigned
// to the listener: SYNs, and the rare SYN-cookie ACK or segment no socket
// owns, which the listener answers itself), NoListenerRefused (intercepted
// lookups refused for want of a listener) and AssignErrors. The other
// fields stay at what a tc generation before it counted (the maps carry
// over); Steering.CountsPackets says which a mechanism counts.
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
	route bool // counted by route steering too
}{
	{steerCounterCOUNTER_STEERED, "steered", func(c *Counters) *uint64 { return &c.Steered }, true},
	{steerCounterCOUNTER_ESTABLISHED, "established", func(c *Counters) *uint64 { return &c.Established }, false},
	{steerCounterCOUNTER_BYPASSED, "bypassed", func(c *Counters) *uint64 { return &c.Bypassed }, false},
	{steerCounterCOUNTER_NO_LISTENER_REFUSED, "no_listener_refused", func(c *Counters) *uint64 { return &c.NoListenerRefused }, true},
	{steerCounterCOUNTER_NO_LISTENER_PASSED, "no_listener_passed", func(c *Counters) *uint64 { return &c.NoListenerPassed }, false},
	{steerCounterCOUNTER_ORPHAN_REFUSED, "orphan_refused", func(c *Counters) *uint64 { return &c.OrphanRefused }, false},
	{steerCounterCOUNTER_ORPHAN_PASSED, "orphan_passed", func(c *Counters) *uint64 { return &c.OrphanPassed }, false},
	{steerCounterCOUNTER_QUIC_DROPPED, "quic_dropped", func(c *Counters) *uint64 { return &c.QUICDropped }, false},
	{steerCounterCOUNTER_FRAGMENT_DROPPED, "fragment_dropped", func(c *Counters) *uint64 { return &c.FragmentDropped }, false},
	{steerCounterCOUNTER_NOT_INTERCEPTED, "not_intercepted", func(c *Counters) *uint64 { return &c.NotIntercepted }, false},
	{steerCounterCOUNTER_MALFORMED, "malformed", func(c *Counters) *uint64 { return &c.Malformed }, false},
	{steerCounterCOUNTER_ASSIGN_ERRORS, "", func(c *Counters) *uint64 { return &c.AssignErrors }, true},
}

// The counters map holds a region of counterStride words per possible CPU,
// the counters at counterOffset in it (bpf/steer.c, enum per_cpu_layout).
const (
	counterStride = uint32(steerPerCpuLayoutCOUNTER_STRIDE)
	counterOffset = uint32(steerPerCpuLayoutCOUNTER_OFFSET)
)

// CountsPackets reports whether steering s counts every packet in Counters
// (tc steering), or only Steered, NoListenerRefused and AssignErrors (route
// steering). Callers export the other fields only when it does, so that no
// metric reads zero because nothing counts it.
func (s Steering) CountsPackets() bool { return s != SteeringRoute }

// counterKey is the counters map's key of counter c of a CPU.
func counterKey(cpu uint32, c steerCounter) uint32 {
	return cpu*counterStride + counterOffset + uint32(c)
}

// readCounters sums each counter over CPUs: the counters map's, plus the
// segments the flow cache answered, which the program counts in the cache's
// slots (hits, for the slot's result) until a new flow takes the slot and it
// moves them to the counters map (bpf/steer.c, struct flow_v4).
//
// The counters map is read first: a move the program makes meanwhile can
// only be missed (its hits left the slot after the map was read), never
// counted twice, so a sum is at most the true one and the next is exact
// again. Agent.Counters keeps what it reports from going back.
func readCounters(maps *steerMaps) (Counters, error) {
	var (
		c Counters
		n uint64
	)
	m := maps.Counters
	for cpu := range m.MaxEntries() / counterStride {
		for _, f := range counterFields {
			if err := m.Lookup(counterKey(cpu, f.index), &n); err != nil {
				return Counters{}, fmt.Errorf("read counter %d of CPU %d: %w", f.index, cpu, err)
			}
			*f.field(&c) += n
		}
	}
	if err := addSlotHits(&c, maps.FlowCacheV4, func(e *steerFlowV4) (uint32, uint64) { return e.Result, uint64(e.Hits) }); err != nil {
		return Counters{}, err
	}
	if err := addSlotHits(&c, maps.FlowCacheV6, func(e *steerFlowV6) (uint32, uint64) { return e.Result, uint64(e.Hits) }); err != nil {
		return Counters{}, err
	}
	return c, nil
}

// slotBatch is how many flow cache slots one batch lookup reads.
const slotBatch = 4096

// addSlotHits adds the hits of every slot of a flow cache map to their
// result's counter.
func addSlotHits[E any](c *Counters, m *ebpf.Map, hits func(*E) (result uint32, n uint64)) error {
	var cursor ebpf.MapBatchCursor
	keys := make([]uint32, slotBatch)
	slots := make([]E, slotBatch)
	for {
		n, err := m.BatchLookup(&cursor, keys, slots, nil)
		for i := range n {
			result, hits := hits(&slots[i])
			if hits == 0 {
				continue
			}
			if f := counterField(steerCounter(result)); f != nil {
				*f(c) += hits
			}
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil
		case err != nil:
			return fmt.Errorf("read map %s: %w", m, err)
		}
	}
}

// counterField is the Counters field of counter index c, or nil.
func counterField(c steerCounter) func(*Counters) *uint64 {
	for _, f := range counterFields {
		if f.index == c {
			return f.field
		}
	}
	return nil
}

// Counters reads the program's counters now. A counter never reads less
// than it did before (see readCounters).
func (a *Agent) Counters() (Counters, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return Counters{}, ErrClosed
	}
	c, err := readCounters(&a.objs.steerMaps)
	if err != nil {
		return Counters{}, err
	}
	for _, f := range counterFields {
		*f.field(&c) = max(*f.field(&c), *f.field(&a.reported))
	}
	a.reported = c
	return c, nil
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
