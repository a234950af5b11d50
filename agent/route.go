package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Route steering's kernel state, beside the fwmark rule and local routes
// both mechanisms install (routing.go):
//
//	rules, per family, at RulePriority, one per client prefix and range of
//	consecutive intercepted ports:
//	    iif LAN [from CLIENT] ipproto tcp dport P[-Q] lookup Table
//	    iif LAN [from CLIENT] ipproto udp dport P[-Q] lookup DropTable   (DropQUIC)
//	Table:     local 0.0.0.0/0 dev lo, local ::/0 dev lo, throw BYPASS ...
//	DropTable: blackhole 0.0.0.0/0, blackhole ::/0, throw BYPASS ...
//
// A throw route ends the table's lookup and sends the packet on to the next
// rules (the main table): a bypassed destination is forwarded, and the
// bypass set is a route trie lookup however many prefixes it holds, not a
// rule each. The rules carry no mark, so they select only by the headers;
// the sockets of established flows are then found by the stack's own
// lookup (early demux), and a SYN by steer_lookup (bpf/steer.c).
//
// Everything is added before anything stale is deleted, so a destination
// or client in both the old and the new configuration stays steered (or
// bypassed) throughout a change.

// routeRules are the rules route steering wants for cfg. Without IPv6
// routing (see hostHasIPv6) there are no IPv6 rules; a family whose bypass
// set holds everything (a /0) has none either.
func routeRules(cfg *Config, ipv6 bool) []*netlink.Rule {
	var rules []*netlink.Rule
	ranges := portRanges(cfg.InterceptPorts)
	for _, client := range ruleSources(cfg.ClientPrefixes) {
		family := unix.AF_INET
		if client.Addr().Is6() {
			family = unix.AF_INET6
			if !ipv6 {
				continue
			}
		}
		if bypassesAll(cfg.BypassPrefixes, family == unix.AF_INET6) {
			continue
		}
		for _, proto := range []int{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
			table := cfg.Table
			if proto == unix.IPPROTO_UDP {
				if !cfg.DropQUIC {
					continue
				}
				table = cfg.DropTable
			}
			for _, pr := range ranges {
				r := netlink.NewRule()
				r.Family = family
				r.Priority = cfg.RulePriority
				r.IifName = cfg.Interface
				r.Src = ipNet(client)
				r.IPProto = proto
				r.Dport = netlink.NewRulePortRange(pr.first, pr.last)
				r.Table = table
				rules = append(rules, r)
			}
		}
	}
	return rules
}

// ruleSources are the client prefixes as rule selectors: a /0 becomes its
// two /1 halves. The kernel compares a rule without a source (source
// length 0) as equal to any rule that differs only in its source, both when
// it refuses a duplicate (so "from all" could not be added beside a "from
// 198.18.99.0/24" it is to replace) and when it finds a rule to delete (so
// deleting "from all" could take a client prefix's rule instead). With a
// source on every rule, each is matched exactly.
func ruleSources(clients []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range clients {
		if p.Bits() > 0 {
			out = append(out, p)
			continue
		}
		low := netip.PrefixFrom(p.Addr(), 1)
		hi := p.Addr().As16()
		if p.Addr().Is4() {
			out = append(out, low, netip.PrefixFrom(netip.AddrFrom4([4]byte{0x80}), 1))
			continue
		}
		hi[0] = 0x80
		out = append(out, low, netip.PrefixFrom(netip.AddrFrom16(hi), 1))
	}
	return out
}

// routeRoutes are the throw and blackhole routes route steering wants.
func routeRoutes(cfg *Config, ipv6 bool) []*netlink.Route {
	var routes []*netlink.Route
	tables := []int{cfg.Table}
	if cfg.DropQUIC {
		tables = append(tables, cfg.DropTable)
		for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
			if family == unix.AF_INET6 && !ipv6 {
				continue
			}
			routes = append(routes, &netlink.Route{Family: family, Table: cfg.DropTable, Type: unix.RTN_BLACKHOLE,
				Dst: zeroNet(family)})
		}
	}
	for _, p := range cfg.BypassPrefixes {
		if (p.Addr().Is6() && !ipv6) || p.Bits() == 0 {
			continue // a /0 removes the family's rules instead (it would clash with the local and blackhole routes)
		}
		family := unix.AF_INET
		if p.Addr().Is6() {
			family = unix.AF_INET6
		}
		for _, t := range tables {
			routes = append(routes, &netlink.Route{Family: family, Table: t, Type: unix.RTN_THROW, Dst: ipNet(p)})
		}
	}
	return routes
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func zeroNet(family int) *net.IPNet {
	if family == unix.AF_INET6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

func ruleKey(r *netlink.Rule) string {
	src := "all" // never one of ours (see ruleSources)
	if r.Src != nil {
		if ones, _ := r.Src.Mask.Size(); ones > 0 {
			src = r.Src.String()
		}
	}
	var first, last uint16
	if r.Dport != nil {
		first, last = r.Dport.Start, r.Dport.End
	}
	return fmt.Sprintf("%d %s %s %d %d-%d %d", r.Family, r.IifName, src, r.IPProto, first, last, r.Table)
}

func routeKey(r *netlink.Route) string {
	dst := "default"
	if r.Dst != nil {
		if ones, _ := r.Dst.Mask.Size(); ones > 0 {
			dst = r.Dst.String()
		}
	}
	return fmt.Sprintf("%d %d %d %s", r.Family, r.Table, r.Type, dst)
}

// routeSteeringState lists the rules and routes of route steering in the
// kernel: rules of cfg's priority into Table or DropTable that select a
// protocol (the fwmark rule selects none), throw routes in Table (its
// local routes are the fwmark rule's) and every route of DropTable.
func routeSteeringState(h *netlink.Handle, cfg *Config) (rules map[string]*netlink.Rule, routes map[string]*netlink.Route, err error) {
	rules, routes = map[string]*netlink.Rule{}, map[string]*netlink.Route{}
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		for _, table := range []int{cfg.Table, cfg.DropTable} {
			rs, err := h.RuleListFiltered(family, &netlink.Rule{Table: table}, netlink.RT_FILTER_TABLE)
			if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
				return nil, nil, fmt.Errorf("list rules of table %d: %w", table, err)
			}
			for i := range rs {
				r := &rs[i]
				if r.Priority == cfg.RulePriority && r.IPProto != 0 && r.Mark == 0 {
					rules[ruleKey(r)] = r
				}
			}
			rts, err := h.RouteListFiltered(family, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
			if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
				return nil, nil, fmt.Errorf("list routes of table %d: %w", table, err)
			}
			for i := range rts {
				r := &rts[i]
				if r.Family == 0 {
					r.Family = family
				}
				if table == cfg.DropTable || r.Type == unix.RTN_THROW {
					routes[routeKey(r)] = r
				}
			}
		}
	}
	return rules, routes, nil
}

// routingChange is what one call added, so that a failed Start removes
// exactly its own work and never a running datapath's.
type routingChange struct {
	rules  []*netlink.Rule
	routes []*netlink.Route
}

// undo deletes what was added, rules first (a rule must never send packets
// to a table whose routes are gone).
func (c *routingChange) undo(h *netlink.Handle) error {
	var errs []error
	for _, r := range c.rules {
		if err := h.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete rule %s: %w", ruleKey(r), err))
		}
	}
	for _, r := range c.routes {
		if err := h.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", routeKey(r), err))
		}
	}
	return errors.Join(errs...)
}

// addRouteSteering adds the routes, then the rules, route steering wants
// for cfg and the kernel lacks. On error, what it added is in the change
// returned.
func addRouteSteering(h *netlink.Handle, cfg *Config, ipv6 bool) (added routingChange, err error) {
	haveRules, haveRoutes, err := routeSteeringState(h, cfg)
	if err != nil {
		return added, err
	}
	for _, r := range routeRoutes(cfg, ipv6) {
		if haveRoutes[routeKey(r)] != nil {
			continue
		}
		err := h.RouteAdd(r)
		switch {
		case err == nil:
			added.routes = append(added.routes, r)
		case !errors.Is(err, unix.EEXIST):
			return added, fmt.Errorf("add route %s: %w", routeKey(r), err)
		}
	}
	for _, r := range routeRules(cfg, ipv6) {
		if haveRules[ruleKey(r)] != nil {
			continue
		}
		err := h.RuleAdd(r)
		switch {
		case err == nil:
			added.rules = append(added.rules, r)
		case !errors.Is(err, unix.EEXIST):
			return added, fmt.Errorf("add rule %s: %w", ruleKey(r), err)
		}
	}
	return added, nil
}

// pruneRouteSteering deletes route steering's rules, then routes, that cfg
// does not want; with route false (tc steering, or a teardown), all of them.
func pruneRouteSteering(h *netlink.Handle, cfg *Config, route, ipv6 bool) error {
	haveRules, haveRoutes, err := routeSteeringState(h, cfg)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	if route {
		for _, r := range routeRules(cfg, ipv6) {
			want[ruleKey(r)] = true
		}
		for _, r := range routeRoutes(cfg, ipv6) {
			want[routeKey(r)] = true
		}
	}
	var stale routingChange
	for k, r := range haveRules {
		if !want[k] {
			stale.rules = append(stale.rules, r)
		}
	}
	for k, r := range haveRoutes {
		if !want[k] {
			stale.routes = append(stale.routes, r)
		}
	}
	return stale.undo(h)
}

// syncRouteSteering makes route steering's rules and routes match cfg:
// what is new first, then what is stale goes.
func syncRouteSteering(h *netlink.Handle, cfg *Config, ipv6 bool) error {
	if _, err := addRouteSteering(h, cfg, ipv6); err != nil {
		return err
	}
	return pruneRouteSteering(h, cfg, true, ipv6)
}
