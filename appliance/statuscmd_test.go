package appliance

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestStatusOfARunningDaemon(t *testing.T) {
	state := t.TempDir()
	cfgPath := writeConfig(t, fmt.Sprintf(`state_dir: %s
management: {listen: %q}
transparent: {enabled: false}
log: {access: stderr}
activity: {jsonl: {path: %s/events.jsonl}}
`, state, freeAddr(t), state))
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Not running yet: exit 3, and what is on disk is still shown.
	out, _, err := runCLI(t, "status", "--config", cfgPath)
	if ExitCode(err) != 3 || !strings.Contains(out, "daemon:     not running") || !strings.Contains(out, "NOT RUNNING") {
		t.Fatalf("status without a daemon: exit %d\n%s", ExitCode(err), out)
	}
	runAppliance(t, cfg)
	waitHealthz(t, cfg.Management.Listen)

	out, errOut, err := runCLI(t, "status", "-config", cfgPath)
	if err != nil {
		t.Fatalf("status of a healthy daemon: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{"daemon:     running", "datapath:   disabled", "management " + cfg.Management.Listen,
		"activity:   " + state + "/activity.db", "healthy", "jsonl → " + state + "/events.jsonl", "health:     OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func waitHealthz(t *testing.T, addr string) {
	t.Helper()
	for range 100 {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		waitABit()
	}
	t.Fatalf("%s never answered", addr)
}

// A daemon whose activity store stopped committing, or whose datapath has
// no listener, is unhealthy: exit 1, with the reasons.
func TestStatusUnhealthy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			fmt.Fprintln(w, "ok")
		case "/metrics":
			fmt.Fprint(w, `# TYPE portcullis_activity_store_healthy gauge
portcullis_activity_store_healthy 0
# TYPE portcullis_datapath_attach_mode gauge
portcullis_datapath_attach_mode{mode="tc"} 1
# TYPE portcullis_datapath_listener_present gauge
portcullis_datapath_listener_present{family="ipv4"} 0
portcullis_datapath_listener_present{family="ipv6"} 1
`)
		}
	}))
	defer srv.Close()
	cfgPath := writeConfig(t, fmt.Sprintf("state_dir: %s\nmanagement: {listen: %q}\ndatapath: {pin_dir: %s/pins}\n",
		t.TempDir(), strings.TrimPrefix(srv.URL, "http://"), t.TempDir()))
	out, _, err := runCLI(t, "status", "--config", cfgPath)
	if ExitCode(err) != 1 {
		t.Fatalf("exit %d, want 1:\n%s", ExitCode(err), out)
	}
	for _, want := range []string{"attached on lan0 (tc)", "ipv4 no, ipv6 yes", "NOT committing", "UNHEALTHY",
		"activity store is not committing events", "no IPv4 proxy listener"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func waitABit() { time.Sleep(50 * time.Millisecond) }
