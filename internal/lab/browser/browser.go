package browser

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// Options say where the browser runs and whom it trusts.
type Options struct {
	// NS runs Chromium inside this namespace (ip netns exec, so the
	// namespace's /etc/netns/<ns>/hosts applies). Nil runs it in the test's
	// own network namespace.
	NS *lab.NS
	// TrustPEM are CA certificates (one or more PEM blocks each) the browser
	// trusts for TLS servers, added to a throwaway NSS database.
	TrustPEM [][]byte
	// HostRules optionally maps host names (or patterns like "*.gw.test") to
	// IP addresses, bypassing DNS and hosts files for those names.
	HostRules map[string]string
	// StartTimeout bounds the browser's start; 0 means 30 seconds.
	StartTimeout time.Duration
}

// Browser is one headless Chromium process with a private profile.
type Browser struct {
	ctx  context.Context // chromedp browser context
	home string
	out  *tailBuffer
}

// chromiumBinary is Debian's launcher; it execs /usr/lib/chromium/chromium.
const chromiumBinary = "chromium"

// Start launches Chromium and waits until it answers on its DevTools pipe.
// The browser is closed, its leftover processes killed and its profile
// removed when the test ends.
func Start(t testing.TB, o Options) *Browser {
	t.Helper()
	bin, err := exec.LookPath(chromiumBinary)
	if err != nil {
		t.Fatalf("browser: %s not found in PATH (Debian package chromium; scripts/deps.sh installs it): %v", chromiumBinary, err)
	}
	if _, err := exec.LookPath("certutil"); err != nil {
		t.Fatalf("browser: certutil not found (Debian package libnss3-tools): %v", err)
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	// Registered before the browser's own cleanup, so it runs after it: the
	// profile goes only once every Chromium process is gone.
	home := t.TempDir()
	if err := trustStore(home, o.TrustPEM); err != nil {
		t.Fatalf("browser: %v", err)
	}
	execPath := bin
	if o.NS != nil {
		if err := waitAddressesSettled(o.NS, 10*time.Second); err != nil {
			t.Fatalf("browser: %v", err)
		}
		execPath = filepath.Join(home, "chromium-in-"+o.NS.Name)
		script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", o.NS.Name, bin)
		if err := os.WriteFile(execPath, []byte(script), 0o755); err != nil {
			t.Fatalf("browser: write namespace wrapper: %v", err)
		}
	}

	b := &Browser{home: home, out: &tailBuffer{max: 64 << 10}}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.NoSandbox, // root cannot use Chromium's sandbox
		chromedp.Flag("headless", "new"),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.NoInheritEnv,
		chromedp.Env(
			"HOME="+home,
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TMPDIR="+home,
			"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
			"LANG=C.UTF-8",
		),
		chromedp.CombinedOutput(b.out),
	)
	if rules := hostResolverRules(o.HostRules); rules != "" {
		opts = append(opts, chromedp.Flag("host-resolver-rules", rules))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	b.ctx = bctx
	t.Cleanup(func() {
		// A graceful close first, so Chromium flushes nothing into a removed
		// profile; then the allocator kills whatever is left.
		done := make(chan struct{})
		go func() { _ = chromedp.Cancel(bctx); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Logf("browser: graceful close timed out, killing")
		}
		cancelBrowser()
		cancelAlloc()
		if t.Failed() {
			t.Logf("browser: chromium output (tail):\n%s", b.out.String())
		}
	})

	if err := within(o.StartTimeout, func() error { return chromedp.Do(bctx) }); err != nil {
		t.Fatalf("browser: start chromium (%s): %v\noutput:\n%s", execPath, err, b.out.String())
	}
	return b
}

// NewTab opens a tab in its own browser context (cookies and storage not
// shared with other tabs) and returns its chromedp context and the log of
// its requests. The tab closes when the test ends.
func (b *Browser) NewTab(t testing.TB) (context.Context, *NetLog) {
	t.Helper()
	log := newNetLog()
	tctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(log.listen))
	t.Cleanup(cancel)
	if err := within(20*time.Second, func() error { return chromedp.Do(tctx) }); err != nil {
		t.Fatalf("browser: open tab: %v\noutput:\n%s", err, b.out.String())
	}
	return tctx, log
}

// Home is the browser's private $HOME (NSS database, profile).
func (b *Browser) Home() string { return b.home }

// waitAddressesSettled waits until no address in ns is still tentative
// (IPv6 duplicate address detection, about 2s after a link comes up, even
// for link-local addresses). Chromium watches the interfaces and fails loads
// in flight with net::ERR_NETWORK_CHANGED when an address changes state.
func waitAddressesSettled(ns *lab.NS, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command("ip", "-n", ns.Name, "-o", "addr", "show", "tentative").CombinedOutput()
		if err != nil {
			return fmt.Errorf("list tentative addresses in %s: %v: %s", ns.Name, err, out)
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("addresses in %s still tentative after %v: %s", ns.Name, timeout, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// within runs fn and gives up waiting after d. fn's own context must not
// carry the deadline: the first action on a chromedp context owns the
// browser (or tab), which would die with that context.
func within(d time.Duration, fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- fn() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(d):
		return fmt.Errorf("no answer within %v", d)
	}
}

// trustStore creates $HOME/.pki/nssdb, where Chromium on Linux reads the
// user's trusted roots, and adds each CA as trusted for TLS servers.
func trustStore(home string, cas [][]byte) error {
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return fmt.Errorf("create NSS database dir: %w", err)
	}
	if out, err := exec.Command("certutil", "-N", "-d", "sql:"+db, "--empty-password").CombinedOutput(); err != nil {
		return fmt.Errorf("certutil -N %s: %v: %s", db, err, out)
	}
	n := 0
	for i, bundle := range cas {
		rest, before := bundle, n
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			n++
			file := filepath.Join(home, fmt.Sprintf("ca-%d.pem", n))
			if err := os.WriteFile(file, pem.EncodeToMemory(blk), 0o600); err != nil {
				return err
			}
			nick := fmt.Sprintf("lab-ca-%d", n)
			out, err := exec.Command("certutil", "-A", "-d", "sql:"+db, "-n", nick, "-t", "C,,", "-a", "-i", file).CombinedOutput()
			if err != nil {
				return fmt.Errorf("certutil -A (TrustPEM[%d]): %v: %s", i, err, out)
			}
		}
		if n == before {
			return fmt.Errorf("TrustPEM[%d] holds no CERTIFICATE block", i)
		}
	}
	return nil
}

// hostResolverRules renders --host-resolver-rules, in a stable order.
func hostResolverRules(m map[string]string) string {
	rules := make([]string, 0, len(m))
	for name, ip := range m {
		// An IPv6 address is bracketed; "addr:port" maps the port too.
		if a, err := netip.ParseAddr(ip); err == nil && a.Is6() {
			ip = "[" + ip + "]"
		}
		rules = append(rules, "MAP "+name+" "+ip)
	}
	sort.Strings(rules)
	return strings.Join(rules, ", ")
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
