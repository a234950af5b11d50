package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Datapath.Enabled || cfg.Datapath.FailOpen || !cfg.Datapath.DropQUIC {
		t.Errorf("default datapath = %+v; want enabled, fail-closed, QUIC dropped", cfg.Datapath)
	}
	if len(cfg.Datapath.InterceptPorts) != 2 || cfg.Transparent.TLSPorts[0] != 443 {
		t.Errorf("ports = %v / %v", cfg.Datapath.InterceptPorts, cfg.Transparent.TLSPorts)
	}
	if len(cfg.Datapath.ClientPrefixes) != 2 || cfg.Datapath.ClientPrefixes[1].String() != "::/0" {
		t.Errorf("client prefixes = %v", cfg.Datapath.ClientPrefixes)
	}
}

func TestConfigOverlay(t *testing.T) {
	p := writeConfig(t, "hosts:\n  origin.lab: [198.18.2.2]\ndatapath:\n  interface: eth7\n  bypass_prefixes: [198.18.9.0/24, \"fd00:7c:9::/48\"]\naccess:\n  bypass_hosts: [\"*.bank.example\"]\n")
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Datapath.Interface != "eth7" || len(cfg.Datapath.BypassPrefixes) != 2 || cfg.Access.BypassHosts[0] != "*.bank.example" {
		t.Errorf("overlay not applied: %+v %+v", cfg.Datapath, cfg.Access)
	}
	if got := cfg.Hosts["origin.lab"]; len(got) != 1 || got[0] != "198.18.2.2" {
		t.Errorf("hosts[origin.lab] = %v: dotted map keys must stay whole", got)
	}
	if cfg.Management.Listen != "127.0.0.1:9780" {
		t.Errorf("defaults lost under overlay: management.listen = %q", cfg.Management.Listen)
	}
}

func TestConfigErrorsSayWhere(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"unknown key":      {"datapath:\n  interface: lan0\n  bogus_key: 1\n", ":3:3: unknown key \"datapath.bogus_key\""},
		"unknown section":  {"\nfrobnicate:\n  a: 1\n", ":2:1: unknown key \"frobnicate\""},
		"bad prefix":       {"datapath:\n  bypass_prefixes: [not-a-prefix]\n", "portcullis.yaml:2:21: datapath.bypass_prefixes[0]: netip.ParsePrefix"},
		"bad duration":     {"timeouts:\n  idle: soon\n", "portcullis.yaml:2:3: timeouts.idle: time: invalid duration"},
		"bad on_stop":      {"datapath:\n  on_stop: maybe\n", "datapath.on_stop: \"maybe\" is not one of keep, detach"},
		"bad yaml":         {"datapath: [\n", "portcullis.yaml"},
		"access log size":  {"log:\n  access_max_mib: 0\n", "log.access_max_mib: 0 is not between 1 and 65536"},
		"access log files": {"log:\n  access_files: -2\n", "log.access_files: -2 is not between 1 and 1000"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.body))
			if err == nil {
				t.Fatal("bad config accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}
