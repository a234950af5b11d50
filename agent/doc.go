// Package agent owns the kernel datapath of the transparent gateway: it loads
// the bpf2go-generated steering programs (bpf/steer.c), attaches one of them,
// pins its state under bpffs (mounting bpffs if the namespace has none),
// installs the policy routing that delivers steered connections locally,
// keeps the client, port and bypass state in sync with the configuration,
// and exports the program's counters as Prometheus metrics. Start refuses,
// naming what is missing, a host that lacks a privilege or kernel feature
// the datapath needs, and a configuration the chosen mechanism cannot
// enforce.
//
// Two mechanisms steer (see Steering):
//
//   - Route steering, the default for fail-closed configurations: policy
//     rules (iif LAN, client prefix, TCP, intercepted port) route
//     intercepted segments to this host, throw routes forward bypassed
//     destinations, a blackhole table drops QUIC, and the sk_lookup program
//     steer_lookup assigns the proxy's listener when a SYN looks for one.
//     No BPF runs on established, bypassed or not-intercepted packets; it
//     counts connections, not packets; and it cannot fail open.
//   - Tc steering: the program steer on the LAN interface's ingress (TCX
//     where the kernel has it, a cls_bpf filter on the clsact qdisc before
//     Linux 6.6; see AttachMode) decides, marks and counts every packet. It
//     is needed for FailOpen, and chosen whenever Attach is forced or the
//     configuration needs more rules than route steering allows.
//
// The rule: fail-closed → route steering, fail-open → tc steering (with
// Steering left at auto). Fail-closed refuses a connection when no proxy
// listener is present: tc steering resets it; route steering resets IPv6
// and drops IPv4 SYNs, which the client retries (the kernel cannot send a
// reset from the original destination, which is not one of its addresses).
// Either way nothing unsteered reaches an origin on an intercepted port.
//
// The agent never imports the proxy: the appliance hands it the transparent
// listener sockets to steer into (SetListener).
//
// Lifetime: Start must run in the interface's network namespace. Close leaves
// the pinned datapath deciding on its own (a closed listener leaves the
// sockmap, so the fail mode applies: fail-closed refuses clients, fail-open
// forwards them); the next Start takes it over without a gap, from either
// mechanism to either. Detach, or Remove for a process that is gone, tears
// everything down.
package agent
