package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevicesConfigRefused: settings that cannot be honoured are errors at
// load, naming the key or the file.
func TestDevicesConfigRefused(t *testing.T) {
	dir := t.TempDir()
	notCA := filepath.Join(dir, "not-a-ca.pem")
	if err := os.WriteFile(notCA, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ yaml, want string }{
		{"devices:\n  user_from: upn\n", `devices.user_from: "upn" is not one of`},
		{"devices:\n  crl_files: [x.crl]\n", "devices: crl_files need client_cas"},
		{"devices:\n  client_cas: [" + notCA + "]\n  check_crl: false\n  require_crl: true\n", "devices.require_crl: needs check_crl: true"},
	} {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte("state_dir: "+dir+"\n"+c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
	// user_from before any CA (they may be uploaded from the console) loads.
	p := filepath.Join(dir, "u.yaml")
	if err := os.WriteFile(p, []byte("state_dir: "+dir+"\ndevices:\n  user_from: san_email\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err != nil {
		t.Errorf("user_from without client_cas: %v", err)
	}
	cfg := &DevicesConfig{ClientCAs: []string{notCA}, CheckCRL: true, UserFrom: "none"}
	if _, err := deviceCerts(cfg, nil); err == nil || !strings.Contains(err.Error(), notCA) || !strings.Contains(err.Error(), "not PEM") {
		t.Errorf("a bundle that is not PEM: %v", err)
	}
	if cc, err := deviceCerts(&DevicesConfig{UserFrom: "none"}, nil); cc != nil || err != nil {
		t.Errorf("no client CAs: %v, %v; want nothing asked for", cc, err)
	}
}
