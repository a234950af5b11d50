package appliance

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// suffixListen is where the lab appliance serves *.gw.test (its LAN side).
var suffixListen = netip.MustParseAddrPort("198.18.1.1:443")

const suffixLabConfig = `transparent:
  enabled: false
suffix:
  domain: gw.test
  listen: 198.18.1.1:443
`

// suffixClient is a browser-less client in the client namespace that
// reaches every *.gw.test name at the appliance, trusting only its CA.
func (l *e2eLab) suffixClient(t testing.TB, insecure bool) *http.Client {
	ca := l.applianceCA()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return l.Client.Dial(ctx, "tcp", suffixListen.String())
		},
		TLSClientConfig:   &tls.Config{RootCAs: pool(ca), InsecureSkipVerify: insecure},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestE2ESuffixProxy runs the real binary with the suffix listener in the lab:
// an onboarded app is served under the suffix with the appliance CA's
// certificate, over h2, and recorded with mode "suffix"; names of no
// onboarded app and address literals are refused with a page.
func TestE2ESuffixProxy(t *testing.T) {
	l := newE2ELab(t, suffixLabConfig)
	l.start()
	defer l.stop(syscall.SIGTERM)
	c := l.suffixClient(t, false)
	resp, err := c.Get("https://origin.lab.gw.test/echo")
	if err != nil {
		t.Fatalf("%v\n%s", err, l.log())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Origin-Host") != "origin.lab" || resp.ProtoMajor != 2 {
		t.Fatalf("status %d, origin saw Host %q, proto %s: %s", resp.StatusCode, resp.Header.Get("X-Origin-Host"), resp.Proto, body)
	}
	line := l.waitAccessLog(t, func(m map[string]any) bool { return m["mode"] == "suffix" && m["path"] == "/echo" })
	if line["host"] != "origin.lab" || line["decision"] != "allow" {
		t.Errorf("access log: %v", line)
	}

	insecure := l.suffixClient(t, true)
	for host, want := range map[string]int{
		"unknown.example.gw.test": http.StatusNotFound,
		"198.18.2.2.gw.test":      http.StatusBadRequest,
	} {
		insecure.Transport.(*http.Transport).TLSClientConfig.ServerName = host
		resp, err := insecure.Get("https://" + host + "/")
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || !strings.Contains(string(b), "gateway") && !strings.Contains(string(b), "onboarded") && !strings.Contains(string(b), "proxied") {
			t.Errorf("%s: status %d (want %d): %s", host, resp.StatusCode, want, b)
		}
	}
}
