package appliance

import (
	"strings"
	"testing"
)

// console.oidc is all or nothing: an issuer without a client or groups is
// refused with what is missing; unset is local accounts only.
func TestConsoleOIDCConfig(t *testing.T) {
	if err := (ConsoleOIDCConfig{}).validate(); err != nil {
		t.Errorf("unset: %v", err)
	}
	good := ConsoleOIDCConfig{Issuer: "https://op.lab", ClientID: "console", AdminGroups: []string{"netadmins"}}
	if err := good.validate(); err != nil {
		t.Errorf("good: %v", err)
	}
	for want, bad := range map[string]ConsoleOIDCConfig{
		"issuer":         {Issuer: "http://op.lab", ClientID: "c", AdminGroups: []string{"a"}},
		"client_id":      {Issuer: "https://op.lab", AdminGroups: []string{"a"}},
		"auditor_groups": {Issuer: "https://op.lab", ClientID: "c"},
	} {
		if err := bad.validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want an error naming %s", bad, err, want)
		}
	}
	a := &Appliance{cfg: &Config{Upstream: UpstreamConfig{SystemRoots: true}}}
	a.cfg.Console.OIDC = good
	a.cfg.Console.OIDC.ClientSecretFile = t.TempDir() + "/missing"
	if _, err := a.consoleOIDC(); err == nil || !strings.Contains(err.Error(), "client_secret_file") {
		t.Errorf("missing secret file: %v", err)
	}
	a.cfg.Console.OIDC.ClientSecretFile = ""
	o, err := a.consoleOIDC()
	if err != nil || o == nil || o.Issuer != good.Issuer || o.HTTPClient == nil {
		t.Errorf("options: %+v %v", o, err)
	}
}
