// Package agent owns the kernel datapath of the transparent gateway: it loads
// the bpf2go-generated steering program (bpf/steer.c), attaches it to the LAN
// interface (TCX where the kernel has it, a cls_bpf filter on the clsact
// qdisc before Linux 6.6; see AttachMode), pins its state under bpffs
// (mounting bpffs if the namespace has none), installs the policy routing
// that delivers steered packets locally, keeps the client, port and bypass
// maps in sync with the configuration, and exports the program's per-CPU
// counters as Prometheus metrics. Start refuses, naming what is missing, a
// host that lacks a privilege or kernel feature the datapath needs.
//
// The agent never imports the proxy: the appliance hands it the transparent
// listener sockets to steer into (SetListener).
//
// Lifetime: Start must run in the interface's network namespace. Close leaves
// the pinned datapath deciding on its own (a closed listener leaves the
// sockmap, so the fail mode applies: fail-closed resets clients, fail-open
// forwards them); the next Start takes it over without a gap. Detach, or
// Remove for a process that is gone, tears everything down.
package agent
