package agent

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestConfigValidateFillsDefaults(t *testing.T) {
	cfg := Config{Interface: "lan0", BypassPrefixes: []netip.Prefix{
		netip.MustParsePrefix("198.18.9.7/24"), netip.MustParsePrefix("198.18.9.0/24"), netip.MustParsePrefix("fd00:7c:9::1/48"),
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Interface:      "lan0",
		ClientPrefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
		InterceptPorts: []uint16{443, 80},
		BypassPrefixes: []netip.Prefix{netip.MustParsePrefix("198.18.9.0/24"), netip.MustParsePrefix("fd00:7c:9::/48")},
		PinDir:         DefaultPinDir, Mark: DefaultMark, Table: DefaultTable, RulePriority: DefaultRulePriority,
	}
	if !slices.Equal(cfg.ClientPrefixes, want.ClientPrefixes) || !slices.Equal(cfg.InterceptPorts, want.InterceptPorts) ||
		!slices.Equal(cfg.BypassPrefixes, want.BypassPrefixes) || cfg.PinDir != want.PinDir || cfg.Mark != want.Mark ||
		cfg.Table != want.Table || cfg.RulePriority != want.RulePriority || cfg.Attach != AttachAuto {
		t.Errorf("validated config\n got %+v\nwant %+v", cfg, want)
	}
	// Validating again changes nothing.
	again := cfg
	if err := again.Validate(); err != nil || !slices.Equal(again.BypassPrefixes, cfg.BypassPrefixes) {
		t.Errorf("second Validate: %v, %+v", err, again)
	}
}

func TestConfigValidateRejects(t *testing.T) {
	manyPorts := make([]uint16, 65)
	for i := range manyPorts {
		manyPorts[i] = uint16(1000 + i)
	}
	cases := map[string]Config{
		"no interface":       {},
		"interface too long": {Interface: "an-interface-name"},
		"interface path":     {Interface: "../lan0"},
		"port 0":             {Interface: "lan0", InterceptPorts: []uint16{0}},
		"too many ports":     {Interface: "lan0", InterceptPorts: manyPorts},
		"invalid prefix":     {Interface: "lan0", BypassPrefixes: []netip.Prefix{{}}},
		"ipv4-mapped prefix": {Interface: "lan0", ClientPrefixes: []netip.Prefix{netip.MustParsePrefix("::ffff:198.18.0.0/112")}},
		"relative pin dir":   {Interface: "lan0", PinDir: "bpf/portcullis"},
		"root pin dir":       {Interface: "lan0", PinDir: "/"},
		"main table":         {Interface: "lan0", Table: 254},
		"negative table":     {Interface: "lan0", Table: -1},
		"rule priority":      {Interface: "lan0", RulePriority: 32766},
		"attach mode":        {Interface: "lan0", Attach: "xdp"},
	}
	for name, cfg := range cases {
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
}

// Auto steering is route steering where it can enforce the configuration,
// tc steering otherwise; route steering beyond its rule budget is refused.
func TestSteeringAuto(t *testing.T) {
	many := make([]netip.Prefix, 40)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24)
	}
	cases := []struct {
		name string
		cfg  Config
		want Steering
	}{
		{"default", Config{}, SteeringRoute},
		{"fail-open", Config{FailOpen: true}, SteeringTC},
		{"attach forced", Config{Attach: AttachTC}, SteeringTC},
		{"many client prefixes", Config{ClientPrefixes: many}, SteeringTC},
		{"forced tc", Config{Steering: SteeringTC}, SteeringTC},
		{"ports in ranges", Config{InterceptPorts: []uint16{8000, 8001, 8002, 8003, 443}}, SteeringRoute},
	}
	for _, c := range cases {
		c.cfg.Interface = "lan0"
		if err := c.cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got, err := c.cfg.steering(); err != nil || got != c.want {
			t.Errorf("%s: steering %s, %v; want %s", c.name, got, err, c.want)
		}
	}
	if got := portRanges([]uint16{8003, 443, 8001, 8000, 8002, 443}); len(got) != 2 || got[0] != (portRange{443, 443}) || got[1] != (portRange{8000, 8003}) {
		t.Errorf("port ranges %v", got)
	}
	cfg := Config{Interface: "lan0", ClientPrefixes: many, Steering: SteeringRoute}
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "policy rules") {
		t.Errorf("route steering past its rule budget: %v", err)
	}
}
