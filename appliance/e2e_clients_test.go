package appliance

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/internal/lab/browser"
)

const clientPolicies = `access_policies:
  - id: no-native-origin
    filters: {apps: [origin-lab], client_apps: [mobile_desktop]}
    action: block
    message: Native apps may not reach the lab origin.
  - id: no-browsers-chat
    filters: {apps: [chat-lab], client_apps: [browser]}
    action: block
    message: Use the chat app, not the browser.
  - id: watch-native-chat
    filters: {apps: [chat-lab], client_apps: [mobile_desktop]}
    action: monitor
`

// TestE2ENativeAndBrowserClients runs real clients through the datapath
// and the appliance binary: native clients (curl — also with a Chrome
// User-Agent — and Python with a Firefox one) are refused with a TLS alert
// where a policy targets native clients, while Chromium reaches the same
// app; Chromium blocked at access gets the block page with the admin's
// message (the handshake completed with the appliance's leaf); a native
// client that refuses the appliance's certificate (as a pinning app does)
// is learnt into the pass-through list, spliced from then on, listed on
// the management address and removable; every decision names the client
// kind in the activity log.
func TestE2ENativeAndBrowserClients(t *testing.T) {
	l := newE2ELab(t, "")
	polDir := filepath.Join(l.dir, "policies")
	if err := os.MkdirAll(polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(polDir, "clients.yaml"), []byte(clientPolicies), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(l.cfgPath)
	if err := os.WriteFile(l.cfgPath, append(b, []byte("policy:\n  dir: "+polDir+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	l.Client.SetHosts(map[string]netip.Addr{"origin.lab": originGood, "chat.lab": originGood})
	l.start()
	defer l.stop(syscall.SIGTERM)
	l.applianceCA()
	applianceCA := filepath.Join(l.dir, "appliance-ca.pem")
	labCA := filepath.Join(l.dir, "lab-ca.pem")
	run := func(name string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := l.Client.Exec(ctx, name, args...)
		return string(out), err
	}
	const chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0.0.0 Safari/537.36"
	const firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0"

	t.Run("native clients are refused where a policy targets them", func(t *testing.T) {
		for _, args := range [][]string{
			{"curl", "-sS", "--cacert", applianceCA, "https://origin.lab/"},
			{"curl", "-sS", "-A", chromeUA, "--cacert", applianceCA, "https://origin.lab/"},
			{"python3", "-c", `import ssl, urllib.request; c = ssl.create_default_context(cafile="` + applianceCA + `")
urllib.request.urlopen(urllib.request.Request("https://origin.lab/", headers={"User-Agent": "` + firefoxUA + `"}), context=c)`},
		} {
			out, err := run(args[0], args[1:]...)
			if err == nil || strings.Contains(out, "hello from lab origin") || !strings.Contains(strings.ToLower(out), "alert") && !strings.Contains(out, "access denied") {
				t.Errorf("%v: %v\n%s", args, err, out)
			}
		}
		l.waitAccessLog(t, func(m map[string]any) bool {
			return m["decision"] == "block" && m["sni"] == "origin.lab" && strings.Contains(m["reason"].(string), "no-native-origin")
		})
	})

	caPEM, err := os.ReadFile(applianceCA)
	if err != nil {
		t.Fatal(err)
	}
	br := browser.Start(t, browser.Options{NS: l.Client, TrustPEM: [][]byte{caPEM},
		HostRules: map[string]string{"origin.lab": originGood.String(), "chat.lab": originGood.String()}})
	tab, _ := br.NewTab(t)
	step := func(name string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, l.log())
		}
	}
	t.Run("Chromium reaches the app native clients may not", func(t *testing.T) {
		step("open origin.lab", chromedp.Navigate("https://origin.lab/"), waitText("hello from lab origin"))
	})
	t.Run("Chromium blocked at access gets the block page", func(t *testing.T) {
		step("open chat.lab", chromedp.Navigate("https://chat.lab/"), waitText("Use the chat app, not the browser."))
	})

	t.Run("a pinning native client is learnt into the pass-through list", func(t *testing.T) {
		issuer := func() string {
			t.Helper()
			out, err := run("curl", "-sS", "-k", "-v", "-o", "/dev/null", "https://chat.lab/")
			if err != nil {
				t.Fatalf("curl -k: %v\n%s", err, out)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "issuer:") {
					return line
				}
			}
			t.Fatalf("no issuer in curl's output:\n%s", out)
			return ""
		}
		if is := issuer(); !strings.Contains(is, "Portcullis") {
			t.Fatalf("before learning, native chat.lab is intercepted (monitor policy): %s", is)
		}
		// curl trusting only the origin's own CA refuses the appliance's leaf
		// with an alert, as a pinning app does.
		if out, err := run("curl", "-sS", "--cacert", labCA, "https://chat.lab/"); err == nil {
			t.Fatalf("curl accepted the appliance's leaf: %s", out)
		}
		l.waitAccessLog(t, func(m map[string]any) bool { return m["decision"] == "learn" && m["sni"] == "chat.lab" })
		if is := issuer(); !strings.Contains(is, "lab origin CA") {
			t.Errorf("after learning, chat.lab is not spliced for curl: %s", is)
		}
		list := l.get("http://127.0.0.1:9780/passthrough")
		if !strings.Contains(list, `"host":"chat.lab"`) || !strings.Contains(list, `"family":"curl"`) {
			t.Fatalf("pass-through list %s", list)
		}
		if out, err := l.GW.Exec(context.Background(), "curl", "-sS", "-X", "DELETE", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:9780/passthrough?host=chat.lab"); err != nil || string(out) != "204" {
			t.Fatalf("remove: %v %s", err, out)
		}
		if is := issuer(); !strings.Contains(is, "Portcullis") {
			t.Errorf("after removal, chat.lab is not intercepted again: %s", is)
		}
	})

	l.stop(syscall.SIGTERM)
	st, err := activity.Open(filepath.Join(l.dir, "state", "activity.db"), activity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.Search(activity.Query{Policy: "no-native-origin", Action: "block"})
	if err != nil || len(page.Events) < 3 {
		t.Fatalf("%d block events for native clients: %v", len(page.Events), err)
	}
	for _, ev := range page.Events {
		// Every event says what the client is, and why.
		if ev.ClientApp != "mobile_desktop" || !strings.HasPrefix(ev.ClientWhy, "curl (") && !strings.HasPrefix(ev.ClientWhy, "python (") {
			t.Errorf("native block event with client %q (%q): %+v", ev.ClientApp, ev.ClientWhy, ev)
		}
	}
	if page, _ = st.Search(activity.Query{Policy: "no-browsers-chat"}); len(page.Events) == 0 || page.Events[0].ClientApp != "browser" {
		t.Errorf("browser block events: %+v", page.Events)
	}
}
