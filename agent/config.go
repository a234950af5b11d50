package agent

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Defaults applied by Validate to zero fields.
const (
	DefaultPinDir = "/sys/fs/bpf/portcullis"
	// DefaultMark is the fwmark of steered packets. It sits in the top byte,
	// clear of the low bits Cilium, kube-proxy and most firewalls use.
	DefaultMark = 0x7c000000
	// DefaultTable holds only the "local 0.0.0.0/0 dev lo" and
	// "local ::/0 dev lo" routes that deliver marked packets to this host.
	DefaultTable = 7400
	// DefaultDropTable is route steering's table for dropped QUIC: only
	// "blackhole 0.0.0.0/0", "blackhole ::/0" and the bypass prefixes'
	// throw routes.
	DefaultDropTable = 7401
	// DefaultRulePriority puts the fwmark rule ahead of the main table (32766)
	// and of typical VPN and multi-uplink rules, behind "local" (0).
	DefaultRulePriority = 100
)

// DefaultInterceptPorts are the TCP ports steered when none are configured.
var DefaultInterceptPorts = []uint16{443, 80}

// Config is what Start needs to build the datapath. The zero value of every
// field but Interface has a documented default.
type Config struct {
	// Interface is the LAN interface clients reach the gateway through. The
	// program is attached to its ingress.
	Interface string
	// ClientPrefixes are the sources whose traffic is steered. Empty means
	// every source (0.0.0.0/0 and ::/0): a transparent gateway intercepts
	// whoever routes through it unless told otherwise.
	ClientPrefixes []netip.Prefix
	// InterceptPorts are the TCP destination ports steered to the proxy;
	// UDP to them is QUIC and is dropped when DropQUIC is set. Empty means
	// DefaultInterceptPorts.
	InterceptPorts []uint16
	// BypassPrefixes are destinations never steered: the kernel forwards
	// their traffic untouched. Include the gateway's own addresses if local
	// services listen on intercepted ports, or clients reaching them are
	// steered to the proxy too.
	BypassPrefixes []netip.Prefix
	// DropQUIC drops UDP from clients to intercepted ports so browsers fall
	// back to TCP, which is steered.
	DropQUIC bool
	// FailOpen forwards traffic unsteered when no proxy listener is present.
	// The default, fail-closed, refuses it: with a TCP reset (tc steering,
	// and route steering over IPv6), or by dropping the SYN, which the
	// client retries until the proxy is back or it gives up (route steering
	// over IPv4: the kernel cannot send a reset from an address that is not
	// the host's). Fail-open needs tc steering (see Steering).
	FailOpen bool
	// Steering chooses the mechanism (see Steering): route (policy rules
	// and a program for SYNs only), tc (a program on every packet), or auto:
	// route when fail-closed with the attach mode left at auto and the
	// configuration within route steering's rule budget, tc otherwise.
	// Default SteeringAuto.
	Steering Steering
	// PinDir is the bpffs directory holding the pinned link and maps, so the
	// datapath outlives the process and a restart takes it over. Default
	// DefaultPinDir.
	PinDir string
	// Mark is the fwmark the program sets on steered packets and the policy
	// rule matches (as mark/mask with mask = Mark). Default DefaultMark.
	Mark uint32
	// Table is the routing table with the local-delivery routes (and, with
	// route steering, the bypass prefixes' throw routes). Default
	// DefaultTable.
	Table int
	// DropTable is route steering's table for QUIC from clients when
	// DropQUIC is set. Default DefaultDropTable.
	DropTable int
	// RulePriority is the priority of the fwmark rule and of route
	// steering's rules. Default DefaultRulePriority.
	RulePriority int
	// Attach chooses the hook of tc steering: TCX, tc (clsact + cls_bpf),
	// or auto (TCX where the kernel has it, tc otherwise). Forcing tcx or tc
	// also chooses tc steering when Steering is auto. Default AttachAuto.
	Attach AttachMode

	// ifindex is Interface's index, set by Start: the settings map carries
	// it for steer_lookup.
	ifindex int
}

// maxInterceptPorts bounds Config.InterceptPorts.
const maxInterceptPorts = 64

// mapLimits are the capacities of the program's maps, read from the compiled
// object so that the C source stays the single place they are set.
var mapLimits = sync.OnceValues(func() (limits struct{ clients, bypass, ports int }, err error) {
	spec, err := loadSteer()
	if err != nil {
		return limits, err
	}
	limits.clients = int(spec.Maps[steerMapClientV4].MaxEntries)
	limits.bypass = int(spec.Maps[steerMapBypassV4].MaxEntries)
	// The port bitmap has room for every port; the limit is a sanity bound
	// on configurations, kept from when the ports were a small hash map.
	limits.ports = maxInterceptPorts
	return limits, nil
})

// Validate fills in defaults, normalises prefixes to their masked form, and
// reports the first field that cannot be used, wrapped in ErrInvalidConfig.
func (c *Config) Validate() error { return c.validate(true) }

// validate is Validate for Start (which needs the interface) and for Remove
// (which tears down by pin directory and routing alone).
func (c *Config) validate(needInterface bool) error {
	limits, err := mapLimits()
	if err != nil {
		return err
	}
	if (needInterface || c.Interface != "") &&
		(c.Interface == "" || len(c.Interface) > 15 || strings.ContainsAny(c.Interface, "/ \t\n")) {
		return fmt.Errorf("%w: interface %q is not an interface name", ErrInvalidConfig, c.Interface)
	}
	if len(c.ClientPrefixes) == 0 {
		c.ClientPrefixes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	if c.ClientPrefixes, err = normalizePrefixes("client prefix", c.ClientPrefixes, limits.clients); err != nil {
		return err
	}
	if c.BypassPrefixes, err = normalizePrefixes("bypass prefix", c.BypassPrefixes, limits.bypass); err != nil {
		return err
	}
	if len(c.InterceptPorts) == 0 {
		c.InterceptPorts = slices.Clone(DefaultInterceptPorts)
	}
	if slices.Contains(c.InterceptPorts, 0) {
		return fmt.Errorf("%w: intercept port 0 is not a port", ErrInvalidConfig)
	}
	if ports := len(slices.Compact(slices.Sorted(slices.Values(c.InterceptPorts)))); ports > limits.ports {
		return fmt.Errorf("%w: %d intercept ports, at most %d", ErrInvalidConfig, ports, limits.ports)
	}
	if c.PinDir == "" {
		c.PinDir = DefaultPinDir
	}
	if !filepath.IsAbs(c.PinDir) || filepath.Clean(c.PinDir) == "/" {
		return fmt.Errorf("%w: pin directory %q must be an absolute path below a bpffs mount", ErrInvalidConfig, c.PinDir)
	}
	c.PinDir = filepath.Clean(c.PinDir)
	if c.Mark == 0 {
		c.Mark = DefaultMark
	}
	if c.Table == 0 {
		c.Table = DefaultTable
	}
	// 253-255 are the kernel's default, main and local tables.
	if c.Table < 0 || (c.Table >= 253 && c.Table <= 255) {
		return fmt.Errorf("%w: routing table %d is reserved or invalid", ErrInvalidConfig, c.Table)
	}
	if c.DropTable == 0 {
		c.DropTable = DefaultDropTable
	}
	if c.DropTable < 0 || (c.DropTable >= 253 && c.DropTable <= 255) || c.DropTable == c.Table {
		return fmt.Errorf("%w: drop table %d is reserved, invalid or the routing table", ErrInvalidConfig, c.DropTable)
	}
	if c.RulePriority == 0 {
		c.RulePriority = DefaultRulePriority
	}
	// 0 is the "local" rule; 32766 and 32767 are "main" and "default".
	if c.RulePriority < 1 || c.RulePriority > 32765 {
		return fmt.Errorf("%w: rule priority %d is outside 1-32765", ErrInvalidConfig, c.RulePriority)
	}
	if c.Attach == "" {
		c.Attach = AttachAuto
	}
	if !c.Attach.valid() {
		return fmt.Errorf("%w: attach mode %q is not one of auto, tcx, tc", ErrInvalidConfig, c.Attach)
	}
	if c.Steering == "" {
		c.Steering = SteeringAuto
	}
	if !c.Steering.valid() {
		return fmt.Errorf("%w: steering %q is not one of auto, route, tc", ErrInvalidConfig, c.Steering)
	}
	if !needInterface {
		// Remove tears down whatever is there, by mechanism-independent
		// names (pins, tables, priority).
		return nil
	}
	_, err = c.steering()
	return err
}

// normalizePrefixes masks each prefix, rejects invalid and IPv4-mapped ones
// (which the IPv4 maps would never match), and checks the per-family count
// against the map capacity.
func normalizePrefixes(what string, in []netip.Prefix, limit int) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	seen := make(map[netip.Prefix]bool, len(in))
	v4, v6 := 0, 0
	for _, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: %s %q is not a prefix", ErrInvalidConfig, what, p)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("%w: %s %s is IPv4-mapped; write it as IPv4", ErrInvalidConfig, what, p)
		}
		p = p.Masked()
		if seen[p] {
			continue
		}
		seen[p] = true
		if p.Addr().Is4() {
			v4++
		} else {
			v6++
		}
		out = append(out, p)
	}
	if v4 > limit || v6 > limit {
		return nil, fmt.Errorf("%w: %d IPv4 and %d IPv6 %ses, at most %d of each", ErrInvalidConfig, v4, v6, what, limit)
	}
	return out, nil
}
