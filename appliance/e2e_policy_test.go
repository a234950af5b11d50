package appliance

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/internal/lab"
)

const blockDownloadsPolicy = `session_policies:
  - id: no-lab-downloads
    filters:
      apps: [origin-lab]
      # The test drives native clients (Go, curl): a policy without
      # client_apps would apply to browsers only.
      client_apps: [browser, mobile_desktop]
    control: block_activities
    activities: [download_file]
    action: block
    message: Downloads from the lab origin are blocked by policy.
`

// TestPoliciesEnforcedAndReloaded runs the appliance with a policy directory:
// session policies block an activity with the admin's message, hosts outside
// the catalog are spliced untouched, and SIGHUP swaps in a new directory only
// when it is valid.
func TestPoliciesEnforcedAndReloaded(t *testing.T) {
	l := newE2ELab(t, "")
	polDir := filepath.Join(l.dir, "policies")
	if err := os.MkdirAll(polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	polFile := filepath.Join(polDir, "lab.yaml")
	if err := os.WriteFile(polFile, []byte(blockDownloadsPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(l.cfgPath)
	jsonl := filepath.Join(l.dir, "events.jsonl")
	syslogMsgs := l.syslogReceiver(t)
	extra := "policy:\n  dir: " + polDir + "\nactivity:\n  jsonl:\n    path: " + jsonl +
		"\n  syslog:\n    addr: 127.0.0.1:6514\n    roots: [" + filepath.Join(l.dir, "lab-ca.pem") + "]\n"
	if err := os.WriteFile(l.cfgPath, append(b, []byte(extra)...), 0o600); err != nil {
		t.Fatal(err)
	}
	l.start()
	ca := l.applianceCA()
	good := netip.AddrPortFrom(originGood, 443)
	c := l.client(good, pool(ca), false)

	resp, body := fetch(t, c, "https://origin.lab/files/report.pdf")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Downloads from the lab origin are blocked by policy.") {
		t.Fatalf("download: status %d body %q, want the policy's block page", resp.StatusCode, body)
	}
	if _, body = fetch(t, c, "https://origin.lab/"); !strings.Contains(body, "hello from lab origin") {
		t.Fatalf("a page outside the activity was not served: %q", body)
	}
	l.waitAccessLog(t, func(m map[string]any) bool {
		return m["path"] == "/files/report.pdf" && m["decision"] == "block" && strings.Contains(m["reason"].(string), "no-lab-downloads")
	})

	// A host that is not an onboarded app is spliced: the origin's own
	// certificate (which does not cover the name, hence no verification here).
	tr := &http.Transport{DialContext: c.Transport.(*http.Transport).DialContext,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the issuer is what is checked
	defer tr.CloseIdleConnections()
	resp, _ = fetch(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://unlisted.example/")
	if iss := resp.TLS.PeerCertificates[0].Issuer.CommonName; iss != "lab origin CA" {
		t.Errorf("unlisted host: issuer %q, want the origin's own (spliced)", iss)
	}

	// A broken directory is refused on reload and the running policies stay.
	if err := os.WriteFile(polFile, []byte("session_policies:\n  - id: x\n    bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = l.proc.Process.Signal(syscall.SIGHUP)
	waitLog(t, l, "reload refused")
	if resp, _ = fetch(t, c, "https://origin.lab/files/report.pdf"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("after a refused reload: status %d, want the old policy still blocking", resp.StatusCode)
	}
	// A valid directory replaces them.
	if err := os.WriteFile(polFile, []byte(strings.Replace(blockDownloadsPolicy, "action: block", "action: monitor", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = l.proc.Process.Signal(syscall.SIGHUP)
	waitLog(t, l, "policies reloaded")
	if resp, body = fetch(t, c, "https://origin.lab/files/report.pdf"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after reload to monitor: status %d body %q", resp.StatusCode, body)
	}
	l.waitAccessLog(t, func(m map[string]any) bool { return m["path"] == "/files/report.pdf" && m["decision"] == "monitor" })

	// Every decision is an activity event, durable once the appliance stops,
	// and exported as JSON lines while it runs.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(jsonl)
		if strings.Contains(string(b), `"policies":["no-lab-downloads"]`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no exported event for the blocked download in %s:\n%s", jsonl, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// ... and delivered to the syslog collector over TLS (RFC 5424/5425).
	select {
	case m := <-syslogMsgs:
		sd := m.SD["portcullis@32473"]
		if sd["policies"] != "no-lab-downloads" || sd["action"] != "block" || sd["path"] != "/files/report.pdf" {
			t.Errorf("first syslog event %+v, want the blocked download", sd)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no syslog message within 5s")
	}
	l.stop(syscall.SIGTERM)
	st, err := activity.Open(filepath.Join(l.dir, "state", "activity.db"), activity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.Search(activity.Query{Policy: "no-lab-downloads", Action: "block"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2 {
		t.Fatalf("%d blocked download events for no-lab-downloads, want 2 (before and after the refused reload): %+v", len(page.Events), page.Events)
	}
	if page.Events[0].App != "origin-lab" {
		t.Errorf("event app %q, want origin-lab", page.Events[0].App)
	}
	ev := page.Events[0]
	if ev.Host != "origin.lab" || ev.Path != "/files/report.pdf" || ev.Method != "GET" || ev.SourceIP.String() != "198.18.1.2" || ev.JA4 == "" {
		t.Errorf("event %+v lacks the request's details", ev)
	}
	if page, _ = st.Search(activity.Query{Action: "bypass"}); len(page.Events) == 0 || page.Events[0].Host != "unlisted.example" {
		t.Errorf("no bypass event for the unlisted host: %+v", page.Events)
	}
	st.Close()

	// The same search from the command line.
	out, errOut, err := runCLI(t, "activity", "search", "-config", l.cfgPath, "--policy", "no-lab-downloads", "--action", "block", "--limit", "1")
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"path":"/files/report.pdf"`) || !strings.Contains(errOut, "more: --after ") {
		t.Fatalf("activity search: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
}

func waitLog(t *testing.T, l *e2eLab, text string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(l.log(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("appliance log lacks %q:\n%s", text, l.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syslogReceiver listens with TLS on 127.0.0.1:6514 in the gateway namespace
// and yields every octet-counted RFC 5424 message it receives.
func (l *e2eLab) syslogReceiver(t *testing.T) <-chan *activity.SyslogMessage {
	cert, err := l.labCA.Leaf(lab.LeafOptions{Names: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := l.GW.Listen("tcp", "127.0.0.1:6514")
	if err != nil {
		t.Fatal(err)
	}
	ln := tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	t.Cleanup(func() { ln.Close() })
	out := make(chan *activity.SyslogMessage, 1000)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					var n int
					if _, err := fmt.Fscanf(r, "%d ", &n); err != nil || n <= 0 || n > 1<<20 {
						return
					}
					frame := make([]byte, n)
					if _, err := io.ReadFull(r, frame); err != nil {
						return
					}
					if m, err := activity.ParseRFC5424(frame); err == nil {
						out <- m
					}
				}
			}()
		}
	}()
	return out
}
