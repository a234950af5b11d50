package appliance

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The console by default: HTTPS on the management address's host (port
// 9443) with a certificate from the appliance CA for that address; the
// plain-HTTP management port redirects console paths there and keeps
// serving /metrics; the console's port does not serve plain HTTP.
func TestConsoleServingDefaults(t *testing.T) {
	state := t.TempDir()
	mgmt := freeAddr(t)
	cfgPath := writeConfig(t, fmt.Sprintf("state_dir: %s\nmanagement: {listen: %q}\ntransparent: {enabled: false}\n", state, mgmt))
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a := runAppliance(t, cfg)
	mgmtHost, _, _ := net.SplitHostPort(mgmt)
	consoleAddr := a.ConsoleAddr()
	if host, port, _ := net.SplitHostPort(consoleAddr); host != mgmtHost || port != "9443" {
		t.Fatalf("console listens on %s, want the management host %s, port 9443", consoleAddr, mgmtHost)
	}
	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(10 * time.Second)
	var resp *http.Response
	for {
		resp, err = plain.Get("http://" + mgmt + "/dashboard?range=1h")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://" + mgmtHost + ":9443/dashboard?range=1h"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain GET /dashboard: %d to %q, want 308 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if resp, err := plain.Get("http://" + mgmt + "/metrics"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/metrics on the management port: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	caPEM, err := os.ReadFile(filepath.Join(state, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	secure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = secure.Get("https://" + consoleAddr + "/login")
	if err != nil {
		t.Fatalf("console over HTTPS, trusting only the appliance CA: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 && resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /login: %d", resp.StatusCode)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("TLS state %+v", resp.TLS)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	resp2, err := plain.Get("http://" + consoleAddr + "/login")
	if err == nil {
		body, _ := io.ReadAll(resp2.Body)
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "<form") {
			t.Errorf("plain HTTP to the console port: %d %q", resp2.StatusCode, body)
		}
	}
}
