package appliance

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// groupAccessPolicies let only the finance group (and the CI bot's group)
// into the lab origin, an app that requires the user (newIdentityLab): the
// connection cannot know a browser's group, the login inside it does; the
// bot, a native client, is named by identity.source_users.
const groupAccessPolicies = `apps:
  - id: origin-lab
    name: Lab origin
    domains: [origin.lab]
access_policies:
  # Native clients are intercepted only where a policy names them.
  - id: native-monitored
    filters: {apps: [origin-lab], client_apps: [mobile_desktop]}
    action: monitor
  - id: finance-only
    filters: {apps: [origin-lab], groups: {none_of: [finance, ci]}, client_apps: [browser, mobile_desktop]}
    action: block
    message: Only finance may use the lab origin.
`

// TestE2ETransparentGroupAccess: in transparent mode an access policy on
// the user's groups is decided once the appliance's OIDC login tells who
// the user is — alice (finance) reaches the app, bob (staff) is shown the
// block page with the policy's message, both after signing in; a native
// client, anonymous, is refused at the handshake, while one whose address
// identity.source_users names (build-bot, group ci) is decided as that
// user at the connection and let in; port 80 sends a browser to HTTPS to
// sign in and refuses curl.
func TestE2ETransparentGroupAccess(t *testing.T) {
	l := newIdentityLab(t, groupAccessPolicies)
	l.start()
	defer l.stop(syscall.SIGTERM)
	b := identityBrowser(t, l)

	alice, _ := b.NewTab(t)
	step(t, l, alice, "open the app", chromedp.Navigate("https://origin.lab/?from=alice"))
	if loc := location(t, alice); !strings.HasPrefix(loc, "https://op.lab/login") {
		t.Fatalf("alice not sent to the OIDC login: %s\n%s", loc, l.log())
	}
	signInAt(t, l, alice, "alice", "alice-pw")
	step(t, l, alice, "alice at the app", waitText("hello from lab origin"))
	if loc := location(t, alice); loc != "https://origin.lab/?from=alice" {
		t.Fatalf("alice landed on %s", loc)
	}
	line := l.waitAccessLog(t, func(m map[string]any) bool {
		return m["path"] == "/" && m["user"] == "alice" && m["status"] == float64(200)
	})
	if line["decision"] != "allow" {
		t.Errorf("alice's request: %v", line)
	}

	bob, _ := b.NewTab(t)
	step(t, l, bob, "open the app", chromedp.Navigate("https://origin.lab/?from=bob"))
	if loc := location(t, bob); !strings.HasPrefix(loc, "https://op.lab/login") {
		t.Fatalf("bob not sent to the OIDC login: %s\n%s", loc, l.log())
	}
	signInAt(t, l, bob, "bob", "bob-pw")
	step(t, l, bob, "bob shown the block page", waitText("Only finance may use the lab origin."))
	if loc := location(t, bob); loc != "https://origin.lab/?from=bob" {
		t.Errorf("bob's block page at %s", loc)
	}
	line = l.waitAccessLog(t, func(m map[string]any) bool {
		return m["path"] == "/" && m["user"] == "bob" && m["decision"] == "block"
	})
	if line["status"] != float64(403) || !strings.Contains(fmt.Sprint(line["reason"]), "policy finance-only (user bob)") {
		t.Errorf("bob's request: %v", line)
	}

	caFile := filepath.Join(l.dir, "appliance-ca.pem")
	t.Run("native client refused at the handshake", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := l.Client.Exec(ctx, "curl", "-sS", "--interface", l.Client4.String(), "--cacert", caFile,
			"--resolve", "origin.lab:443:"+originGood.String(), "-o", "/dev/null", "https://origin.lab/")
		if err == nil || !strings.Contains(string(out), "alert access denied") {
			t.Fatalf("curl: want the access_denied alert, got %v: %s", err, out)
		}
		line := l.waitAccessLog(t, func(m map[string]any) bool {
			return m["sni"] == "origin.lab" && m["decision"] == "block" && m["path"] == nil &&
				strings.HasPrefix(fmt.Sprint(m["client"]), l.Client4.String()+":")
		})
		if line["reason"] != "policy finance-only" {
			t.Errorf("native client's line: %v", line)
		}
		out, err = l.Client.Exec(ctx, "curl", "-sS", "--interface", botAddr.String(), "--cacert", caFile,
			"--resolve", "origin.lab:443:"+originGood.String(), "-o", "/dev/null", "-w", "%{http_code}", "https://origin.lab/?from=bot")
		if err != nil || strings.TrimSpace(string(out)) != "200" {
			t.Fatalf("curl as build-bot (group ci): %v %s\n%s", err, out, l.log())
		}
		line = l.waitAccessLog(t, func(m map[string]any) bool { return m["path"] == "/" && m["user"] == "build-bot" })
		if line["decision"] != "allow" || line["client_app"] != "mobile_desktop" {
			t.Errorf("build-bot's request: %v", line)
		}
	})

	t.Run("plain HTTP", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		curl := func(args ...string) string {
			out, err := l.Client.Exec(ctx, "curl", append([]string{"-sS", "--interface", l.Client4.String(),
				"--resolve", "origin.lab:80:" + originGood.String(), "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"}, args...)...)
			if err != nil {
				t.Fatalf("curl %v: %v %s", args, err, out)
			}
			return strings.TrimSpace(string(out))
		}
		// On port 80 only the User-Agent tells a browser.
		chrome := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"
		if got := curl("-A", chrome, "http://origin.lab/plain?x=1"); got != "302 https://origin.lab/plain?x=1" {
			t.Errorf("browser navigation on port 80: %q", got)
		}
		if got := curl("http://origin.lab/plain?x=2"); got != "403" {
			t.Errorf("curl on port 80: %q", got)
		}
		// alice, signed in, follows port 80 to the app.
		step(t, l, alice, "alice over port 80", chromedp.Navigate("http://origin.lab/plain?x=3"), waitText("hello from lab origin"))
		if loc := location(t, alice); loc != "https://origin.lab/plain?x=3" {
			t.Errorf("alice from port 80 at %s", loc)
		}
	})
}
