package agent

import (
	"fmt"
	"net/netip"
	"slices"
)

// Steering is the mechanism that delivers intercepted connections to the
// proxy's transparent listener.
//
//   - SteeringRoute: policy rules alone (iif, source prefix, protocol,
//     destination port) route intercepted segments to this host, throw
//     routes send bypassed destinations back to the main table, and an
//     sk_lookup program (steer_lookup) assigns the listener. That program
//     runs only on listener lookups, so a SYN runs BPF and the rest of a
//     flow runs none: the packets of established, bypassed and
//     not-intercepted flows cost the kernel's own routing only. It cannot
//     fail open, and it counts connections, not packets (see Counters).
//   - SteeringTC: the program steer runs on every packet of the LAN
//     interface's ingress (TCX or tc, see AttachMode), marks and assigns
//     intercepted segments and counts every packet. It is needed for
//     FailOpen: only a program on every packet can tell a segment no socket
//     owns and forward it instead.
//   - SteeringAuto: route when FailOpen is off, Attach is auto and the
//     configuration fits route steering's rule budget; tc otherwise.
type Steering string

const (
	SteeringAuto  Steering = "auto"
	SteeringRoute Steering = "route"
	SteeringTC    Steering = "tc"
)

func (s Steering) valid() bool { return s == SteeringAuto || s == SteeringRoute || s == SteeringTC }

// maxRouteRules bounds route steering's policy rules per family: client
// prefixes (a /0 counts twice, see ruleSources) × port ranges (× 2 with
// DropQUIC). The kernel walks the rule list
// in order for every packet routed, so each rule costs every forwarded LAN
// packet that matches none of them (a not-intercepted port, a non-client) a
// few comparisons; past this many, tc steering's per-packet program with its
// LPM maps is the cheaper one.
const maxRouteRules = 64

// steering resolves SteeringAuto and refuses a configuration the chosen
// mechanism cannot enforce. The configuration must be validated.
func (c *Config) steering() (Steering, error) {
	rules := routeRuleCount(c)
	switch c.Steering {
	case SteeringTC:
		return SteeringTC, nil
	case SteeringRoute:
		switch {
		case c.FailOpen:
			return "", fmt.Errorf("%w: route steering cannot fail open (only a program on every packet can forward a segment no socket owns): "+
				"set steering to tc or auto, or fail_open off", ErrInvalidConfig)
		case c.Attach != AttachAuto:
			return "", fmt.Errorf("%w: attach mode %s is tc steering's hook; route steering attaches to the network namespace (leave attach at auto)",
				ErrInvalidConfig, c.Attach)
		case rules > maxRouteRules:
			return "", fmt.Errorf("%w: route steering needs %d policy rules (client prefixes × port ranges, twice with drop_quic), at most %d: "+
				"use fewer, wider client prefixes or consecutive ports, or steering tc", ErrInvalidConfig, rules, maxRouteRules)
		}
		return SteeringRoute, nil
	}
	if c.FailOpen || c.Attach != AttachAuto || rules > maxRouteRules {
		return SteeringTC, nil
	}
	return SteeringRoute, nil
}

// portRange is an inclusive range of ports.
type portRange struct{ first, last uint16 }

// portRanges merges ports into sorted ranges of consecutive ports: one rule
// each.
func portRanges(ports []uint16) []portRange {
	var out []portRange
	for _, p := range slices.Compact(slices.Sorted(slices.Values(ports))) {
		if n := len(out); n > 0 && out[n-1].last+1 == p {
			out[n-1].last = p
			continue
		}
		out = append(out, portRange{p, p})
	}
	return out
}

// routeRuleCount is the larger family's number of route steering rules.
func routeRuleCount(c *Config) int {
	per := len(portRanges(c.InterceptPorts))
	if c.DropQUIC {
		per *= 2
	}
	v4, v6 := 0, 0
	for _, p := range ruleSources(c.ClientPrefixes) {
		if p.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	return max(v4, v6) * per
}

// bypassesAll reports whether prefixes hold the whole of a family (a /0):
// route steering then steers nothing of it.
func bypassesAll(prefixes []netip.Prefix, ipv6 bool) bool {
	for _, p := range prefixes {
		if p.Bits() == 0 && p.Addr().Is6() == ipv6 {
			return true
		}
	}
	return false
}
