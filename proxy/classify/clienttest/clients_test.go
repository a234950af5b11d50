package clienttest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// User-Agents that non-browser clients are made to send: the classifier must
// see through them.
const (
	chromeUA  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0"
)

// A client is one program the captures run against the server.
type client struct {
	name    string // also the subtest name
	version func() string
	run     func(t *testing.T, s *server)
	// sendsUA: the client completes the handshake and sends a User-Agent
	// the test can check the classification with.
	sendsUA bool
}

var clients = []client{
	{name: "chromium", sendsUA: true,
		version: func() string { return version("chromium", "--version") },
		run:     func(t *testing.T, s *server) { runChromium(t, s, s.URL("/")) }},
	// An IP literal: no SNI, so JA4_a says "i" and counts one extension
	// less; the cipher-set pattern, not the whole JA4, must match it.
	{name: "chromium-ip-literal", sendsUA: true,
		version: func() string { return version("chromium", "--version") },
		run:     func(t *testing.T, s *server) { runChromium(t, s, s.IPURL("/")) }},
	{name: "firefox-esr", sendsUA: true,
		version: func() string { return version("firefox-esr", "--version") },
		run:     runFirefox},
	{name: "curl", sendsUA: true,
		version: func() string { return version("curl", "--version") },
		run: func(t *testing.T, s *server) {
			run(t, nil, lookPath(t, "curl", "curl"), "-sS", "-o", "/dev/null", "--max-time", "20", "--cacert", s.CAFile, s.URL("/"))
		}},
	{name: "curl-chrome-ua", sendsUA: true,
		version: func() string { return version("curl", "--version") },
		run: func(t *testing.T, s *server) {
			run(t, nil, lookPath(t, "curl", "curl"), "-sS", "-o", "/dev/null", "--max-time", "20", "--cacert", s.CAFile, "-A", chromeUA, s.URL("/"))
		}},
	{name: "wget", sendsUA: true,
		version: func() string { return version("wget", "--version") },
		run: func(t *testing.T, s *server) {
			run(t, nil, lookPath(t, "wget", "wget"), "-q", "-O", "/dev/null", "--tries=1", "--timeout=20", "--ca-certificate="+s.CAFile, s.URL("/"))
		}},
	{name: "python-urllib", sendsUA: true,
		version: func() string { return version(debianPython, "--version") },
		run: func(t *testing.T, s *server) {
			run(t, nil, pythonPath(t), "-c", `
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
urllib.request.urlopen(sys.argv[2], context=ctx, timeout=20).read()
`, s.CAFile, s.URL("/"))
		}},
	{name: "python-requests-firefox-ua", sendsUA: true,
		version: func() string {
			return version(debianPython, "-c", "import requests, sys; print('Python', sys.version.split()[0], 'requests', requests.__version__)")
		},
		run: func(t *testing.T, s *server) {
			run(t, nil, pythonPath(t), "-c", `
import sys, requests
requests.get(sys.argv[2], verify=sys.argv[1], timeout=20, headers={"User-Agent": sys.argv[3]})
`, s.CAFile, s.URL("/"), firefoxUA)
		}},
	{name: "go-chrome-ua", sendsUA: true,
		version: func() string { return "Go " + goVersion() + " net/http" },
		run:     runGo},
	{name: "git", sendsUA: true,
		version: func() string { return version("git", "--version") },
		run: func(t *testing.T, s *server) {
			run(t, []string{"GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1"}, lookPath(t, "git", "git"),
				"-c", "http.sslCAInfo="+s.CAFile, "ls-remote", s.URL("/repo.git"))
		}},
	{name: "node", sendsUA: false, // https.get sends no User-Agent
		version: func() string { return "node " + version("node", "--version") },
		run: func(t *testing.T, s *server) {
			run(t, []string{"NODE_EXTRA_CA_CERTS=" + s.CAFile}, lookPath(t, "node", "nodejs"), "-e", `
require("https").get(process.argv[1], {timeout: 20000}, r => { r.resume(); r.on("end", () => process.exit(0)); })
  .on("error", e => { console.error(e.message); process.exit(1); });
`, s.URL("/"))
		}},
	{name: "openssl-s_client", sendsUA: false, // a raw TLS client: the request written here has no User-Agent
		version: func() string { return version("openssl", "version") },
		run:     runOpenSSL},
}

// debianPython is the interpreter scripts/deps.sh installs (python3,
// python3-requests), rather than whichever python3 is first on PATH.
const debianPython = "/usr/bin/python3"

func pythonPath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(debianPython); err != nil {
		t.Fatalf("%s not found (Debian packages python3 and python3-requests; scripts/deps.sh installs them): %v", debianPython, err)
	}
	return debianPython
}

// runChromium runs Chromium's own headless mode (--headless=new) from its
// command line with a fresh profile, trusting the test CA through
// $HOME/.pki/nssdb, and lets it load the page.
func runChromium(t *testing.T, s *server, url string) {
	bin := lookPath(t, "chromium", "chromium")
	home := t.TempDir()
	trustCA(t, filepath.Join(home, ".pki", "nssdb"), s.CAFile)
	out := start(t, home, nil, bin,
		"--headless=new",
		"--no-sandbox", // root cannot use Chromium's sandbox
		"--disable-gpu",
		"--no-first-run", "--no-default-browser-check",
		"--disable-component-update", "--disable-background-networking", "--disable-domain-reliability",
		"--no-proxy-server",
		"--user-data-dir="+filepath.Join(home, "profile"),
		"--dump-dom", url)
	waitRequest(t, s, "chromium", out)
}

// runFirefox starts Firefox ESR headless with a fresh profile whose NSS
// database trusts the test CA, and lets it load the page.
func runFirefox(t *testing.T, s *server) {
	bin := lookPath(t, "firefox-esr", "firefox-esr")
	profile := t.TempDir()
	trustCA(t, profile, s.CAFile)
	// Quiet the profile: no first-run pages, updates, telemetry or
	// background fetches that would slow the start in a machine offline.
	prefs := []string{
		`user_pref("browser.shell.checkDefaultBrowser", false);`,
		`user_pref("browser.startup.homepage_override.mstone", "ignore");`,
		`user_pref("browser.aboutwelcome.enabled", false);`,
		`user_pref("datareporting.policy.dataSubmissionEnabled", false);`,
		`user_pref("datareporting.healthreport.uploadEnabled", false);`,
		`user_pref("toolkit.telemetry.enabled", false);`,
		`user_pref("app.update.enabled", false);`,
		`user_pref("app.normandy.enabled", false);`,
		`user_pref("network.captive-portal-service.enabled", false);`,
		`user_pref("network.connectivity-service.enabled", false);`,
		`user_pref("extensions.update.enabled", false);`,
		`user_pref("browser.safebrowsing.update.enabled", false);`,
		`user_pref("browser.safebrowsing.malware.enabled", false);`,
		`user_pref("browser.safebrowsing.phishing.enabled", false);`,
		`user_pref("network.proxy.type", 0);`,
		`user_pref("network.trr.mode", 5);`,
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(strings.Join(prefs, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(profile, "shot.png")
	out := start(t, "", []string{"MOZ_HEADLESS=1"}, bin, "--headless", "--no-remote", "--profile", profile, "--screenshot", shot, s.URL("/"))
	waitRequest(t, s, "firefox-esr", out)
}

// waitRequest waits, within the client's budget, for a browser's first
// request; the browser is killed when the test ends.
func waitRequest(t *testing.T, s *server, name string, out interface{ String() string }) {
	t.Helper()
	got := s.waitFor(clientBudget, anyRequested)
	if !anyRequested(got) {
		t.Errorf("%s sent no request within %v: %s", name, clientBudget, tail(out.String()))
	}
}

func runGo(t *testing.T, s *server) {
	pool := x509.NewCertPool()
	pool.AddCert(s.CA.Cert)
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
	}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, s.URL("/"), nil)
	req.Header.Set("User-Agent", chromeUA)
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("go net/http: %v", err)
		return
	}
	resp.Body.Close()
}

func runOpenSSL(t *testing.T, s *server) {
	bin := lookPath(t, "openssl", "openssl")
	req := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", hostName)
	stdin := filepath.Join(t.TempDir(), "request")
	if err := os.WriteFile(stdin, []byte(req), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, nil, "/bin/sh", "-c", `exec "$0" s_client -connect "$1" -servername "$2" -CAfile "$3" -verify_return_error < "$4"`,
		bin, fmt.Sprintf("%s:%d", hostName, s.Port), hostName, s.CAFile, stdin)
}

func anyRequested(cs []capture) bool {
	for _, c := range cs {
		if c.Requested {
			return true
		}
	}
	return false
}
