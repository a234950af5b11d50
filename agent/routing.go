package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Policy routing that makes steering take effect: bpf_sk_assign only tags
// the packet with a socket, and the stack honours the tag only if the packet
// is routed to this host. Steered packets carry Mark; the rule sends marked
// packets to Table, where "local 0.0.0.0/0 dev lo" and "local ::/0 dev lo"
// route every destination locally.

func policyRules(cfg *Config) []*netlink.Rule {
	var rules []*netlink.Rule
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		r := netlink.NewRule()
		r.Family = family
		r.Priority = cfg.RulePriority
		r.Mark = cfg.Mark
		mask := cfg.Mark
		r.Mask = &mask
		r.Table = cfg.Table
		rules = append(rules, r)
	}
	return rules
}

func localRoutes(cfg *Config, loIndex int) []*netlink.Route {
	return []*netlink.Route{
		{
			Family: unix.AF_INET, Table: cfg.Table, Type: unix.RTN_LOCAL, Scope: unix.RT_SCOPE_HOST,
			LinkIndex: loIndex, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		},
		{
			Family: unix.AF_INET6, Table: cfg.Table, Type: unix.RTN_LOCAL, Scope: unix.RT_SCOPE_HOST,
			LinkIndex: loIndex, Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		},
	}
}

// hostHasIPv6 says whether this network namespace can deliver IPv6 locally:
// the kernel has IPv6 (not booted with ipv6.disable=1) and it is not
// disabled on the loopback device (net.ipv6.conf.lo.disable_ipv6), where
// the local routes point. Without it the kernel refuses the IPv6 route.
func hostHasIPv6() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/lo/disable_ipv6")
	return err == nil && strings.TrimSpace(string(b)) == "0"
}

// installRouting adds the rules and routes, leaving any already there as
// they are; the IPv6 ones only when ipv6 is set. It reports whether it added
// anything, so a failed Start undoes only its own work and never a running
// datapath's routing.
func installRouting(h *netlink.Handle, cfg *Config, ipv6 bool) (added bool, err error) {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return false, fmt.Errorf("loopback: %w", err)
	}
	for _, r := range localRoutes(cfg, lo.Attrs().Index) {
		if r.Family == unix.AF_INET6 && !ipv6 {
			continue
		}
		err := h.RouteAdd(r)
		switch {
		case err == nil:
			added = true
		case !errors.Is(err, unix.EEXIST):
			return added, fmt.Errorf("add route %s table %d: %w", r.Dst, cfg.Table, err)
		}
	}
	for _, r := range policyRules(cfg) {
		if r.Family == unix.AF_INET6 && !ipv6 {
			continue
		}
		err := h.RuleAdd(r)
		switch {
		case err == nil:
			added = true
		case !errors.Is(err, unix.EEXIST):
			return added, fmt.Errorf("add rule fwmark %#x lookup %d: %w", cfg.Mark, cfg.Table, err)
		}
	}
	return added, nil
}

// removeRouting deletes the rules and routes; ones already gone, or of a
// family the host does not have, are fine.
func removeRouting(h *netlink.Handle, cfg *Config) error {
	var errs []error
	for _, r := range policyRules(cfg) {
		if err := h.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EAFNOSUPPORT) {
			errs = append(errs, fmt.Errorf("delete rule fwmark %#x lookup %d: %w", cfg.Mark, cfg.Table, err))
		}
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("loopback: %w", err))...)
	}
	for _, r := range localRoutes(cfg, lo.Attrs().Index) {
		if err := h.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EAFNOSUPPORT) {
			errs = append(errs, fmt.Errorf("delete route %s table %d: %w", r.Dst, cfg.Table, err))
		}
	}
	return errors.Join(errs...)
}
