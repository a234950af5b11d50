package agent

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// Bits of the settings map's flags, as in bpf/steer.c.
const (
	settingFailOpen     = 1 << 0
	settingDropQUIC     = 1 << 1
	settingAllClientsV4 = 1 << 2 // a client prefix is 0.0.0.0/0: no lookup
	settingAllClientsV6 = 1 << 3 // a client prefix is ::/0: no lookup
	settingBypassV4     = 1 << 4 // some IPv4 bypass prefix: look up
	settingBypassV6     = 1 << 5 // some IPv6 bypass prefix: look up
)

// portWords is the number of 32-bit words of the intercept_ports bitmap.
const portWords = 65536 / 32

// Keys of the listeners map, as in bpf/steer.c.
const (
	listenerIPv4 uint32 = 0
	listenerIPv6 uint32 = 1
)

// present is the value of every set-like map (prefixes, ports): the program
// only asks whether a key exists.
const present uint8 = 1

func lpmKeyV4(p netip.Prefix) steerLpmV4Key {
	return steerLpmV4Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
}

func lpmKeyV6(p netip.Prefix) steerLpmV6Key {
	return steerLpmV6Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
}

// syncPrefixes makes the pair of LPM maps hold exactly prefixes.
func syncPrefixes(v4, v6 *ebpf.Map, prefixes []netip.Prefix) error {
	want4 := map[steerLpmV4Key]struct{}{}
	want6 := map[steerLpmV6Key]struct{}{}
	for _, p := range prefixes {
		if p.Addr().Is4() {
			want4[lpmKeyV4(p)] = struct{}{}
		} else {
			want6[lpmKeyV6(p)] = struct{}{}
		}
	}
	if err := syncSet(v4, want4); err != nil {
		return err
	}
	return syncSet(v6, want6)
}

// writePorts makes the intercept_ports bitmap hold exactly ports, every
// word with the settings' generation (the flow cache goes by that copy, see
// struct port_word in bpf/steer.c). Every word is written, each
// whole, so a port in both the old and the new set is never missing.
func writePorts(m *ebpf.Map, ports []uint16, s steerRuntimeSettings) error {
	keys := make([]uint32, portWords)
	words := make([]steerPortWord, portWords)
	for i := range words {
		keys[i] = uint32(i)
		words[i] = steerPortWord{Gen: s.Gen}
	}
	for _, p := range ports {
		words[p/32].Ports |= 1 << (p % 32)
	}
	if _, err := m.BatchUpdate(keys, words, nil); err != nil {
		return fmt.Errorf("update map %s: %w", m, err)
	}
	return nil
}

// syncSet makes a set-like map hold exactly the keys in want. New keys go in
// before stale ones come out, so a key in both the old and the new set is
// never missing, even for a moment.
func syncSet[K comparable](m *ebpf.Map, want map[K]struct{}) error {
	var (
		stale []K
		key   K
		value uint8
	)
	it := m.Iterate()
	for it.Next(&key, &value) {
		if _, ok := want[key]; !ok {
			stale = append(stale, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read map %s: %w", m, err)
	}
	for k := range want {
		if err := m.Update(k, present, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update map %s: %w", m, err)
		}
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete from map %s: %w", m, err)
		}
	}
	return nil
}

// settingsOf returns the settings map's value for cfg (normalized: prefixes
// masked). The prefix flags summarize the prefix maps, which must already
// hold cfg's prefixes when the value is written: then a packet judged while
// the configuration changes gets either the old or the new decision.
func settingsOf(cfg *Config) steerRuntimeSettings {
	s := steerRuntimeSettings{Mark: cfg.Mark, Ifindex: uint32(cfg.ifindex)}
	if cfg.FailOpen {
		s.Flags |= settingFailOpen
	}
	if cfg.DropQUIC {
		s.Flags |= settingDropQUIC
	}
	for _, p := range cfg.ClientPrefixes {
		if p.Bits() == 0 {
			s.Flags |= familyFlag(p, settingAllClientsV4, settingAllClientsV6)
		}
	}
	for _, p := range cfg.BypassPrefixes {
		s.Flags |= familyFlag(p, settingBypassV4, settingBypassV6)
	}
	return s
}

func familyFlag(p netip.Prefix, v4, v6 uint32) uint32 {
	if p.Addr().Is4() {
		return v4
	}
	return v6
}

// writeConfig makes every map the configuration owns match cfg, the
// settings and the port words, which carry their generation, last (see
// settingsOf). The listeners and counters maps are
// runtime state and are left alone.
func writeConfig(maps *steerMaps, cfg *Config) error {
	if err := syncPrefixes(maps.ClientV4, maps.ClientV6, cfg.ClientPrefixes); err != nil {
		return fmt.Errorf("client prefixes: %w", err)
	}
	if err := syncPrefixes(maps.BypassV4, maps.BypassV6, cfg.BypassPrefixes); err != nil {
		return fmt.Errorf("bypass prefixes: %w", err)
	}
	return writeSettings(maps, cfg)
}

// writeSettings writes cfg's settings with the next generation after the
// one in the settings map (never 0), then the port words with cfg's ports
// and that generation, which retires every flow cache entry made under the
// previous settings: the next packet of every flow is judged by the new
// ones. A map another run wrote (a takeover) continues its sequence.
func writeSettings(maps *steerMaps, cfg *Config) error {
	var prev steerRuntimeSettings
	if err := maps.Settings.Lookup(uint32(0), &prev); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	s := settingsOf(cfg)
	s.Gen = prev.Gen + 1
	if s.Gen == 0 {
		s.Gen = 1
	}
	if err := maps.Settings.Update(uint32(0), s, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if err := writePorts(maps.InterceptPorts, cfg.InterceptPorts, s); err != nil {
		return fmt.Errorf("intercept ports: %w", err)
	}
	return nil
}
