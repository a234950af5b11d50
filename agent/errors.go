package agent

import "errors"

// Errors callers can match with errors.Is. Everything else the agent returns
// is an operational failure (a syscall, netlink or bpffs error) described by
// its message.
var (
	// ErrInvalidConfig means a Config (or a value passed to a setter) cannot
	// be applied; the wrapping error names the field and why.
	ErrInvalidConfig = errors.New("invalid datapath config")

	// ErrUnsupportedKernel means the running kernel lacks something the
	// datapath needs: a program or map type, a helper such as bpf_sk_assign
	// (Linux 5.7), the clsact qdisc or cls_bpf, or TCX links (Linux 6.6)
	// when the TCX mode is forced. The wrapping error names what.
	ErrUnsupportedKernel = errors.New("kernel does not support the datapath")

	// ErrMissingPrivilege means the process lacks a capability the
	// datapath needs (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, or
	// CAP_SYS_ADMIN to mount bpffs); the wrapping error names it and how to grant it.
	ErrMissingPrivilege = errors.New("missing privilege for the datapath")

	// ErrNotListener means SetListener was given a socket the datapath
	// cannot steer to: not a listening, transparent (IP_TRANSPARENT or
	// IPV6_TRANSPARENT), plain TCP socket of the requested family.
	ErrNotListener = errors.New("not a transparent TCP listener")

	// ErrRestartRequired means Update was asked to change a setting that only
	// Start applies (interface, pin directory, steering, mark, routing
	// tables or rule priority), or Update or SetFailOpen to make route
	// steering fail open or exceed its rule budget (a restart with steering
	// auto chooses tc steering).
	ErrRestartRequired = errors.New("datapath setting needs a restart")

	// ErrClosed means the Agent was closed or detached.
	ErrClosed = errors.New("datapath agent closed")
)
