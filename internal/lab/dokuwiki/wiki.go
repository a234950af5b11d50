package dokuwiki

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// Config places one wiki instance.
type Config struct {
	NS   *lab.NS    // origin namespace the wiki listens in
	Addr netip.Addr // listen address in NS (port 443)
	Name string     // host name, e.g. "wiki.lab"
	// Cert and Key are the PEM server certificate chain for Name (issued by
	// the lab CA, chain included as lab.EncodeLeaf writes it) and its key.
	Cert, Key []byte
	// ReadyTimeout bounds the start; 0 means 20 seconds.
	ReadyTimeout time.Duration
}

// Wiki is a running instance.
type Wiki struct {
	URL           string // "https://<Name>/"
	AdminUser     string // in groups admin and user: may edit, upload, administer
	AdminPassword string
	Dir           string // private root: conf/, data/, log/, run/, tls/
	DataDir       string // DokuWiki's savedir (pages/, media/, ...)

	cfg   Config
	roots *x509.CertPool
}

// Start writes a private DokuWiki instance under a temporary directory,
// starts php-fpm and nginx inside cfg.NS, waits until the start page
// answers, and stops both (whole process groups) when the test ends.
func Start(t testing.TB, cfg Config) *Wiki {
	t.Helper()
	lab.RequireRoot(t)
	if cfg.NS == nil || !cfg.Addr.IsValid() || cfg.Name == "" || len(cfg.Cert) == 0 || len(cfg.Key) == 0 {
		t.Fatal("dokuwiki: Config needs NS, Addr, Name, Cert and Key")
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 20 * time.Second
	}
	fpm, err := findFPM()
	if err != nil {
		t.Fatalf("dokuwiki: %v", err)
	}
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Fatalf("dokuwiki: nginx not found (Debian package nginx): %v", err)
	}
	if _, err := os.Stat(filepath.Join(dokuCode, "doku.php")); err != nil {
		t.Fatalf("dokuwiki: %v (Debian package dokuwiki)", err)
	}
	roots, haveCA := x509.NewCertPool(), false
	for rest := cfg.Cert; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil && c.IsCA {
			roots.AddCert(c)
			haveCA = true
		}
	}
	if !haveCA {
		t.Fatal("dokuwiki: Config.Cert holds no CA certificate; give the whole chain (lab.EncodeLeaf does) so clients can verify the wiki")
	}

	w := &Wiki{
		URL:           "https://" + cfg.Name + "/",
		AdminUser:     "admin",
		AdminPassword: "pw-" + randHex(8),
		Dir:           t.TempDir(),
		cfg:           cfg,
		roots:         roots,
	}
	w.DataDir = filepath.Join(w.Dir, "data")
	if err := w.writeInstance(); err != nil {
		t.Fatalf("dokuwiki: set up instance in %s: %v", w.Dir, err)
	}

	ctx := context.Background()
	fpmCmd := cfg.NS.Command(ctx, fpm, "-F", "-R", "-y", filepath.Join(w.Dir, "php-fpm.conf"))
	fpmDone := startDaemon(t, w.Dir, "php-fpm", fpmCmd)
	nginxCmd := cfg.NS.Command(ctx, nginx, "-p", w.Dir, "-c", filepath.Join(w.Dir, "nginx.conf"), "-e", filepath.Join(w.Dir, "log", "nginx-error.log"))
	nginxDone := startDaemon(t, w.Dir, "nginx", nginxCmd)

	if err := w.waitReady(cfg.ReadyTimeout, fpmDone, nginxDone); err != nil {
		t.Fatalf("dokuwiki: %s not ready: %v\n%s", w.URL, err, w.logs())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dokuwiki logs:\n%s", w.logs())
		}
	})
	return w
}

func (w *Wiki) writeInstance() error {
	for _, d := range []string{"conf", "log", "run", "tls", "sessions", "tmp", "nginx"} {
		if err := os.MkdirAll(filepath.Join(w.Dir, d), 0o700); err != nil {
			return err
		}
	}
	for _, d := range dataDirs {
		if err := os.MkdirAll(filepath.Join(w.DataDir, d), 0o700); err != nil {
			return err
		}
	}
	conf := filepath.Join(w.Dir, "conf")
	if err := copyDefaultConf(conf); err != nil {
		return err
	}
	files := map[string]string{
		"prepend.php":            prependPHP(conf),
		"conf/local.php":         localPHP("Portcullis lab wiki", w.DataDir),
		"conf/acl.auth.php":      aclPHP,
		"conf/plugins.local.php": "<?php\n",
		"conf/users.auth.php": usersPHP([]user{{
			login: w.AdminUser, password: w.AdminPassword, name: "Lab Admin",
			mail: "admin@" + w.cfg.Name, groups: []string{"admin", "user"},
		}}),
		"data/pages/start.txt": "====== Portcullis lab wiki ======\n\nA private DokuWiki for end-to-end tests.\n",
		"php-fpm.conf":         fpmConf(w.Dir),
		"nginx.conf":           nginxConf(w.Dir, w.cfg.Addr, w.cfg.Name),
		"tls/cert.pem":         string(w.cfg.Cert),
		"tls/key.pem":          string(w.cfg.Key),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(w.Dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// daemon is a started server process; exited is closed once it has been
// reaped, and err then holds how it ended.
type daemon struct {
	name   string
	exited chan struct{}
	err    error
}

// startDaemon starts cmd in its own process group and registers a cleanup
// that stops the whole group (master and workers): SIGTERM, then SIGKILL.
func startDaemon(t testing.TB, dir, name string, cmd *exec.Cmd) *daemon {
	t.Helper()
	out, err := os.Create(filepath.Join(dir, "log", name+".out"))
	if err != nil {
		t.Fatalf("dokuwiki: %v", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = nil
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("dokuwiki: start %s: %v", name, err)
	}
	d := &daemon{name: name, exited: make(chan struct{})}
	exited := d.exited
	go func() { d.err = cmd.Wait(); out.Close(); close(exited) }()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Logf("dokuwiki: %s ignored SIGTERM for 5s, killing", name)
		}
		// Workers can outlive their master; the group goes either way.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Errorf("dokuwiki: %s (pid %d) still running after SIGKILL", name, pgid)
		}
	})
	return d
}

func (w *Wiki) waitReady(timeout time.Duration, daemons ...*daemon) error {
	// A probe in flight is cut short when a daemon dies: a dead nginx can
	// leave another socket on its port that accepts and never answers.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	died := make(chan *daemon, len(daemons))
	for _, d := range daemons {
		go func() {
			select {
			case <-d.exited:
				died <- d
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	c := w.Client()
	var last error
	for {
		select {
		case d := <-died:
			return fmt.Errorf("%s exited during start: %v", d.name, d.err)
		case <-ctx.Done():
			select {
			case d := <-died:
				return fmt.Errorf("%s exited during start: %v", d.name, d.err)
			default:
			}
			return fmt.Errorf("after %v: %v", timeout, last)
		default:
		}
		if last = w.probe(ctx, c); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probe asks for the start page once.
func (w *Wiki) probe(ctx context.Context, c *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.URL+"doku.php?id=start", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Portcullis lab wiki") {
		return fmt.Errorf("status %d: %.300s", resp.StatusCode, body)
	}
	return nil
}

// Client returns an HTTP client with its own cookie jar that reaches the
// wiki directly (dialing cfg.Addr:443 from inside its namespace, whatever
// the URL's host) and verifies its certificate against the CA certificates
// found in Config.Cert.
func (w *Wiki) Client() *http.Client {
	jar, _ := cookiejar.New(nil)
	target := netip.AddrPortFrom(w.cfg.Addr, 443).String()
	return &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return w.cfg.NS.Dial(ctx, "tcp", target)
			},
			TLSClientConfig:   &tls.Config{RootCAs: w.roots, ServerName: w.cfg.Name},
			ForceAttemptHTTP2: true,
			MaxIdleConns:      4,
			IdleConnTimeout:   10 * time.Second,
		},
		// DokuWiki answers a login or a save with a redirect; callers check
		// where it went.
	}
}

// logs returns the tails of the instance's log files, for failure reports.
func (w *Wiki) logs() string {
	var b strings.Builder
	names, _ := filepath.Glob(filepath.Join(w.Dir, "log", "*"))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", n, data)
	}
	return b.String()
}

// findFPM finds Debian's versioned php-fpm binary (php-fpm8.2 on bookworm).
func findFPM() (string, error) {
	if p, err := exec.LookPath("php-fpm"); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/sbin/php-fpm*")
	if len(matches) == 0 {
		return "", errors.New("php-fpm not found in /usr/sbin (Debian package php-fpm)")
	}
	return matches[len(matches)-1], nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
